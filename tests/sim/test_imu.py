"""IMU simulation: strapdown integration reproduces the trajectory; gravity; noise and bias stats."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from perception.errors import InputError
from perception.geometry import SE3
from perception.sim.imu import ImuData, ImuNoise, simulate_imu
from perception.sim.trajectories import SplineTrajectory, aerial_trajectory, ground_trajectory

G = np.array([0.0, 0.0, -9.81])


def _strapdown(imu: ImuData, R0: np.ndarray, v0: np.ndarray, p0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integrate gyro/accel samples (linear between samples): second-order Magnus for the rotation (scipy),
    Simpson for velocity and position. Returns rotations (N,3,3) and positions (N,3)."""
    dt = np.diff(imu.stamps_ns) * 1e-9
    w0, w1 = imu.gyro[:-1], imu.gyro[1:]
    f0, f1 = imu.accel[:-1], imu.accel[1:]
    wm = 0.5 * (w0 + w1)
    h = dt[:, None]
    # R' = R hat(w) with w linear over the step: Omega = h (wa + wb) / 2 + h^2 / 12 (wa x wb)
    d_half = Rotation.from_rotvec(0.5 * h * (w0 + wm) / 2 + (0.5 * h) ** 2 / 12 * np.cross(w0, wm)).as_matrix()
    d_full = Rotation.from_rotvec(h * (w0 + w1) / 2 + h**2 / 12 * np.cross(w0, w1)).as_matrix()
    n = len(imu.stamps_ns)
    R = np.empty((n, 3, 3))
    R[0] = R0
    for k in range(n - 1):
        R[k + 1] = R[k] @ d_full[k]
    Rm = R[:-1] @ d_half
    a0 = np.einsum("nij,nj->ni", R[:-1], f0) + G
    am = np.einsum("nij,nj->ni", Rm, 0.5 * (f0 + f1)) + G
    a1 = np.einsum("nij,nj->ni", R[1:], f1) + G
    dv = h / 6 * (a0 + 4 * am + a1)
    v = np.vstack([v0, v0 + np.cumsum(dv, axis=0)])
    dp = h * v[:-1] + h**2 / 6 * (a0 + 2 * am)
    p = np.vstack([p0, p0 + np.cumsum(dp, axis=0)])
    return R, p


def test_noise_free_imu_integrates_back_to_the_trajectory() -> None:
    tr = aerial_trajectory(np.random.default_rng(2), 8.0, 10.0, speed=(1.0, 3.0), altitude_amplitude=1.5)
    imu = simulate_imu(tr, 200.0)
    assert len(imu) == 1601 and imu.stamps_ns[1] - imu.stamps_ns[0] == 5_000_000
    T0 = tr.pose(tr.start_ns)
    R, p = _strapdown(imu, T0.R, tr.velocity(tr.start_ns), T0.t)
    T = tr.pose(imu.stamps_ns)
    err_p = np.linalg.norm(p - T.t, axis=1).max()
    err_R = np.linalg.norm(Rotation.from_matrix(np.swapaxes(T.R, 1, 2) @ R).as_rotvec(), axis=1).max()
    assert err_p < 0.01, err_p
    assert err_R < 1e-4, err_R
    # the trajectory really moves and turns, so the check is not trivial
    assert np.linalg.norm(T.t[-1] - T.t[0]) > 5.0 and np.abs(imu.gyro).max() > 0.05


def test_lever_arm_imu_integrates_back_to_its_own_trajectory() -> None:
    tr = ground_trajectory(np.random.default_rng(4), 6.0, (1.0, 2.0), max_yaw_rate=0.8)
    T_bi = SE3(Rotation.from_euler("xyz", [0.1, -0.2, 1.2]).as_matrix(), [0.4, -0.3, 0.6])
    imu = simulate_imu(tr, 200.0, T_body_imu=T_bi)
    T0 = tr.pose(tr.start_ns)
    w0 = tr.angular_velocity_body(tr.start_ns)
    v0 = tr.velocity(tr.start_ns) + T0.R @ np.cross(w0, T_bi.t)
    T_wi = tr.pose(imu.stamps_ns) @ T_bi
    R, p = _strapdown(imu, T_wi.R[0], v0, T_wi.t[0])
    assert np.linalg.norm(p - T_wi.t, axis=1).max() < 0.01
    assert np.abs(R - T_wi.R).max() < 1e-4
    # without the lever-arm terms the body-origin IMU would read differently by ~ omega^2 r
    body = simulate_imu(tr, 200.0)
    assert np.abs(body.accel @ T_bi.R - imu.accel).max() > 0.05


def test_stationary_body_reads_gravity_on_its_up_axis() -> None:
    level = SplineTrajectory.stationary(SE3.identity(), 0, 10**9)
    imu = simulate_imu(level, 100.0)
    np.testing.assert_allclose(imu.accel, np.tile([0.0, 0.0, 9.81], (len(imu), 1)), atol=1e-12)
    np.testing.assert_allclose(imu.gyro, 0.0, atol=1e-15)
    rot = Rotation.from_euler("ZYX", [0.7, 0.3, -0.4])
    tilted = SplineTrajectory.stationary(SE3(rot.as_matrix(), [1.0, 2.0, 3.0]), 0, 10**9)
    imu = simulate_imu(tilted, 100.0, gravity=(0.0, 0.0, -9.8))
    np.testing.assert_allclose(imu.accel, np.tile(rot.inv().apply([0.0, 0.0, 9.8]), (len(imu), 1)), atol=1e-12)


def test_white_noise_std_matches_the_density() -> None:
    tr = SplineTrajectory.stationary(SE3.identity(), 0, 60 * 10**9)
    noise = ImuNoise(gyro_noise_density=2e-4, accel_noise_density=3e-3, gyro_random_walk=1e-4, accel_random_walk=1e-3)
    rate = 200.0
    clean = simulate_imu(tr, rate)
    imu = simulate_imu(tr, rate, noise, np.random.default_rng(0))
    for meas, ref, bias, dens in (
        (imu.gyro, clean.gyro, imu.gyro_bias, noise.gyro_noise_density),
        (imu.accel, clean.accel, imu.accel_bias, noise.accel_noise_density),
    ):
        white = meas - ref - bias
        expected = dens * np.sqrt(rate)
        std = white.std(axis=0)
        assert np.all(np.abs(std / expected - 1) < 0.05), (std, expected)
        assert np.abs(white.mean(axis=0)).max() < 0.05 * expected
        lag1 = np.mean(white[1:] * white[:-1], axis=0) / std**2
        assert np.abs(lag1).max() < 0.05  # white: uncorrelated in time
    # the biases move (random walk) but stay far below the white noise at one sample
    assert np.abs(np.diff(imu.gyro_bias, axis=0)).max() > 0


def test_bias_random_walk_variance_grows_linearly() -> None:
    rate, n_seeds = 200.0, 400
    tr = SplineTrajectory.stationary(SE3.identity(), 0, 5 * 10**9)
    noise = ImuNoise(gyro_noise_density=0.0, accel_noise_density=0.0, gyro_random_walk=2e-3, accel_random_walk=5e-2)
    lags = np.array([100, 250, 500, 1000])
    gyro_d, acc_d = [], []
    for seed in range(n_seeds):
        imu = simulate_imu(tr, rate, noise, np.random.default_rng(seed))
        gyro_d.append(imu.gyro_bias[lags] - imu.gyro_bias[0])
        acc_d.append(imu.accel_bias[lags] - imu.accel_bias[0])
        if seed == 0:  # noise-free white part: the reading is the bias itself
            np.testing.assert_allclose(imu.gyro, imu.gyro_bias, atol=1e-15)
    for d, rw in ((np.array(gyro_d), noise.gyro_random_walk), (np.array(acc_d), noise.accel_random_walk)):
        var = (d**2).mean(axis=(0, 2))  # over seeds and axes, per lag
        expected = rw**2 * lags / rate  # sigma_b^2 * elapsed time
        np.testing.assert_allclose(var / expected, 1.0, atol=0.12)
        slope = np.polyfit(lags / rate, var, 1)[0]
        assert abs(slope / rw**2 - 1) < 0.12


def test_initial_bias_determinism_and_errors() -> None:
    tr = SplineTrajectory.stationary(SE3.identity(), 0, 10**9)
    noise = ImuNoise(gyro_bias_init=(0.01, -0.02, 0.03), accel_bias_init=(0.1, 0.2, -0.3))
    a = simulate_imu(tr, 100.0, noise, np.random.default_rng(9))
    b = simulate_imu(tr, 100.0, noise, np.random.default_rng(9))
    c = simulate_imu(tr, 100.0, noise, np.random.default_rng(10))
    np.testing.assert_array_equal(a.gyro, b.gyro)
    assert not np.array_equal(a.gyro, c.gyro)
    np.testing.assert_allclose(a.gyro_bias[0], [0.01, -0.02, 0.03])
    np.testing.assert_allclose(a.accel_bias[0], [0.1, 0.2, -0.3])
    only_bias = ImuNoise.noiseless()
    only_bias.accel_bias_init = (0.0, 0.0, 0.5)
    d = simulate_imu(tr, 100.0, only_bias)  # no rng needed: nothing random
    np.testing.assert_allclose(d.accel[:, 2], 9.81 + 0.5)
    with pytest.raises(InputError, match="rng"):
        simulate_imu(tr, 100.0, ImuNoise())
    with pytest.raises(InputError, match="rate_hz"):
        simulate_imu(tr, 0.0)
    with pytest.raises(InputError, match="gyro_noise_density"):
        simulate_imu(tr, 100.0, ImuNoise(gyro_noise_density=-1.0), np.random.default_rng(0))
