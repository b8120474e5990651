"""IMU simulation from a trajectory's analytic derivatives, with Kalibr/EuRoC-style noise.

Measurement model at each stamp ``k`` (IMU frame = body frame unless ``T_body_imu`` is given)::

    gyro_k  = omega_imu(t_k)                      + b_g,k + n_g,k
    accel_k = R_world_imu(t_k)^T (a_imu(t_k) - g) + b_a,k + n_a,k

``n ~ N(0, sigma^2 / dt)`` per axis (``sigma`` the continuous-time noise density, so the discrete standard
deviation is ``sigma * sqrt(rate)``), and the biases are random walks
``b_{k+1} = b_k + sigma_b sqrt(dt) N(0, 1)`` (``sigma_b`` the bias random-walk density). These are the units
of Kalibr's ``imu.yaml`` and EuRoC's ``sensor.yaml``: ``gyroscope_noise_density`` rad/s/sqrt(Hz),
``accelerometer_noise_density`` m/s^2/sqrt(Hz), ``gyroscope_random_walk`` rad/s^2/sqrt(Hz),
``accelerometer_random_walk`` m/s^3/sqrt(Hz).

A body at rest reads ``-g`` rotated into its frame: +9.81 on its up axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from perception.errors import InputError
from perception.geometry import SE3

from .trajectories import SplineTrajectory, uniform_stamps

__all__ = ["ImuData", "ImuNoise", "simulate_imu"]


@dataclass
class ImuNoise:
    """Continuous-time IMU noise parameters (defaults: the EuRoC ADIS16448 values, ``sensor.yaml``)."""

    gyro_noise_density: float = 1.6968e-04
    """rad/s/sqrt(Hz)."""
    accel_noise_density: float = 2.0e-3
    """m/s^2/sqrt(Hz)."""
    gyro_random_walk: float = 1.9393e-05
    """rad/s^2/sqrt(Hz)."""
    accel_random_walk: float = 3.0e-3
    """m/s^3/sqrt(Hz)."""
    gyro_bias_init: Sequence[float] = field(default=(0.0, 0.0, 0.0))
    """Gyro bias at the first sample (rad/s)."""
    accel_bias_init: Sequence[float] = field(default=(0.0, 0.0, 0.0))
    """Accelerometer bias at the first sample (m/s^2)."""

    @classmethod
    def noiseless(cls) -> ImuNoise:
        return cls(0.0, 0.0, 0.0, 0.0)

    def is_zero(self) -> bool:
        return (
            self.gyro_noise_density == 0
            and self.accel_noise_density == 0
            and self.gyro_random_walk == 0
            and self.accel_random_walk == 0
        )

    def validate(self) -> None:
        for name in ("gyro_noise_density", "accel_noise_density", "gyro_random_walk", "accel_random_walk"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise InputError(f"ImuNoise.{name}: expected a finite number >= 0, got {v}")
        for name in ("gyro_bias_init", "accel_bias_init"):
            b = np.asarray(getattr(self, name), dtype=np.float64)
            if b.shape != (3,) or not np.all(np.isfinite(b)):
                raise InputError(f"ImuNoise.{name}: expected 3 finite numbers, got {getattr(self, name)!r}")


@dataclass
class ImuData:
    """Simulated IMU samples (body/IMU frame). The biases are the true ones included in the measurements."""

    stamps_ns: np.ndarray  # (N,) int64
    gyro: np.ndarray  # (N, 3) rad/s
    accel: np.ndarray  # (N, 3) m/s^2 (specific force)
    gyro_bias: np.ndarray  # (N, 3)
    accel_bias: np.ndarray  # (N, 3)

    def __len__(self) -> int:
        return len(self.stamps_ns)


def _random_walk(rng: np.random.Generator, n: int, b0: np.ndarray, density: float, dt: float) -> np.ndarray:
    steps = density * np.sqrt(dt) * rng.standard_normal((n, 3))
    steps[0] = 0.0
    return b0 + np.cumsum(steps, axis=0)


def simulate_imu(
    traj: SplineTrajectory,
    rate_hz: float,
    noise: ImuNoise | None = None,
    rng: np.random.Generator | None = None,
    gravity: Sequence[float] = (0.0, 0.0, -9.81),
    *,
    T_body_imu: SE3 | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> ImuData:
    """Sample an IMU rigidly attached to the body at ``rate_hz`` over ``[start_ns, end_ns]`` (default: the
    whole trajectory). ``noise=None`` gives exact measurements; otherwise ``rng`` is required.

    ``T_body_imu`` places the IMU off the body origin: its specific force then includes the lever-arm terms
    ``alpha x r + omega x (omega x r)`` and both readings are rotated into the IMU axes.
    """
    if not isinstance(traj, SplineTrajectory):
        raise InputError("traj: expected a SplineTrajectory")
    g = np.asarray(gravity, dtype=np.float64)
    if g.shape != (3,) or not np.all(np.isfinite(g)):
        raise InputError(f"gravity: expected 3 finite numbers, got {gravity!r}")
    start = traj.start_ns if start_ns is None else int(start_ns)
    end = traj.end_ns if end_ns is None else int(end_ns)
    stamps = uniform_stamps(start, end, rate_hz)
    dt = 1.0 / rate_hz

    R = traj.rotation(stamps)
    w_b = traj.angular_velocity_body(stamps)
    a_w = traj.acceleration(stamps)
    R_bi = np.eye(3)
    if T_body_imu is not None:
        if not isinstance(T_body_imu, SE3) or T_body_imu.shape != ():
            raise InputError("T_body_imu: expected a single SE3")
        r = T_body_imu.t
        alpha_b = traj.angular_acceleration_body(stamps)
        lever_b = np.cross(alpha_b, r) + np.cross(w_b, np.cross(w_b, r))
        a_w = a_w + np.einsum("nij,nj->ni", R, lever_b)
        R_bi = T_body_imu.R
    # Row-vector form of R_imu_world @ x: x @ R_world_imu, with R_world_imu = R @ R_bi.
    R_wi = R @ R_bi
    accel = np.einsum("nji,nj->ni", R_wi, a_w - g)
    gyro = w_b @ R_bi

    n = len(stamps)
    gb = np.zeros((n, 3))
    ab = np.zeros((n, 3))
    if noise is not None:
        noise.validate()
        gb[:] = np.asarray(noise.gyro_bias_init, dtype=np.float64)
        ab[:] = np.asarray(noise.accel_bias_init, dtype=np.float64)
        if not noise.is_zero():
            if rng is None:
                raise InputError("rng: a numpy Generator is required when the IMU noise is not zero")
            gb = _random_walk(rng, n, gb[0], noise.gyro_random_walk, dt)
            ab = _random_walk(rng, n, ab[0], noise.accel_random_walk, dt)
            gyro = gyro + noise.gyro_noise_density / np.sqrt(dt) * rng.standard_normal((n, 3))
            accel = accel + noise.accel_noise_density / np.sqrt(dt) * rng.standard_normal((n, 3))
        gyro = gyro + gb
        accel = accel + ab
    return ImuData(stamps_ns=stamps, gyro=gyro, accel=accel, gyro_bias=gb, accel_bias=ab)
