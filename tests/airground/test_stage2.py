"""Stage 2: the relative transform from UAV keyframes, with injected wrong matches, against exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from perception.errors import InputError
from perception.geometry import SE3
from perception.metrics.pose import rotation_error_deg
from slam.airground.stage2 import Stage2Options, UavKeyframeMatches, estimate_relative_pose
from slam.airground.synthetic import CAMERA, T_TRUE, make_stage2_problem

CAM = CAMERA


def _scene(rng, n_kf=6, wrong=0.0, pix=1.0):
    kfs, pts, _ = make_stage2_problem(rng, n_kf=n_kf, wrong=wrong, pix=pix)
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
