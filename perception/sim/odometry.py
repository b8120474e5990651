"""LIO-like pose streams: true relative motions with random-walk drift, stamped at the scan end.

A LIO (e.g. FAST-LIO2) publishes one pose per LiDAR sweep, stamped at the sweep's end (``lidar_end_time``), at
about 10 Hz. Here the trajectory is cut into sweeps ``[t0 + k P, t0 + (k + 1) P]`` (``P = 1 / rate``); the
estimate starts from the true pose at ``t0`` and each sweep's true relative motion is corrupted on the right::

    dT_est_k = dT_true_k @ SE3.exp(xi_k),   xi_k ~ N(0, diag(rotation_std^2 I3, translation_std^2 I3))
    T_est_k  = T_est_{k-1} @ dT_est_k

so the per-step error ``dT_true_k^-1 dT_est_k`` is exactly ``exp(xi_k)`` and the errors accumulate as a random
walk. With zero drift the output equals the ground truth sampled at the stamps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.errors import InputError
from perception.geometry import SE3

from .trajectories import SplineTrajectory

__all__ = ["OdometryDrift", "simulate_odometry"]

_NS = 1_000_000_000


@dataclass
class OdometryDrift:
    """Per-step drift (one step = one sweep), standard deviations per axis of a body-frame twist."""

    rotation_std: float = 2e-3
    """rad per step and axis."""
    translation_std: float = 0.02
    """m per step and axis."""

    @classmethod
    def none(cls) -> OdometryDrift:
        return cls(0.0, 0.0)

    def validate(self) -> None:
        for name in ("rotation_std", "translation_std"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise InputError(f"OdometryDrift.{name}: expected a finite number >= 0, got {v}")


def simulate_odometry(
    traj: SplineTrajectory,
    rate_hz: float = 10.0,
    drift: OdometryDrift | None = None,
    rng: np.random.Generator | None = None,
    stamp: str = "scan_end",
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    odom_frame: bool = False,
    time_offset_ns: int = 0,
) -> tuple[np.ndarray, SE3]:
    """Drifting body poses, one per sweep, as ``(stamps_ns (K,), T (K,))``.

    Parameters
    ----------
    stamp : "scan_end" (as FAST-LIO: the pose at the sweep end, first stamp ``start + P``) or "scan_start"
        (poses at the sweep starts, first stamp ``start`` carrying the exact initial pose).
    odom_frame : return ``T_odom_body`` (the odometry frame is the body at ``start``, as LIO's
        ``camera_init``) instead of ``T_world_body``.
    time_offset_ns : added to the stamps only (not to the poses): a mis-stamping driver / clock offset.
    """
    if not isinstance(traj, SplineTrajectory):
        raise InputError("traj: expected a SplineTrajectory")
    if not (np.isfinite(rate_hz) and rate_hz > 0):
        raise InputError(f"rate_hz: expected a positive number, got {rate_hz}")
    if stamp not in ("scan_end", "scan_start"):
        raise InputError(f"stamp: expected 'scan_end' or 'scan_start', got {stamp!r}")
    drift = OdometryDrift.none() if drift is None else drift
    drift.validate()
    start = traj.start_ns if start_ns is None else int(start_ns)
    end = traj.end_ns if end_ns is None else int(end_ns)
    period = round(_NS / rate_hz)
    n_scans = (end - start) // period
    if n_scans < 1:
        raise InputError(f"the interval [{start}, {end}] ns is shorter than one sweep ({period} ns)")
    # Sweep boundaries t0 .. t_K; poses at all of them.
    bounds = start + period * np.arange(n_scans + 1, dtype=np.int64)
    T_true = traj.pose(bounds)
    rel = T_true[:-1].inverse() @ T_true[1:]  # (K,) true motion over each sweep
    if drift.rotation_std > 0 or drift.translation_std > 0:
        if rng is None:
            raise InputError("rng: a numpy Generator is required when the drift is not zero")
        rel = T_true[:-1].inverse() @ T_true[1:]  # (K,) true motion over each sweep
        xi = rng.standard_normal((n_scans, 6))
        xi[:, :3] *= drift.rotation_std
        xi[:, 3:] *= drift.translation_std
        rel = rel @ SE3.exp(xi)
        # Compose sequentially (K is small, ~10 per second).
        R = np.empty((n_scans + 1, 3, 3))
        t = np.empty((n_scans + 1, 3))
        R[0], t[0] = T_true.R[0], T_true.t[0]
        for k in range(n_scans):
            t[k + 1] = R[k] @ rel.t[k] + t[k]
            R[k + 1] = R[k] @ rel.R[k]
        est = SE3(R, t)
    else:
        est = T_true  # no drift: the ground truth itself, bit for bit
    if odom_frame:
        est = T_true[0].inverse() @ est
    if stamp == "scan_end":
        stamps, poses = bounds[1:], est[1:]
    else:
        stamps, poses = bounds[:-1], est[:-1]
    return stamps + int(time_offset_ns), poses
