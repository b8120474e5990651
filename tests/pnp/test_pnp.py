"""slam.pnp: the robust refinement's scale is set in pixels (1 px), whatever the RANSAC threshold, on undistorted
bearings."""

from __future__ import annotations

import numpy as np
import pytest

from perception.camera import PinholeCamera
from perception.geometry import SE3, so3_exp
from slam.pnp import generalized_pnp_ransac, pnp_ransac

CAM = PinholeCamera(640, 480, 525.0, 525.0, 319.5, 239.5)


def _scene(rng: np.random.Generator, T_world_cam: SE3, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(uv, X, near_miss)``: points 2-6 m in front of the camera seen with 0.2 px noise, and a third of them
    matched to a keypoint 3 px to the right, as a neighbouring keypoint is: inside a 4 px RANSAC threshold."""
    xc = np.column_stack([rng.uniform(-1.5, 1.5, n), rng.uniform(-1.1, 1.1, n), np.ones(n)]) * rng.uniform(2, 6, (n, 1))
    X = T_world_cam.act(xc)
    uv = CAM.project(xc)[0] + rng.normal(0, 0.2, (n, 2))
    near_miss = rng.random(n) < 1 / 3
    uv[near_miss, 0] += 3.0
    return uv, X, near_miss


def test_refinement_is_robust_in_pixels_so_biased_inliers_do_not_drag_the_pose() -> None:
    rng = np.random.default_rng(0)
    T = SE3(so3_exp(np.array([0.05, -0.3, 0.1])), np.array([1.0, 0.5, -2.0]))
    uv, X, near_miss = _scene(rng, T)
    errs = {}
    for scale in (1.0, 2.0, 1e4):  # the default; poselib's binding default (half the threshold); ~least squares
        T_est, inl = pnp_ransac(CAM, uv, X, threshold_px=4.0, loss_scale_px=scale)
        assert inl[near_miss].mean() > 0.9  # the near misses are RANSAC inliers: only the refinement can tell
        errs[scale] = float(np.linalg.norm(T_est.t - T.t))
    # a third of the points 3 px off pull a least-squares fit by ~1 px; a 1 px Cauchy loss mostly ignores them,
    # a 2 px one much less so
    assert errs[1.0] < 0.5 * errs[2.0] < 0.5 * errs[1e4], errs
    assert errs[1.0] < 0.002
    default = pnp_ransac(CAM, uv, X, threshold_px=4.0)[0]
    assert np.array_equal(default.t, pnp_ransac(CAM, uv, X, threshold_px=4.0, loss_scale_px=1.0)[0].t)


def test_generalized_refinement_is_robust_in_pixels_too() -> None:
    rng = np.random.default_rng(1)
    T_world_rig = SE3(so3_exp(np.array([0.0, 0.2, 0.0])), np.array([0.5, 0.0, 1.0]))
    T_rig_cams = [SE3.identity(), SE3(so3_exp(np.array([0.0, 0.5, 0.0])), np.array([0.3, 0.0, 0.0]))]
    uvs, Xs = [], []
    for T_rig_cam in T_rig_cams:
        uv, X, _ = _scene(rng, T_world_rig @ T_rig_cam, 150)
        uvs.append(uv)
        Xs.append(X)
    errs = {}
    for scale in (1.0, 2.0):
        T_est, _ = generalized_pnp_ransac([CAM, CAM], T_rig_cams, uvs, Xs, threshold_px=4.0, loss_scale_px=scale)
        errs[scale] = float(np.linalg.norm(T_est.t - T_world_rig.t))
    assert errs[1.0] < 0.5 * errs[2.0], errs


@pytest.mark.parametrize("n", [0, 3])
def test_too_few_points_give_none(n: int) -> None:
    assert pnp_ransac(CAM, np.zeros((n, 2)), np.ones((n, 3))) is None
