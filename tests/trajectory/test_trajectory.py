"""Trajectory: validation, slicing, interpolation (geodesic / decoupled), extrinsics, time offsets,
refusals."""

from __future__ import annotations

import re

import gtsam
import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.transform import Rotation, Slerp

from perception.geometry import SE3
from slam.trajectory import Trajectory, format_ns, ns_to_seconds, seconds_to_ns

MS = 1_000_000
S = 1_000_000_000


def twist_matrix(xi: np.ndarray) -> np.ndarray:
    """4x4 se(3) matrix of a twist ordered (omega, v)."""
    w, v = xi[:3], xi[3:]
    X = np.zeros((4, 4))
    X[:3, :3] = [[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]]
    X[:3, 3] = v
    return X


def constant_twist_traj(xi, T0, stamps_ns):
    """Samples of T(t) = T0 expm(t * xi^) (independent reference: scipy expm)."""
    M = np.stack([T0 @ scipy.linalg.expm(ns * 1e-9 * twist_matrix(xi)) for ns in stamps_ns])
    return Trajectory.from_arrays(np.asarray(stamps_ns), matrices=M)


def random_traj(rng, n=20, period_ns=100 * MS, t0_ns=0):
    stamps = t0_ns + np.arange(n, dtype=np.int64) * period_ns
    return Trajectory(stamps, SE3.random(rng, (n,), trans_scale=2.0), "world", "imu")


# -------------------------------------------------------------------------------------- basics
def test_validation_names_bad_index(rng):
    T = SE3.random(rng, (5,))
    t = np.array(T.t)
    t[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite \(NaN/inf\) pose at index 3"):
        Trajectory(np.arange(5) * S, SE3(T.R, t))
    R = np.array(T.R)
    R[2, 0, 0] = np.inf
    with pytest.raises(ValueError, match="index 2"):
        Trajectory(np.arange(5) * S, SE3(R, T.t))
    with pytest.raises(ValueError, match="index 4"):
        Trajectory.from_arrays(
            np.arange(5), positions=np.where(np.arange(5)[:, None] == 4, np.inf, T.t), rotations=T.R
        )
    with pytest.raises(ValueError, match=r"strictly increasing; index 3 \(0\.000000002 s\)"):
        Trajectory(np.array([0, 1, 2, 2, 5]), T)
    with pytest.raises(ValueError, match="index 1"):
        Trajectory(np.array([5, 4, 6, 7, 8]), T)
    with pytest.raises(ValueError, match="integer nanoseconds"):
        Trajectory(np.arange(5) * 0.1, T)
    with pytest.raises(ValueError, match="batch shape"):
        Trajectory(np.arange(4), T)
    R = np.array(T.R)
    R[1] *= 1.01
    with pytest.raises(ValueError, match="R at index 1 is not a rotation"):
        Trajectory(np.arange(5), SE3(R, T.t))


def test_len_slicing_positions_and_arrays(rng):
    tr = random_traj(rng, n=10)
    assert len(tr) == 10
    sub = tr[2:5]
    assert len(sub) == 3 and sub.frame_id == "world" and sub.child_frame_id == "imu"
    np.testing.assert_array_equal(sub.stamps_ns, [200 * MS, 300 * MS, 400 * MS])
    np.testing.assert_array_equal(sub.positions, np.asarray(tr.poses.t)[2:5])
    one = tr[-1]
    assert len(one) == 1 and one.stamps_ns[0] == 900 * MS
    masked = tr[np.arange(10) % 3 == 0]
    np.testing.assert_array_equal(masked.stamps_ns, [0, 300 * MS, 600 * MS, 900 * MS])
    with pytest.raises(IndexError):
        tr[10]
    np.testing.assert_allclose(tr.stamps_s, np.arange(10) * 0.1, atol=1e-15)
    assert tr.duration_s == pytest.approx(0.9)

    # from_arrays with quaternions (scipy xyzw) and float seconds
    q = Rotation.random(4, random_state=1).as_quat()
    p = rng.normal(size=(4, 3))
    stamps_s = np.array([1403636579.758555, 1403636579.763555, 1403636579.768555, 1403636579.773555])
    tq = Trajectory.from_arrays(stamps_s, p, 3.0 * q, stamps_unit="s")  # unnormalised quats are normalised
    np.testing.assert_allclose(tq.poses.R, Rotation.from_quat(q).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(tq.stamps_s, stamps_s, atol=1e-6)
    assert abs(int(tq.stamps_ns[0]) - 1403636579758555000) < 500  # float64 carries ~0.2 us here


def test_stamp_helpers_exact():
    assert format_ns(1403636579758555392) == "1403636579.758555392"
    assert format_ns(-1_500_000_000) == "-1.500000000"
    assert format_ns(5) == "0.000000005"
    np.testing.assert_array_equal(
        seconds_to_ns(np.array([0.1, 2.5, -0.25])), [100 * MS, 2500 * MS, -250 * MS]
    )
    np.testing.assert_allclose(ns_to_seconds(np.array([1, 1_500_000_000])), [1e-9, 1.5], rtol=0, atol=1e-18)


def test_concat(rng):
    tr = random_traj(rng, n=10)
    both = Trajectory.concat([tr[:4], tr[4:]])
    np.testing.assert_array_equal(both.stamps_ns, tr.stamps_ns)
    np.testing.assert_array_equal(both.poses.R, tr.poses.R)
    with pytest.raises(
        ValueError, match=r"trajectory 1 starts at 0\.300000000 s, not after .* 0\.300000000 s"
    ):
        Trajectory.concat([tr[:4], tr[3:]])
    other = Trajectory(tr.stamps_ns[4:], SE3(tr.poses.R[4:], tr.poses.t[4:]), "map", "imu")
    with pytest.raises(ValueError, match="frames"):
        Trajectory.concat([tr[:4], other])


def test_transform_and_relative_to(rng):
    tr = random_traj(rng, n=6)
    M = tr.poses.matrix()
    X = SE3.random(rng)
    Xm = X.matrix()
    moved = tr.transform(X, frame_id="map")
    np.testing.assert_allclose(moved.poses.matrix(), Xm @ M, atol=1e-12)
    assert moved.frame_id == "map"

    rel = tr.relative_to()  # relative to the first pose
    np.testing.assert_allclose(rel.poses.matrix(), np.linalg.inv(M[0]) @ M, atol=1e-12)
    np.testing.assert_allclose(rel.poses.matrix()[0], np.eye(4), atol=1e-12)
    rel_x = tr.relative_to(Xm)
    np.testing.assert_allclose(rel_x.poses.matrix(), np.linalg.inv(Xm) @ M, atol=1e-12)

    # relative to another trajectory sampled at the same stamps: T_other^-1 T_self
    other = random_traj(np.random.default_rng(7), n=6)
    rel_o = tr.relative_to(other)
    np.testing.assert_allclose(rel_o.poses.matrix(), np.linalg.inv(other.poses.matrix()) @ M, atol=1e-12)
    assert rel_o.frame_id == "imu"


# -------------------------------------------------------------------------------------- interpolation
def test_geodesic_reproduces_constant_twist_exactly():
    xi = np.array([0.1, -0.2, 0.5, 1.5, 0.3, -0.1])  # (omega rad/s, v m/s), a general screw
    T0 = SE3.exp(np.array([0.3, -1.0, 0.2, 5.0, -2.0, 1.0])).matrix()
    stamps = np.arange(0, 2 * S + 1, 100 * MS)  # 10 Hz
    tr = constant_twist_traj(xi, T0, stamps)
    q = np.array([0, 1 * MS, 37 * MS, 50 * MS, 99 * MS, 1234 * MS + 567, 2 * S])
    got = tr.T_world_body_at(q).matrix()
    ref = np.stack([T0 @ scipy.linalg.expm(t * 1e-9 * twist_matrix(xi)) for t in q])
    np.testing.assert_allclose(got, ref, atol=1e-9, rtol=0)


def test_geodesic_matches_gtsam_slerp(rng):
    tr = random_traj(rng, n=2, period_ns=S)
    got = tr.T_world_body_at(300 * MS, max_gap_ns=None).matrix()
    a, b = (gtsam.Pose3(m) for m in tr.poses.matrix())
    np.testing.assert_allclose(got, a.slerp(0.3, b).matrix(), atol=1e-12)


def test_decoupled_error_at_mid_interval_matches_sagitta():
    # Unicycle at 1.5 m/s, 0.5 rad/s yaw, 10 Hz samples (research/airground.md).
    # The true path is a circle of radius r = v / w = 3 m; over dt = 0.1 s it turns th = 0.05 rad.
    # Decoupled interpolation lerps along the chord; at mid-interval the error is the sagitta
    # r (1 - cos(th / 2)) = 3 * (1 - cos(0.025)) = 9.3740e-4 m, i.e. 0.94 mm < 1 mm.
    xi = np.array([0, 0, 0.5, 1.5, 0, 0])
    stamps = np.arange(0, S + 1, 100 * MS)
    tr = constant_twist_traj(xi, np.eye(4), stamps)
    q = np.array([350 * MS])
    truth = scipy.linalg.expm(0.35 * twist_matrix(xi))
    geo = tr.T_world_body_at(q, method="geodesic").matrix()[0]
    dec = tr.T_world_body_at(q, method="decoupled").matrix()[0]
    np.testing.assert_allclose(geo, truth, atol=1e-9)
    err = np.linalg.norm(dec[:3, 3] - truth[:3, 3])
    assert err == pytest.approx(3.0 * (1 - np.cos(0.025)), abs=1e-9)
    assert 0.9e-3 < err < 1e-3
    # rotations agree (yaw slerp is exact for a planar constant yaw rate)
    np.testing.assert_allclose(dec[:3, :3], truth[:3, :3], atol=1e-12)


def test_extrinsic_composition_order(rng):
    tr = random_traj(rng, n=5)
    X = SE3.random(rng, trans_scale=0.3)
    M, Xm = tr.poses.matrix(), X.matrix()
    # at a sample time: T_world_body @ T_body_sensor (not the other way round)
    got = tr.T_world_body_at(200 * MS, T_body_sensor=X).matrix()
    np.testing.assert_allclose(got, M[2] @ Xm, atol=1e-12)
    assert np.abs(got - Xm @ M[2]).max() > 1e-3
    got_arr = tr.T_world_body_at(np.array([200 * MS]), T_body_sensor=Xm).matrix()  # 4x4 accepted too
    assert got_arr.shape == (1, 4, 4)
    np.testing.assert_allclose(got_arr[0], M[2] @ Xm, atol=1e-12)

    # between samples with decoupled interpolation: body poses are interpolated first, then X is composed.
    # Reference by hand: scipy Slerp on rotations + lerp on translations of the BODY poses.
    a = 0.25
    q_ns = 100 * MS + int(a * 100 * MS)
    slerp = Slerp([0.0, 1.0], Rotation.from_matrix(M[1:3, :3, :3]))
    body = np.eye(4)
    body[:3, :3] = slerp([a]).as_matrix()[0]
    body[:3, 3] = (1 - a) * M[1, :3, 3] + a * M[2, :3, 3]
    got = tr.T_world_body_at(q_ns, T_body_sensor=X, method="decoupled").matrix()
    np.testing.assert_allclose(got, body @ Xm, atol=1e-12)
    # interpolating the already-composed sensor poses would be different
    sensor = Trajectory(tr.stamps_ns, SE3.from_matrix(M @ Xm))
    wrong = sensor.T_world_body_at(q_ns, method="decoupled").matrix()
    assert np.abs(wrong[:3, 3] - got[:3, 3]).max() > 1e-4


def test_time_offset_convention():
    # t_body = t_sensor + time_offset_ns. A 10 ms offset at 1.5 m/s moves the sensor by ~15 mm:
    # chord of the 3 m-radius circle over 0.005 rad = 2 * 3 * sin(0.0025) = 0.0149999844 m.
    xi = np.array([0, 0, 0.5, 1.5, 0, 0])
    tr = constant_twist_traj(xi, np.eye(4), np.arange(0, S + 1, 100 * MS))
    t_sensor = np.array([420 * MS, 555 * MS])
    shifted = tr.T_world_body_at(t_sensor, time_offset_ns=10 * MS).matrix()
    np.testing.assert_allclose(shifted, tr.T_world_body_at(t_sensor + 10 * MS).matrix(), atol=1e-15)
    truth = np.stack([scipy.linalg.expm((t + 10 * MS) * 1e-9 * twist_matrix(xi)) for t in t_sensor])
    np.testing.assert_allclose(shifted, truth, atol=1e-9)
    plain = tr.T_world_body_at(t_sensor).matrix()
    d = np.linalg.norm(shifted[:, :3, 3] - plain[:, :3, 3], axis=1)
    np.testing.assert_allclose(d, 2 * 3.0 * np.sin(0.0025), atol=1e-9)
    # negative offsets work too and are bounded by the span in BODY time
    tr.T_world_body_at(5 * MS, time_offset_ns=-5 * MS)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "query time 0.995000000 s (body time 1.005000000 s with time_offset_ns=10000000) is outside"
        ),
    ):
        tr.T_world_body_at(995 * MS, time_offset_ns=10 * MS)


def test_extrapolation_refused_with_time_in_message(rng):
    tr = random_traj(rng, n=5, t0_ns=10 * S)  # span [10.0, 10.4] s
    with pytest.raises(
        ValueError,
        match=re.escape(
            "query time 9.999999999 s is outside the trajectory span [10.000000000, 10.400000000] s; "
            "extrapolation is refused"
        ),
    ):
        tr.T_world_body_at(10 * S - 1)
    with pytest.raises(
        ValueError, match=r"query time 10\.500000000 s is outside .* \(1 more queries outside\)"
    ):
        tr.T_world_body_at(np.array([10 * S, 10 * S + 500 * MS, 11 * S]))
    # the end points themselves are inside
    got = tr.T_world_body_at(np.array([10 * S, 10 * S + 400 * MS])).matrix()
    np.testing.assert_allclose(got, tr.poses.matrix()[[0, 4]], atol=1e-15)


def test_gap_refused_with_time_and_gap_in_message(rng):
    stamps = np.array([0, 100 * MS, 200 * MS, 1000 * MS, 1100 * MS])
    tr = Trajectory(stamps, SE3.random(rng, (5,)))
    msg = (
        "query time 0.500000000 s falls in a gap of 0.800000000 s between samples 2 (0.200000000 s) and "
        "3 (1.000000000 s), longer than max_gap_ns=500000000 (0.500000000 s)"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        tr.T_world_body_at(np.array([50 * MS, 500 * MS]))
    # the samples bounding the gap are fine, so is a larger max_gap_ns or None
    tr.T_world_body_at(np.array([200 * MS, 1000 * MS, 1050 * MS]))
    a = tr.T_world_body_at(500 * MS, max_gap_ns=None).matrix()
    b = tr.T_world_body_at(500 * MS, max_gap_ns=800 * MS).matrix()
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="gap of 0.100000000 s"):
        tr.T_world_body_at(50 * MS, max_gap_ns=99 * MS)


def test_query_argument_checks(rng):
    tr = random_traj(rng, n=3)
    with pytest.raises(ValueError, match="integer nanoseconds"):
        tr.T_world_body_at(0.1)
    with pytest.raises(ValueError, match="method"):
        tr.T_world_body_at(0, method="linear")
    single = tr.T_world_body_at(100 * MS)
    assert single.R.shape == (3, 3)
    one = Trajectory(np.array([5]), SE3.random(rng, (1,)))
    np.testing.assert_array_equal(one.T_world_body_at(5).matrix(), one.poses.matrix()[0])
    with pytest.raises(ValueError, match="outside"):
        one.T_world_body_at(6)
