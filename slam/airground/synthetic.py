"""Synthetic stage-1 and stage-2 problems with exact ground truth (the research note's scenarios).

Stage 1: a UGV drives past landmarks (unicycle, straight then a 90 degree turn), its LIO drifts as a random walk
per 10 Hz sweep, the camera (lever arm, looking left) runs at 20 Hz with a 25 ms phase to the LIO and keyframes
are every 10th image. Stage 2: facade and ground landmarks in the UGV world, UAV keyframes 12 m up looking down at
them, the UAV's SLAM poses in its own frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.camera import CameraModel, OpenCVCamera
from perception.errors import InputError
from perception.geometry import SE3, so3_exp
from perception.sim.poses import look_at
from slam.airground.stage1 import Stage1Problem
from slam.airground.stage2 import UavKeyframeMatches
from slam.factorgraph.ba import Observations

CAMERA = OpenCVCamera(640, 480, 450.0, 450.0, 319.5, 239.5, -0.05, 0.01, 0.0, 0.0, 0.0)
# IMU: x forward, y left, z up; the camera 0.3 m ahead, 0.6 m above, looking left (its z along the IMU's +y)
T_IMU_CAM = SE3.from_matrix(np.array([[1, 0, 0, 0.3], [0, 0, 1, 0.0], [0, -1, 0, 0.6], [0, 0, 0, 1.0]], float))
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


@dataclass
class Stage1Scenario:
    T_world_cam_true: SE3
    """(K,) true keyframe camera poses."""
    T_world_imu_lio: SE3
    """(K,) LIO-interpolated IMU poses at the keyframe stamps (the stage-1 input)."""
    T_world_imu_true: SE3
    points: np.ndarray
    """(P, 3) true landmarks; ``observations.point_index`` indexes them."""
    observations: Observations
    camera: CameraModel
    T_imu_cam: SE3

    @property
    def problem(self) -> Stage1Problem:
        """The stage-1 input: LIO keyframe poses, extrinsic, camera and the (noisy) observations."""
        return Stage1Problem(self.T_world_imu_lio, self.T_imu_cam, self.camera, self.observations)


def _yaw_rate(t: np.ndarray) -> np.ndarray:
    """Straight for 8 s, then a smooth right turn of about 90 degrees at 0.3 rad/s (left = outside of the turn)."""
    s = np.clip((t - 8.0) / 1.0, 0, 1) * np.clip((14.2 - t) / 1.0, 0, 1)
    return -0.3 * s


def make_stage1_problem(
    rng: np.random.Generator, duration: float = 20.0, drift: tuple[float, float] = (2e-3, 0.02), pix: float = 1.0,
    n_landmarks: int = 1500, camera: CameraModel = CAMERA,
) -> Stage1Scenario:  # fmt: skip
    """The drive above; ``drift`` = (rad, m) random-walk step per LIO sweep, ``pix`` = pixel noise sigma.

    Keyframes are every 0.5 s from 0.125 s on, so ``duration`` >= 1 s; the drive turns right after 8 s.
    """
    if not (np.isfinite(duration) and duration >= 1.0):
        raise InputError(f"make_stage1_problem: duration must be >= 1 s, got {duration}")
    if len(drift) != 2 or not all(np.isfinite(d) and d >= 0 for d in drift):
        raise InputError(f"make_stage1_problem: drift must be (rad, m) >= 0 per sweep, got {drift}")
    if not (np.isfinite(pix) and pix >= 0):
        raise InputError(f"make_stage1_problem: pix must be a pixel sigma >= 0, got {pix}")
    if n_landmarks < 1:
        raise InputError(f"make_stage1_problem: n_landmarks must be >= 1, got {n_landmarks}")
    from perception.sim.odometry import OdometryDrift, simulate_odometry
    from perception.sim.trajectories import unicycle_trajectory, uniform_stamps
    from slam.airground.interpolate import interpolate_camera_poses
    from slam.trajectory import Trajectory

    traj = unicycle_trajectory(duration, 1.0, _yaw_rate, start_position=(0.0, 0.0, 0.4))
    stamps, poses = simulate_odometry(traj, 10.0, OdometryDrift(*drift), rng)
    lio = Trajectory(stamps, poses)
    img = uniform_stamps(stamps[0] + 25_000_000, stamps[-1] - 1, 20.0)
    kf = img[::10]
    T_imu_lio = interpolate_camera_poses(lio, kf, SE3.identity())
    T_imu_true = traj.pose(kf)
    cams = T_imu_true @ T_IMU_CAM
    # landmarks 5..14 m to the left of the path (outside of the turn), 0..5 m high
    s_ns = rng.integers(traj.start_ns, traj.end_ns, n_landmarks)
    base = traj.pose(np.sort(s_ns))
    off = np.column_stack([rng.uniform(-3, 3, n_landmarks), rng.uniform(5, 14, n_landmarks),
                           rng.uniform(-0.4, 4.6, n_landmarks)])  # fmt: skip
    pts = base.act(off)
    w, h = camera.width - 1, camera.height - 1
    ii, jj, uv = [], [], []
    for k in range(len(kf)):
        p = cams[k].inverse().act(pts)
        u, valid = camera.project(p)
        inside = valid & (p[:, 2] > 1) & (p[:, 2] < 25) & np.all((u > 0) & (u < [w, h]), axis=1)
        idx = np.flatnonzero(inside)
        ii.append(np.full(len(idx), k))
        jj.append(idx)
        uv.append(u[idx] + rng.normal(0, pix, (len(idx), 2)))
    obs = Observations(np.concatenate(ii), np.concatenate(jj), np.concatenate(uv))
    return Stage1Scenario(cams, T_imu_lio, T_imu_true, pts, obs, camera, T_IMU_CAM)
