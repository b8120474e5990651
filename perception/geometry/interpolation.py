"""Pose interpolation: geodesic (screw motion on SE(3)) and decoupled (rotation slerp + translation lerp)."""

from __future__ import annotations

from typing import Any

import numpy as np

from perception.errors import InputError

from .se3 import SE3
from .so3 import so3_exp, so3_log

__all__ = ["interpolate_decoupled", "interpolate_geodesic"]


def _check_poses(T0: Any, T1: Any) -> None:
    for name, T in (("T0", T0), ("T1", T1)):
        if not isinstance(T, SE3):
            raise InputError(f"{name}: expected a perception.geometry.SE3, got {type(T).__name__}")


def _alpha(alpha: Any) -> np.ndarray:
    a = np.asarray(alpha, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise InputError("alpha: interpolation parameters must be finite")
    return a


def interpolate_geodesic(T0: SE3, T1: SE3, alpha: Any) -> SE3:
    """``T0 @ SE3.exp(alpha * (T0^-1 @ T1).log())``: constant-twist (screw) motion, = gtsam ``Pose3.slerp``.

    ``alpha`` is a scalar or an array; it broadcasts against the batch shapes of ``T0`` and ``T1``
    (``alpha`` outside [0, 1] extrapolates along the same screw).
    """
    _check_poses(T0, T1)
    a = _alpha(alpha)
    delta = (T0.inverse() @ T1).log()
    return T0 @ SE3.exp(a[..., None] * delta)


def interpolate_decoupled(T0: SE3, T1: SE3, alpha: Any) -> SE3:
    """Rotation by slerp ``R0 exp(alpha log(R0^T R1))`` and translation by ``(1 - alpha) t0 + alpha t1``.

    ``alpha`` is a scalar or an array broadcasting against the batch shapes of ``T0`` and ``T1``.
    """
    _check_poses(T0, T1)
    a = _alpha(alpha)
    dR = np.swapaxes(T0.R, -1, -2) @ T1.R
    R = T0.R @ so3_exp(a[..., None] * so3_log(dR))
    t = (1.0 - a[..., None]) * T0.t + a[..., None] * T1.t
    return SE3(R, t)
