"""Spinning LiDAR: geometry in a box room vs an analytic ray-box intersection, misses / max range, motion
distortion and de-skewing, intensity vs incidence angle."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from perception.errors import InputError
from perception.geometry import SE3
from perception.sim.lidar import SpinningLidar
from perception.sim.primitives import box_mesh, ground_plane, quad_mesh
from perception.sim.trajectories import SplineTrajectory, ground_trajectory, unicycle_trajectory
from perception.sim.world import World

LO = np.array([-3.5, -3.5, -0.75])
HI = np.array([4.5, 2.5, 2.75])
T_BODY_LIDAR = SE3(Rotation.from_euler("ZYX", [0.4, 0.05, -0.03]).as_matrix(), [0.2, -0.1, 0.5])


def _room() -> World:
    return World([box_mesh(0.5 * (LO + HI), HI - LO, inward=True, semantic_id=7, reflectivity=0.6)])


def _wall_distance(p_world: np.ndarray) -> np.ndarray:
    """Distance of each point to the nearest of the room's six wall planes."""
    return np.min(np.abs(np.concatenate([p_world - LO, p_world - HI], axis=1)), axis=1)


def _box_range(origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Analytic exit distance of rays starting inside the axis-aligned room (slab method)."""
    with np.errstate(divide="ignore"):
        t = np.where(dirs > 0, (HI - origins) / dirs, np.where(dirs < 0, (LO - origins) / dirs, np.inf))
    return t.min(axis=1)


def _lidar(**kw) -> SpinningLidar:
    return SpinningLidar(horizontal_resolution_deg=1.0, **kw)


def test_static_scan_in_a_box_room() -> None:
    lidar = _lidar()
    pose = SE3(Rotation.from_euler("z", 0.2).as_matrix(), [0.3, -0.4, 0.5])
    traj = SplineTrajectory.stationary(pose, 0, 10**9)
    scan = lidar.scan(_room(), traj, 200_000_000, T_BODY_LIDAR)
    assert len(scan) == 32 * 360  # closed room: every beam returns
    assert scan.stamp_ns == 300_000_000 and scan.t_start_ns == 200_000_000
    T_wl = pose @ T_BODY_LIDAR
    pw = T_wl.act(scan.points)
    assert _wall_distance(pw).max() < 1e-6
    np.testing.assert_allclose(pw, scan.points_world, atol=1e-9)
    # ranges agree with the analytic ray-box intersection
    dirs_w = (scan.points / np.linalg.norm(scan.points, axis=1, keepdims=True)) @ T_wl.R.T
    np.testing.assert_allclose(scan.range, _box_range(np.broadcast_to(T_wl.t, dirs_w.shape), dirs_w), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(scan.points, axis=1), scan.range, atol=1e-12)
    # beam elevations (HDL-32E: 32 beams, -30.67 to +10.67 deg) and column azimuths, in the sensor frame
    elev = np.degrees(np.arcsin(scan.points[:, 2] / scan.range))
    np.testing.assert_allclose(elev, np.linspace(-30.67, 10.67, 32)[scan.ring], atol=1e-9)
    az = np.degrees(np.arctan2(scan.points[:, 1], scan.points[:, 0])) % 360.0
    np.testing.assert_allclose(az, 1.0 * scan.column, atol=1e-9)
    assert np.array_equal(np.bincount(scan.ring), np.full(32, 360))
    # per-column firing times over one 0.1 s sweep
    np.testing.assert_array_equal(scan.time_offset_ns, np.round(scan.column * (1e8 / 360)).astype(np.int64))
    assert scan.time_offset_ns.max() < 100_000_000
    assert np.all(scan.instance_id == 1) and np.all(scan.semantic_id == 7)
    assert scan.intensity.max() <= 0.6 and scan.intensity.min() > 0


def test_range_noise_and_determinism() -> None:
    lidar = _lidar(range_noise_std=0.02)
    traj = SplineTrajectory.stationary(SE3.identity(), 0, 10**9)
    scan = lidar.scan(_room(), traj, 0, rng=np.random.default_rng(4))
    dirs = scan.points / np.linalg.norm(scan.points, axis=1, keepdims=True)
    resid = scan.range - _box_range(np.zeros_like(dirs), dirs)
    assert abs(resid.std() / 0.02 - 1) < 0.1 and abs(resid.mean()) < 0.002
    assert _wall_distance(scan.points).max() < 6 * 0.02
    again = lidar.scan(_room(), traj, 0, rng=np.random.default_rng(4))
    other = lidar.scan(_room(), traj, 0, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(scan.points, again.points)
    assert not np.array_equal(scan.points, other.points)


def test_misses_and_max_range_are_dropped() -> None:
    h = 1.8
    world = World([ground_plane((600.0, 600.0), (0.0, 0.0, -h), semantic_id=3)])
    traj = SplineTrajectory.stationary(SE3.identity(), 0, 10**9)
    el = np.deg2rad(np.linspace(-30.67, 10.67, 32))
    for max_range in (15.0, 40.0, 100.0):
        lidar = _lidar(max_range=max_range)
        scan = lidar.scan(world, traj, 0)
        down = el < 0
        true_range = np.where(down, h / np.sin(np.where(down, -el, 1.0)), np.inf)
        beams_in = np.flatnonzero(true_range <= max_range)
        assert len(scan) == 360 * len(beams_in)  # beams x columns minus misses (sky) and far returns
        assert set(np.unique(scan.ring)) == set(beams_in)
        assert scan.range.max() <= max_range
        np.testing.assert_allclose(scan.range, true_range[scan.ring], atol=1e-9)
        np.testing.assert_allclose(scan.points[:, 2], -h, atol=1e-9)
        assert np.all(scan.semantic_id == 3)
    assert 0 < len(beams_in) < 32


@pytest.mark.parametrize("turning", [False, True])
def test_motion_distortion_and_deskew(turning: bool) -> None:
    if turning:
        traj = ground_trajectory(np.random.default_rng(3), 1.0, (0.8, 1.2), max_yaw_rate=1.0, start_xy=(-0.5, 0.0))
    else:
        traj = unicycle_trajectory(1.0, 1.0, 0.0, start_position=(-0.5, 0.0, 0.0), start_yaw=0.3)
    lidar = _lidar()
    room = _room()
    t0 = 400_000_000
    T_end = traj.pose(t0 + lidar.period_ns) @ T_BODY_LIDAR
    desk = lidar.scan(room, traj, t0, T_BODY_LIDAR, deskew=True)
    raw = lidar.scan(room, traj, t0, T_BODY_LIDAR, deskew=False)
    assert len(desk) == len(raw) == 32 * 360
    assert desk.deskewed and not raw.deskewed
    # de-skewed points, mapped with the scan-end pose, lie on the walls
    pw = T_end.act(desk.points)
    assert _wall_distance(pw).max() < 1e-6
    np.testing.assert_allclose(pw, desk.points_world, atol=1e-9)
    # raw points are in the sensor frame at their own firing time
    T_fire = traj.pose(t0 + raw.time_offset_ns) @ T_BODY_LIDAR
    assert _wall_distance(T_fire.act(raw.points)).max() < 1e-6
    # mapped with the scan-end pose instead, they are distorted by the motion during the sweep (~ v * 0.1 s)
    err = np.linalg.norm(T_end.act(raw.points) - raw.points_world, axis=1)
    assert err.max() > 0.01 and err.max() < 0.5
    assert err[raw.column < 10].mean() > 5 * err[raw.column > 350].mean()  # early columns are off the most
    if not turning:
        # pure translation: the error is exactly the distance travelled between firing and scan end
        shift = traj.position(raw.t_end_ns) - traj.position(t0 + raw.time_offset_ns)
        np.testing.assert_allclose(T_end.act(raw.points) - raw.points_world, shift, atol=1e-9)


def test_intensity_falls_with_incidence_angle() -> None:
    wall = np.array([[5.0, -40.0, 20.0], [5.0, 40.0, 20.0], [5.0, 40.0, -20.0], [5.0, -40.0, -20.0]])
    traj = SplineTrajectory.stationary(SE3.identity(), 0, 10**9)
    lidar = _lidar(max_range=200.0)
    bright = lidar.scan(World([quad_mesh(wall, reflectivity=0.8)]), traj, 0)
    dark = lidar.scan(World([quad_mesh(wall, reflectivity=0.4)]), traj, 0)
    assert len(bright) == len(dark) > 1000
    cos_inc = np.abs(bright.points[:, 0]) / bright.range  # wall normal is the x axis
    np.testing.assert_allclose(bright.intensity, 0.8 * cos_inc, atol=1e-9)
    np.testing.assert_allclose(dark.intensity, 0.5 * bright.intensity, atol=1e-12)
    order = np.argsort(np.arccos(np.clip(cos_inc, -1, 1)))
    assert np.all(np.diff(bright.intensity[order]) <= 1e-12)
    assert bright.intensity.max() > 0.79 and bright.intensity.min() < 0.2


def test_errors() -> None:
    traj = SplineTrajectory.stationary(SE3.identity(), 0, 10**9)
    with pytest.raises(InputError, match="rng"):
        _lidar(range_noise_std=0.01).scan(_room(), traj, 0)
    with pytest.raises(InputError, match="within the trajectory"):
        _lidar().scan(_room(), traj, 950_000_000)
    with pytest.raises(InputError, match="max_range"):
        SpinningLidar(min_range=5.0, max_range=1.0)
    with pytest.raises(InputError, match="vertical_fov_deg"):
        SpinningLidar(vertical_fov_deg=(-95.0, 10.0))
    custom = SpinningLidar(elevations_deg=[2.0, -15.0, 0.0], horizontal_resolution_deg=2.0)
    assert custom.beams == 3 and custom.columns == 180
    np.testing.assert_allclose(np.degrees(custom.elevations_rad), [-15.0, 0.0, 2.0])
    np.testing.assert_array_equal(_lidar().sweep_starts(traj), np.arange(10) * 100_000_000)
