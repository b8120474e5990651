"""Trajectory files: round trips, cross-checks against evo's readers, malformed-file errors, atomic writes."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from evo.core.trajectory import PosePath3D, PoseTrajectory3D
from evo.tools import file_interface
from scipy.spatial.transform import Rotation

from perception.geometry import SE3
from slam.trajectory import (
    Trajectory,
    from_evo,
    read_euroc,
    read_kitti,
    read_tum,
    to_evo,
    write_euroc,
    write_kitti,
    write_tum,
)

MS = 1_000_000


@pytest.fixture
def traj(rng) -> Trajectory:
    # Unix-epoch stamps with arbitrary nanosecond digits and irregular spacing
    n = 25
    stamps = 1403636579758555392 + np.cumsum(rng.integers(4 * MS, 6 * MS, size=n))
    return Trajectory(stamps, SE3.random(rng, (n,), trans_scale=10.0), "world", "body")


def assert_same_poses(a: Trajectory, b: Trajectory, atol=1e-9):
    np.testing.assert_allclose(a.poses.matrix(), b.poses.matrix(), atol=atol, rtol=0)


def fmt(v) -> str:
    return repr(float(v))


def evo_matrices(evo_traj) -> np.ndarray:
    return np.asarray(evo_traj.poses_se3)


# -------------------------------------------------------------------------------------- round trips
def test_tum_round_trip_exact_stamps(tmp_path, traj):
    p = tmp_path / "traj.tum"
    write_tum(p, traj)
    back = read_tum(p)
    np.testing.assert_array_equal(back.stamps_ns, traj.stamps_ns)  # exact to the ns (9 decimals)
    assert_same_poses(back, traj)
    first = p.read_text().splitlines()[1].split(" ")
    assert first[0] == f"{traj.stamps_ns[0] // 10**9}.{traj.stamps_ns[0] % 10**9:09d}"
    assert len(first) == 8


def test_euroc_round_trip_exact_stamps(tmp_path, traj):
    p = tmp_path / "data.csv"
    write_euroc(p, traj)
    lines = p.read_text().splitlines()
    assert lines[0].startswith("#timestamp [ns],p_RS_R_x [m],p_RS_R_y [m],p_RS_R_z [m],q_RS_w []")
    assert len(lines[1].split(",")) == 8
    back = read_euroc(p)
    np.testing.assert_array_equal(back.stamps_ns, traj.stamps_ns)
    assert_same_poses(back, traj)


def test_kitti_round_trip_with_and_without_times(tmp_path, traj):
    p, times = tmp_path / "00.txt", tmp_path / "times.txt"
    write_kitti(p, traj, stamps_path=times)
    back = read_kitti(p, stamps_path=times)
    np.testing.assert_array_equal(back.stamps_ns, traj.stamps_ns)
    assert_same_poses(back, traj)
    no_times = read_kitti(p)  # documented default: index * 0.1 s
    np.testing.assert_array_equal(no_times.stamps_ns, np.arange(len(traj)) * 100 * MS)
    assert_same_poses(no_times, traj)
    assert all(len(line.split()) == 12 for line in p.read_text().splitlines())


def test_evo_conversion_round_trip(traj):
    e = to_evo(traj)
    assert isinstance(e, PoseTrajectory3D)
    np.testing.assert_allclose(evo_matrices(e), traj.poses.matrix(), atol=1e-12)
    np.testing.assert_allclose(e.timestamps, traj.stamps_s, rtol=0, atol=1e-6)
    back = from_evo(e)
    assert_same_poses(back, traj, atol=1e-12)
    assert (back.frame_id, back.child_frame_id) == ("world", "body")
    # float seconds at epoch magnitude carry ~0.24 us; the conversion keeps them to that precision
    assert np.abs(back.stamps_ns - traj.stamps_ns).max() < 500
    path = PosePath3D(poses_se3=list(traj.poses.matrix()[:3]))
    np.testing.assert_array_equal(from_evo(path).stamps_ns, [0, 100 * MS, 200 * MS])


# -------------------------------------------------------------------------------------- evo cross-checks
def test_tum_reader_matches_evo(tmp_path, rng):
    q = Rotation.random(4, random_state=3).as_quat()
    t = rng.normal(size=(4, 3))
    stamps = ["1305031102.175304", "1305031102.211214", "1305031102.243211", "1305031102.275326"]
    body = "\n".join(" ".join([s, *map(fmt, t[k]), *map(fmt, q[k])]) for k, s in enumerate(stamps))
    p = tmp_path / "fr1.txt"
    p.write_text("# ground truth trajectory\n# timestamp tx ty tz qx qy qz qw\n" + body + "\n")
    ours = read_tum(p)
    ref = file_interface.read_tum_trajectory_file(str(p))
    np.testing.assert_allclose(ours.poses.matrix(), evo_matrices(ref), atol=1e-12)
    np.testing.assert_allclose(ours.stamps_s, ref.timestamps, rtol=0, atol=1e-6)
    assert int(ours.stamps_ns[0]) == 1305031102175304000  # exact from the text
    # and evo reads our writer's output identically
    out = tmp_path / "ours.tum"
    write_tum(out, ours)
    ref2 = file_interface.read_tum_trajectory_file(str(out))
    np.testing.assert_allclose(evo_matrices(ref2), ours.poses.matrix(), atol=1e-12)


def test_kitti_reader_matches_evo(tmp_path, traj):
    p = tmp_path / "poses.txt"
    # KITTI ground truth is written with 6 significant digits: rotations are not exactly orthonormal
    M = traj.poses.matrix()[:, :3, :].reshape(-1, 12)
    p.write_text("".join(" ".join(f"{v:e}" for v in row) + "\n" for row in M))
    ours = read_kitti(p)
    ref = file_interface.read_kitti_poses_file(str(p))
    np.testing.assert_allclose(ours.poses.matrix(), evo_matrices(ref), atol=1e-5)
    np.testing.assert_allclose(ours.positions, ref.positions_xyz, atol=1e-15)
    R = np.asarray(ours.poses.R)
    np.testing.assert_allclose(np.swapaxes(R, 1, 2) @ R, np.broadcast_to(np.eye(3), R.shape), atol=1e-12)


def test_euroc_reader_matches_evo_and_ignores_extra_columns(tmp_path, rng):
    q_xyzw = Rotation.random(3, random_state=5).as_quat()
    t = rng.normal(size=(3, 3))
    header = (
        "#timestamp, p_RS_R_x [m], p_RS_R_y [m], p_RS_R_z [m], q_RS_w [], q_RS_x [], q_RS_y [], q_RS_z [], "
        "v_RS_R_x [m s^-1], v_RS_R_y [m s^-1], v_RS_R_z [m s^-1], b_w_RS_S_x [rad s^-1], "
        "b_w_RS_S_y [rad s^-1], b_w_RS_S_z [rad s^-1], b_a_RS_S_x [m s^-2], b_a_RS_S_y [m s^-2], "
        "b_a_RS_S_z [m s^-2]"
    )
    stamps = [1403636579758555392, 1403636579763555584, 1403636579768555520]
    rows = []
    for k in range(3):
        wxyz = q_xyzw[k][[3, 0, 1, 2]]
        extra = rng.normal(size=9)
        rows.append(",".join([str(stamps[k]), *map(fmt, t[k]), *map(fmt, wxyz), *map(fmt, extra)]))
    p = tmp_path / "data.csv"
    p.write_text(header + "\n" + "\n".join(rows) + "\n")
    ours = read_euroc(p)
    np.testing.assert_array_equal(ours.stamps_ns, stamps)
    np.testing.assert_allclose(ours.poses.R, Rotation.from_quat(q_xyzw).as_matrix(), atol=1e-12)  # qw first
    ref = file_interface.read_euroc_csv_trajectory(str(p))
    np.testing.assert_allclose(ours.poses.matrix(), evo_matrices(ref), atol=1e-12)
    np.testing.assert_allclose(ours.stamps_s, ref.timestamps, rtol=0, atol=1e-6)
    out = tmp_path / "ours.csv"
    write_euroc(out, ours)
    ref2 = file_interface.read_euroc_csv_trajectory(str(out))
    np.testing.assert_allclose(evo_matrices(ref2), ours.poses.matrix(), atol=1e-12)


# -------------------------------------------------------------------------------------- errors
def test_missing_and_empty_files(tmp_path):
    missing = tmp_path / "nope.tum"
    for reader in (read_tum, read_kitti, read_euroc):
        with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
            reader(missing)
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n")
    for reader in (read_tum, read_kitti, read_euroc):
        with pytest.raises(ValueError, match=re.escape(f"{empty}: empty trajectory file")):
            reader(empty)


@pytest.mark.parametrize(
    "reader, text, line, what",
    [
        (read_tum, "# c\n0.0 0 0 0 0 0 0 1\n0.1 0 0 0 0 0 1\n", 3, "expected 8 values"),
        (read_tum, "0.0 0 0 0 0 0 0 1\n0.1 0 zero 0 0 0 0 1\n", 2, "'zero' is not a number"),
        (read_tum, "0.0 0 0 0 0 0 0 1\n0.x 0 0 0 0 0 0 1\n", 2, "timestamp '0.x' is not a number"),
        (read_tum, "0.0 0 0 0 0 0 0 1\n0.1 0 nan 0 0 0 0 1\n", 2, "not finite"),
        (read_tum, "0.0 0 0 0 0 0 0 1\n\n0.1 0 0 0 0 0 0 0\n", 3, "zero-norm quaternion"),
        (read_tum, "0.2 0 0 0 0 0 0 1\n0.1 0 0 0 0 0 0 1\n", 2, "is not after the previous one"),
        (read_kitti, "1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 0 0 1 0 0 0 0 1\n", 2, "expected 12 values"),
        (read_kitti, "1 0 0 0 0 1 0 0 0 0 1 0\n2 0 0 0 0 1 0 0 0 0 1 0\n", 2, "not a rotation matrix"),
        (read_euroc, "#h\n1,0,0,0,1,0,0,0\n2,0,0,0,1,0,0\n", 3, "at least 8 comma-separated values"),
        (read_euroc, "#h\n1,0,0,0,1,0,0,0\n2.5,0,0,0,1,0,0,0\n", 3, "not an integer number of nanoseconds"),
        (read_euroc, "1,0,0,0,1,0,0,0\n1,0,0,0,1,0,0,0\n", 2, "strictly increasing"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, reader, text, line, what):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(ValueError) as exc:
        reader(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:{line}: ") and what in msg, msg
    assert "\n" not in msg


def test_kitti_times_file_errors(tmp_path):
    p = tmp_path / "poses.txt"
    p.write_text("1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 0 0 1 0 0 0 0 1 0\n")
    times = tmp_path / "times.txt"
    times.write_text("0.0\n")
    with pytest.raises(ValueError, match=re.escape(f"{times} has 1 stamps but {p} has 2 poses")):
        read_kitti(p, stamps_path=times)
    times.write_text("1.000000e-01\n1.000000e-01\n")
    with pytest.raises(ValueError, match=re.escape(f"{times}:2: timestamp 0.100000000 s is not after")):
        read_kitti(p, stamps_path=times)
    times.write_text("0.000000e+00\n1.036400e-01\n")  # KITTI's own scientific notation
    np.testing.assert_array_equal(read_kitti(p, stamps_path=times).stamps_ns, [0, 103640000])


# -------------------------------------------------------------------------------------- atomic writes
def test_writers_are_atomic(tmp_path, traj, monkeypatch):
    p = tmp_path / "out.tum"
    p.write_text("old content\n")
    write_tum(p, traj)
    assert read_tum(p).stamps_ns[0] == traj.stamps_ns[0]
    assert sorted(os.listdir(tmp_path)) == ["out.tum"]  # no temp file left over

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    before = p.read_bytes()
    for writer in (write_tum, write_euroc, write_kitti):
        with pytest.raises(OSError, match="disk full"):
            writer(p, traj[:3])
    assert p.read_bytes() == before  # the old file is untouched on failure
    assert sorted(os.listdir(tmp_path)) == ["out.tum"]


def test_writer_creates_missing_directory(tmp_path, traj):
    target = tmp_path / "missing" / "x.tum"
    write_tum(target, traj)
    back = read_tum(target)
    assert np.array_equal(back.stamps_ns, traj.stamps_ns)
    assert sorted(os.listdir(target.parent)) == ["x.tum"]
