"""Where relocalization accuracy comes from, measured on queries with known poses (simulated or pseudo-GT).

- :func:`true_correspondences`: the query keypoints that lie within ``radius_px`` of a visible landmark's
  projection under the *true* pose (one-to-one: a keypoint goes to its nearest landmark projection).
- :func:`diagnose`, descriptor agreement: over those correspondences, the cosine between the query's descriptor and each
  model's prediction of the landmark's descriptor from the query's viewpoint: ``favor`` (rendered from the voxel
  grid), ``baseline`` (B1, the stored mean) and ``direction_linear``, a reference that fits each landmark's
  observed descriptors as an affine function of the viewing direction (ridge-regularised towards the mean). It is
  a reference, not a bound: how much it gains over ``baseline`` estimates how view-dependent the appearance is
  (its ``ridge`` matters: 1e-2 .. 1e-1 measured alike on simulated rooms, 1e-4 overfits).
- :func:`oracle_pose` (and :func:`diagnose`'s ``oracle``): PnP on the true correspondences only (chosen with the
  true pose): an estimate of the accuracy perfect matching would give with this map's landmarks and the query's
  keypoints (not a strict bound: the methods' RANSAC may drop true correspondences whose keypoints are poorly
  localised). The gap between a method and the oracle is roughly what better descriptors can win back.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from perception.features.dense import DenseImage
from perception.geometry import SE3
from perception.metrics.pose import pose_errors
from slam.reloc.localize import Relocalizer

__all__ = ["diagnose", "oracle_pose", "true_correspondences"]

MODELS = ("favor", "baseline", "direction_linear")


def true_correspondences(rel: Relocalizer, dense: DenseImage, T_world_cam: SE3,
                         radius_px: float = 1.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``(landmark_ids, keypoint_idx, residual_px)``: each visible landmark paired with the nearest query keypoint
    to its projection under ``T_world_cam``, kept when closer than ``radius_px``."""
    ids = rel.visible(T_world_cam)
    kp = np.asarray(dense.features.keypoints, np.float64)
    if len(ids) == 0 or len(kp) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    uv = rel.map.camera.project(T_world_cam.inverse().act(rel.X[ids]))[0]
    d2 = ((uv[:, None, :] - kp[None, :, :]) ** 2).sum(-1)
    j = d2.argmin(axis=1)
    res = np.sqrt(d2[np.arange(len(ids)), j])
    ok = np.flatnonzero(res < radius_px)
    ok = ok[np.argsort(res[ok], kind="stable")]  # nearest first: a keypoint claimed twice keeps its nearest landmark
    ok = np.sort(ok[np.unique(j[ok], return_index=True)[1]])
    return ids[ok], j[ok], res[ok]


def _direction_linear(rel: Relocalizer, ids: np.ndarray, T_world_cam: SE3, ridge: float) -> np.ndarray:
    """Per landmark: observed descriptors ~ a + B (dir - mean dir), evaluated at the query's direction."""
    fmap = rel.map
    order = np.argsort(fmap.obs_landmark, kind="stable")
    sorted_l = fmap.obs_landmark[order]
    centres = rel.frame_T.t
    out = np.empty((len(ids), rel.obs_desc.shape[1]))
    reg = np.diag([0.0, ridge, ridge, ridge])
    for k, lm in enumerate(ids):
        obs = order[np.searchsorted(sorted_l, lm) : np.searchsorted(sorted_l, lm, side="right")]
        y = rel.obs_desc[obs].astype(np.float64)
        y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
        dirs = centres[fmap.obs_frame[obs]] - rel.X[lm]
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        dq = T_world_cam.t - rel.X[lm]
        dq /= np.linalg.norm(dq)
        mu = dirs.mean(axis=0)
        A = np.c_[np.ones(len(obs)), dirs - mu]
        W = np.linalg.solve(A.T @ A + reg * len(obs), A.T @ y)
        out[k] = np.r_[1.0, dq - mu] @ W
    return out


def _cosines(rel: Relocalizer, dense: DenseImage, T: SE3, radius_px: float, ridge: float) -> dict[str, np.ndarray]:
    ids, j, _ = true_correspondences(rel, dense, T, radius_px)
    if len(ids) == 0:
        return {m: np.zeros(0) for m in MODELS}
    q = np.asarray(dense.features.descriptors[j], np.float64)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    preds = {"favor": rel.landmark_descriptors(T, ids, "favor"),
             "baseline": rel.landmark_descriptors(T, ids, "baseline"),
             "direction_linear": _direction_linear(rel, ids, T, ridge)}  # fmt: skip
    out = {}
    for m, p in preds.items():
        p = np.asarray(p, np.float64)
        out[m] = np.sum(q * p, axis=1) / np.maximum(np.linalg.norm(p, axis=1), 1e-12)
    return out


def _agreement(cos: dict[str, list[np.ndarray]]) -> dict:
    """``pairs`` measured; ``median_cosine`` per model; ``better_than_baseline``: the fraction of pairs where a
    model's prediction is closer to the query's descriptor than the stored mean."""
    c = {m: np.concatenate(v) if v else np.zeros(0) for m, v in cos.items()}
    n = len(c["baseline"])
    med = {m: float(np.median(v)) if n else float("nan") for m, v in c.items()}
    better = {m: float(np.mean(c[m] > c["baseline"])) if n else float("nan") for m in MODELS if m != "baseline"}
    return {"pairs": n, "median_cosine": med, "better_than_baseline": better}


def oracle_pose(rel: Relocalizer, dense: DenseImage, T_world_cam: SE3, radius_px: float = 1.5) -> SE3 | None:
    """PnP (the methods' own RANSAC and refinement) on the true correspondences only; None below 4 of them."""
    ids, j, _ = true_correspondences(rel, dense, T_world_cam, radius_px)
    if len(ids) < 4:
        return None
    out = rel.pnp(dense.features.keypoints[j], rel.X[ids])
    return None if out is None else out[0]


def diagnose(rel: Relocalizer, queries: Iterable[tuple[DenseImage, SE3]], radius_px: float = 1.5,
             ridge: float = 1e-2) -> dict:  # fmt: skip
    """One pass over ``queries`` (dense features, true ``T_world_cam``; a generator is fine: nothing is kept per query
    but numbers): descriptor agreement at the true correspondences and the oracle's median translation / rotation
    error (failures count as inf / 180 deg), as a JSON-ready dict."""
    cos: dict[str, list[np.ndarray]] = {m: [] for m in MODELS}
    t_err, r_err = [], []
    for dense, T in queries:
        for m, v in _cosines(rel, dense, T, radius_px, ridge).items():
            cos[m].append(v)
        T_oracle = oracle_pose(rel, dense, T, radius_px)
        te, re_ = (np.inf, 180.0) if T_oracle is None else pose_errors(T_oracle, T)
        t_err.append(float(te))
        r_err.append(float(re_))
    return {
        "radius_px": radius_px,
        "descriptor_agreement": _agreement(cos),
        "oracle": {
            "median_t_cm": 100 * float(np.median(t_err)) if t_err else float("nan"),
            "median_r_deg": float(np.median(r_err)) if r_err else float("nan"),
            "queries": len(t_err),
        },
    }
