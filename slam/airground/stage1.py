"""Stage 1: UGV window bundle adjustment in GTSAM, initialised from LIO-interpolated keyframe poses.

Variables: ``X(k) = T_world_imu`` of each UGV keyframe and ``L(j)`` landmarks triangulated from multi-keyframe
tracks. Factors: a ``GenericProjectionFactor`` per observation with the camera's real calibration and
``body_P_sensor = T_imu_cam`` (so the variables stay IMU poses, as the LIO provides them), under a robust kernel;
a ``BetweenFactorPose3`` between consecutive keyframes carrying the LIO relative motion (whose drift the sigmas
describe); a tight prior on the first keyframe (the gauge: the LIO odometry frame). Observations behind their camera
at the initial estimate are dropped and counted (GTSAM would give them zero Jacobians).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import gtsam
import numpy as np
from gtsam.symbol_shorthand import L, X

from perception.camera import CameraModel
from perception.camera.convert import to_gtsam
from perception.errors import InputError
from perception.geometry import SE3, triangulate
from slam.factorgraph.ba import PROJECTION_FACTORS, Observations, pixel_noise

log = logging.getLogger(__name__)


@dataclass
class Stage1Problem:
    T_world_imu: SE3
    """LIO-interpolated IMU poses of the keyframes (K,)."""
    T_imu_cam: SE3
    camera: CameraModel
    observations: Observations
    """``image_index`` = keyframe index, ``point_index`` = track id (0..P-1), ``uv`` in OpenCV pixels."""


@dataclass
class Stage1Options:
    loss: Literal["huber", "cauchy", "l2"] = "huber"
    loss_scale_px: float = 2.0
    sigma_px: float = 1.0
    between_sigma_rot: float = 0.005
    """LIO relative-rotation uncertainty between consecutive keyframes (rad)."""
    between_sigma_trans: float = 0.05
    """LIO relative-translation uncertainty between consecutive keyframes (m)."""
    prior_sigma: float = 1e-4
    min_views: int = 2
    min_parallax_deg: float = 1.0
    """Tracks whose viewing rays span less than this are not triangulated."""
    max_iterations: int = 50


@dataclass
class Stage1Result:
    T_world_imu: SE3
    T_world_cam: SE3
    points: np.ndarray
    """(P, 3) landmarks; NaN for tracks that were not triangulated."""
    point_ok: np.ndarray
    initial_rmse_px: float
    final_rmse_px: float
    num_observations: int
    dropped_behind_camera: int
    iterations: int
    seconds: float


def triangulate_tracks(
    T_world_cam: SE3, camera: CameraModel, obs: Observations, num_points: int, min_views: int = 2,
    min_parallax_deg: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Weighted DLT + refinement of every track from undistorted bearings; (points (P,3), ok (P,))."""
    K = len(T_world_cam)
    x = np.zeros((K, num_points, 2))
    w = np.zeros((K, num_points))
    xy = camera.unproject(obs.uv)[:, :2]
    good = np.all(np.isfinite(xy), axis=1)
    x[obs.image_index[good], obs.point_index[good]] = xy[good]
    w[obs.image_index[good], obs.point_index[good]] = 1.0
    T_cw = T_world_cam.inverse()
    P = np.concatenate([T_cw.R, T_cw.t[..., None]], axis=-1)
    pts, ok = triangulate(P, x, w, refine=True)
    ok &= (w > 0).sum(axis=0) >= min_views
    # parallax: the widest angle between viewing rays of the point
    centres = T_world_cam.t
    for j in np.flatnonzero(ok):
        views = np.flatnonzero(w[:, j] > 0)
        rays = pts[j] - centres[views]
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        cos = np.clip(rays @ rays.T, -1, 1)
        if np.degrees(np.arccos(cos.min())) < min_parallax_deg:
            ok[j] = False
    pts[~ok] = np.nan
    return pts, ok


def _residuals(T_world_cam: SE3, camera: CameraModel, points: np.ndarray, obs: Observations) -> np.ndarray:
    res = np.full(len(obs), np.inf)
    T_cw = T_world_cam.inverse()
    for k in np.unique(obs.image_index):
        sel = np.flatnonzero(obs.image_index == k)
        p = T_cw[int(k)].act(points[obs.point_index[sel]])
        uv, valid = camera.project(p)
        r = np.linalg.norm(uv - obs.uv[sel], axis=1)
        res[sel] = np.where(valid & (p[:, 2] > 0) & np.all(np.isfinite(p), axis=1), r, np.inf)
    return res


def _rmse(r: np.ndarray) -> float:
    r = r[np.isfinite(r)]
    return float(np.sqrt(np.mean(r**2))) if len(r) else float("nan")


def run_stage1(problem: Stage1Problem, options: Stage1Options | None = None) -> Stage1Result:
    opts = options or Stage1Options()
    t0 = time.perf_counter()
    obs = problem.observations
    Kf = len(problem.T_world_imu)
    if Kf < 2:
        raise InputError(f"stage 1: {Kf} UGV keyframe(s); need at least 2 (lower the keyframe thresholds)")
    if not np.all(np.isfinite(problem.T_world_imu.matrix())):
        raise InputError("stage 1: a LIO keyframe pose contains NaN/inf")
    if len(obs) and (obs.image_index.min() < 0 or obs.image_index.max() >= Kf):
        raise InputError(f"stage 1: observation keyframe index outside [0, {Kf})")
    num_points = int(obs.point_index.max()) + 1 if len(obs) else 0
    T_world_cam0 = problem.T_world_imu @ problem.T_imu_cam
    points, ok = triangulate_tracks(
        T_world_cam0, problem.camera, obs, num_points, opts.min_views, opts.min_parallax_deg
    )
    if ok.sum() < 3:
        raise InputError(
            f"stage 1: only {int(ok.sum())} landmark(s) could be triangulated from {len(obs)} observations; "
            "the UGV images have too few matched features"
        )
    res0 = _residuals(T_world_cam0, problem.camera, points, obs)
    use = np.isfinite(res0) & ok[obs.point_index]
    dropped = int((~np.isfinite(res0) & ok[obs.point_index]).sum())

    graph, values = gtsam.NonlinearFactorGraph(), gtsam.Values()
    K = to_gtsam(problem.camera)
    factor = PROJECTION_FACTORS[type(K)]
    body = gtsam.Pose3(problem.T_imu_cam.matrix())
    noise = pixel_noise(opts.loss, opts.loss_scale_px / opts.sigma_px, opts.sigma_px)
    mats = problem.T_world_imu.matrix()
    for i in range(Kf):
        values.insert(X(i), gtsam.Pose3(mats[i]))
    graph.add(gtsam.PriorFactorPose3(X(0), gtsam.Pose3(mats[0]), gtsam.noiseModel.Isotropic.Sigma(6, opts.prior_sigma)))
    between = gtsam.noiseModel.Diagonal.Sigmas(
        np.r_[np.full(3, opts.between_sigma_rot), np.full(3, opts.between_sigma_trans)]
    )
    for i in range(Kf - 1):
        rel = gtsam.Pose3(np.linalg.inv(mats[i]) @ mats[i + 1])
        graph.add(gtsam.BetweenFactorPose3(X(i), X(i + 1), rel, between))
    for j in np.flatnonzero(ok):
        values.insert(L(int(j)), points[j])
    for idx in np.flatnonzero(use):
        graph.add(factor(obs.uv[idx], noise, X(int(obs.image_index[idx])), L(int(obs.point_index[idx])), K, body))
    lm = gtsam.LevenbergMarquardtParams()
    lm.setMaxIterations(opts.max_iterations)
    optimizer = gtsam.LevenbergMarquardtOptimizer(graph, values, lm)
    result = optimizer.optimize()
    T_world_imu = SE3.from_matrix(np.stack([result.atPose3(X(i)).matrix() for i in range(Kf)]))
    pts = points.copy()
    for j in np.flatnonzero(ok):
        pts[j] = result.atPoint3(L(int(j)))
    T_world_cam = T_world_imu @ problem.T_imu_cam
    res1 = _residuals(T_world_cam, problem.camera, pts, obs)
    out = Stage1Result(
        T_world_imu=T_world_imu,
        T_world_cam=T_world_cam,
        points=pts,
        point_ok=ok,
        initial_rmse_px=_rmse(res0[use]),
        final_rmse_px=_rmse(res1[use]),
        num_observations=int(use.sum()),
        dropped_behind_camera=dropped,
        iterations=int(optimizer.iterations()),
        seconds=time.perf_counter() - t0,
    )
    log.info("stage 1: %d keyframes, %d landmarks, %d observations, rmse %.2f -> %.2f px, %.2f s", Kf, int(ok.sum()),
             out.num_observations, out.initial_rmse_px, out.final_rmse_px, out.seconds)  # fmt: skip
    return out
