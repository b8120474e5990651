"""Stage 2: the relative transform T_ugvworld_uavworld from simulated UAV keyframes (an orbit from perception.sim,
the UAV's own drifting odometry) matched to UGV landmarks, with injected wrong matches, against exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from perception.camera import OpenCVCamera
from perception.errors import InputError
from perception.geometry import SE3, so3_exp
from perception.metrics.pose import rotation_error_deg
from perception.sim.odometry import OdometryDrift, simulate_odometry
from perception.sim.trajectories import orbit_trajectory
from slam.airground.landmarks import LandmarkMap
from slam.airground.stage2 import Stage2Options, UavKeyframeMatches, estimate_relative_pose

CAM = OpenCVCamera(640, 480, 450.0, 450.0, 319.5, 239.5, -0.05, 0.01, 0.0, 0.0, 0.0)
# UAV body: x forward, y left, z up; the camera looks along the body x axis (OpenCV axes)
T_BODY_CAM = SE3.from_matrix(np.array([[0, 0, 1, 0.1], [-1, 0, 0, 0.0], [0, -1, 0, -0.05], [0, 0, 0, 1.0]], float))
T_TRUE = SE3(so3_exp(np.array([0.0, 0.0, np.deg2rad(69.0)])), np.array([4.0, -2.5, 0.8]))  # ugvworld <- uavworld
CENTRE = np.array([14.0, 8.0, 0.0])


def _landmarks(rng, n=900):
    """A 12 x 8 x 6 m building (four facades and the roof edge) and the ground around it, UGV world."""
    lo, hi = CENTRE + [-6, -4, 0], CENTRE + [6, 4, 6]
    face = rng.integers(0, 4, n // 2)
    p = rng.uniform(lo, hi, (n // 2, 3))
    p[face == 0, 0], p[face == 1, 0], p[face == 2, 1], p[face == 3, 1] = lo[0], hi[0], lo[1], hi[1]
    ground = np.column_stack([rng.uniform(-18, 18, (n - n // 2, 2)) + CENTRE[:2], np.zeros(n - n // 2)])
    return np.concatenate([p, ground])


def scene(rng, n_kf=6, wrong=0.0, pix=1.0, per_keyframe=150):
    """(UAV keyframes with 2D-3D matches, landmarks, true T_ugvworld_uavworld); ``wrong`` of the matches are
    redirected to a random other landmark."""
    pts = _landmarks(rng)
    traj = orbit_trajectory(CENTRE, 20.0, 12.0, height=12.0, angular_speed=0.12, start_angle=-1.9)
    stamps, est = simulate_odometry(traj, 10.0, OdometryDrift(1e-4, 1e-3), rng)  # UAV VIO in the UGV world
    kf = np.linspace(5, len(stamps) - 5, n_kf).astype(int)
    cams_true = traj.pose(stamps[kf]) @ T_BODY_CAM
    uav_slam = T_TRUE.inverse() @ est[kf] @ T_BODY_CAM  # the UAV's own (drifting) estimate, in its own world
    kfs = []
    for k in range(n_kf):
        p = cams_true[k].inverse().act(pts)
        uv, valid = CAM.project(p)
        idx = np.flatnonzero(valid & (p[:, 2] > 1) & np.all((uv > 0) & (uv < [639, 479]), axis=1))
        idx = rng.permutation(idx)[:per_keyframe]
        lm = idx.copy()
        bad = rng.random(len(idx)) < wrong
        lm[bad] = (idx[bad] + rng.integers(1, len(pts), int(bad.sum()))) % len(pts)
        kfs.append(UavKeyframeMatches(k, uav_slam[k], CAM, uv[idx] + rng.normal(0, pix, (len(idx), 2)), lm))
    return kfs, pts, T_TRUE


def _err(T: SE3) -> tuple[float, float]:
    return float(np.linalg.norm(T.t - T_TRUE.t)), float(rotation_error_deg(T.R, T_TRUE.R))


@pytest.mark.parametrize("wrong", [0.0, 0.3])
def test_relative_pose_within_bars(rng, wrong) -> None:
    kfs, pts, _ = scene(rng, wrong=wrong)
    assert min(len(k.uv) for k in kfs) >= 120
    r = estimate_relative_pose(kfs, pts)
    t_err, r_err = _err(r.T_ugvworld_uavworld)
    assert t_err <= 0.10 and r_err <= 0.5, (t_err, r_err)
    assert r.inlier_rmse_px < 2.0 and r.dropped_behind_camera == 0 and r.seconds < 1.0
    total = sum(len(k.uv) for k in kfs)
    assert (1 - wrong - 0.1) * total < sum(r.inliers_per_keyframe.values()) < (1 - wrong + 0.05) * total
    assert r.init_inliers > 0.5 * (1 - wrong) * total


# Huber is not redescending: at 30 % wrong matches it drifted to 0.2-0.8 m on some seeds, so it is held to 10 %.
@pytest.mark.parametrize(("loss", "wrong"), [("huber", 0.1), ("gnc", 0.3)])
def test_other_robust_losses_hold_with_wrong_matches(rng, loss, wrong) -> None:
    kfs, pts, _ = scene(rng, wrong=wrong)
    r = estimate_relative_pose(kfs, LandmarkMap(pts, np.ones((len(pts), 4)), np.arange(len(pts)),
                                                np.full(len(pts), 2)), Stage2Options(loss=loss))  # fmt: skip
    t_err, r_err = _err(r.T_ugvworld_uavworld)
    assert t_err <= 0.10 and r_err <= 0.5, (loss, t_err, r_err)
    assert np.linalg.eigvalsh(r.covariance).min() > 0


def test_plain_least_squares_fails_where_robust_holds(rng) -> None:
    kfs, pts, _ = scene(rng, wrong=0.3)
    start = T_TRUE @ SE3.exp(np.array([0.05, -0.05, 0.1, 0.8, -0.6, 0.5]))  # ~1.1 m / 7 deg off
    l2 = estimate_relative_pose(kfs, pts, Stage2Options(loss="l2", ransac=False), init=start)
    robust = estimate_relative_pose(kfs, pts, Stage2Options(loss="cauchy"))
    assert _err(l2.T_ugvworld_uavworld)[0] > 0.3
    assert _err(robust.T_ugvworld_uavworld)[0] <= 0.10
    # without wrong matches plain L2 from the same start is fine: the failure is the outliers, not the start
    clean, clean_pts, _ = scene(np.random.default_rng(1), wrong=0.0)
    ok = estimate_relative_pose(clean, clean_pts, Stage2Options(loss="l2", ransac=False), init=start)
    assert _err(ok.T_ugvworld_uavworld)[0] <= 0.10


def test_covariance_is_positive_definite_and_shrinks_with_keyframes(rng) -> None:
    kfs, pts, _ = scene(rng, n_kf=8)
    few = estimate_relative_pose(kfs[:2], pts)
    many = estimate_relative_pose(kfs, pts)
    for C in (few.covariance, many.covariance):
        assert C.shape == (6, 6) and np.allclose(C, C.T, atol=1e-12) and np.linalg.eigvalsh(C).min() > 0
    assert np.trace(many.covariance[3:, 3:]) < 0.5 * np.trace(few.covariance[3:, 3:])
    assert np.trace(many.covariance[:3, :3]) < 0.5 * np.trace(few.covariance[:3, :3])
    # the order is (rotation, translation): the rotation block is rad^2, far below the translation block's m^2
    # at these ranges, and the covariance is consistent with the actual error (within 5 sigma per axis)
    xi = (many.T_ugvworld_uavworld.inverse() @ T_TRUE).log()
    assert np.all(np.abs(xi) < 5 * np.sqrt(np.diag(many.covariance)) + np.r_[np.full(3, 2e-3), np.full(3, 0.03)])


def test_errors_are_one_line(rng) -> None:
    kfs, pts, _ = scene(rng, n_kf=2)
    with pytest.raises(InputError, match="no UAV keyframe has a PnP solution"):
        estimate_relative_pose(
            [UavKeyframeMatches(0, kfs[0].T_uavworld_cam, CAM, kfs[0].uv[:3], kfs[0].landmark_idx[:3])], pts
        )
    with pytest.raises(InputError, match="landmark outside"):
        estimate_relative_pose([UavKeyframeMatches(0, kfs[0].T_uavworld_cam, CAM, [[1.0, 2.0]], [10**6])], pts)
    with pytest.raises(InputError, match="SLAM pose contains NaN"):
        UavKeyframeMatches(0, SE3(np.eye(3), np.array([np.nan, 0, 0])), CAM, [[1.0, 2.0]], [0])
    with pytest.raises(InputError, match="initial transform"):
        estimate_relative_pose(kfs, pts, Stage2Options(ransac=False))
    with pytest.raises(InputError, match="loss must be"):
        estimate_relative_pose(kfs, pts, Stage2Options(loss="tukey"))
