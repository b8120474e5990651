"""Bundle adjustment in GTSAM: camera poses and landmarks from pixel observations.

Variables are ``X(i) = T_world_cam`` (gtsam's Pose3 is camera-to-world with OpenCV axes, matching the project's
conventions) and ``L(j)`` = landmark in world coordinates. Each observation is a ``GenericProjectionFactor`` with
the camera's real model (``Cal3_S2`` pinhole, ``Cal3DS2`` Brown-Conrady without k3 / SIMPLE_RADIAL,
``Cal3Fisheye``) and a robust (Huber / Cauchy) isotropic pixel noise model.
Intrinsics are held fixed. The gauge is fixed by tight priors on the poses listed in ``fixed_images`` (two poses
fix the scale of a monocular problem too).

GTSAM's projection factor silently returns zero Jacobians for a point behind the camera (cheirality), so such
observations never pull the point back: observations that are behind their camera at the initial estimate are
dropped and counted in the result instead of being handed to the optimiser.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import gtsam
import numpy as np
from gtsam.symbol_shorthand import L, X

from perception.camera import CameraModel
from perception.camera.convert import to_gtsam
from perception.errors import InputError
from perception.geometry import SE3

log = logging.getLogger(__name__)


@dataclass
class Observations:
    """Pixel observations (OpenCV pixel-centre convention): image ``image_index[k]`` sees point ``point_index[k]``."""

    image_index: np.ndarray
    point_index: np.ndarray
    uv: np.ndarray

    def __post_init__(self) -> None:
        self.image_index = np.asarray(self.image_index, dtype=np.int64)
        self.point_index = np.asarray(self.point_index, dtype=np.int64)
        self.uv = np.asarray(self.uv, dtype=np.float64)
        n = len(self.image_index)
        if self.point_index.shape != (n,) or self.uv.shape != (n, 2):
            raise InputError(
                f"observations: expected image_index (M,), point_index (M,), uv (M,2); got "
                f"{self.image_index.shape}, {self.point_index.shape}, {self.uv.shape}"
            )
        if not np.all(np.isfinite(self.uv)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(self.uv), axis=1))[0])
            raise InputError(f"observations: uv[{bad}] is not finite; drop or fix that observation")

    def __len__(self) -> int:
        return len(self.image_index)


@dataclass
class BAProblem:
    cameras: list[CameraModel]
    """Camera model of each image (objects may be shared)."""
    T_world_cam: SE3
    """Initial camera-to-world poses, batched (N,)."""
    points_world: np.ndarray
    """Initial landmarks (P, 3)."""
    observations: Observations
    fixed_images: tuple[int, ...] = (0,)
    """Images whose poses are held (gauge). Two images also fix the scale."""

    def __post_init__(self) -> None:
        n = len(self.T_world_cam)
        self.points_world = np.asarray(self.points_world, dtype=np.float64)
        if len(self.cameras) != n:
            raise InputError(f"BA problem: {len(self.cameras)} cameras for {n} poses; give one camera per image")
        if self.points_world.ndim != 2 or self.points_world.shape[1] != 3:
            raise InputError(f"BA problem: points_world must be (P,3), got {self.points_world.shape}")
        if not np.all(np.isfinite(self.T_world_cam.matrix())):
            raise InputError("BA problem: a camera pose contains NaN/inf; fix the initial poses")
        if not np.all(np.isfinite(self.points_world)):
            raise InputError("BA problem: a landmark contains NaN/inf; drop it before bundle adjustment")
        obs = self.observations
        if len(obs) and (obs.image_index.min() < 0 or obs.image_index.max() >= n):
            raise InputError(f"BA problem: observation image index out of range [0, {n})")
        if len(obs) and (obs.point_index.min() < 0 or obs.point_index.max() >= len(self.points_world)):
            raise InputError(f"BA problem: observation point index out of range [0, {len(self.points_world)})")
        for i in self.fixed_images:
            if not 0 <= i < n:
                raise InputError(f"BA problem: fixed image {i} out of range [0, {n})")


@dataclass
class BAOptions:
    loss: Literal["huber", "cauchy", "l2"] = "huber"
    """Robust kernel on the pixel residual."""
    loss_scale: float = 1.345
    """Kernel scale in units of sigma_px (1.345 is Huber's 95%-efficiency constant)."""
    sigma_px: float = 1.0
    """Pixel noise standard deviation."""
    max_iterations: int = 100
    relative_error_tol: float = 1e-9
    prior_sigma: float = 1e-6
    """Sigma (rad, m) of the priors that hold the fixed poses."""
    verbose: bool = False


@dataclass
class BAResult:
    T_world_cam: SE3
    points_world: np.ndarray
    initial_rmse_px: float
    final_rmse_px: float
    initial_cost: float
    final_cost: float
    iterations: int
    num_observations: int
    dropped_behind_camera: int
    seconds: float = 0.0
    residuals_px: np.ndarray = field(default_factory=lambda: np.zeros(0))


def pixel_noise(loss: str, scale_sigmas: float, sigma_px: float) -> gtsam.noiseModel.Base:
    """Isotropic 2D pixel noise of ``sigma_px`` under a robust kernel ("huber" | "cauchy" | "l2" for none) whose
    scale is ``scale_sigmas`` standard deviations."""
    base = gtsam.noiseModel.Isotropic.Sigma(2, sigma_px)
    if loss == "l2":
        return base
    kernels = {"huber": gtsam.noiseModel.mEstimator.Huber, "cauchy": gtsam.noiseModel.mEstimator.Cauchy}
    if loss not in kernels:
        raise InputError(f"unknown robust loss {loss!r}; use 'huber', 'cauchy' or 'l2'")
    return gtsam.noiseModel.Robust.Create(kernels[loss].Create(scale_sigmas), base)


PROJECTION_FACTORS = {
    gtsam.Cal3_S2: gtsam.GenericProjectionFactorCal3_S2,
    gtsam.Cal3DS2: gtsam.GenericProjectionFactorCal3DS2,
    gtsam.Cal3Fisheye: gtsam.GenericProjectionFactorCal3Fisheye,
}


def reprojection_residuals(
    cameras: list[CameraModel], T_world_cam: SE3, points_world: np.ndarray, obs: Observations
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel residual norms per observation and a mask of observations in front of their camera."""
    T_cam_world = T_world_cam.inverse()
    res = np.full(len(obs), np.inf)
    front = np.zeros(len(obs), dtype=bool)
    for i in np.unique(obs.image_index):
        sel = np.flatnonzero(obs.image_index == i)
        p_cam = T_cam_world[int(i)].act(points_world[obs.point_index[sel]])
        uv, valid = cameras[int(i)].project(p_cam)
        front[sel] = valid & (p_cam[:, 2] > 0)
        res[sel] = np.linalg.norm(uv - obs.uv[sel], axis=1)
    return res, front


def _rmse(r: np.ndarray) -> float:
    r = r[np.isfinite(r)]
    return float(np.sqrt(np.mean(r**2))) if len(r) else float("nan")


def bundle_adjust(problem: BAProblem, options: BAOptions | None = None) -> BAResult:
    """Levenberg-Marquardt over all poses and landmarks with robust projection factors."""
    import time

    options = options or BAOptions()
    t0 = time.perf_counter()
    obs = problem.observations
    res0, front = reprojection_residuals(problem.cameras, problem.T_world_cam, problem.points_world, obs)
    dropped = int((~front).sum())
    if dropped:
        log.warning("dropping %d observation(s) behind their camera at the initial estimate", dropped)

    graph = gtsam.NonlinearFactorGraph()
    values = gtsam.Values()
    noise = pixel_noise(options.loss, options.loss_scale, options.sigma_px)
    calibs = {}
    factor_cls = {}
    for cam in problem.cameras:
        if id(cam) not in calibs:
            calibs[id(cam)] = to_gtsam(cam)  # raises a clear error for models gtsam cannot represent (k3 != 0)
            factor_cls[id(cam)] = PROJECTION_FACTORS[type(calibs[id(cam)])]
    mats = problem.T_world_cam.matrix()
    for i in range(len(problem.cameras)):
        values.insert(X(i), gtsam.Pose3(mats[i]))
    used_points = np.unique(obs.point_index[front])
    for j in used_points:
        values.insert(L(int(j)), problem.points_world[j])
    for k in np.flatnonzero(front):
        i, j = int(obs.image_index[k]), int(obs.point_index[k])
        cam = problem.cameras[i]
        graph.add(factor_cls[id(cam)](obs.uv[k], noise, X(i), L(j), calibs[id(cam)]))
    prior = gtsam.noiseModel.Isotropic.Sigma(6, options.prior_sigma)
    for i in problem.fixed_images:
        graph.add(gtsam.PriorFactorPose3(X(i), gtsam.Pose3(mats[i]), prior))

    params = gtsam.LevenbergMarquardtParams()
    params.setMaxIterations(options.max_iterations)
    params.setRelativeErrorTol(options.relative_error_tol)
    if options.verbose:
        params.setVerbosityLM("SUMMARY")
    optimizer = gtsam.LevenbergMarquardtOptimizer(graph, values, params)
    initial_cost = graph.error(values)
    result = optimizer.optimize()
    final_cost = graph.error(result)

    poses = SE3.from_matrix(np.stack([result.atPose3(X(i)).matrix() for i in range(len(problem.cameras))]))
    points = problem.points_world.copy()
    for j in used_points:
        points[j] = result.atPoint3(L(int(j)))
    res1, _ = reprojection_residuals(problem.cameras, poses, points, obs)
    return BAResult(
        T_world_cam=poses,
        points_world=points,
        initial_rmse_px=_rmse(res0[front]),
        final_rmse_px=_rmse(res1[front]),
        initial_cost=float(initial_cost),
        final_cost=float(final_cost),
        iterations=int(optimizer.iterations()),
        num_observations=int(front.sum()),
        dropped_behind_camera=dropped,
        seconds=time.perf_counter() - t0,
        residuals_px=res1,
    )
