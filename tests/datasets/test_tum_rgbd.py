"""TUM RGB-D reader/writer: fixture values, exact timestamps, association as associate.py, interpolation vs scipy."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from perception.camera import OpenCVCamera, PinholeCamera
from perception.datasets.tum_rgbd import (
    CAMERAS,
    TumRGBD,
    TumRGBDWriter,
    associate,
    camera_for_sequence,
    format_stamp_ns,
    interpolate_poses,
    parse_stamp_ns,
    read_file_list,
    read_groundtruth,
    write_groundtruth,
)
from perception.errors import InputError
from perception.geometry import SE3

SEQ = Path(__file__).resolve().parents[2] / "data" / "samples" / "tum_rgbd" / "rgbd_dataset_freiburg1_xyz"


def test_timestamps_are_exact() -> None:
    assert parse_stamp_ns("1305031102.175304") == 1_305_031_102_175_304_000
    assert int(float("1305031102.175304") * 1e9) != 1_305_031_102_175_304_000  # what float parsing would give
    assert parse_stamp_ns("1305031102.1700") == 1_305_031_102_170_000_000
    assert parse_stamp_ns("0.000000001") == 1 and parse_stamp_ns("1e-9") == 1 and parse_stamp_ns("-0.5") == -500_000_000
    assert parse_stamp_ns("1.0000000015") == 1_000_000_002  # half to even beyond ns
    assert format_stamp_ns(1_305_031_102_175_304_000) == "1305031102.175304"
    assert format_stamp_ns(1_700_000_000_123_456_789) == "1700000000.123456789"
    assert format_stamp_ns(5) == "0.000000005" and format_stamp_ns(-500_000_000) == "-0.500000"
    rng = np.random.default_rng(1)
    for ns in rng.integers(0, 2**62, 200).tolist():
        assert parse_stamp_ns(format_stamp_ns(ns)) == ns
    for bad in ("abc", "nan", "inf", ""):
        with pytest.raises(InputError, match="timestamp"):
            parse_stamp_ns(bad)


def test_cameras() -> None:
    fr1 = camera_for_sequence("rgbd_dataset_freiburg1_xyz")
    assert isinstance(fr1, OpenCVCamera)
    assert np.array_equal(fr1.params, [517.3, 516.5, 318.6, 255.3, 0.2624, -0.9531, -0.0054, 0.0026, 1.1633])
    assert np.array_equal(camera_for_sequence("rgbd_dataset_freiburg2_desk").params[:4], [520.9, 521.0, 325.1, 249.7])
    assert camera_for_sequence("rgbd_dataset_freiburg3_walking_xyz") == PinholeCamera(
        640, 480, 535.4, 539.2, 320.1, 247.6
    )
    assert (
        camera_for_sequence("my_sequence") == CAMERAS["ros_default"] == PinholeCamera(640, 480, 525, 525, 319.5, 239.5)
    )
    # fr1 distortion equals OpenCV's model with the same coefficients.
    p = np.array([[0.3, -0.2, 1.0], [-0.4, 0.25, 2.0]])
    uv, _ = fr1.project(p)
    ref, _ = cv2.projectPoints(p, np.zeros(3), np.zeros(3), fr1.K, fr1.dist_coeffs)
    assert np.allclose(uv, ref[:, 0], atol=1e-9)


def test_fixture() -> None:
    ds = TumRGBD(SEQ)
    assert ds.camera == CAMERAS["freiburg1"]
    t_rgb, names = ds.color_list
    assert t_rgb.dtype == np.int64 and t_rgb[0] == 1_305_031_102_175_304_000 and len(names) == 4
    assert names[0] == "rgb/1305031102.175304.png"

    # depth association, greedy by difference (max_dt 0.02 s): .175304-.160407 (0.0149), then .211214-.226738
    # (0.0155, closer than .194330 at 0.0169), which leaves .243211 without a depth map; .300000 has none either.
    frames = ds.frames()
    assert [f.t_ns for f in frames] == t_rgb[:2].tolist()
    assert [f.depth_path.name for f in frames] == ["1305031102.160407.png", "1305031102.226738.png"]
    assert frames[1].depth_t_ns == 1_305_031_102_226_738_000
    # nearest ground truth: .175304 -> .1800 (0.0047 s < 0.0053 s to .1700), .211214 -> .2100
    t_gt, T_gt = ds.groundtruth
    assert t_gt[1] == 1_305_031_102_180_000_000
    for f, k in zip(frames, (1, 4), strict=True):
        assert np.array_equal(f.T_world_cam.t, T_gt[k].t)
        assert np.allclose(f.T_world_cam.t, [1.3563 + 0.01 * k, 0.6305, 1.6380 - 0.002 * k], atol=1e-12)
    no_depth = ds.frames(depth=False)  # .243211 -> .2400; .300000 is 0.04 s after the last pose (.2600)
    assert [f.t_ns for f in no_depth] == t_rgb[:3].tolist()
    assert np.array_equal(no_depth[2].T_world_cam.t, T_gt[7].t)
    # line 2 of groundtruth.txt: qz 0.0100 qw 1.0000 (normalised)
    assert np.allclose(T_gt[1].R, Rotation.from_quat([0, 0, 0.01, 1.0]).as_matrix(), atol=1e-12)

    rgb = ds.load_color(frames[1])  # generator: R = 10 u + 1, G = 20 v + 3, B = 104
    assert rgb.shape == (6, 8, 3) and rgb[2, 5].tolist() == [51, 43, 104]
    d = ds.load_depth_m(frames[1])  # depth k = 2: raw 5000 + 50 v + u + 2; [0,0] = 0, [1,1] = 65535
    assert d.dtype == np.float32 and d[0, 0] == 0.0
    assert d[1, 1] == np.float32(65535 / 5000) and d[3, 4] == np.float32(5156 / 5000)
    assert np.isnan(ds.load_depth_m(frames[1], invalid=np.nan)[0, 0])
    assert len(ds.frames(depth=False, pose=None)) == 4 and ds.frames(depth=False, pose=None)[3].T_world_cam is None
    interp = ds.frames(pose="interpolate")
    a = (0.175304 - 0.17) / 0.01
    key = Rotation.from_quat(np.stack([T_gt[0].rotation.as_quat(), T_gt[1].rotation.as_quat()]))
    R_ref = Slerp([0.0, 1.0], key)([a]).as_matrix()[0]
    t_ref = (1 - a) * T_gt[0].t + a * T_gt[1].t
    assert np.allclose(interp[0].T_world_cam.R, R_ref, atol=1e-12)
    assert np.allclose(interp[0].T_world_cam.t, t_ref, atol=1e-12)


def test_groundtruth_matches_evo() -> None:
    from evo.tools import file_interface

    traj = file_interface.read_tum_trajectory_file(str(SEQ / "groundtruth.txt"))
    t, T = read_groundtruth(SEQ / "groundtruth.txt")
    assert np.allclose(t * 1e-9, traj.timestamps, rtol=0, atol=1e-6)
    assert np.array_equal(T.t, traj.positions_xyz)
    R_evo = Rotation.from_quat(traj.orientations_quat_wxyz[:, [1, 2, 3, 0]]).as_matrix()
    assert np.allclose(T.R, R_evo, atol=1e-12)


def _associate_reference(first: dict, second: dict, offset: float, max_difference: float) -> list:
    """TUM associate.py's algorithm, written out over float seconds."""
    fk, sk = list(first), list(second)
    cand = sorted((abs(a - (b + offset)), a, b) for a in fk for b in sk if abs(a - (b + offset)) < max_difference)
    out = []
    for _, a, b in cand:
        if a in fk and b in sk:
            fk.remove(a)
            sk.remove(b)
            out.append((a, b))
    return sorted(out)


def test_associate_matches_reference(rng: np.random.Generator) -> None:
    for trial in range(5):
        a = np.sort(rng.choice(10**9, 60, replace=False)).astype(np.int64) + 10**18
        b = np.sort(rng.choice(10**9, 80, replace=False)).astype(np.int64) + 10**18
        offset = 0.0 if trial < 3 else 0.003
        pairs = associate(a, b, max_dt=0.02, offset=offset)
        fa = {int(x - 10**18) * 1e-9: i for i, x in enumerate(a)}
        fb = {int(x - 10**18) * 1e-9: j for j, x in enumerate(b)}
        ref = [(fa[x], fb[y]) for x, y in _associate_reference(fa, fb, offset, 0.02)]
        assert pairs.tolist() == [list(p) for p in ref]
        assert len(ref) > 10
    # strict threshold and tie-breaking: equal differences go to the earlier stamp
    assert associate([100], [100 + 20_000_000]).shape == (0, 2)
    assert associate([0, 20], [10]).tolist() == [[0, 0]]


def test_interpolate_poses_vs_scipy(rng: np.random.Generator) -> None:
    t = np.array([0, 10, 20, 100], dtype=np.int64) * 10_000_000  # 0, .1, .2, 1.0 s
    T = SE3.random(rng, 4)
    q = np.array([0, 25_000_000, 100_000_000, 150_000_000, 500_000_000, 1_000_000_000, 1_100_000_000, -1])
    out, valid = interpolate_poses(t, T, q, max_gap=0.15)
    assert valid.tolist() == [True, True, True, True, False, True, False, False]
    slerp = Slerp(t * 1e-9, Rotation.from_matrix(T.R))
    for k in np.flatnonzero(valid):
        assert np.allclose(out[k].R, slerp([q[k] * 1e-9]).as_matrix()[0], atol=1e-12)
        assert np.allclose(out[k].t, [np.interp(q[k], t, T.t[:, i]) for i in range(3)], atol=1e-12)


def test_writer_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    base = 1_700_000_000_123_456_789
    stamps = [base + k * 33_333_333 for k in range(4)]
    rgbs = rng.integers(0, 256, (4, 6, 8, 3), dtype=np.uint8)
    raw = rng.integers(1, 65536, (4, 6, 8)).astype(np.uint16)
    depth = raw / 5000.0
    depth[0, 0, 0] = np.nan
    depth[0, 0, 1] = 20.0  # beyond 13.107 m
    poses = SE3.random(rng, 4, trans_scale=3.0)
    with TumRGBDWriter(tmp_path / "seq") as w:
        for k, s in enumerate(stamps):
            w.add_frame(s, rgbs[k], depth[k], depth_t_ns=s + 1_000_000)
            w.add_pose(s - 2_000_000, poses[k])
    ds = TumRGBD(tmp_path / "seq")
    assert ds.camera == CAMERAS["ros_default"]
    frames = ds.frames()
    assert [f.t_ns for f in frames] == stamps
    assert [f.depth_t_ns for f in frames] == [s + 1_000_000 for s in stamps]
    assert (tmp_path / "seq" / "rgb" / "1700000000.123456789.png").is_file()
    for k, f in enumerate(frames):
        assert np.array_equal(ds.load_color(f), rgbs[k])
        png = cv2.imread(str(f.depth_path), cv2.IMREAD_UNCHANGED)
        exp = raw[k].copy()
        if k == 0:
            exp[0, :2] = 0
        assert np.array_equal(png, exp)
        assert np.abs(f.T_world_cam.matrix() - poses[k].matrix()).max() < 1e-12
    t_gt, _ = read_groundtruth(tmp_path / "seq" / "groundtruth.txt")
    assert t_gt.tolist() == [s - 2_000_000 for s in stamps]
    t_rgb, names = read_file_list(tmp_path / "seq" / "rgb.txt")
    assert t_rgb.tolist() == stamps and names[1] == f"rgb/{format_stamp_ns(stamps[1])}.png"
    # evo reads what we wrote (float seconds, so stamps to ~1 us)
    from evo.tools import file_interface

    traj = file_interface.read_tum_trajectory_file(str(tmp_path / "seq" / "groundtruth.txt"))
    assert np.allclose(traj.positions_xyz, poses.t, atol=1e-12)


def test_errors_name_the_file(tmp_path: Path) -> None:
    seq = tmp_path / "rgbd_dataset_freiburg1_xyz"
    shutil.copytree(SEQ, seq)
    gt = seq / "groundtruth.txt"
    text = gt.read_text()

    gt.write_text(text + "1305031102.3000 1 2 3 0 0 0\n")
    with pytest.raises(InputError, match=r"groundtruth\.txt line 14 has 7 columns; expected 8 \(timestamp tx"):
        read_groundtruth(gt)
    gt.write_text(text + "1305031102.3000 1 nan 3 0 0 0 1\n")
    with pytest.raises(InputError, match=r"groundtruth\.txt line 14 contains NaN"):
        read_groundtruth(gt)
    gt.write_text(text + "1305031102.3000 1 2 3 0 0 0 2\n")
    with pytest.raises(InputError, match=r"groundtruth\.txt line 14: quaternion .* norm 2"):
        read_groundtruth(gt)
    gt.write_text(text + "13050311O2.3000 1 2 3 0 0 0 1\n")
    with pytest.raises(InputError, match=r"groundtruth\.txt line 14: timestamp '13050311O2\.3000'"):
        read_groundtruth(gt)
    gt.write_text(text + "1305031102.1700 1 2 3 0 0 0 1\n")
    with pytest.raises(InputError, match=r"groundtruth\.txt lists timestamp 1305031102\.170000 twice"):
        read_groundtruth(gt)
    gt.write_text("# empty\n")
    with pytest.raises(InputError, match=r"groundtruth\.txt holds no poses"):
        read_groundtruth(gt)
    (seq / "depth.txt").write_text("1305031102.160407 depth/a.png extra\n")
    with pytest.raises(InputError, match=r"depth\.txt line 1 has 3 columns; expected 2"):
        TumRGBD(seq).frames()
    (seq / "depth.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"TUM RGB-D: missing file .*depth\.txt"):
        TumRGBD(seq).frames()
    f = TumRGBD(seq).frames(depth=False, pose=None)[0]
    (seq / "rgb" / "1305031102.175304.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(InputError, match=r"1305031102\.175304\.png is not a readable image"):
        TumRGBD(seq).load_color(f)
    with pytest.raises(InputError, match="has no associated depth map"):
        TumRGBD(seq).load_depth_m(f)
    with pytest.raises(FileNotFoundError, match=r"missing folder .*nope"):
        TumRGBD(tmp_path / "nope")
    with pytest.raises(InputError, match="pose must be"):
        TumRGBD(seq).frames(pose="linear")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"expected an SE3 of shape \(2,\)"):
        write_groundtruth(tmp_path / "g.txt", [1, 2], SE3.identity(3))
