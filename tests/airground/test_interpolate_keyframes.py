"""Stage 1a (LIO -> camera poses) and keyframe selection against analytic ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from perception.errors import InputError
from perception.geometry import SE3
from slam.airground.interpolate import interpolate_camera_poses
from slam.airground.keyframes import KeyframePolicy, select_keyframes
from slam.trajectory import Trajectory

TWIST = np.array([0.0, 0.0, 0.5, 1.5, 0.0, 0.0])  # constant twist: 0.5 rad/s yaw, 1.5 m/s forward (omega, v)
T_IMU_CAM = SE3.from_matrix(np.array([[0, 0, 1, 0.3], [-1, 0, 0, 0.0], [0, -1, 0, 0.6], [0, 0, 0, 1.0]]))


def _truth(t_s):
    return SE3.exp(np.outer(np.atleast_1d(t_s), TWIST))


def _lio(rate_hz=10.0, duration=3.0):
    t = np.arange(0, duration + 1e-9, 1 / rate_hz)
    return Trajectory((t * 1e9).round().astype(np.int64), _truth(t))


def test_interpolation_exact_on_constant_twist() -> None:
    lio = _lio()
    t_img = np.array([0.025, 0.475, 1.2345, 2.9])
    est = interpolate_camera_poses(lio, (t_img * 1e9).astype(np.int64), T_IMU_CAM)
    truth = _truth(t_img) @ T_IMU_CAM
    assert np.abs(est.t - truth.t).max() < 1e-6  # well under the 1 mm bar (ns rounding only)
    assert np.abs(est.R - truth.R).max() < 1e-6
    dec = interpolate_camera_poses(lio, (t_img * 1e9).astype(np.int64), T_IMU_CAM, method="decoupled")
    assert 1e-5 < np.abs(dec.t - truth.t).max() < 1e-3  # decoupled is not exact, but within 1 mm here


def test_time_offset_sign() -> None:
    lio = _lio()
    t_img = np.array([1.0])
    off = 25_000_000  # t_imu = t_cam + 25 ms
    est = interpolate_camera_poses(lio, (t_img * 1e9).astype(np.int64), T_IMU_CAM, time_offset_ns=off)
    truth = _truth(t_img + 0.025) @ T_IMU_CAM
    assert np.abs(est.t - truth.t).max() < 1e-6
    wrong = _truth(t_img - 0.025) @ T_IMU_CAM
    assert np.abs(est.t - wrong.t).max() > 0.05  # 50 ms at 1.5 m/s moves the camera 7.5 cm


def test_gaps_and_extrapolation_are_refused() -> None:
    lio = _lio()
    keep = np.r_[0:10, 15 : len(lio)]  # a 0.6 s hole between 0.9 s and 1.5 s
    holed = lio[keep]
    with pytest.raises(InputError, match="UGV pose interpolation: .*gap"):
        interpolate_camera_poses(holed, np.array([1_200_000_000]), T_IMU_CAM)
    with pytest.raises(InputError, match="UGV pose interpolation"):
        interpolate_camera_poses(lio, np.array([3_500_000_000]), T_IMU_CAM)


def test_keyframes_by_distance_angle_and_time() -> None:
    t = np.arange(0, 10, 0.1)
    poses = _truth(t)  # 1.5 m/s, 0.5 rad/s
    kf = select_keyframes((t * 1e9).astype(np.int64), poses, KeyframePolicy(min_distance_m=0.9, min_angle_deg=90,
                                                                             max_interval_s=100))  # fmt: skip
    steps = np.diff(t[kf])
    assert kf[0] == 0 and np.all(np.abs(steps - 0.6) < 0.11)  # 0.9 m at 1.5 m/s (chord ~ arc here)
    kf = select_keyframes((t * 1e9).astype(np.int64), poses, KeyframePolicy(min_distance_m=100, min_angle_deg=10,
                                                                             max_interval_s=100))  # fmt: skip
    assert np.all(np.abs(np.diff(t[kf]) - 0.4) < 0.11)  # 10 deg at 0.5 rad/s = 0.35 s -> every 4th frame
    still = SE3.stack([SE3.identity()] * 50)
    kf = select_keyframes((np.arange(50) * 1e8).astype(np.int64), still, KeyframePolicy(max_interval_s=1.0))
    assert list(kf) == [0, 10, 20, 30, 40]
    with pytest.raises(InputError, match="3 stamps for 50 poses"):
        select_keyframes(np.arange(3), still)
