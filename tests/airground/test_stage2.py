"""Stage 2: the relative transform from UAV keyframes, with injected wrong matches, against exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from perception.camera import OpenCVCamera
from perception.errors import InputError
from perception.geometry import SE3, so3_exp
from perception.metrics.pose import rotation_error_deg
from perception.sim.poses import look_at
from slam.airground.stage2 import Stage2Options, UavKeyframeMatches, estimate_relative_pose

CAM = OpenCVCamera(640, 480, 450.0, 450.0, 319.5, 239.5, -0.05, 0.01, 0.0, 0.0, 0.0)
T_TRUE = SE3(so3_exp(np.array([0.0, 0.0, np.deg2rad(69.0)])), np.array([4.0, -2.5, 0.8]))


def _scene(rng, n_kf=6, wrong=0.0, pix=1.0, n_landmarks=600):
    # landmarks on two facades (y = 12, x = 28) and the ground, as in the research note's scenario
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
        uv, valid = CAM.project(p)
        inside = valid & (uv[:, 0] > 0) & (uv[:, 0] < 639) & (uv[:, 1] > 0) & (uv[:, 1] < 479)
        idx = np.flatnonzero(inside)[:150]
        obs = uv[idx] + rng.normal(0, pix, (len(idx), 2))
        lm = idx.copy()
        bad = rng.random(len(idx)) < wrong
        lm[bad] = rng.integers(0, len(pts), int(bad.sum()))  # wrong matches: another landmark
        kfs.append(UavKeyframeMatches(k, T_uav_cam, CAM, obs, lm))
    return kfs, pts


def _err(T: SE3) -> tuple[float, float]:
    return float(np.linalg.norm(T.t - T_TRUE.t)), float(rotation_error_deg(T.R, T_TRUE.R))


@pytest.mark.parametrize("wrong", [0.0, 0.3])
def test_relative_pose_within_bars(rng, wrong) -> None:
    kfs, pts = _scene(rng, wrong=wrong)
    assert min(len(k.uv) for k in kfs) > 60
    r = estimate_relative_pose(kfs, pts)
    t_err, r_err = _err(r.T_ugvworld_uavworld)
    assert t_err < 0.10 and r_err < 0.5, (t_err, r_err)
    assert r.inlier_rmse_px < 2.0
    total = sum(len(k.uv) for k in kfs)
    assert sum(r.inliers_per_keyframe.values()) > (1 - wrong - 0.1) * total


def test_plain_least_squares_fails_where_robust_holds(rng) -> None:
    kfs, pts = _scene(rng, wrong=0.3)
    start = T_TRUE @ SE3.exp(np.array([0.05, -0.05, 0.1, 0.8, -0.6, 0.5]))  # ~1 m / 7 deg off
    l2 = estimate_relative_pose(kfs, pts, Stage2Options(loss="l2", ransac=False), init=start)
    robust = estimate_relative_pose(kfs, pts, Stage2Options(loss="cauchy"))
    assert _err(l2.T_ugvworld_uavworld)[0] > 0.3
    assert _err(robust.T_ugvworld_uavworld)[0] < 0.10


def test_covariance_is_positive_definite_and_shrinks_with_keyframes(rng) -> None:
    kfs, pts = _scene(rng, n_kf=6)
    few = estimate_relative_pose(kfs[:2], pts).covariance
    many = estimate_relative_pose(kfs, pts).covariance
    for C in (few, many):
        assert C.shape == (6, 6) and np.allclose(C, C.T, atol=1e-12) and np.linalg.eigvalsh(C).min() > 0
    assert np.trace(many[3:, 3:]) < np.trace(few[3:, 3:])
    assert np.trace(many[:3, :3]) < np.trace(few[:3, :3])


def test_errors_are_one_line(rng) -> None:
    kfs, pts = _scene(rng, n_kf=1)
    with pytest.raises(InputError, match="no UAV keyframe has a PnP solution"):
        estimate_relative_pose(
            [UavKeyframeMatches(0, kfs[0].T_uavworld_cam, CAM, kfs[0].uv[:3], kfs[0].landmark_idx[:3])], pts
        )
    with pytest.raises(InputError, match="landmark outside"):
        estimate_relative_pose([UavKeyframeMatches(0, kfs[0].T_uavworld_cam, CAM, [[1.0, 2.0]], [10**6])], pts)
    with pytest.raises(InputError, match="SLAM pose contains NaN"):
        UavKeyframeMatches(0, SE3(np.eye(3), np.array([np.nan, 0, 0])), CAM, [[1.0, 2.0]], [0])
