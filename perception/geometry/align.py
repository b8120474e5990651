"""Closed-form point-set alignment (Umeyama 1991), optionally weighted and with or without scale."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from perception.errors import InputError

from .se3 import SE3, Sim3

__all__ = ["align_se3", "align_sim3", "umeyama"]

log = logging.getLogger(__name__)

# Relative size of the second singular value of the cross-covariance below which the rotation is undetermined.
_DEGENERATE_RTOL = 1e-10


def umeyama(src: Any, dst: Any, with_scale: bool = True, weights: Any = None) -> Sim3:
    """Least-squares similarity ``S`` with ``dst ~= S.act(src)``: minimises ``sum_i w_i |dst_i - S src_i|^2``.

    Parameters
    ----------
    src, dst : (N, 3) corresponding points (N >= 3 with non-zero weight, not all collinear).
    with_scale : estimate the scale; if False the result has ``s == 1`` (a rigid transform).
    weights : optional (N,) non-negative weights; points with weight 0 are ignored.

    Returns
    -------
    Sim3 (scalar batch shape).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 3:
        raise InputError(f"src: expected shape (N, 3), got {src.shape}")
    if dst.shape != src.shape:
        raise InputError(f"dst: expected the same shape as src {src.shape}, got {dst.shape}")
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise InputError("src/dst: points must be finite (no NaN/inf)")
    n = src.shape[0]
    if weights is None:
        w = np.ones(n)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,):
            raise InputError(f"weights: expected shape ({n},), got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise InputError("weights: expected finite, non-negative values")
    n_used = int(np.count_nonzero(w > 0))
    if n_used < 3:
        raise InputError(f"src/dst: need at least 3 points with non-zero weight to align, got {n_used}")

    w = w / w.sum()
    mu_src = w @ src
    mu_dst = w @ dst
    xs = src - mu_src
    xd = dst - mu_dst
    cov = (xd * w[:, None]).T @ xs  # sum_i w_i xd_i xs_i^T
    var_src = float(w @ np.sum(xs * xs, axis=1))
    U, D, Vt = np.linalg.svd(cov)
    if not D[0] > 0 or D[1] <= _DEGENERATE_RTOL * D[0]:
        raise InputError("src/dst: degenerate configuration (points coincide or are collinear), rotation undetermined")
    S = np.ones(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2] = -1.0
    R = (U * S) @ Vt
    s = float(np.dot(D, S) / var_src) if with_scale else 1.0
    if not s > 0:
        raise InputError("src/dst: degenerate configuration, the estimated scale is not positive")
    t = mu_dst - s * R @ mu_src
    log.debug("umeyama: %d points, scale %.6g", n_used, s)
    return Sim3(s, R, t)


def align_se3(src: Any, dst: Any, weights: Any = None) -> SE3:
    """Rigid transform ``T`` with ``dst ~= T.act(src)`` (weighted least squares, see :func:`umeyama`)."""
    return umeyama(src, dst, with_scale=False, weights=weights).as_se3()


def align_sim3(src: Any, dst: Any, weights: Any = None) -> Sim3:
    """Similarity ``S`` with ``dst ~= S.act(src)`` (weighted least squares, see :func:`umeyama`)."""
    return umeyama(src, dst, with_scale=True, weights=weights)
