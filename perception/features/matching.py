"""Mutual nearest-neighbour matching with Lowe's ratio test, and geometric verification with poselib RANSAC."""

from __future__ import annotations

from typing import Literal

import numpy as np

from perception.errors import InputError
from perception.features.types import Matches


def match_mutual_nn(
    desc0: np.ndarray, desc1: np.ndarray, ratio: float = 0.9, min_score: float | None = None
) -> Matches:
    """Pairs that are each other's nearest neighbour (cosine) and pass the ratio test on distances."""
    d0, d1 = np.asarray(desc0, np.float32), np.asarray(desc1, np.float32)
    if len(d0) == 0 or len(d1) == 0:
        return Matches(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if d0.shape[1] != d1.shape[1]:
        raise InputError(f"match: descriptor sizes differ ({d0.shape[1]} vs {d1.shape[1]})")
    sim = d0 @ d1.T
    nn01 = np.argmax(sim, axis=1)
    nn10 = np.argmax(sim, axis=0)
    i = np.arange(len(d0))
    mutual = nn10[nn01] == i
    best = sim[i, nn01]
    if sim.shape[1] > 1:
        second = np.partition(sim, -2, axis=1)[:, -2]
        dist = lambda s: np.sqrt(np.maximum(2.0 - 2.0 * s, 0.0))  # noqa: E731 - unit vectors
        ok = mutual & (dist(best) < ratio * dist(second))
    else:
        ok = mutual
    if min_score is not None:
        ok &= best >= min_score
    idx0 = np.flatnonzero(ok)
    return Matches(idx0.astype(np.int64), nn01[idx0].astype(np.int64), best[idx0].astype(np.float32))


def estimate_relative_pose(
    kp0: np.ndarray, kp1: np.ndarray, matches: Matches, cam0, cam1, threshold_px: float = 2.0, seed: int = 0
):
    """Essential-matrix RANSAC (poselib) on undistorted bearings of known cameras.

    Returns ``(inlier matches, T_cam1_cam0)``; the pose (translation up to scale, unit norm) is None when fewer
    than 5 usable matches exist."""
    import poselib

    from perception.geometry import SE3

    none = matches.subset(np.zeros(len(matches), bool))
    if len(matches) < 5:
        return none, None
    x0 = cam0.unproject(np.asarray(kp0, np.float64)[matches.idx0])[:, :2]
    x1 = cam1.unproject(np.asarray(kp1, np.float64)[matches.idx1])[:, :2]
    good = np.all(np.isfinite(x0), axis=1) & np.all(np.isfinite(x1), axis=1)
    if good.sum() < 5:
        return none, None
    f = 0.5 * (float(np.mean(np.diag(cam0.K)[:2])) + float(np.mean(np.diag(cam1.K)[:2])))
    unit = {"model": "PINHOLE", "width": 2, "height": 2, "params": [1.0, 1.0, 0.0, 0.0]}
    pose, info = poselib.estimate_relative_pose(
        x0[good], x1[good], unit, unit, {"max_epipolar_error": threshold_px / f, "seed": seed},
        {"loss_scale": 1.0 / f},  # 1 px Cauchy refinement in the bearings' units, whatever the threshold (slam.pnp)
    )
    inl = np.zeros(len(matches), bool)
    inl[np.flatnonzero(good)[np.asarray(info["inliers"], bool)]] = True
    return matches.subset(inl), SE3(np.asarray(pose.R), np.asarray(pose.t))


def verify_matches(
    kp0: np.ndarray,
    kp1: np.ndarray,
    matches: Matches,
    cam0,
    cam1,
    method: Literal["essential"] = "essential",
    threshold_px: float = 2.0,
    seed: int = 0,
) -> Matches:
    """Inliers of an essential-matrix RANSAC (poselib) on undistorted bearings of known cameras."""
    if method != "essential":
        raise InputError(f"verify_matches: unsupported method {method!r}")
    return estimate_relative_pose(kp0, kp1, matches, cam0, cam1, threshold_px, seed)[0]
