"""Stage 1: UGV window bundle adjustment in GTSAM, initialised from LIO-interpolated keyframe poses.

Variables: ``X(k) = T_world_imu`` of each UGV keyframe and ``L(j)`` landmarks triangulated from multi-keyframe
tracks. Factors: a ``GenericProjectionFactor`` per observation with the camera's real calibration and
``body_P_sensor = T_imu_cam`` (so the variables stay IMU poses, as the LIO provides them), under a robust kernel;
a ``BetweenFactorPose3`` between consecutive keyframes carrying the LIO relative motion (whose drift the sigmas
describe); a tight prior on the first keyframe (the gauge: the LIO odometry frame); Levenberg-Marquardt.

Landmarks are triangulated from the LIO-interpolated camera poses (:func:`slam.airground.landmarks.triangulate_tracks`,
depth and parallax checks). Observations behind their camera at the initial estimate are dropped and counted
(GTSAM's projection factor would silently give them zero Jacobians), as are observations whose initial residual
exceeds ``gate_px`` (gross mismatches that would only slow the robust kernel down).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import gtsam
import numpy as np
from gtsam.symbol_shorthand import L, X

from perception.camera import CameraModel
from perception.camera.convert import to_gtsam
from perception.errors import InputError
from perception.geometry import SE3
from slam.airground.landmarks import triangulate_tracks
from slam.factorgraph.ba import PROJECTION_FACTORS, Observations, pixel_noise

log = logging.getLogger(__name__)


@dataclass
class Stage1Problem:
    T_world_imu: SE3
    """LIO-interpolated IMU poses of the keyframes (K,), ``T_world_imu`` (world = the LIO odometry frame)."""
    T_imu_cam: SE3
    """Camera-to-IMU extrinsic (maps camera points into the IMU frame)."""
    camera: CameraModel
    observations: Observations
    """``image_index`` = keyframe index, ``point_index`` = track id (0..P-1), ``uv`` in OpenCV pixels."""


@dataclass
class Stage1Options:
    loss: Literal["huber", "cauchy", "l2"] = "huber"
    loss_scale_px: float = 2.0
    """Robust kernel scale in pixels (Huber 1.345 sigma is the textbook value; 2 px works with 1 px noise)."""
    sigma_px: float = 1.0
    between_sigma_rot: float = 0.005
    """LIO relative-rotation uncertainty between consecutive keyframes (rad, per axis)."""
    between_sigma_trans: float = 0.05
    """LIO relative-translation uncertainty between consecutive keyframes (m, per axis)."""
    prior_sigma: float = 1e-4
    """Sigma of the gauge prior on the first keyframe (rad and m)."""
    min_views: int = 2
    min_parallax_deg: float = 1.0
    """Tracks whose viewing rays span less than this are not triangulated."""
    min_depth_m: float = 0.2
    max_depth_m: float = 200.0
    gate_px: float = 100.0
    """Observations with a larger residual at the initial estimate are left out (inf: keep all)."""
    max_iterations: int = 50

    def validate(self) -> None:
        if self.loss not in ("huber", "cauchy", "l2"):
            raise InputError(f"stage 1: loss must be 'huber', 'cauchy' or 'l2', got {self.loss!r}")
        for name in ("loss_scale_px", "sigma_px", "between_sigma_rot", "between_sigma_trans", "prior_sigma",
                     "gate_px"):  # fmt: skip
            v = getattr(self, name)
            if not (v > 0):
                raise InputError(f"stage 1: {name} must be > 0, got {v}")
        if self.min_views < 2:
            raise InputError(f"stage 1: min_views must be >= 2, got {self.min_views}")


@dataclass
class Stage1Result:
    T_world_imu: SE3
    """Refined IMU poses of the keyframes (K,)."""
    T_world_cam: SE3
    """Refined camera poses, ``T_world_imu @ T_imu_cam``."""
    points: np.ndarray
    """(P, 3) landmarks per track id; NaN for tracks that were not triangulated."""
    point_ok: np.ndarray
    """(P,) tracks that were triangulated and optimised."""
    initial_rmse_px: float
    final_rmse_px: float
    num_observations: int
    """Observations that entered the graph."""
    dropped_behind_camera: int
    iterations: int
    seconds: float
    residuals_px: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(M,) final reprojection error of every input observation (NaN where it did not enter the graph)."""
    used: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    """(M,) observations that entered the graph."""
    dropped_gated: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per step: triangulate, build, optimize, total."""


def _residuals(T_world_cam: SE3, camera: CameraModel, points: np.ndarray, obs: Observations) -> np.ndarray:
    """Pixel error of each observation; inf when behind the camera or for a NaN point."""
    T_cw = T_world_cam.inverse()
    k = obs.image_index
    p = np.einsum("nij,nj->ni", T_cw.R[k], points[obs.point_index]) + T_cw.t[k]
    finite = np.all(np.isfinite(p), axis=1)
    uv, valid = camera.project(np.where(finite[:, None], p, 1.0))
    r = np.linalg.norm(uv - obs.uv, axis=1)
    return np.where(valid & finite & (p[:, 2] > 0), r, np.inf)


def _rmse(r: np.ndarray) -> float:
    r = r[np.isfinite(r)]
    return float(np.sqrt(np.mean(r**2))) if len(r) else float("nan")


def run_stage1(problem: Stage1Problem, options: Stage1Options | None = None) -> Stage1Result:
    """Window BA over the UGV keyframes (see the module docstring)."""
    opts = options or Stage1Options()
    opts.validate()
    t0 = time.perf_counter()
    obs = problem.observations
    Kf = len(problem.T_world_imu)
    if Kf < 2:
        raise InputError(f"stage 1: {Kf} UGV keyframe(s); need at least 2 (lower the keyframe thresholds)")
    if not np.all(np.isfinite(problem.T_world_imu.matrix())):
        raise InputError("stage 1: a LIO keyframe pose contains NaN/inf")
    if problem.T_imu_cam.shape != ():
        raise InputError(f"stage 1: T_imu_cam must be a single SE3, got batch shape {problem.T_imu_cam.shape}")
    if len(obs) and (obs.image_index.min() < 0 or obs.image_index.max() >= Kf):
        raise InputError(f"stage 1: observation keyframe index outside [0, {Kf})")
    if len(obs) and obs.point_index.min() < 0:
        raise InputError("stage 1: negative track id in the observations")
    num_points = int(obs.point_index.max()) + 1 if len(obs) else 0
    T_world_cam0 = problem.T_world_imu @ problem.T_imu_cam
    points, ok = triangulate_tracks(
        T_world_cam0, problem.camera, obs, num_points, min_views=opts.min_views,
        min_parallax_deg=opts.min_parallax_deg, min_depth=opts.min_depth_m, max_depth=opts.max_depth_m,
    )  # fmt: skip
    if ok.sum() < 3:
        raise InputError(
            f"stage 1: only {int(ok.sum())} landmark(s) could be triangulated from {len(obs)} observations; "
            "the UGV images have too few matched features"
        )
    t_tri = time.perf_counter()
    res0 = _residuals(T_world_cam0, problem.camera, points, obs)
    on_ok = ok[obs.point_index]
    behind = on_ok & ~np.isfinite(res0)
    gated = on_ok & np.isfinite(res0) & (res0 > opts.gate_px)
    use = on_ok & ~behind & ~gated
    # a landmark needs two observations left in the graph, else it is unconstrained
    n_use = np.bincount(obs.point_index[use], minlength=num_points)
    ok &= n_use >= 2
    use &= ok[obs.point_index]
    points[~ok] = np.nan

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
    t_build = time.perf_counter()
    lm = gtsam.LevenbergMarquardtParams()
    lm.setMaxIterations(opts.max_iterations)
    optimizer = gtsam.LevenbergMarquardtOptimizer(graph, values, lm)
    result = optimizer.optimize()
    t_opt = time.perf_counter()
    T_world_imu = SE3.from_matrix(np.stack([result.atPose3(X(i)).matrix() for i in range(Kf)]))
    pts = points.copy()
    for j in np.flatnonzero(ok):
        pts[j] = result.atPoint3(L(int(j)))
    T_world_cam = T_world_imu @ problem.T_imu_cam
    res1 = _residuals(T_world_cam, problem.camera, pts, obs)
    t_end = time.perf_counter()
    out = Stage1Result(
        T_world_imu=T_world_imu,
        T_world_cam=T_world_cam,
        points=pts,
        point_ok=ok,
        initial_rmse_px=_rmse(res0[use]),
        final_rmse_px=_rmse(res1[use]),
        num_observations=int(use.sum()),
        dropped_behind_camera=int(behind.sum()),
        iterations=int(optimizer.iterations()),
        seconds=t_end - t0,
        residuals_px=np.where(use, res1, np.nan),
        used=use,
        dropped_gated=int(gated.sum()),
        timings={
            "triangulate": t_tri - t0,
            "build": t_build - t_tri,
            "optimize": t_opt - t_build,
            "total": t_end - t0,
        },  # fmt: skip
    )
    log.info("stage 1: %d keyframes, %d landmarks, %d observations (%d behind camera, %d gated), rmse %.2f -> "
             "%.2f px, %d iterations, %.2f s", Kf, int(ok.sum()), out.num_observations, out.dropped_behind_camera,
             out.dropped_gated, out.initial_rmse_px, out.final_rmse_px, out.iterations, out.seconds)  # fmt: skip
    return out
