"""SplineTrajectory and generators: analytic derivatives vs finite differences, C2 continuity, constraints."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from perception.errors import InputError
from perception.geometry import SE3
from perception.sim.trajectories import (
    SplineTrajectory,
    aerial_trajectory,
    ground_trajectory,
    orbit_trajectory,
    unicycle_trajectory,
    uniform_stamps,
)

H_NS = 100_000  # finite-difference step: 0.1 ms


def _random_pose_spline(rng: np.random.Generator) -> SplineTrajectory:
    K = 9
    stamps = np.cumsum(rng.integers(400_000_000, 900_000_000, K)).astype(np.int64)
    ypr = np.column_stack([np.cumsum(rng.uniform(-1.0, 1.0, K)), rng.uniform(-0.4, 0.4, K), rng.uniform(-0.4, 0.4, K)])
    R = Rotation.from_euler("ZYX", ypr).as_matrix()
    return SplineTrajectory.from_poses(stamps, SE3(R, rng.normal(scale=3.0, size=(K, 3))))


def _trajectories() -> dict[str, SplineTrajectory]:
    rng = np.random.default_rng(7)
    return {
        "ground": ground_trajectory(rng, 12.0, (0.5, 2.0), max_yaw_rate=0.6),
        "aerial": aerial_trajectory(rng, 12.0, altitude=10.0, speed=(1.0, 4.0), altitude_amplitude=2.0),
        "orbit": orbit_trajectory((1.0, -2.0, 0.5), 4.0, 8.0, height=3.0, angular_speed=0.7),
        "poses": _random_pose_spline(rng),
    }


TRAJS = _trajectories()


def _inner_times(tr: SplineTrajectory, n: int = 400) -> np.ndarray:
    return np.linspace(tr.start_ns + 2 * H_NS, tr.end_ns - 2 * H_NS, n).astype(np.int64)


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-3))


@pytest.mark.parametrize("name", list(TRAJS))
def test_derivatives_match_finite_differences(name: str) -> None:
    tr = TRAJS[name]
    t = _inner_times(tr)
    h = H_NS * 1e-9
    v_fd = (tr.position(t + H_NS) - tr.position(t - H_NS)) / (2 * h)
    assert _rel_err(v_fd, tr.velocity(t)) < 1e-5
    a_fd = (tr.velocity(t + H_NS) - tr.velocity(t - H_NS)) / (2 * h)
    assert _rel_err(a_fd, tr.acceleration(t)) < 1e-5
    # body angular velocity from the rotations alone (scipy): log(R(t-h)^T R(t+h)) / 2h
    R0 = Rotation.from_matrix(tr.pose(t - H_NS).R)
    R1 = Rotation.from_matrix(tr.pose(t + H_NS).R)
    w_fd = (R0.inv() * R1).as_rotvec() / (2 * h)
    assert _rel_err(w_fd, tr.angular_velocity_body(t)) < 1e-5
    al_fd = (tr.angular_velocity_body(t + H_NS) - tr.angular_velocity_body(t - H_NS)) / (2 * h)
    assert _rel_err(al_fd, tr.angular_acceleration_body(t)) < 1e-5
    # world angular velocity = R omega_body
    w_world = np.einsum("nij,nj->ni", tr.pose(t).R, tr.angular_velocity_body(t))
    np.testing.assert_allclose(tr.angular_velocity_world(t), w_world, atol=1e-12)
    # the pose agrees with scipy's ZYX Euler convention
    np.testing.assert_allclose(tr.pose(t).R, Rotation.from_euler("ZYX", tr.ypr(t)).as_matrix(), atol=1e-12)


@pytest.mark.parametrize("name", list(TRAJS))
def test_c2_continuity_across_knots(name: str) -> None:
    tr = TRAJS[name]
    knots = tr.knots_ns[1:-1]
    eps = 1  # ns either side of each knot
    for f in (
        tr.position,
        tr.velocity,
        tr.acceleration,
        tr.angular_velocity_body,
        tr.angular_acceleration_body,
    ):
        scale = max(np.abs(f(_inner_times(tr))).max(), 1.0)
        jump = np.abs(f(knots + eps) - f(knots - eps)).max()
        assert jump < 1e-7 * scale, (f.__name__, jump, scale)
    R_jump = np.abs(tr.pose(knots + eps).R - tr.pose(knots - eps).R).max()
    assert R_jump < 1e-7
    # a genuine discontinuity would show: the acceleration changes by far more across a 0.1 s interval
    assert np.abs(tr.acceleration(knots + 50_000_000) - tr.acceleration(knots)).max() > 1e-4


def test_from_poses_interpolates_the_control_poses() -> None:
    rng = np.random.default_rng(3)
    K = 8
    stamps = np.arange(K, dtype=np.int64) * 500_000_000 + 10**9
    ypr = np.column_stack([np.linspace(0, 5.0, K), rng.uniform(-0.5, 0.5, K), rng.uniform(-0.5, 0.5, K)])
    poses = SE3(Rotation.from_euler("ZYX", ypr).as_matrix(), rng.normal(size=(K, 3)))
    tr = SplineTrajectory.from_poses(stamps, poses)
    got = tr.pose(stamps)
    np.testing.assert_allclose(got.R, poses.R, atol=1e-12)
    np.testing.assert_allclose(got.t, poses.t, atol=1e-12)
    s, T = tr.sample(stamps[2:4])
    assert s.dtype == np.int64 and np.array_equal(s, stamps[2:4]) and T.shape == (2,)
    assert tr.pose(int(stamps[3])).shape == () and tr.velocity(int(stamps[3])).shape == (3,)


def test_ground_trajectory_is_planar_heading_aligned_and_within_bounds() -> None:
    rng = np.random.default_rng(11)
    lo, hi, wmax, z = 0.4, 1.6, 0.5, 0.35
    tr = ground_trajectory(rng, 30.0, (lo, hi), max_yaw_rate=wmax, z=z, start_xy=(2.0, -1.0), start_ns=5 * 10**9)
    assert tr.start_ns == 5 * 10**9 and tr.end_ns == 35 * 10**9
    t = np.linspace(tr.start_ns, tr.end_ns, 3001).astype(np.int64)
    T = tr.pose(t)
    np.testing.assert_allclose(T.t[:, 2], z, atol=1e-12)
    np.testing.assert_allclose(T.t[0, :2], (2.0, -1.0), atol=1e-12)
    v = tr.velocity(t)
    assert np.abs(v[:, 2]).max() < 1e-12 and np.abs(tr.acceleration(t)[:, 2]).max() < 1e-12
    ypr = tr.ypr(t)
    assert np.abs(ypr[:, 1:]).max() < 1e-12  # roll and pitch zero
    # body z is world up, body x is the direction of travel
    np.testing.assert_allclose(T.R[:, :, 2], np.tile([0.0, 0.0, 1.0], (len(t), 1)), atol=1e-12)
    speed = np.linalg.norm(v, axis=1)
    np.testing.assert_allclose(T.R[:, :, 0], v / speed[:, None], atol=1e-12)
    assert speed.min() >= lo and speed.max() <= hi
    assert speed.max() - speed.min() > 0.5 * (hi - lo)  # the profile really varies
    w = tr.angular_velocity_body(t)
    assert np.abs(w[:, :2]).max() < 1e-12
    assert np.abs(w[:, 2]).max() <= wmax and np.abs(w[:, 2]).max() > 0.3 * wmax
    # yaw rate = signed curvature * speed (independent planar formula)
    a = tr.acceleration(t)
    np.testing.assert_allclose(w[:, 2], (v[:, 0] * a[:, 1] - v[:, 1] * a[:, 0]) / speed**2, atol=1e-12)


def test_unicycle_matches_the_integrated_profiles() -> None:
    # 1 m/s, straight for 5 s then a smooth 90 degree turn at 0.3 rad/s peak
    def yaw_rate(t: np.ndarray) -> np.ndarray:
        return 0.3 * np.sin(np.pi * np.clip((t - 5.0) / (np.pi / 2 / 0.3 * 2), 0.0, 1.0)) ** 2

    tr = unicycle_trajectory(20.0, 1.0, yaw_rate, start_yaw=0.25)
    t = np.linspace(tr.start_ns, tr.end_ns, 2001).astype(np.int64)
    np.testing.assert_allclose(np.linalg.norm(tr.velocity(t), axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(tr.angular_velocity_body(t)[:, 2], yaw_rate(t * 1e-9), atol=1e-4)
    # closed-form yaw: 0.25 + integral of 0.3 sin^2 over the turn (= 0.15 * duration = pi / 2)
    np.testing.assert_allclose(tr.ypr(tr.end_ns)[0], 0.25 + np.pi / 2, atol=1e-6)
    # straight part: x = cos(0.25) t
    np.testing.assert_allclose(tr.position(4 * 10**9)[:2], 4.0 * np.array([np.cos(0.25), np.sin(0.25)]), atol=1e-9)


def test_aerial_trajectory_altitude_and_multirotor_tilt() -> None:
    rng = np.random.default_rng(5)
    alt, amp = 12.0, 1.5
    tr = aerial_trajectory(rng, 20.0, alt, speed=(1.0, 3.0), altitude_amplitude=amp, banking=True)
    t = np.linspace(tr.start_ns, tr.end_ns, 2001).astype(np.int64)
    z = tr.position(t)[:, 2]
    assert z.min() >= alt - amp and z.max() <= alt + amp and z.max() - z.min() > 0.5 * amp
    hs = np.linalg.norm(tr.velocity(t)[:, :2], axis=1)
    assert hs.min() >= 1.0 and hs.max() <= 3.0
    # at the knots the body z axis is exactly the thrust direction a + g e_z
    k = tr.knots_ns
    f = tr.acceleration(k) + np.array([0.0, 0.0, 9.81])
    np.testing.assert_allclose(tr.pose(k).R[:, :, 2], f / np.linalg.norm(f, axis=1, keepdims=True), atol=1e-9)
    assert np.abs(tr.ypr(t)[:, 1:]).max() > 0.01  # it does tilt
    level = aerial_trajectory(np.random.default_rng(5), 20.0, alt, banking=False)
    assert np.abs(level.ypr(t)[:, 1:]).max() < 1e-12


def test_orbit_faces_the_centre() -> None:
    c = np.array([1.0, -2.0, 0.5])
    tr = orbit_trajectory(c, 4.0, 10.0, height=3.0, angular_speed=-0.5, start_angle=0.3)
    t = np.linspace(tr.start_ns, tr.end_ns, 501).astype(np.int64)
    T = tr.pose(t)
    th = 0.3 - 0.5 * t * 1e-9
    exp = c + np.column_stack([4 * np.cos(th), 4 * np.sin(th), np.full(len(t), 3.0)])
    np.testing.assert_allclose(T.t, exp, atol=1e-7)
    to_c = (c - T.t) / np.linalg.norm(c - T.t, axis=1, keepdims=True)
    np.testing.assert_allclose(T.R[:, :, 0], to_c, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(tr.velocity(t), axis=1), 2.0, atol=1e-7)


def test_stationary_and_errors() -> None:
    pose = SE3(Rotation.from_euler("ZYX", [0.3, 0.2, -0.1]).as_matrix(), [1.0, 2.0, 3.0])
    tr = SplineTrajectory.stationary(pose, 0, 10**9)
    t = np.linspace(0, 10**9, 11).astype(np.int64)
    np.testing.assert_allclose(tr.pose(t).R, np.broadcast_to(pose.R, (11, 3, 3)), atol=1e-15)
    assert np.abs(tr.velocity(t)).max() == 0 and np.abs(tr.angular_velocity_body(t)).max() == 0
    with pytest.raises(InputError, match="t_ns"):
        tr.pose(10**9 + 1)
    with pytest.raises(InputError, match="strictly increasing"):
        SplineTrajectory(np.array([0, 0, 1, 2]), np.zeros((4, 3)))
    with pytest.raises(InputError, match="speed"):
        unicycle_trajectory(5.0, lambda s: 1.0 - 0.5 * s)
    with pytest.raises(InputError, match="pitch"):
        SplineTrajectory(np.arange(4), np.zeros((4, 3)), np.tile([0.0, 1.6, 0.0], (4, 1)))
    np.testing.assert_array_equal(uniform_stamps(0, 10**9, 3.0), [0, 333_333_333, 666_666_667, 1_000_000_000])
    np.testing.assert_array_equal(tr.stamps(4.0), [0, 250_000_000, 500_000_000, 750_000_000, 1_000_000_000])
