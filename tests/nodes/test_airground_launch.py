"""launch/airground.yaml end to end on a simulated recording played at 5x real time: the published relative pose
against ground truth, the bytes on the UAV-to-UGV topic, the localizer killed and respawned mid-run, SIGINT."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from apps.nodes.launch import NodeSpec, load_launch
from apps.nodes.runtime import RAW, Node, open_session
from apps.nodes.supervisor import Supervisor, free_tcp_endpoint
from perception.geometry import SE3
from perception.metrics.pose import rotation_error_deg
from perception.sim.scenarios.airground import AirgroundConfig, make_airground
from slam.airground.message import decode

ROOT = Path(__file__).resolve().parents[2]


def _run(sim: Path, out: Path, rate: float, kill_localizer: bool, timeout_s: float, window: int = 40):
    ep = free_tcp_endpoint()
    nodes = load_launch(ROOT / "launch" / "airground.yaml",
                        {"sim": str(sim), "rate": str(rate), "out": str(out), "window": str(window)})  # fmt: skip
    log = io.StringIO()
    sup = Supervisor(nodes, listen=[ep], out=log, grace_s=3.0)
    th = threading.Thread(target=sup.run, kwargs={"install_signal_handlers": False}, daemon=True)
    th.start()
    probe = Node(NodeSpec("sparsepipe", "probe", "probe"), open_session([ep]))
    uav, poses = [], []
    probe.create_subscription("/uav/keyframes", RAW, lambda d: uav.append((decode(d).stamp_ns, len(d))))
    probe.create_subscription("/ugv/relative_pose", "geometry_msgs/msg/PoseWithCovarianceStamped",
                              lambda m: poses.append((time.monotonic(), m)))  # fmt: skip
    t0, killed_at = time.monotonic(), None
    while time.monotonic() - t0 < timeout_s:
        probe.spin_once(0.05)
        text = log.getvalue()
        if kill_localizer and killed_at is None and poses:  # mid-run, once it has published
            sup.kill_node("/ugv/localizer")
            killed_at = time.monotonic()
        if "[/player] exited with 0" in text and poses and poses[-1][0] > t0 and (
            killed_at is None or poses[-1][0] > killed_at + 1.0
        ) and time.monotonic() - poses[-1][0] > 12.0:
            break  # the recording is over and the localizer has been quiet for a while
    sup.stop()
    th.join(15)
    probe.close()
    return log.getvalue(), uav, poses, killed_at, th.is_alive()


@pytest.fixture(scope="module")
def tiny_sim(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("agsim")
    make_airground(out, AirgroundConfig.tiny(), seed=0)
    return out


def _check_pose(sim: Path, msg, t_tol: float, r_tol: float) -> None:
    T_true = SE3.from_matrix(np.array(json.loads((sim / "gt" / "T_ugvworld_uavworld.json").read_text())
                                      ["T_ugvworld_uavworld"]))  # fmt: skip
    assert msg.frame_id == "ugv_odom"
    err_t, err_r = np.linalg.norm(msg.T.t - T_true.t), rotation_error_deg(msg.T.R, T_true.R)
    assert err_t < t_tol and err_r < r_tol, (err_t, err_r)


def test_airground_launch_at_5x_real_time(tiny_sim: Path, tmp_path: Path) -> None:
    """The published relative pose meets the issue's 0.15 m / 1 deg (here on the tiny block: 320x240 images, a
    third of a lap); the UAV-to-UGV bytes stay under 0.3 Mbit/s."""
    text, uav, poses, _, hung = _run(tiny_sim, tmp_path, 5.0, kill_localizer=False, timeout_s=150)
    assert not hung
    assert poses, text[-3000:]
    _check_pose(tiny_sim, poses[-1][1], 0.15, 1.0)
    # bytes actually published on the UAV-to-UGV topic, per 1 s window of the stream's own (sensor) time
    stamps = np.array([s for s, _ in uav], np.int64)
    sizes = np.array([b for _, b in uav])
    assert len(uav) >= 3
    worst = max(sizes[(stamps >= s) & (stamps < s + 1_000_000_000)].sum() for s in stamps) * 8
    assert worst <= 300_000
    assert (tmp_path / "localizer.mcap").is_file()  # the recorder's bag, closed on shutdown
    assert (tmp_path / "live.rrd").is_file()  # rerun_viz saved its recording on shutdown
    from perception.datasets.ros import BagReader

    with BagReader(tmp_path / "localizer.mcap") as bag:
        assert bag.topics.get("/ugv/relative_pose") == "geometry_msgs/msg/PoseWithCovarianceStamped"


def test_localizer_killed_mid_run_is_respawned_and_publishes_again(tiny_sim: Path, tmp_path: Path) -> None:
    text, _, poses, killed_at, hung = _run(tiny_sim, tmp_path, 1.0, kill_localizer=True, timeout_s=150)
    assert not hung
    assert "[/ugv/localizer] exited with -9; respawning" in text and "respawn #1" in text, text[-3000:]
    assert "resumed from" in text
    after = [m for t, m in poses if t > killed_at]  # (UAV keyframes sent while it was down are lost: 0.25 m)
    assert after, text[-3000:]
    _check_pose(tiny_sim, after[-1], 0.25, 2.0)
    assert text.count("[/uav/frontend] started") == 1 and text.count("[/ugv/frontend] started") == 1


def test_malformed_keyframe_messages_are_dropped_with_one_warning(tiny_sim: Path, caplog) -> None:
    from apps.nodes.airground import RelativeLocalizer

    ep = free_tcp_endpoint()
    hub = open_session(listen=[ep])
    node = RelativeLocalizer(NodeSpec("sparsepipe", "relative_localizer", "loc", "/ugv",
                                      params={"rig": str(tiny_sim / "rig.yaml")}), open_session([ep]))  # fmt: skip
    with caplog.at_level("WARNING"):
        node.on_uav(b"\x00garbage")
        node.on_uav(b"SPKF truncated")
        node.on_ugv(b"")
    assert node.dropped == {"UAV": 2, "UGV": 1} and node.uav_msgs == [] and node.ugv_msgs == []
    assert len([r for r in caplog.records if "malformed UAV keyframe" in r.getMessage()]) == 1
    node.close()
    hub.close()


def test_sliding_window_maps_stay_anchored_to_the_previous_one(tmp_path: Path) -> None:
    """relative_localizer with window=12 on a synthetic drive (landmarks with unique descriptors): each rebuild
    optimises only the last 12 keyframes, its first keyframe stays where the previous map put it, and the windowed
    maps keep the rotation drift of the LIO removed as the full map does."""
    from apps.nodes.airground import RelativeLocalizer
    from perception.datasets.rig import Rig, save_rig
    from slam.airground.message import KeyframeMessage, encode
    from slam.airground.synthetic import make_stage1_problem

    rng = np.random.default_rng(3)
    sc = make_stage1_problem(rng, duration=16.0, n_landmarks=1200)
    desc = rng.normal(size=(len(sc.points), 64))
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    rig_path = tmp_path / "rig.yaml"
    save_rig(rig_path, Rig(sc.camera, sc.T_imu_cam, 0, sc.camera))
    ep = free_tcp_endpoint()
    hub = open_session(listen=[ep])
    node = RelativeLocalizer(NodeSpec("sparsepipe", "relative_localizer", "loc", "/ugv", params={
        "rig": str(rig_path), "window": 12, "rebuild_every": 1000}), open_session([ep]))  # fmt: skip
    obs = sc.observations
    T_cam_lio = sc.T_world_imu_lio @ sc.T_imu_cam
    errs = []
    for k in range(len(T_cam_lio)):
        sel = obs.image_index == k
        d = desc[obs.point_index[sel]] + 0.05 * rng.normal(size=(int(sel.sum()), 64))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        uv = np.clip(obs.uv[sel], 0.0, [639.0, 479.0])
        node.on_ugv(encode(KeyframeMessage(0, k, 1_000_000_000 * (k + 1), T_cam_lio[k], uv, d), "fp16"))
        if k >= 11 and k % 6 == 5:
            prev = node.map
            node.rebuild()
            assert len(node.map.stamps_ns) == 12
            if prev is not None and node.map.stamps_ns[0] in prev.stamps_ns:
                j = int(np.flatnonzero(prev.stamps_ns == node.map.stamps_ns[0])[0])
                assert np.linalg.norm(node.map.stage1.T_world_imu[0].t - prev.stage1.T_world_imu[j].t) < 1e-3
            first = k - 11
            est = node.map.stage1.T_world_cam
            errs.append(np.median(rotation_error_deg(est.R, sc.T_world_cam_true.R[first : k + 1])))
    lio_err = np.median(rotation_error_deg(T_cam_lio.R, sc.T_world_cam_true.R))
    assert len(errs) >= 3 and max(errs) < 0.5 * lio_err, (errs, lio_err)
    node.close()
    hub.close()
