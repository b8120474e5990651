"""Absolute pose (PnP) RANSAC for any camera model: poselib on undistorted bearings."""

from __future__ import annotations

import numpy as np

from perception.camera import CameraModel
from perception.geometry import SE3


def pnp_ransac(camera: CameraModel, uv: np.ndarray, points_world: np.ndarray, threshold_px: float = 4.0,
               seed: int = 0, max_iterations: int = 10_000) -> tuple[SE3, np.ndarray] | None:  # fmt: skip
    """``(T_world_cam, inlier mask)`` from 2D-3D correspondences, or None with fewer than 4 usable ones."""
    import poselib

    uv = np.asarray(uv, np.float64).reshape(-1, 2)
    X = np.asarray(points_world, np.float64).reshape(-1, 3)
    if len(uv) < 4:
        return None
    xy = camera.unproject(uv)[:, :2]
    ok = np.all(np.isfinite(xy), axis=1) & np.all(np.isfinite(X), axis=1)
    if ok.sum() < 4:
        return None
    f = float(np.mean(np.diag(camera.K)[:2]))
    unit = {"model": "PINHOLE", "width": 2, "height": 2, "params": [1.0, 1.0, 0.0, 0.0]}
    opts = {"max_reproj_error": threshold_px / f, "seed": seed, "max_iterations": max_iterations}
    pose, info = poselib.estimate_absolute_pose(xy[ok], X[ok], unit, opts, {})
    inliers = np.zeros(len(uv), bool)
    inliers[np.flatnonzero(ok)[np.asarray(info["inliers"], bool)]] = True
    return SE3(np.asarray(pose.R), np.asarray(pose.t)).inverse(), inliers
