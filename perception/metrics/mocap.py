"""Multi-camera motion-capture metrics, following Kineo's evaluation code
(``camera_metrics.py`` / ``human_metrics.py``).

Camera metrics (cameras given as ``T_world_cam`` camera-to-world poses or camera centres):
- TE: rigid Procrustes (no scale) of predicted to GT camera centres, then the mean per-camera centre
  distance (m).
- s-TE: the same with a Sim(3) fit (undefined, NaN, for fewer than 3 cameras).
- AE: geodesic angle (deg) between GT and predicted camera-to-world rotations after the Sim(3) alignment,
  mean over cameras.
- RRA@tau: fraction of cameras with AE < tau (deg). CCA@tau: fraction with TE < tau * scene scale, where
  scene scale = max distance of the GT centres from their centroid (s-CCA uses s-TE).

Human metrics (joints ``(..., J, 3)`` in metres; ``mask (..., J)`` marks valid GT joints, non-finite GT
joints are also treated as missing; all leading dims are frames / subjects):
- MPJPE: mean joint distance, pooled over all valid joints.
- PA-MPJPE: per frame and subject (each leading index), Sim(3) Procrustes of the predicted joints onto the
  GT joints (valid joints only), then MPJPE. Instances with fewer than 3 valid joints are skipped.
- W-MPJPE: the predicted world is aligned to the GT world with the rigid (no-scale) camera-centre
  Procrustes (one fit for static cameras ``(C,3)``, or one per frame for ``(F,C,3)``), then MPJPE; scale
  errors are fully penalised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perception.metrics.pose import _poses, rotation_error_deg

# -------------------------------------------------------------------------------------- Procrustes


def procrustes(
    src: Any, dst: Any, mask: Any = None, with_scale: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched least-squares ``dst ~= s R src + t`` over the point axis (Umeyama 1991).

    Parameters
    ----------
    src, dst : (..., N, 3) corresponding points.
    mask : optional (..., N) bool, points used in each fit.
    with_scale : fit the scale (else s = 1).

    Returns
    -------
    s (...), R (..., 3, 3), t (..., 3). Fits with no usable point (or zero spread when fitting scale) are NaN.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim < 2 or src.shape[-1] != 3 or src.shape != dst.shape:
        raise ValueError(f"src/dst: expected equal shapes (..., N, 3), got {src.shape} and {dst.shape}")
    w = np.ones(src.shape[:-1]) if mask is None else np.asarray(mask, dtype=bool).astype(np.float64)
    if w.shape != src.shape[:-1]:
        raise ValueError(f"mask: expected shape {src.shape[:-1]}, got {w.shape}")
    src = np.where(w[..., None] > 0, src, 0.0)
    dst = np.where(w[..., None] > 0, dst, 0.0)
    n = w.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        wn = w / n[..., None]
        mu_s = np.einsum("...n,...nd->...d", wn, src)
        mu_d = np.einsum("...n,...nd->...d", wn, dst)
        xs = src - mu_s[..., None, :]
        xd = dst - mu_d[..., None, :]
        cov = np.einsum("...n,...ni,...nj->...ij", wn, xd, xs)
        var_s = np.einsum("...n,...n->...", wn, np.sum(xs * xs, -1))
        cov = np.nan_to_num(cov)
        U, D, Vt = np.linalg.svd(cov)
        S = np.ones(D.shape)
        S[..., 2] = np.where(np.linalg.det(U) * np.linalg.det(Vt) < 0, -1.0, 1.0)
        R = (U * S[..., None, :]) @ Vt
        if with_scale:
            s = np.sum(D * S, -1) / var_s
            s = np.where(var_s > 0, s, np.nan)
        else:
            s = np.ones(D.shape[:-1])
        t = mu_d - s[..., None] * np.einsum("...ij,...j->...i", R, mu_s)
    bad = n < 1
    s = np.where(bad, np.nan, s)
    R = np.where(bad[..., None, None], np.nan, R)
    t = np.where(bad[..., None], np.nan, t)
    return s, R, t


def _apply(s: np.ndarray, R: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """s R p + t with (s, R, t) batched over the leading dims of p (..., N, 3)."""
    return s[..., None, None] * np.einsum("...ij,...nj->...ni", R, p) + t[..., None, :]


# -------------------------------------------------------------------------------------- cameras


def _centres(c: Any, name: str) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"{name}: expected camera centres of shape (C, 3), got {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError(f"{name}: camera centres must be finite")
    return c


def te_per_camera(centres_pred: Any, centres_gt: Any, with_scale: bool = False) -> np.ndarray:
    """Per-camera centre distance (m) after rigid (or Sim(3) if ``with_scale``) Procrustes of pred onto GT."""
    cp, cg = _centres(centres_pred, "centres_pred"), _centres(centres_gt, "centres_gt")
    if cp.shape != cg.shape:
        raise ValueError(f"centres_pred/centres_gt: shapes differ ({cp.shape} vs {cg.shape})")
    if len(cp) < (3 if with_scale else 2):
        return np.full(len(cp), np.nan)
    s, R, t = procrustes(cp, cg, with_scale=with_scale)
    return np.linalg.norm(_apply(s, R, t, cp) - cg, axis=-1)


def te(centres_pred: Any, centres_gt: Any) -> float:
    """TE: mean camera-centre distance (m) after a rigid, no-scale Procrustes fit (NaN for < 2 cameras)."""
    return float(np.mean(te_per_camera(centres_pred, centres_gt, with_scale=False)))


def s_te(centres_pred: Any, centres_gt: Any) -> float:
    """s-TE: mean camera-centre distance (m) after a Sim(3) Procrustes fit (NaN for < 3 cameras)."""
    return float(np.mean(te_per_camera(centres_pred, centres_gt, with_scale=True)))


def ae_per_camera(T_world_cam_pred: Any, T_world_cam_gt: Any) -> np.ndarray:
    """Per-camera rotation angle (deg) between GT and Sim(3)-aligned predicted camera-to-world rotations."""
    Rp, cp = _poses(T_world_cam_pred, "T_world_cam_pred")
    Rg, cg = _poses(T_world_cam_gt, "T_world_cam_gt")
    cp, cg = _centres(cp, "T_world_cam_pred centres"), _centres(cg, "T_world_cam_gt centres")
    if cp.shape != cg.shape:
        raise ValueError(f"T_world_cam_pred/T_world_cam_gt: {len(cp)} vs {len(cg)} cameras")
    if len(cp) < 3:
        return np.full(len(cp), np.nan)
    _, R_al, _ = procrustes(cp, cg, with_scale=True)
    return np.asarray(rotation_error_deg(R_al @ Rp, Rg))


def ae(T_world_cam_pred: Any, T_world_cam_gt: Any) -> float:
    """AE: mean per-camera rotation error (deg) after the Sim(3) camera-centre alignment.

    NaN for fewer than 3 cameras."""
    return float(np.mean(ae_per_camera(T_world_cam_pred, T_world_cam_gt)))


def scene_scale(centres_gt: Any) -> float:
    """Max distance of the GT camera centres from their centroid (RelPose++ eq. 7)."""
    c = _centres(centres_gt, "centres_gt")
    return float(np.max(np.linalg.norm(c - c.mean(0), axis=1)))


@dataclass
class CameraMetrics:
    """Kineo camera metrics; ``rra``/``cca``/``s_cca`` are fractions at ``tau_rra_deg`` / ``tau_cca``."""

    te: float
    s_te: float
    ae_deg: float
    rra: float
    cca: float
    s_cca: float
    scale: float
    tau_rra_deg: float
    tau_cca: float
    te_per_camera: np.ndarray = field(repr=False)
    s_te_per_camera: np.ndarray = field(repr=False)
    ae_per_camera: np.ndarray = field(repr=False)


def camera_metrics(
    T_world_cam_pred: Any, T_world_cam_gt: Any, tau_rra_deg: float = 10.0, tau_cca: float = 0.10
) -> CameraMetrics:
    """TE, s-TE, AE, RRA@tau, CCA@tau, s-CCA@tau and the Sim(3) scale for a set of cameras (SE3 or
    (C,4,4))."""
    _, cp = _poses(T_world_cam_pred, "T_world_cam_pred")
    _, cg = _poses(T_world_cam_gt, "T_world_cam_gt")
    te_c = te_per_camera(cp, cg, with_scale=False)
    ste_c = te_per_camera(cp, cg, with_scale=True)
    ae_c = ae_per_camera(T_world_cam_pred, T_world_cam_gt)
    scale = float(procrustes(cp, cg, with_scale=True)[0]) if len(cp) >= 3 else float("nan")
    sc = scene_scale(cg)
    with np.errstate(invalid="ignore"):
        return CameraMetrics(
            te=float(np.mean(te_c)),
            s_te=float(np.mean(ste_c)),
            ae_deg=float(np.mean(ae_c)),
            rra=float(np.mean(ae_c < tau_rra_deg)) if np.isfinite(ae_c).all() else float("nan"),
            cca=float(np.mean(te_c < tau_cca * sc)) if np.isfinite(te_c).all() else float("nan"),
            s_cca=float(np.mean(ste_c < tau_cca * sc)) if np.isfinite(ste_c).all() else float("nan"),
            scale=scale,
            tau_rra_deg=float(tau_rra_deg),
            tau_cca=float(tau_cca),
            te_per_camera=te_c,
            s_te_per_camera=ste_c,
            ae_per_camera=ae_c,
        )


# -------------------------------------------------------------------------------------- joints


def _joints(pred: Any, gt: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.ndim < 2 or p.shape[-1] != 3 or p.shape != g.shape:
        raise ValueError(f"pred/gt: expected equal shapes (..., J, 3), got {p.shape} and {g.shape}")
    valid = np.isfinite(g).all(-1)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != p.shape[:-1]:
            raise ValueError(f"mask: expected shape {p.shape[:-1]}, got {m.shape}")
        valid &= m.astype(bool)
    bad = valid & ~np.isfinite(p).all(-1)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"pred: non-finite predicted joint at index {idx} where the GT joint is valid")
    return p, g, valid


def _pooled_mean_dist(p: np.ndarray, g: np.ndarray, valid: np.ndarray) -> float:
    if not valid.any():
        return float("nan")
    d = np.linalg.norm(np.where(valid[..., None], p - g, 0.0), axis=-1)
    return float(d[valid].mean())


def mpjpe(pred: Any, gt: Any, mask: Any = None) -> float:
    """Mean per-joint position error (same units as the input), pooled over valid joints (NaN if none)."""
    p, g, valid = _joints(pred, gt, mask)
    return _pooled_mean_dist(p, g, valid)


def pa_mpjpe(pred: Any, gt: Any, mask: Any = None) -> float:
    """MPJPE after a per-instance (frame / subject) Sim(3) Procrustes of pred onto GT over the valid
    joints."""
    p, g, valid = _joints(pred, gt, mask)
    if p.ndim == 2:
        p, g, valid = p[None], g[None], valid[None]
    ok = valid.sum(-1) >= 3
    p0 = np.where(valid[..., None], p, 0.0)
    s, R, t = procrustes(p0, np.where(valid[..., None], g, 0.0), mask=valid, with_scale=True)
    ok &= np.isfinite(s)
    s, R, t = (
        np.where(ok, s, 1.0),
        np.where(ok[..., None, None], R, np.eye(3)),
        np.where(ok[..., None], t, 0.0),
    )
    aligned = _apply(s, R, t, p0)
    return _pooled_mean_dist(aligned, g, valid & ok[..., None])


def w_mpjpe(pred: Any, gt: Any, centres_pred: Any, centres_gt: Any, mask: Any = None) -> float:
    """MPJPE after the rigid camera-centre alignment of the predicted world onto the GT world.

    ``centres_*``: (C, 3) for static cameras (one fit for all frames) or (F, C, 3) for one fit per frame,
    in which case ``pred``/``gt`` have shape (F, ..., J, 3).
    """
    p, g, valid = _joints(pred, gt, mask)
    cp = np.asarray(centres_pred, dtype=np.float64)
    cg = np.asarray(centres_gt, dtype=np.float64)
    if cp.shape != cg.shape or cp.ndim not in (2, 3) or cp.shape[-1] != 3:
        raise ValueError(
            f"centres_pred/centres_gt: expected equal shapes (C,3) or (F,C,3), got {cp.shape}, {cg.shape}"
        )
    if cp.shape[-2] < 2:
        raise ValueError(
            f"centres_pred: the camera-centre alignment needs at least 2 cameras, got {cp.shape[-2]}"
        )
    if not (np.isfinite(cp).all() and np.isfinite(cg).all()):
        raise ValueError("centres_pred/centres_gt: camera centres must be finite")
    s, R, t = procrustes(cp, cg, with_scale=False)
    p0 = np.where(np.isfinite(p), p, 0.0)
    if cp.ndim == 2:
        aligned = p0 @ R.T + t
    else:
        if p.shape[0] != cp.shape[0] or p.ndim < 3:
            raise ValueError(
                f"pred: expected shape (F={cp.shape[0]}, ..., J, 3) for per-frame centres, got {p.shape}"
            )
        flat = p0.reshape(p.shape[0], -1, 3)
        aligned = _apply(s, R, t, flat).reshape(p.shape)
    return _pooled_mean_dist(aligned, g, valid)
