"""`sparsepipe sim room|tum`: datasets written in the real layouts, read back by the real readers, exact truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rerun.chunk import RrdReader

from apps.cli import main
from perception.datasets.sevenscenes import SevenScenes
from perception.datasets.tum_rgbd import TumRGBD
from perception.geometry import SE3
from perception.metrics.pose import rotation_error_deg
from perception.sim.scenarios.room import RoomConfig, sequence_poses, sequence_specs
from perception.sim.scenarios.tum import TumConfig, handheld_poses

SMALL_ROOM = ["--room.width", "320", "--room.height", "240", "--room.focal", "262.5", "--room.frames-per-sequence",
              "10", "--room.train-sequences", "1", "--room.test-sequences", "2", "--room.supersample", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def room(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("room")
    assert main(["sim", "room", "--out", str(out), "--seed", "5", *SMALL_ROOM]) == 0
    return out


def test_room_reads_back_with_exact_poses(room: Path) -> None:
    ds = SevenScenes(room, "room")
    assert ds.sequences("train") == [1] and ds.sequences("test") == [2, 3]
    cfg = RoomConfig(width=320, height=240, focal=262.5, frames_per_sequence=10, train_sequences=1,
                     test_sequences=2, supersample=1)  # fmt: skip
    specs = sequence_specs(cfg, np.random.default_rng(0))  # poses do not depend on the texture draws ...
    meta = json.loads((room / "room" / "sim_meta.json").read_text())
    for spec, m in zip(specs, meta["sequences"], strict=True):  # ... except the test phases, taken from the meta
        spec.phase = m["phase"]
    for spec in specs:
        frames = ds.sequence_frames(spec.seq)
        assert len(frames) == 10
        read = SE3.stack([f.T_world_cam for f in frames])
        # exact through the text files (repr floats), up to the reader's SVD re-orthonormalisation (~1e-16)
        assert np.abs(read.matrix() - sequence_poses(cfg, spec).matrix()).max() < 1e-12
    rgb = ds.load_color(ds.frames("train")[0])
    depth = ds.load_depth_m(ds.frames("train")[0])
    assert rgb.shape == (240, 320, 3) and depth.shape == (240, 320)
    assert (depth > 0).mean() > 0.99  # a closed room: every pixel sees a surface
    assert 0.3 < np.median(depth) < 5.0


def test_room_test_split_changes_viewpoint_and_lighting(room: Path) -> None:
    ds = SevenScenes(room, "room")
    train, test = ds.poses("train"), ds.poses("test")
    assert abs(np.median(test.t[:10, 2]) - np.median(train.t[:, 2])) == pytest.approx(0.4, abs=1e-9)
    # test cameras stand further from the walls: the median depth grows
    d_train = np.median([np.median(ds.load_depth_m(f)) for f in ds.frames("train")])
    d_test = np.median([np.median(ds.load_depth_m(f)) for f in ds.frames("test")])
    assert d_test > d_train + 0.3
    # exposure 0.7 darkens the first test sequence
    mean = {s: np.mean([ds.load_color(f).mean() for f in ds.sequence_frames(s)]) for s in (1, 2)}
    assert mean[2] < 0.9 * mean[1]


def test_room_depth_is_consistent_across_frames(room: Path) -> None:
    """Pixels of one frame lifted with the read depth and projected into the next land on the same surface."""
    ds = SevenScenes(room, "room")
    f0, f1 = ds.sequence_frames(1)[:2]
    T0, T1 = f0.T_world_cam, f1.T_world_cam
    d0, d1 = ds.load_depth_m(f0), ds.load_depth_m(f1)
    v, u = np.mgrid[0:240:4, 0:320:4]
    z = d0[v, u]
    rays = np.stack([(u - 160) / 262.5, (v - 120) / 262.5, np.ones_like(u, dtype=float)], -1) * z[..., None]
    p1 = T1.inverse().act(T0.act(rays.reshape(-1, 3)))
    uv1 = p1[:, :2] / p1[:, 2:] * 262.5 + [160, 120]
    inside = (p1[:, 2] > 0) & (uv1[:, 0] > 0) & (uv1[:, 0] < 319) & (uv1[:, 1] > 0) & (uv1[:, 1] < 239)
    assert inside.sum() > 500
    zi = d1[np.round(uv1[inside, 1]).astype(int), np.round(uv1[inside, 0]).astype(int)]
    agree = np.abs(zi - p1[inside, 2]) < 0.02  # mm quantisation + rounding to the nearest pixel
    assert agree.mean() > 0.9  # the rest are occlusions and depth edges


def test_room_config_and_recording(room: Path) -> None:
    assert (room / "config.yaml").is_file()
    schema = RrdReader(room / "run.rrd").store().schema()
    paths = set(schema.entity_paths())
    assert {"/world/camera", "/world/camera/image", "/world/trajectories/seq-01"} <= paths
    assert not [p for p in room.rglob("*") if "partial" in p.name]


def test_tum_sequence_reads_back_with_associated_ground_truth(tmp_path: Path) -> None:
    args = ["--tum.duration-s", "0.4", "--tum.rate-hz", "10", "--tum.room.supersample", "1", "--rerun", "off"]
    assert main(["sim", "tum", "--out", str(tmp_path), "--seed", "2", *args]) == 0
    cfg = TumConfig(duration_s=0.4, rate_hz=10)
    ds = TumRGBD(tmp_path / cfg.sequence)
    frames = ds.frames(depth=True, pose="interpolate")
    assert len(frames) == 5
    t0 = frames[0].t_ns
    assert t0 == 1305031102175304000
    truth = handheld_poses(cfg, (np.array([f.t_ns for f in frames]) - t0) / 1e9)
    est = SE3.stack([f.T_world_cam for f in frames])
    # ground truth is sampled at 100 Hz with its own phase: interpolation error well under a millimetre
    assert np.abs(est.t - truth.t).max() < 1e-3
    assert rotation_error_deg(est.R, truth.R).max() < 0.05
    rgb = ds.load_color(frames[0])
    depth = ds.load_depth_m(frames[0])
    assert rgb.shape == (480, 640, 3) and (depth > 0).mean() > 0.95
    assert frames[0].depth_t_ns == frames[0].t_ns


def test_bad_options_fail_with_one_line(tmp_path: Path, capsys) -> None:
    assert main(["sim", "room", "--out", str(tmp_path), "--room.train-radius", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "loop radii" in err


def test_room_training_heights_and_glossy_surfaces(tmp_path: Path, capsys) -> None:
    cfg = RoomConfig(train_sequences=3, train_height_offsets=(-0.4, 0.4))
    heights = [s.height for s in sequence_specs(cfg, np.random.default_rng(0)) if s.split == "train"]
    assert heights == pytest.approx([1.05, 1.85, 1.05])
    assert [s.height for s in sequence_specs(RoomConfig(train_sequences=2), np.random.default_rng(0))][:2] == \
        pytest.approx([1.45, 1.55])  # fmt: skip
    # a lamp on the camera makes glossy walls brightest where they face the camera (the image centre here)
    args = ["--room.width", "64", "--room.height", "48", "--room.focal", "52.5", "--room.frames-per-sequence", "2",
            "--room.train-sequences", "1", "--room.test-sequences", "1", "--room.supersample", "1",
            "--room.noise-std", "0", "--rerun", "off", "--seed", "3"]  # fmt: skip
    lit = {}
    for hs in (0.0, 0.6):
        out = tmp_path / f"hs{hs}"
        assert main(["sim", "room", "--out", str(out), *args, "--room.headlight-specular", str(hs)]) == 0
        ds = SevenScenes(out, "room")
        lit[hs] = ds.load_color(ds.frames("train")[0]).astype(float).mean(axis=2)
    gain = lit[0.6] - lit[0.0]
    assert gain.min() >= 0 and gain[20:28, 28:36].mean() > 2 * gain[:8].mean() + 5
    capsys.readouterr()
    assert main(["sim", "room", "--out", str(tmp_path / "bad"), "--room.shininess", "-2"]) == 2
    assert "shininess must be a finite number > 0" in capsys.readouterr().err
    assert main(["sim", "room", "--out", str(tmp_path / "bad"), "--room.train-height-offsets", "0", "5"]) == 2
    assert "puts a training loop at 6.45 m" in capsys.readouterr().err
    assert main(["sim", "room", "--out", str(tmp_path / "bad"), "--room.test-sequences", "0"]) == 2
    assert "test_sequences must be >= 1" in capsys.readouterr().err
