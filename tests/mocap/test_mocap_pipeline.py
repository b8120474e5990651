"""Kineo end to end on simulated sequences: time alignment, calibration, triangulation, scale, outputs, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from apps.cli import main
from perception.datasets.colmap import read_colmap_model
from perception.datasets.keypoints2d import Keypoints2D, read_keypoints2d_dir, write_keypoints2d
from perception.errors import InputError
from perception.metrics import mocap as M
from perception.sim.scenarios.mocap import MocapSimConfig, make_mocap
from recon.mocap import MocapConfig, run_mocap
from recon.mocap.sync import estimate_offsets


def _camera_errors(r, truth) -> tuple[float, float]:
    cp = np.stack([T.t for T in r.T_world_cam])
    cg = np.stack([truth["T_world_cam"][n].t for n in r.cameras])
    Tp = np.stack([T.matrix() for T in r.T_world_cam])
    Tg = np.stack([truth["T_world_cam"][n].matrix() for n in r.cameras])
    return M.te(cp, cg), M.ae(Tp, Tg)


def test_offsets_from_keypoint_motion_within_half_a_frame(tmp_path) -> None:
    truth = make_mocap(tmp_path, MocapSimConfig(cameras=4, seconds=20.0), seed=4)
    r = estimate_offsets(read_keypoints2d_dir(tmp_path / "keypoints2d"))
    o = truth["offsets"]
    for n, est in r.offsets_s.items():
        assert abs(est - (o[n] - o["cam01"])) * 30 < 0.5, n


def test_noise_free_with_true_intrinsics_is_exact(tmp_path) -> None:
    truth = make_mocap(tmp_path, MocapSimConfig(cameras=4, seconds=15.0, noise="none"), seed=0)
    c = truth["cameras"]["cam01"]
    r = run_mocap(read_keypoints2d_dir(tmp_path / "keypoints2d"),
                  MocapConfig(focal_px=c.fx, distortion=(c.k1, c.k2, c.p1, c.p2, c.k3)))  # fmt: skip
    te, ae = _camera_errors(r, truth)
    assert te < 1e-3 and ae < 0.01
    o = truth["offsets"]
    assert max(abs(r.offsets_s[n] - (o[n] - o["cam01"])) for n in r.cameras) * 30 < 0.01  # frames


@pytest.fixture(scope="module")
def realistic_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ego")
    assert main(["sim", "egohumans", "--out", str(root), "--cameras", "4", "--seconds", "20", "--seed", "0",
                 "--scenario.images"]) == 0  # fmt: skip
    out = root / "mocap"
    assert main(["mocap", "--keypoints", str(root / "keypoints2d"), "--out", str(out),
                 "--mocap.images", str(root / "exo")]) == 0  # fmt: skip
    return root, out


def test_realistic_four_cameras_meet_the_bar(realistic_run, tmp_path) -> None:
    root, out = realistic_run
    js = tmp_path / "m.json"
    assert main(["eval", "egohumans", "--root", str(root), "--run", str(out), "--json", str(js)]) == 0
    m = json.loads(js.read_text())
    assert m["TE_m"] <= 0.03 and m["AE_deg"] <= 0.3 and m["focal_rel_err"] <= 0.01
    assert m["W_MPJPE_mm"] <= 25 and m["PA_MPJPE_mm"] <= 15 and m["offset_err_frames_max"] <= 0.5
    assert m["frames_compared"] > 300 and m["joints_triangulated"] > 0.98


def test_outputs_are_standard_files(realistic_run) -> None:
    import ezc3d

    _, out = realistic_run
    model = read_colmap_model(out / "colmap")
    assert len(model.cameras) == 4 and len(model.images) == 4
    cams = json.loads((out / "cameras.json").read_text())["cameras"]
    assert set(cams["cam02"]) >= {"fx", "k1", "k2", "p1", "p2", "k3", "T_world_cam", "offset_s"}
    z = np.load(out / "joints.npz")
    assert z["joints"].shape[1:] == (17, 3) and z["consensus"].shape == z["joints"].shape[:2]
    assert 0 < np.median(z["consensus"]) <= 1
    c3d = ezc3d.c3d(str(out / "joints.c3d"))
    assert c3d["data"]["points"].shape == (4, 17, len(z["times_s"]))
    assert (out / "run.rrd").stat().st_size > 10_000 and (out / "config.yaml").is_file()


def test_scene_points_lie_on_the_simulated_floor_and_walls(realistic_run) -> None:
    import open3d as o3d

    from perception.metrics.mocap import procrustes
    from perception.sim.scenarios.mocap import SCENE_HALF

    root, out = realistic_run
    P = np.asarray(o3d.io.read_point_cloud(str(out / "scene.ply")).points)
    assert len(P) > 200
    pred = json.loads((out / "cameras.json").read_text())["cameras"]
    gt = json.loads((root / "gt" / "mocap_gt.json").read_text())["T_world_cam"]
    names = sorted(pred)
    s, R, t = procrustes(np.stack([np.array(pred[n]["T_world_cam"])[:3, 3] for n in names]),
                         np.stack([np.array(gt[n])[:3, 3] for n in names]), with_scale=False)  # fmt: skip
    Q = s * P @ R.T + t  # into the truth's frame by the rigid camera alignment (metric scale errors count)
    d = np.minimum.reduce([np.abs(Q[:, 2]), np.abs(np.abs(Q[:, 0]) - SCENE_HALF), np.abs(np.abs(Q[:, 1]) - SCENE_HALF)])
    assert np.median(d) < 0.06 and np.percentile(d, 90) < 0.15


def test_bad_inputs(tmp_path) -> None:
    make_mocap(tmp_path, MocapSimConfig(cameras=3, seconds=6.0), seed=2)
    kp = read_keypoints2d_dir(tmp_path / "keypoints2d")
    dead = kp["cam02"]
    blank = dead.keypoints.copy()
    blank[..., :2] = np.nan
    blank[..., 2] = 0.0
    kp["cam02"] = Keypoints2D("cam02", dead.image_size, dead.frame_index, dead.timestamp_ns, blank)
    with pytest.raises(InputError, match="camera cam02 has no detections"):
        run_mocap(kp)
    with pytest.raises(InputError, match="needs at least 2"):
        run_mocap({"cam01": kp["cam01"]})
    # a detector without confidences (all 1): a warning, and the run still completes
    k1 = kp["cam01"]
    ones = k1.keypoints.copy()
    ones[..., 2] = np.where(ones[..., 2] > 0, 1.0, 0.0)
    write_keypoints2d(tmp_path / "k" / "cam01.npz", Keypoints2D("cam01", k1.image_size, k1.frame_index,
                                                                 k1.timestamp_ns, ones))  # fmt: skip
    kp2 = {"cam01": read_keypoints2d_dir(tmp_path / "k")["cam01"], "cam03": kp["cam03"]}
    r = run_mocap(kp2, MocapConfig(focal_search=()))
    assert any("no confidence information" in w for w in r.warnings)
    assert any("two cameras" in w for w in r.warnings)
    assert np.isfinite(r.joints).all(-1).mean() > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cameras,noise", [(4, "realistic"), (8, "realistic"), (3, "realistic"), (4, "heavy")])
def test_done_when_tiers(tmp_path, seed, cameras, noise) -> None:
    from apps.mocap import evaluate, write_outputs

    make_mocap(tmp_path, MocapSimConfig(cameras=cameras, seconds=20.0, noise=noise), seed=seed)
    r = run_mocap(read_keypoints2d_dir(tmp_path / "keypoints2d"), MocapConfig(seed=seed))
    write_outputs(tmp_path / "run", r)
    m = evaluate(tmp_path, tmp_path / "run")
    if cameras >= 4 and noise == "realistic":  # tier B
        assert m["TE_m"] <= 0.03 and m["AE_deg"] <= 0.3 and m["focal_rel_err"] <= 0.01
        assert m["W_MPJPE_mm"] <= 25 and m["PA_MPJPE_mm"] <= 15 and m["offset_err_frames_max"] <= 0.5
    else:  # tier C: 3 cameras or heavy noise
        assert m["TE_m"] <= 0.10 and m["AE_deg"] <= 1.0 and m["W_MPJPE_mm"] <= 50


def test_audio_offsets_within_the_sound_travel_bound(tmp_path) -> None:
    from recon.mocap.sync import audio_offsets, read_audio

    truth = make_mocap(tmp_path, MocapSimConfig(cameras=4, seconds=15.0, audio=True), seed=6)
    names = sorted(truth["offsets"])
    o = audio_offsets(read_audio(tmp_path / "audio", names))
    ref = truth["offsets"]["cam01"]
    # the sound reaches the cameras |d_i - d_ref| / 343 m/s apart, at most their baseline / 343 m/s (Kineo's bound),
    # plus the 2 ms envelope hop
    for n in names:
        baseline = np.linalg.norm(truth["T_world_cam"][n].t - truth["T_world_cam"]["cam01"].t)
        bound = baseline / 343.0 + 0.002
        assert abs(o[n] - (truth["offsets"][n] - ref)) <= bound, n
    (tmp_path / "audio" / "cam02.wav").write_bytes(b"RIFF junk")
    with pytest.raises(InputError, match="cam02.wav is not a readable WAV"):
        read_audio(tmp_path / "audio", names)
    with pytest.raises(InputError, match="no audio track"):
        read_audio(tmp_path / "audio", ["cam01", "cam09"])


@pytest.mark.slow
def test_audio_synchronised_run(tmp_path) -> None:
    from apps.mocap import evaluate, write_outputs

    make_mocap(tmp_path, MocapSimConfig(cameras=4, seconds=20.0, audio=True), seed=7)
    r = run_mocap(read_keypoints2d_dir(tmp_path / "keypoints2d"), MocapConfig(audio_dir=str(tmp_path / "audio")))
    write_outputs(tmp_path / "run", r)
    m = evaluate(tmp_path, tmp_path / "run")
    assert m["offset_err_frames_max"] <= 0.5 and m["TE_m"] <= 0.03 and m["W_MPJPE_mm"] <= 25


@pytest.mark.slow
def test_per_camera_intrinsics(tmp_path) -> None:
    from apps.mocap import evaluate, write_outputs

    make_mocap(tmp_path, MocapSimConfig(cameras=5, seconds=20.0, shared_intrinsics=False), seed=5)
    r = run_mocap(read_keypoints2d_dir(tmp_path / "keypoints2d"), MocapConfig(shared_intrinsics=False))
    assert len({round(k.f, 3) for k in r.intrinsics}) == 5  # one focal per camera
    write_outputs(tmp_path / "run", r)
    m = evaluate(tmp_path, tmp_path / "run")
    assert m["TE_m"] <= 0.03 and m["AE_deg"] <= 0.3 and m["focal_rel_err"] <= 0.01 and m["W_MPJPE_mm"] <= 25
