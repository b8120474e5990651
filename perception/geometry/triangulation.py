"""Multi-view triangulation: weighted linear DLT and Levenberg-Marquardt refinement of the reprojection error.

Shapes: ``P`` (V, 3, 4) projection matrices, ``x`` (V, N, 2) observations of N points in V views, in the
coordinates that ``P`` maps to (e.g. pixels with ``P = K [R | t]`` built from ``T_cam_world``),
``weights`` (V, N).
Weights multiply the residuals (think ``1 / sigma``); weight 0 means "not observed in this view".
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from perception.errors import InputError

__all__ = ["refine_triangulation", "triangulate", "triangulate_dlt"]

log = logging.getLogger(__name__)


def _check_inputs(P: Any, x: Any, weights: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    P = np.asarray(P, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if P.ndim != 3 or P.shape[1:] != (3, 4):
        raise InputError(f"P: expected projection matrices of shape (V, 3, 4), got {P.shape}")
    V = P.shape[0]
    if x.ndim != 3 or x.shape[0] != V or x.shape[2] != 2:
        raise InputError(f"x: expected observations of shape ({V}, N, 2) matching P, got {x.shape}")
    if not np.all(np.isfinite(P)):
        raise InputError("P: projection matrices must be finite")
    N = x.shape[1]
    if weights is None:
        w = np.ones((V, N))
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (V, N):
            raise InputError(f"weights: expected shape ({V}, {N}), got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise InputError("weights: expected finite, non-negative values")
    # Observations that are not finite cannot be used: treat them as unobserved.
    finite = np.all(np.isfinite(x), axis=-1)
    w = np.where(finite, w, 0.0)
    x = np.where(finite[..., None], x, 0.0)
    return P, x, w


def _normalise_cameras(P: np.ndarray) -> np.ndarray:
    """Scale each P so that its third row has a unit-norm rotation part and positive orientation.

    Then ``P[2] @ [X, 1]`` is the depth of X in front of the camera (Hartley & Zisserman, eq. 6.15).
    """
    M = P[:, :, :3]
    n3 = np.linalg.norm(M[:, 2, :], axis=-1)
    if np.any(n3 <= 0):
        raise InputError("P: the left 3x3 block of every projection matrix must be non-singular")
    sign = np.sign(np.linalg.det(M))
    if np.any(sign == 0):
        raise InputError("P: the left 3x3 block of every projection matrix must be non-singular")
    return P * (sign / n3)[:, None, None]


def triangulate_dlt(P: Any, x: Any, weights: Any = None) -> np.ndarray:
    """Weighted linear (DLT) triangulation of N points seen in V views -> (N, 3).

    Each view contributes the rows ``w (u P3 - P1)`` and ``w (v P3 - P2)``; the homogeneous point is the
    right singular vector of the smallest singular value (computed for all points at once). The image
    coordinates are normalised (centred and scaled) for conditioning. Points with fewer than two observed
    views, or at infinity, come back as NaN.
    """
    P, x, w = _check_inputs(P, x, weights)
    V, N = w.shape
    if N == 0:
        return np.zeros((0, 3))
    Pn = _normalise_cameras(P)
    # Global similarity normalisation of the image coordinates (the same for every view: keeps view weights).
    obs = w > 0
    if np.any(obs):
        pts = x[obs]
        c = pts.mean(axis=0)
        scale = np.sqrt(np.mean(np.sum((pts - c) ** 2, axis=-1)))
        f = np.sqrt(2.0) / scale if scale > 0 else 1.0
    else:
        c, f = np.zeros(2), 1.0
    H = np.array([[f, 0.0, -f * c[0]], [0.0, f, -f * c[1]], [0.0, 0.0, 1.0]])
    Ph = H @ Pn  # (V, 3, 4)
    xh = (x - c) * f  # (V, N, 2)
    # A: (N, 2V, 4)
    rows_u = xh[..., 0:1] * Ph[:, None, 2, :] - Ph[:, None, 0, :]  # (V, N, 4)
    rows_v = xh[..., 1:2] * Ph[:, None, 2, :] - Ph[:, None, 1, :]
    A = np.concatenate([rows_u * w[..., None], rows_v * w[..., None]], axis=0)  # (2V, N, 4)
    A = np.transpose(A, (1, 0, 2))
    if A.shape[1] < 4:  # a single view: pad so the SVD has a full 4x4 right factor
        A = np.concatenate([A, np.zeros((N, 4 - A.shape[1], 4))], axis=1)
    _, _, Vt = np.linalg.svd(A)
    h = Vt[:, -1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        X = h[:, :3] / h[:, 3:4]
    bad = (np.count_nonzero(obs, axis=0) < 2) | (np.abs(h[:, 3]) < 1e-14) | ~np.all(np.isfinite(X), axis=1)
    X[bad] = np.nan
    return X


def _project(Pn: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projections (V, N, 2) and homogeneous third coordinates (V, N) of X (N, 3)."""
    u = np.einsum("vij,nj->vni", Pn[:, :, :3], X) + Pn[:, None, :, 3]
    return u[..., :2] / u[..., 2:3], u[..., 2]


def _cost(Pn: np.ndarray, x: np.ndarray, w: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Weighted squared reprojection error per point (N,); inf where an observed view sees X at depth <= 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        proj, z = _project(Pn, X)
        r = (proj - x) * w[..., None]
        c = np.sum(np.where(w[..., None] > 0, r * r, 0.0), axis=(0, 2))
    behind = np.any((w > 0) & ~(z > 0), axis=0)
    return np.where(behind | ~np.isfinite(c), np.inf, c)


def refine_triangulation(P: Any, x: Any, X0: Any, weights: Any = None, iters: int = 10) -> np.ndarray:
    """Levenberg-Marquardt refinement of ``sum_v w_v^2 |proj(P_v, X) - x_v|^2`` for every point -> (N, 3).

    All points are refined together (vectorised); each point only accepts steps that lower its cost and keep
    it in front of every observing camera, so the weighted reprojection error never increases. Points with
    fewer than two observed views, or a non-finite ``X0``, are returned unchanged.
    """
    P, x, w = _check_inputs(P, x, weights)
    V, N = w.shape
    X = np.array(X0, dtype=np.float64)
    if X.shape != (N, 3):
        raise InputError(f"X0: expected shape ({N}, 3), got {X.shape}")
    if iters < 0:
        raise InputError(f"iters: expected a non-negative integer, got {iters}")
    if N == 0:
        return X
    Pn = _normalise_cameras(P)
    active = (np.count_nonzero(w > 0, axis=0) >= 2) & np.all(np.isfinite(X), axis=1)
    cost = np.where(active, _cost(Pn, x, w, np.where(active[:, None], X, 0.0)), np.inf)
    active &= np.isfinite(cost)
    lam = np.full(N, 1e-4)
    eye = np.eye(3)
    for _ in range(iters):
        if not np.any(active):
            break
        idx = np.nonzero(active)[0]
        Xa, xa, wa = X[idx], x[:, idx], w[:, idx]
        u = np.einsum("vij,nj->vni", Pn[:, :, :3], Xa) + Pn[:, None, :, 3]  # (V, n, 3)
        seen = wa > 0
        # Unobserved views get a dummy depth so that they contribute exact zeros (and no NaN) below.
        z = np.where(seen, u[..., 2], 1.0)
        proj = u[..., :2] / z[..., None]
        r = np.where(seen[..., None], (proj - xa) * wa[..., None], 0.0)  # (V, n, 2)
        # d proj_k / dX = (P_k - proj_k P_2) / z, k = 0, 1
        J = (Pn[:, None, :2, :3] - proj[..., :, None] * Pn[:, None, 2:3, :3]) / z[..., None, None]
        J = np.where(seen[..., None, None], J * wa[..., None, None], 0.0)  # (V, n, 2, 3)
        Hm = np.einsum("vnki,vnkj->nij", J, J)
        g = np.einsum("vnki,vnk->ni", J, r)
        diag = np.einsum("nii->ni", Hm)
        damp = lam[idx, None, None] * (eye * np.maximum(diag, 1e-12)[:, None, :])
        try:
            step = -np.linalg.solve(Hm + damp, g[..., None])[..., 0]
        except np.linalg.LinAlgError:  # singular system for some point: fall back to the pseudo-inverse
            step = -(np.linalg.pinv(Hm + damp) @ g[..., None])[..., 0]
        Xn = Xa + step
        cn = _cost(Pn, xa, wa, Xn)
        better = cn < cost[idx]
        X[idx[better]] = Xn[better]
        rel = np.zeros(len(idx))
        rel[better] = (cost[idx[better]] - cn[better]) / np.maximum(cost[idx[better]], 1e-300)
        cost[idx[better]] = cn[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] / 10.0, 1e-12), lam[idx] * 10.0)
        # Converged: negligible relative decrease, or the step has been damped to nothing.
        done = (better & (rel < 1e-15)) | (lam[idx] > 1e12) | (cost[idx] == 0.0)
        active[idx[done]] = False
    return X


def triangulate(P: Any, x: Any, weights: Any = None, refine: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """DLT triangulation, optionally refined by LM -> ``(X (N, 3), ok (N,) bool)``.

    ``ok`` is True where the point is observed (weight > 0) in at least two views, is finite, and has positive
    depth in every observing view. ``X`` is NaN where the DLT has no solution.
    """
    P, x, w = _check_inputs(P, x, weights)
    X = triangulate_dlt(P, x, w)
    if refine:
        X = refine_triangulation(P, x, X, w)
    Pn = _normalise_cameras(P)
    n_obs = np.count_nonzero(w > 0, axis=0)
    finite = np.all(np.isfinite(X), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        _, z = _project(Pn, np.where(finite[:, None], X, 0.0))
    in_front = np.all((w == 0) | (z > 0), axis=0)
    ok = (n_obs >= 2) & finite & in_front
    if X.shape[0] and not np.all(ok):
        log.debug("triangulate: %d of %d points not ok", int(np.count_nonzero(~ok)), X.shape[0])
    return X, ok
