"""`sparsepipe sim airground` (tiny preset) read back: topics, stamps and phase, LIO drift, ground truth, rig,
textured images, and UGV/UAV co-visibility checked by ray casting."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation, Slerp

from apps.cli import main
from perception.datasets.rig import load_rig
from perception.datasets.ros import read_bag
from perception.errors import InputError
from perception.sim.scenarios.airground import AirgroundConfig, build_block_world, ugv_trajectory

SEED = 1
CFG = AirgroundConfig.tiny()
MS = 1_000_000


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ag")
    assert main(["sim", "airground", "--out", str(out), "--seed", str(SEED), "--tiny", "--rerun", "off"]) == 0
    return out


@pytest.fixture(scope="module")
def bag(rec: Path) -> dict[str, list]:
    by_topic = defaultdict(list)
    for m in read_bag(rec / "recording.mcap"):
        by_topic[m.topic].append(m)
    return by_topic


def read_tum(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(stamps_ns, (N, 4, 4) poses) of a TUM file, parsed here (stamps exactly, from the text)."""
    stamps, mats = [], []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split()
        assert len(f) == 8, line
        sec, frac = f[0].split(".")
        assert len(frac) == 9, line  # seconds with 9 decimals
        stamps.append(int(sec) * 10**9 + int(frac))
        q = np.array(f[4:8], float)
        assert abs(np.linalg.norm(q) - 1) < 1e-9 and q[3] >= 0
        T = np.eye(4)
        T[:3, :3] = Rotation.from_quat(q).as_matrix()
        T[:3, 3] = np.array(f[1:4], float)
        mats.append(T)
    return np.array(stamps, np.int64), np.array(mats)


def test_topics_stamps_and_phase(rec: Path, bag: dict[str, list]) -> None:
    rig = yaml.safe_load((rec / "rig.yaml").read_text())
    tp = rig["topics"]
    assert set(bag) == set(tp.values())
    types = {t: ms[0].msgtype for t, ms in bag.items()}
    assert types[tp["ugv_odometry"]] == types[tp["uav_odometry"]] == "nav_msgs/msg/Odometry"
    assert types[tp["ugv_camera_info"]] == "sensor_msgs/msg/CameraInfo"
    assert types[tp["ugv_image"]] == types[tp["uav_image"]] == "sensor_msgs/msg/CompressedImage"
    for ms in bag.values():  # header stamps strictly increasing, logged at the header stamp
        stamps = np.array([m.msg.stamp_ns for m in ms])
        assert np.all(np.diff(stamps) > 0) or len(stamps) == 1
        assert all(m.recv_ns == m.msg.stamp_ns for m in ms)
    lio = np.array([m.msg.stamp_ns for m in bag[tp["ugv_odometry"]]])
    t0 = int(round(CFG.start_time_s * 1e9))
    assert lio[0] == t0 + 100 * MS and np.all(np.diff(lio) == 100 * MS)  # 10 Hz, stamped at scan end
    assert {(m.msg.frame_id, m.msg.child_frame_id) for m in bag[tp["ugv_odometry"]]} == {("odom", "imu")}
    cam = np.array([m.msg.stamp_ns for m in bag[tp["ugv_image"]]])
    assert len(cam) >= 10 and np.all(np.diff(cam) == round(1e9 / CFG.ugv_camera_hz))
    assert np.all((cam - lio[0]) % (100 * MS) == 25 * MS)  # the configured camera-LIO phase
    assert cam[0] > lio[0] and cam[-1] < lio[-1]  # every image lies between two LIO poses
    vio = np.array([m.msg.stamp_ns for m in bag[tp["uav_odometry"]]])
    uav = np.array([m.msg.stamp_ns for m in bag[tp["uav_image"]]])
    assert np.all(np.diff(vio) == 100 * MS) and np.isin(uav, vio).all() and len(uav) >= 10
    # intrinsics: camera_info == rig, images of that size
    for robot in ("ugv", "uav"):
        info = bag[tp[f"{robot}_camera_info"]][0].msg.camera
        c = rig[robot]["camera"]
        assert c["model"] == "PINHOLE" and (info.width, info.height) == (c["width"], c["height"])
        np.testing.assert_allclose(info.params, c["params"], rtol=1e-12)
        img = bag[tp[f"{robot}_image"]][0].msg.image
        assert img.shape == (c["height"], c["width"], 3) and img.dtype == np.uint8


def test_lio_drifts_within_bounds(rec: Path, bag: dict[str, list]) -> None:
    lio = bag["/ugv/lio/odometry"]
    ls = np.array([m.msg.stamp_ns for m in lio])
    lp = np.array([m.msg.T_parent_child.t for m in lio])
    lq = Rotation.from_matrix(np.array([m.msg.T_parent_child.R for m in lio]))
    gs, G = read_tum(rec / "gt" / "ugv_imu.tum")
    est = np.column_stack([np.interp(gs, ls, lp[:, k]) for k in range(3)])
    err = np.linalg.norm(est - G[:, :3, 3], axis=1)
    elapsed = (gs - ls[0]) / 1e9
    assert err[0] < 0.03  # one sweep of drift at the first image
    assert err[elapsed > 10].max() > 0.01 and err.max() < 1.0  # drift: present, bounded
    rot_err = (Slerp(ls, lq)(gs) * Rotation.from_matrix(G[:, :3, :3]).inv()).magnitude()
    assert 1e-4 < rot_err[-1] < math.radians(5)


def test_ground_truth_and_rig(rec: Path, bag: dict[str, list]) -> None:
    rig = load_rig(rec / "rig.yaml")
    assert rig.time_offset_ns == 0
    assert rig.ugv_camera.fx == CFG.ugv_focal and rig.uav_camera.fx == CFG.uav_focal
    np.testing.assert_allclose(rig.T_imu_cam.t, [0.3, 0.0, 0.6], atol=1e-12)
    a, b = math.radians(75), math.radians(8)  # camera axis: 75 deg left of forward, 8 deg up
    axis = [math.cos(a) * math.cos(b), math.sin(a) * math.cos(b), math.sin(b)]
    np.testing.assert_allclose(rig.T_imu_cam.R[:, 2], axis, atol=1e-12)
    np.testing.assert_allclose(rig.T_imu_cam.R[:, 0], [math.sin(a), -math.cos(a), 0.0], atol=1e-12)
    gs, G_imu = read_tum(rec / "gt" / "ugv_imu.tum")
    gs2, G_cam = read_tum(rec / "gt" / "ugv_cam.tum")
    assert np.array_equal(gs, gs2)
    np.testing.assert_array_equal(gs, [m.msg.stamp_ns for m in bag["/ugv/camera/image_raw"]])
    np.testing.assert_allclose(G_cam, G_imu @ rig.T_imu_cam.matrix(), atol=1e-9)
    # the UGV world is the odometry frame: IMU 0.9 m above the ground, camera 1.5 m
    np.testing.assert_allclose(G_imu[:, 2, 3], 0.0, atol=1e-6)
    np.testing.assert_allclose(G_cam[:, 2, 3], 0.6, atol=1e-6)
    us, G_uav = read_tum(rec / "gt" / "uav_cam.tum")
    np.testing.assert_array_equal(us, [m.msg.stamp_ns for m in bag["/uav/camera/image_raw"]])
    np.testing.assert_allclose(G_uav[:, 2, 3], CFG.uav_altitude - CFG.imu_height, atol=1e-6)
    pitch = np.degrees(np.arcsin(-G_uav[:, 2, 2]))  # camera axis below the horizon
    np.testing.assert_allclose(pitch, CFG.uav_camera_pitch_deg, atol=1e-6)

    gt = json.loads((rec / "gt" / "T_ugvworld_uavworld.json").read_text())
    T = np.array(gt["T_ugvworld_uavworld"])
    assert np.isclose(math.degrees(math.atan2(T[1, 0], T[0, 0])), 69.0) and np.allclose(T[2, :3], [0, 0, 1])
    np.testing.assert_allclose(T[:3, 3], [4.0, -3.0, 0.5])
    np.testing.assert_allclose(Rotation.from_quat(gt["rotation_xyzw"]).as_matrix(), T[:3, :3], atol=1e-12)
    # the UAV's VIO poses (own frame, drifting) against the ground truth: align them (Kabsch, scipy) and
    # recover T_ugvworld_uavworld
    vio = {m.msg.stamp_ns: m.msg.T_parent_child.matrix() for m in bag["/uav/odometry"]}
    assert {(m.msg.frame_id, m.msg.child_frame_id) for m in bag["/uav/odometry"]} == {("uav_map", "uav_body")}
    body_slam = np.array([vio[s] for s in us])
    body_gt = G_uav @ np.linalg.inv(rig.T_body_cam_uav.matrix())
    p, q = body_slam[:, :3, 3], body_gt[:, :3, 3]
    R, _ = Rotation.align_vectors(q - q.mean(0), p - p.mean(0))
    t = q.mean(0) - R.apply(p.mean(0))
    assert abs(R.as_euler("ZYX", degrees=True)[0] - 69.0) < 0.5 and np.linalg.norm(t - T[:3, 3]) < 0.1
    resid = np.linalg.norm(q - (p @ T[:3, :3].T + T[:3, 3]), axis=1)
    assert 1e-4 < resid.max() < 0.2  # small VIO drift


def test_images_show_textured_facades(bag: dict[str, list]) -> None:
    sift = cv2.SIFT_create()
    for topic in ("/ugv/camera/image_raw", "/uav/camera/image_raw"):
        ms = bag[topic]
        img = ms[len(ms) // 3].msg.image
        kps = sift.detect(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), None)
        assert len(kps) >= 200, (topic, len(kps))
        assert (np.abs(img.astype(int) - [170, 195, 225]).max(axis=2) < 12).mean() < 0.5  # mostly not sky


def test_uav_sees_what_the_ugv_sees(rec: Path) -> None:
    """Independent check of gt/uav_overlap.json: ray-cast UAV pixels into the world and test, by casting from
    each UGV camera towards the point, which UGV frames see them (unoccluded, in view, not grazing, similar
    pixel footprint)."""
    meta = json.loads((rec / "sim_meta.json").read_text())
    ov = json.loads((rec / "gt" / "uav_overlap.json").read_text())
    world = build_block_world(CFG, np.random.default_rng(SEED))  # built first from the seed's generator
    T_sim_ugv = np.linalg.inv(np.array(meta["T_ugvworld_simworld"]))
    rig = load_rig(rec / "rig.yaml")
    us, G_uav = read_tum(rec / "gt" / "uav_cam.tum")
    _, G_ugv = read_tum(rec / "gt" / "ugv_cam.tum")
    assert ov["uav_stamps_ns"] == us.tolist()
    G_uav, G_ugv = T_sim_ugv @ G_uav, T_sim_ugv @ G_ugv  # into the simulator's world
    cu, ca = rig.ugv_camera, rig.uav_camera
    Ku = np.array([[cu.fx, 0, cu.params[2]], [0, cu.fy, cu.params[3]], [0, 0, 1]])
    v, u = np.mgrid[8 : ca.height : 16, 8 : ca.width : 16]
    pix = np.column_stack([u.ravel(), v.ravel(), np.ones(u.size)])
    rays = pix @ np.linalg.inv(np.array([[ca.fx, 0, ca.params[2]], [0, ca.fy, ca.params[3]], [0, 0, 1]])).T
    fractions, best_shared = [], 0
    for Ta in G_uav:
        hits = world.raycast(Ta[:3, 3], rays @ Ta[:3, :3].T)
        P, N, z_uav = hits.point[hits.hit], hits.normal[hits.hit], hits.t[hits.hit]
        seen = np.zeros(len(P), bool)
        for Tg in G_ugv:
            pc = (P - Tg[:3, 3]) @ Tg[:3, :3]
            with np.errstate(divide="ignore", invalid="ignore"):
                uv = pc @ Ku.T
                uv = uv[:, :2] / uv[:, 2:]
            d = P - Tg[:3, 3]
            dist = np.linalg.norm(d, axis=1)
            cos_inc = np.abs((d * N).sum(1)) / dist
            scale = (pc[:, 2] / cu.fx) / (z_uav / ca.fx)
            inside = (uv > -0.5).all(1) & (uv[:, 0] < cu.width - 0.5) & (uv[:, 1] < cu.height - 0.5)
            ok = (
                (pc[:, 2] > 0.1)
                & inside
                & (cos_inc > math.cos(math.radians(72)))
                & (scale > 1 / 3)
                & (scale < 3)
            )
            k = np.flatnonzero(ok)
            if len(k) == 0:
                continue
            back = world.raycast(Tg[:3, 3], d[k])  # t in units of |d|: 1 at the point itself
            vis = back.hit & (np.abs(back.t - 1.0) * dist[k] < 0.02)
            seen[k[vis]] = True
            best_shared = max(best_shared, int(vis.sum()))
        fractions.append(seen.sum() / len(rays))
    fractions = np.array(fractions)
    ref = np.array(ov["overlap_fraction"])
    assert np.abs(fractions - ref).max() < 0.1, np.c_[fractions, ref]
    assert (fractions > 0.2).sum() >= 5  # the UAV sees the UGV's facades from above ...
    assert best_shared >= 50  # ... many surface points seen by both in one pair
    n_out = int(math.floor(CFG.uav_outward_s * CFG.uav_camera_hz)) - 2  # ... but not when it looks away
    assert fractions[-n_out:].max() < 0.02 and ref[-n_out:].max() < 0.02


def test_ugv_path_closes_and_keeps_its_distance() -> None:
    cfg = AirgroundConfig()
    bx, by = cfg.block_size
    v, d = cfg.ugv_speed, cfg.ugv_offset
    lap = (2 * (bx + by) + 2 * math.pi * d) / v
    traj = ugv_trajectory(cfg, 0, 1.3 * lap)
    t = np.linspace(0, 1.25 * lap, 400)
    ns = (t * 1e9).astype(np.int64)
    np.testing.assert_allclose(np.linalg.norm(traj.velocity(ns), axis=1), v, rtol=1e-3)
    # a revisit: one lap later the UGV is back at the same pose
    k = t < 0.3 * lap
    later = ns[k] + int(lap * 1e9)
    assert np.abs(traj.position(later) - traj.position(ns[k])).max() < 0.05
    dyaw = np.angle(np.exp(1j * (traj.ypr(later)[:, 0] - traj.ypr(ns[k])[:, 0])))
    assert np.abs(dyaw).max() < math.radians(0.5)
    # mid south side (start) and mid east side: ugv_offset from the facades, heading east / north
    t_east = (0.5 * bx + 0.5 * math.pi * d + 0.5 * by) / v
    p = traj.position(np.array([0, int(t_east * 1e9)]))
    np.testing.assert_allclose(p[0], [0.0, -(0.5 * by + d), cfg.imu_height], atol=1e-9)
    np.testing.assert_allclose(p[1], [0.5 * bx + d, 0.0, cfg.imu_height], atol=0.05)
    assert abs(traj.ypr(int(t_east * 1e9))[0] - math.pi / 2) < math.radians(0.5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ugv_offset": 1.0}, "ugv_offset must be >= 2.5"),
        ({"uav_altitude": 9.0}, "uav_altitude must be more than 1 m above the tallest building"),
        ({"image_format": "bmp"}, "image_format must be 'jpeg', 'png' or 'raw'"),
        ({"camera_phase_ms": 120.0}, r"camera_phase_ms must lie in \[0, 100.0\)"),
        ({"ugv_speed": 0.0}, "ugv_speed must be > 0"),
    ],
)
def test_bad_config_is_one_line(change: dict, message: str, tmp_path: Path) -> None:
    from perception.sim.scenarios.airground import make_airground

    cfg = AirgroundConfig.tiny()
    for k, val in change.items():
        setattr(cfg, k, val)
    with pytest.raises(InputError, match=message):
        make_airground(tmp_path, cfg)
