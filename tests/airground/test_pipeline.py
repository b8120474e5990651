"""The air-ground pipeline end to end on the tiny simulated recording: stages run, stage 1 beats raw LIO, the UAV
stream stays under budget. (Cross-view loop closure on the simulated block is not yet reliable: see the issue note.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.datasets.rig import load_rig
from perception.datasets.ros import BagReader
from perception.errors import InputError
from perception.sim.scenarios.airground import AirgroundConfig, make_airground
from slam.airground.pipeline import AirgroundOptions, run_airground
from slam.airground.recording import read_odometry
from slam.trajectory import read_tum


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("agpipe")
    cfg = AirgroundConfig.tiny()
    cfg.loops = 0.4
    cfg.ugv_camera_hz = 4.0
    make_airground(out, cfg, seed=2)
    return out


def test_pipeline_runs_and_stage1_beats_lio(recording: Path) -> None:
    rig = load_rig(recording / "rig.yaml")
    out = run_airground(recording / "recording.mcap", rig, AirgroundOptions(features="rootsift", max_keypoints=512))
    gt = read_tum(recording / "gt" / "ugv_cam.tum")
    G = gt.poses[np.searchsorted(gt.stamps_ns, out.ugv_keyframe_stamps)]
    with BagReader(recording / "recording.mcap") as bag:
        lio = read_odometry(bag, rig.topics["ugv_odometry"])
    L = lio.T_world_body_at(out.ugv_keyframe_stamps, rig.T_imu_cam)
    e_lio = np.median(np.linalg.norm(L.t - G.t, axis=1))
    e_s1 = np.median(np.linalg.norm(out.stage1.T_world_cam.t - G.t, axis=1))
    assert e_s1 < e_lio, (e_lio, e_s1)
    assert out.bandwidth["messages"] > 0
    assert out.bandwidth["max_window_bits_per_s"] <= 300_000
    assert len(out.loops) == out.bandwidth["messages"]  # every received keyframe was queried and logged


def test_missing_topic_is_one_line(recording: Path) -> None:
    rig = load_rig(recording / "rig.yaml")
    rig.topics["uav_image"] = "/uav/nope"
    with pytest.raises(InputError, match=r"missing topic\(s\) UAV images \(/uav/nope\)"):
        run_airground(recording / "recording.mcap", rig)


def test_rig_errors(tmp_path: Path, recording: Path) -> None:
    text = (recording / "rig.yaml").read_text()
    bad = tmp_path / "rig.yaml"
    bad.write_text(text.replace("T_imu_cam", "T_imu_camera"))
    with pytest.raises(InputError, match=r"rig\.yaml: ugv\.T_imu_cam missing"):
        load_rig(bad)
    bad.write_text(text.replace("model: PINHOLE", "model: KANNALA", 1))
    with pytest.raises(InputError, match=r"ugv\.camera\.model 'KANNALA' is unknown"):
        load_rig(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_rig(tmp_path / "none.yaml")


def test_cli_writes_standard_outputs(recording: Path, tmp_path: Path) -> None:
    import json

    from apps.cli import main

    args = ["airground", "--bag", str(recording / "recording.mcap"), "--rig", str(recording / "rig.yaml"),
            "--out", str(tmp_path), "--options.features", "rootsift", "--options.max-keypoints", "512"]  # fmt: skip
    assert main(args) == 0
    traj = read_tum(tmp_path / "ugv_keyframes.tum")
    assert len(traj) >= 3
    bw = json.loads((tmp_path / "bandwidth.json").read_text())
    assert bw["max_window_bits_per_s"] <= 300_000
    loops = json.loads((tmp_path / "loops.json").read_text())
    assert len(loops) == bw["messages"] and all("inliers" in q for q in loops)
    assert "status" in json.loads((tmp_path / "relative_pose.json").read_text())
    assert isinstance(json.loads((tmp_path / "ugv_revisits.json").read_text()), list)
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "run.rrd").is_file()
    from rerun.chunk import RrdReader

    paths = set(RrdReader(tmp_path / "run.rrd").store().schema().entity_paths())
    assert {"/world/landmarks", "/world/ugv/trajectory"} <= paths
    assert any(q["accepted"] for q in loops)  # RootSIFT closes loops on the tiny block too
    assert {"/world/uav/trajectory", "/world/uav/camera", "/world/uav/matches"} <= paths  # both robots, matches
    assert main(["airground", "--bag", str(tmp_path / "nope.mcap"), "--rig", str(recording / "rig.yaml"),
                 "--out", str(tmp_path / "x")]) == 2  # fmt: skip


def test_eval_reports_known_errors(recording: Path, tmp_path: Path) -> None:
    """A run whose files are ground truth moved by known amounts evaluates to exactly those amounts."""
    import json

    from apps.cli import main
    from perception.geometry import SE3
    from slam.trajectory import Trajectory, write_tum

    gt = recording / "gt"
    T_true = SE3.from_matrix(np.array(json.loads((gt / "T_ugvworld_uavworld.json").read_text())["T_ugvworld_uavworld"]))
    T_est = SE3(T_true.R, T_true.t + [0.06, -0.08, 0.0])  # 0.10 m off
    ugv = read_tum(gt / "ugv_cam.tum")
    write_tum(
        tmp_path / "run" / "ugv_keyframes.tum", Trajectory(ugv.stamps_ns, SE3(ugv.poses.R, ugv.poses.t + [0, 0, 0.05]))
    )
    uav = read_tum(gt / "uav_cam.tum")
    write_tum(tmp_path / "run" / "uav_keyframes.tum", Trajectory(uav.stamps_ns, (T_est @ T_true.inverse()) @ uav.poses))
    (tmp_path / "run" / "relative_pose.json").write_text(
        json.dumps({"status": "ok", "T_ugvworld_uavworld": T_est.matrix().tolist()})
    )
    # loops: one right (true pose, a co-visible UGV keyframe), one 3 m off, one missed revisit
    ov = json.loads((gt / "uav_overlap.json").read_text())
    rev = [i for i, f in enumerate(ov["overlap_fraction"]) if f >= 0.3][:3]
    assert len(rev) == 3
    s = [ov["uav_stamps_ns"][i] for i in rev]
    P = [uav.T_world_body_at(np.array([t]))[0] for t in s]
    off = SE3(P[1].R, P[1].t + [3.0, 0, 0])
    loops = [
        {"accepted": True, "query_stamp_ns": s[0], "match_stamp_ns": ov["ugv_stamps_ns"][rev[0]][0],
         "T_ugvworld_cam": P[0].matrix().tolist()},
        {"accepted": True, "query_stamp_ns": s[1], "match_stamp_ns": ov["ugv_stamps_ns"][rev[1]][0],
         "T_ugvworld_cam": off.matrix().tolist()},
        {"accepted": False, "query_stamp_ns": s[2], "match_stamp_ns": None},
    ]  # fmt: skip
    (tmp_path / "run" / "loops.json").write_text(json.dumps(loops))
    (tmp_path / "run" / "bandwidth.json").write_text(
        json.dumps({"max_window_bits_per_s": 290000.0, "mean_bits_per_s": 2e5})
    )
    out = tmp_path / "m.json"
    assert main(["eval", "airground", "--run", str(tmp_path / "run"), "--gt", str(gt), "--json", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["relative_translation_err_m"] == pytest.approx(0.10, abs=1e-9)
    assert m["relative_rotation_err_deg"] == pytest.approx(0.0, abs=1e-6)
    assert m["ugv_keyframes_ate_rmse_m"] == pytest.approx(0.05, abs=1e-9)
    assert m["uav_keyframes_ate_rmse_m"] == pytest.approx(0.10, abs=1e-6)
    assert m["loops_accepted"] == 2 and m["loops_false"] == 1 and m["loop_false_query_stamps_ns"] == [s[1]]
    assert m["loop_precision"] == 0.5 and m["loop_true_revisits"] == 3 and m["loop_recall"] == pytest.approx(1 / 3)
    assert m["uav_stream_within_budget"] is True
    (tmp_path / "run" / "loops.json").write_text(json.dumps([{"accepted": False}]))
    assert main(["eval", "airground", "--run", str(tmp_path / "run"), "--gt", str(gt), "--json", str(out)]) == 2
    assert main(["eval", "airground", "--run", str(tmp_path / "nope"), "--gt", str(gt), "--json", str(out)]) == 2


def _copy_bag(src: Path, dst: Path, edit) -> Path:
    """Copy a recording message by message; ``edit(BagMessage)`` returns the message to write or None to drop."""
    from perception.datasets.ros import BagWriter, read_bag

    with BagWriter(dst, format="mcap") as w:
        for m in read_bag(src):
            m = edit(m)
            if m is not None:
                w.write(m.topic, m.msg, m.recv_ns)
    return dst


def test_blank_images_and_odometry_gap_are_one_line(recording: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    rig = load_rig(recording / "rig.yaml")
    ugv_img, lio = rig.topics["ugv_image"], rig.topics["ugv_odometry"]

    def blank(m):
        if m.topic == ugv_img:
            return replace(m, msg=replace(m.msg, image=np.full_like(m.msg.image, 128), encoding="rgb8"))
        return m

    bag = _copy_bag(recording / "recording.mcap", tmp_path / "blank.mcap", blank)
    with pytest.raises(InputError, match=r"blank\.mcap: no features found on any UGV keyframe"):
        run_airground(bag, rig, AirgroundOptions(features="rootsift", max_keypoints=256))

    stamps = read_tum(recording / "gt" / "ugv_imu.tum").stamps_ns
    mid = int(stamps[len(stamps) // 2])
    gap = _copy_bag(recording / "recording.mcap", tmp_path / "gap.mcap",
                    lambda m: None if m.topic == lio and abs(m.recv_ns - mid) < 1_000_000_000 else m)  # fmt: skip
    with pytest.raises(InputError, match=r"gap\.mcap: .*/ugv/lio/odometry.* gap .*max-gap-ms") as e:
        run_airground(gap, rig, AirgroundOptions(features="rootsift", max_keypoints=256))
    assert "\n" not in str(e.value)


def test_netvlad_global_descriptor_from_a_local_checkpoint(recording: Path, tmp_path: Path) -> None:
    """With a (here randomly initialised) NetVLAD checkpoint the UAV computes the global descriptor, projects it
    to netvlad_dim and sends it inside its keyframe messages, still under the budget."""
    import torch

    from perception.features.netvlad import NetVLADNet

    torch.manual_seed(0)
    torch.save({"state_dict": NetVLADNet(num_clusters=4).state_dict()}, tmp_path / "nv.pth")
    rig = load_rig(recording / "rig.yaml")
    opts = AirgroundOptions(features="rootsift", max_keypoints=256, global_descriptor="netvlad",
                            netvlad_weights=tmp_path / "nv.pth", netvlad_dim=128, netvlad_max_side=128)  # fmt: skip
    out = run_airground(recording / "recording.mcap", rig, opts)
    assert out.bandwidth["messages"] > 0 and out.bandwidth["max_window_bits_per_s"] <= 300_000
    assert len(out.loops) == out.bandwidth["messages"]
    # every message carried the 128-D global descriptor: 2 bytes per dimension on top of the keypoints
    assert out.bandwidth["bytes"] >= out.bandwidth["messages"] * (82 + 2 * 128)
    with pytest.raises(InputError, match="needs --options.netvlad-weights"):
        run_airground(recording / "recording.mcap", rig, AirgroundOptions(global_descriptor="netvlad"))


def test_superpoint_needs_its_checkpoint(recording: Path, tmp_path: Path) -> None:
    rig = load_rig(recording / "rig.yaml")
    bag = recording / "recording.mcap"
    with pytest.raises(InputError, match="SuperPoint.*weights"):
        run_airground(bag, rig, AirgroundOptions(features="superpoint"))
    with pytest.raises(FileNotFoundError, match="sp.pth"):
        run_airground(bag, rig, AirgroundOptions(features="superpoint", feature_weights=tmp_path / "sp.pth"))
    with pytest.raises(InputError, match="rootsift is classical and takes no weights"):
        run_airground(bag, rig, AirgroundOptions(features="rootsift", feature_weights=tmp_path / "sp.pth"))
