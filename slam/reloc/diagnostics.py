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
- view change (:func:`diagnose`'s ``view_change``): how each true correspondence's viewpoint differs from the
  landmark's training views -- the angle to the nearest training viewing direction and the scale change (query
  distance over the nearest training distance) -- with the models' cosines per angle bin. FaVoR's renderer models
  the viewing *direction* only: a ray through the landmark crosses the same voxels from any distance, so test views
  that are new mostly in distance (or exposure) are not where rendering can help.
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


ANGLE_BINS_DEG = (0.0, 10.0, 20.0, 180.0)
"""Bins of the angle to the nearest training view in ``view_change``."""


class _Observations:
    """Each landmark's training observations: viewing directions (unit, landmark to camera), distances, descriptors
    (L2-normalised), grouped by landmark once per :func:`diagnose`."""

    def __init__(self, rel: Relocalizer) -> None:
        fmap = rel.map
        order = np.argsort(fmap.obs_landmark, kind="stable")
        counts = np.bincount(fmap.obs_landmark, minlength=len(rel.X))
        self.start = np.r_[0, np.cumsum(counts)]
        v = rel.frame_T.t[fmap.obs_frame[order]] - rel.X[fmap.obs_landmark[order]]
        self.dist = np.linalg.norm(v, axis=1)
        self.dirs = v / np.maximum(self.dist[:, None], 1e-12)
        y = rel.obs_desc[order].astype(np.float64)
        self.desc = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)

    def of(self, lm: int) -> slice:
        return slice(int(self.start[lm]), int(self.start[lm + 1]))


def _direction_linear(obs: _Observations, ids: np.ndarray, dq: np.ndarray, ridge: float) -> np.ndarray:
    """Per landmark: observed descriptors ~ a + B (dir - mean dir), evaluated at the query's direction ``dq``
    (unit, landmark to query camera)."""
    out = np.empty((len(ids), obs.desc.shape[1]))
    reg = np.diag([0.0, ridge, ridge, ridge])
    for k, lm in enumerate(ids):
        sl = obs.of(lm)
        dirs, y = obs.dirs[sl], obs.desc[sl]
        mu = dirs.mean(axis=0)
        A = np.c_[np.ones(len(y)), dirs - mu]
        W = np.linalg.solve(A.T @ A + reg * len(y), A.T @ y)
        out[k] = np.r_[1.0, dq[k] - mu] @ W
    return out


def _view_change(obs: _Observations, ids: np.ndarray, dq: np.ndarray,
                 dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per landmark: the angle (deg) between the query's viewing direction ``dq`` and the nearest training one, and
    the scale change, query distance ``dist`` over the training distance closest to it (> 1: seen from further than
    ever)."""
    angle, scale = np.empty(len(ids)), np.empty(len(ids))
    for k, lm in enumerate(ids):
        sl = obs.of(lm)
        angle[k] = np.degrees(np.arccos(np.clip(np.max(obs.dirs[sl] @ dq[k]), -1.0, 1.0)))
        ratios = dist[k] / obs.dist[sl]
        scale[k] = ratios[np.argmin(np.abs(np.log(ratios)))]
    return angle, scale


def _measure(rel: Relocalizer, obs: _Observations, dense: DenseImage, T: SE3, ids: np.ndarray, j: np.ndarray,
             ridge: float) -> dict[str, np.ndarray]:  # fmt: skip
    """At the true correspondences ``(ids, j)``: each model's cosine to the query's descriptor, plus ``angle`` and
    ``scale``."""
    if len(ids) == 0:
        return {m: np.zeros(0) for m in (*MODELS, "angle", "scale")}
    q = np.asarray(dense.features.descriptors[j], np.float64)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    preds = {"favor": rel.landmark_descriptors(T, ids, "favor"),
             "baseline": rel.landmark_descriptors(T, ids, "baseline")}  # fmt: skip
    v = T.t - rel.X[ids]
    dist = np.linalg.norm(v, axis=1)
    dq = v / dist[:, None]
    preds["direction_linear"] = _direction_linear(obs, ids, dq, ridge)
    out = {}
    for m, p in preds.items():
        p = np.asarray(p, np.float64)
        out[m] = np.sum(q * p, axis=1) / np.maximum(np.linalg.norm(p, axis=1), 1e-12)
    out["angle"], out["scale"] = _view_change(obs, ids, dq, dist)
    return out


def _agreement(c: dict[str, np.ndarray]) -> dict:
    """``pairs`` measured; ``median_cosine`` per model; ``better_than_baseline``: the fraction of pairs where a
    model's prediction is closer to the query's descriptor than the stored mean (None without pairs)."""
    n = len(c["baseline"])
    med = {m: float(np.median(c[m])) if n else None for m in MODELS}
    better = {m: float(np.mean(c[m] > c["baseline"])) if n else None for m in MODELS if m != "baseline"}
    return {"pairs": n, "median_cosine": med, "better_than_baseline": better}


def _view_change_summary(c: dict[str, np.ndarray]) -> dict:
    """Medians of the angle and scale change, and the descriptor agreement per angle bin (None where empty)."""
    n = len(c["angle"])
    bins = []
    for lo, hi in zip(ANGLE_BINS_DEG[:-1], ANGLE_BINS_DEG[1:], strict=True):
        m = (c["angle"] >= lo) & (c["angle"] < hi) if hi < 180 else c["angle"] >= lo
        bins.append({"angle_deg": [lo, hi], **_agreement({k: v[m] for k, v in c.items()})})
    return {
        "median_angle_deg": float(np.median(c["angle"])) if n else None,
        "median_scale_change": float(np.median(c["scale"])) if n else None,
        "by_angle": bins,
    }


def oracle_pose(rel: Relocalizer, dense: DenseImage, T_world_cam: SE3, radius_px: float = 1.5) -> SE3 | None:
    """PnP (the methods' own RANSAC and refinement) on the true correspondences only; None below 4 of them."""
    ids, j, _ = true_correspondences(rel, dense, T_world_cam, radius_px)
    return _oracle(rel, dense, ids, j)


def _oracle(rel: Relocalizer, dense: DenseImage, ids: np.ndarray, j: np.ndarray) -> SE3 | None:
    if len(ids) < 4:
        return None
    out = rel.pnp(dense.features.keypoints[j], rel.X[ids])
    return None if out is None else out[0]


def diagnose(rel: Relocalizer, queries: Iterable[tuple[DenseImage, SE3]], radius_px: float = 1.5,
             ridge: float = 1e-2) -> dict:  # fmt: skip
    """One pass over ``queries`` (dense features, true ``T_world_cam``; a generator is fine: nothing is kept per query
    but numbers): descriptor agreement at the true correspondences, how their viewpoints differ from training, and
    the oracle's median translation / rotation error (failures count as inf / 180 deg, which
    :func:`perception.fileio.atomic_write_json` writes as null), as a dict of plain numbers."""
    obs = _Observations(rel)
    per: dict[str, list[np.ndarray]] = {m: [] for m in (*MODELS, "angle", "scale")}
    t_err, r_err = [], []
    for dense, T in queries:
        ids, j, _ = true_correspondences(rel, dense, T, radius_px)
        for m, v in _measure(rel, obs, dense, T, ids, j, ridge).items():
            per[m].append(v)
        T_oracle = _oracle(rel, dense, ids, j)
        te, re_ = (np.inf, 180.0) if T_oracle is None else pose_errors(T_oracle, T)
        t_err.append(float(te))
        r_err.append(float(re_))
    c = {m: np.concatenate(v) if v else np.zeros(0) for m, v in per.items()}
    return {
        "radius_px": radius_px,
        "descriptor_agreement": _agreement(c),
        "view_change": _view_change_summary(c),
        "oracle": {
            "median_t_cm": 100 * float(np.median(t_err)) if t_err else float("nan"),
            "median_r_deg": float(np.median(r_err)) if r_err else float("nan"),
            "queries": len(t_err),
        },
    }
