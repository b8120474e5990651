"""Pose errors for (re)localisation: geodesic rotation angle, camera-centre distance, recall at thresholds.

Poses follow the project convention ``T_world_cam`` (camera-to-world), so the camera centre is the
translation. Pass ``convention="T_cam_world"`` for world-to-camera poses (centre ``-R^T t``).
Failed estimates can be passed as NaN/inf errors: they count as failures in recalls and as +inf in
medians (hloc's convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

DEFAULT_RECALL_THRESHOLDS: tuple[tuple[float, float], ...] = ((0.05, 5.0), (0.02, 2.0))


def _rotations(x: Any, name: str) -> np.ndarray:
    """(..., 3, 3) rotation matrices from arrays (3x3 or 4x4) or SO3 / SE3 / Sim3 objects."""
    if hasattr(x, "R"):
        a = np.asarray(x.R, dtype=np.float64)
    elif hasattr(x, "matrix") and not callable(x.matrix):
        a = np.asarray(x.matrix, dtype=np.float64)
    else:
        a = np.asarray(x, dtype=np.float64)
        if a.ndim >= 2 and a.shape[-2:] == (4, 4):
            a = a[..., :3, :3]
    if a.ndim < 2 or a.shape[-2:] != (3, 3):
        raise ValueError(
            f"{name}: expected rotation matrices (..., 3, 3), 4x4 poses or SO3/SE3, got shape {a.shape}"
        )
    return a


def _poses(x: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(R (...,3,3), t (...,3)) from SE3 objects or (..., 4, 4) arrays."""
    if hasattr(x, "R") and hasattr(x, "t"):
        R, t = np.asarray(x.R, dtype=np.float64), np.asarray(x.t, dtype=np.float64)
    else:
        a = np.asarray(x, dtype=np.float64)
        if a.ndim < 2 or a.shape[-2:] != (4, 4):
            raise ValueError(f"{name}: expected an SE3 or an array of 4x4 poses, got shape {a.shape}")
        R, t = a[..., :3, :3], a[..., :3, 3]
    return R, t


def rotation_error_deg(R_est: Any, R_gt: Any) -> np.ndarray | float:
    """Geodesic angle of ``R_est^T R_gt`` in degrees (symmetric), batched over leading dims.

    Computed as ``atan2(|sin|, cos)`` from the skew and trace parts, accurate near 0 and near 180 degrees.
    """
    A = _rotations(R_est, "R_est")
    B = _rotations(R_gt, "R_gt")
    M = np.swapaxes(A, -1, -2) @ B
    cos = (np.trace(M, axis1=-2, axis2=-1) - 1.0) / 2.0
    skew = np.stack(
        [M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0], M[..., 1, 0] - M[..., 0, 1]], -1
    )
    sin = np.linalg.norm(skew, axis=-1) / 2.0
    ang = np.degrees(np.arctan2(sin, cos))
    return float(ang) if np.ndim(ang) == 0 else ang


def translation_error_m(t_est: Any, t_gt: Any) -> np.ndarray | float:
    """Euclidean distance ``|t_est - t_gt|`` over the last axis (3)."""
    a = np.asarray(t_est, dtype=np.float64)
    b = np.asarray(t_gt, dtype=np.float64)
    if a.shape[-1:] != (3,) or b.shape[-1:] != (3,):
        raise ValueError(f"t_est/t_gt: expected (..., 3) arrays, got {a.shape} and {b.shape}")
    d = np.linalg.norm(a - b, axis=-1)
    return float(d) if np.ndim(d) == 0 else d


def camera_centres(T: Any, convention: Literal["T_world_cam", "T_cam_world"] = "T_world_cam") -> np.ndarray:
    """Camera centres (..., 3) in world coordinates."""
    R, t = _poses(T, "T")
    if convention == "T_world_cam":
        return t.copy()
    if convention == "T_cam_world":
        return -np.einsum("...ji,...j->...i", R, t)
    raise ValueError(f"convention: expected 'T_world_cam' or 'T_cam_world', got {convention!r}")


def pose_errors(
    T_est: Any, T_gt: Any, convention: Literal["T_world_cam", "T_cam_world"] = "T_world_cam"
) -> tuple[np.ndarray, np.ndarray]:
    """(camera-centre distance in m, rotation angle in deg) between estimated and reference camera poses.

    ``T_est`` / ``T_gt``: batched SE3 or (..., 4, 4) arrays in the given convention.
    """
    c_est = camera_centres(T_est, convention)
    c_gt = camera_centres(T_gt, convention)
    if c_est.shape != c_gt.shape:
        raise ValueError(f"T_est/T_gt: batch shapes differ ({c_est.shape[:-1]} vs {c_gt.shape[:-1]})")
    t_err = np.asarray(translation_error_m(c_est, c_gt))
    r_err = np.asarray(rotation_error_deg(_poses(T_est, "T_est")[0], _poses(T_gt, "T_gt")[0]))
    return t_err, r_err


def _paired(a: Any, b: Any, who: str, same: str) -> tuple[np.ndarray, np.ndarray]:
    """Two error arrays of one length (``same`` says why they must match), failures (NaN) as +inf."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{who}: {same}, got {x.size} and {y.size}")
    if x.size == 0:
        raise ValueError(f"{who}: no errors given")
    # failures (NaN) count as infinitely wrong
    return np.where(np.isnan(x), np.inf, x), np.where(np.isnan(y), np.inf, y)


def _errors(t_err_m: Any, r_err_deg: Any) -> tuple[np.ndarray, np.ndarray]:
    return _paired(t_err_m, r_err_deg, "t_err_m/r_err_deg", "expected the same number of errors")


def recall_at(
    t_err_m: Any, r_err_deg: Any, thresholds: Sequence[tuple[float, float]] = DEFAULT_RECALL_THRESHOLDS
) -> dict[tuple[float, float], float]:
    """Fraction of queries with ``t_err < t_th`` AND ``r_err < r_th`` (strict) for each ``(t_th_m,
    r_th_deg)``.

    NaN/inf errors are failures. Returns ``{(t_th_m, r_th_deg): fraction}``.
    """
    t, r = _errors(t_err_m, r_err_deg)
    out = {}
    for th in thresholds:
        tt, rt = float(th[0]), float(th[1])
        out[(tt, rt)] = float(np.mean((t < tt) & (r < rt)))
    return out


@dataclass
class RelocSummary:
    """Median translation error (cm), median rotation error (deg), recalls, counts."""

    median_t_cm: float
    median_r_deg: float
    recalls: dict[tuple[float, float], float] = field(default_factory=dict)
    n: int = 0
    n_failed: int = 0

    def format(self) -> str:
        rec = ", ".join(f"{100 * v:.1f}% @ {100 * k[0]:g} cm/{k[1]:g} deg" for k, v in self.recalls.items())
        return (
            f"median {self.median_t_cm:.2f} cm, {self.median_r_deg:.2f} deg; recall {rec} "
            f"({self.n} queries, {self.n_failed} failed)"
        )


def reloc_summary(
    t_err_m: Any, r_err_deg: Any, thresholds: Sequence[tuple[float, float]] = DEFAULT_RECALL_THRESHOLDS
) -> RelocSummary:
    """Relocalisation summary as in FaVoR / hloc: medians (failures = +inf) and recalls at thresholds."""
    t, r = _errors(t_err_m, r_err_deg)
    failed = ~(np.isfinite(t) & np.isfinite(r))
    return RelocSummary(
        median_t_cm=float(np.median(t) * 100.0),
        median_r_deg=float(np.median(r)),
        recalls=recall_at(t, r, thresholds),
        n=int(t.size),
        n_failed=int(failed.sum()),
    )


@dataclass
class MedianRatio:
    """``median(a) / median(b)`` over the same queries, with a paired-bootstrap percentile interval."""

    ratio: float
    low: float
    high: float
    level: float
    n: int

    def as_dict(self) -> dict:
        return {"median_ratio": self.ratio, "interval": [self.low, self.high], "level": self.level, "queries": self.n}


def median_ratio(a: Any, b: Any, level: float = 0.95, n_boot: int = 2000, seed: int = 0,
                 groups: Any = None) -> MedianRatio:  # fmt: skip
    """How a method's median error ``a`` compares with another's ``b`` on the *same* queries (``a[i]`` and ``b[i]``
    belong to query ``i``), e.g. FaVoR's median translation error over the mean-descriptor baseline's.

    Failures (NaN / inf) count as +inf, as in :func:`reloc_summary`. The interval resamples queries with
    replacement, the same ones for both methods, so it reflects how much the ratio depends on which queries were
    drawn: with a few dozen queries a median moves by 10-20 %, and a ratio of two such medians needs its interval.
    It treats queries as independent; consecutive frames of one sequence are not, so on densely sampled test
    sequences the interval is optimistic. ``groups`` (one label per query, e.g. its scene) makes the resampling draw
    within each group, keeping its size, so a comparison pooled over scenes keeps each scene's share. Resamples whose
    ratio is undefined (two infinite or zero medians) are left out of the interval; when the ratio itself is
    undefined, so is the interval (NaN)."""
    x, y = _paired(a, b, "median_ratio", "the methods must be measured on the same queries")
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"median_ratio: need 0 < level < 1 and n_boot >= 1, got {level}, {n_boot}")

    def ratio(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return p / q

    if groups is None:
        members = [np.arange(x.size)]
    else:
        g = np.asarray(groups).ravel()
        if g.shape != x.shape:
            raise ValueError(f"median_ratio: {g.size} group labels for {x.size} queries")
        members = [np.flatnonzero(g == v) for v in np.unique(g)]
    rng = np.random.default_rng(seed)
    boots = []
    for s in range(0, n_boot, 256):  # chunks bound the (resamples x queries) index matrix
        k = min(256, n_boot - s)
        idx = np.concatenate([m[rng.integers(0, m.size, (k, m.size))] for m in members], axis=1)
        boots.append(ratio(np.median(x[idx], axis=1), np.median(y[idx], axis=1)))
    r = np.concatenate(boots)
    r = r[~np.isnan(r)]
    point = float(ratio(np.median(x), np.median(y)))
    tail = 100 * (1 - level) / 2
    if np.isnan(point) or r.size == 0:
        low = high = float("nan")
    else:  # no interpolation between resamples: an infinite ratio (a method failing on most of them) stays so
        low, high = (float(v) for v in np.percentile(r, [tail, 100 - tail], method="inverted_cdf"))
    return MedianRatio(point, low, high, float(level), int(x.size))
