"""Synthetic stage-2 problems with exact ground truth (the research note's scenario): facade and ground landmarks
in the UGV world, UAV keyframes 12 m up looking down at them, the UAV's SLAM poses in its own frame."""

from __future__ import annotations

import numpy as np

from perception.camera import OpenCVCamera
from perception.geometry import SE3, so3_exp
from perception.sim.poses import look_at
from slam.airground.stage2 import UavKeyframeMatches

CAMERA = OpenCVCamera(640, 480, 450.0, 450.0, 319.5, 239.5, -0.05, 0.01, 0.0, 0.0, 0.0)
T_TRUE = SE3(so3_exp(np.array([0.0, 0.0, np.deg2rad(69.0)])), np.array([4.0, -2.5, 0.8]))


def make_stage2_problem(
    rng: np.random.Generator, n_kf: int = 6, wrong: float = 0.0, pix: float = 1.0, n_landmarks: int = 600,
    per_keyframe: int = 150,
) -> tuple[list[UavKeyframeMatches], np.ndarray, SE3]:  # fmt: skip
    """(UAV keyframes with 2D-3D matches, landmarks (L,3), true T_ugvworld_uavworld); ``wrong`` of the matches
    point at a random other landmark."""
    a = rng.uniform([0, 12, 0], [28, 12, 6], (n_landmarks // 3, 3))
    b = rng.uniform([28, 0, 0], [28, 20, 6], (n_landmarks // 3, 3))
    c = rng.uniform([5, 2, 0], [25, 11, 0], (n_landmarks - 2 * (n_landmarks // 3), 3))
    pts = np.concatenate([a, b, c])
    kfs = []
    for k in range(n_kf):
        eye = np.array([8.0 + 2.5 * k, 2.0 + 0.5 * k, 12.0])
        T_ugv_cam = look_at(eye, np.array([18.0, 12.0, 1.0]))  # ~40 deg down towards the facades
        T_uav_cam = T_TRUE.inverse() @ T_ugv_cam  # the UAV's own SLAM pose of that camera
        p = T_ugv_cam.inverse().act(pts)
        uv, valid = CAMERA.project(p)
        inside = valid & (uv[:, 0] > 0) & (uv[:, 0] < 639) & (uv[:, 1] > 0) & (uv[:, 1] < 479)
        idx = np.flatnonzero(inside)[:per_keyframe]
        obs = uv[idx] + rng.normal(0, pix, (len(idx), 2))
        lm = idx.copy()
        bad = rng.random(len(idx)) < wrong
        lm[bad] = rng.integers(0, len(pts), int(bad.sum()))
        kfs.append(UavKeyframeMatches(k, T_uav_cam, CAMERA, obs, lm))
    return kfs, pts, T_TRUE
