"""Stage 2: the UGV-UAV relative transform ``T_ugvworld_uavworld`` from UAV keyframes matched to UGV landmarks.

Each UAV keyframe ``k`` brings its own SLAM pose ``T_uavworld_cam_k`` (from the UAV's odometry) and 2D-3D
correspondences between its keypoints and stage-1 landmarks (in the UGV world). The UAV camera in the UGV world is
``T_ugvworld_uavworld @ T_uavworld_cam_k``, so one unknown transform explains every keyframe.

1. Initialisation: PnP-RANSAC (poselib, on undistorted bearings so any camera model works) per keyframe gives
   ``T_ugvworld_cam_k`` and a candidate ``T = T_ugvworld_cam_k @ inv(T_uavworld_cam_k)``; every candidate is scored
   on *all* correspondences of all keyframes and the best one is kept.
2. Refinement in GTSAM: one ``Pose3`` variable ``T``; for every correspondence a ``GenericProjectionFactor`` with the
   keyframe's real calibration and ``body_P_sensor = T_uavworld_cam_k`` (the factor composes ``T @ body_P_sensor``,
   exactly the UAV camera in the UGV world); the landmarks are held by tight priors (``landmark_sigma``, 1e-6 m:
   effectively fixed, and unlike ``NonlinearEqualityPoint3`` it keeps ``Marginals`` well posed). Robust Cauchy by
   default; Huber, plain L2 or GTSAM's graduated non-convexity (``loss="gnc"``: ``GncLMOptimizer`` with a
   truncated-least-squares schedule, the landmark priors marked as known inliers) as options. Correspondences
   behind the initial camera are dropped and counted (GTSAM gives them zero Jacobians).
3. Covariance of ``T`` from ``gtsam.Marginals``: 6x6 in gtsam's tangent order (rotation, translation), as a right
   perturbation ``T_true = T @ Exp(xi)``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import gtsam
import numpy as np
from gtsam.symbol_shorthand import L, T

from perception.camera import CameraModel
from perception.camera.convert import to_gtsam
from perception.errors import InputError
from perception.geometry import SE3
from slam.airground.landmarks import LandmarkMap
from slam.factorgraph.ba import PROJECTION_FACTORS, pixel_noise
from slam.pnp import pnp_ransac

log = logging.getLogger(__name__)


@dataclass
class UavKeyframeMatches:
    """One UAV keyframe: its SLAM pose, camera and 2D-3D matches to the landmark map."""

    kf_id: int
    T_uavworld_cam: SE3
    camera: CameraModel
    uv: np.ndarray
    """(M, 2) keypoints (OpenCV pixel centres)."""
    landmark_idx: np.ndarray
    """(M,) indices into the landmark array."""

    def __post_init__(self) -> None:
        self.uv = np.asarray(self.uv, dtype=np.float64).reshape(-1, 2)
        self.landmark_idx = np.asarray(self.landmark_idx, dtype=np.int64).reshape(-1)
        if len(self.uv) != len(self.landmark_idx):
            raise InputError(f"UAV keyframe {self.kf_id}: {len(self.uv)} keypoints but {len(self.landmark_idx)} "
                             "landmark indices")  # fmt: skip
        if not np.all(np.isfinite(self.T_uavworld_cam.matrix())):
            raise InputError(f"UAV keyframe {self.kf_id}: its SLAM pose contains NaN/inf")


@dataclass
class Stage2Options:
    loss: Literal["cauchy", "huber", "l2", "gnc"] = "cauchy"
    """Robust kernel on the pixel residual (plain least squares: 'l2'; 'gnc': GNC-TLS over an L2 model)."""
    loss_scale_px: float = 2.0
    sigma_px: float = 1.0
    ransac: bool = True
    """Initialise with per-keyframe PnP-RANSAC (otherwise from ``init``)."""
    ransac_threshold_px: float = 4.0
    min_inliers: int = 12
    """A keyframe's PnP result becomes a candidate only with at least this many inliers."""
    max_iterations: int = 100
    landmark_sigma: float = 1e-6
    """Sigma (m) of the priors holding the stage-1 landmarks."""
    gnc_inlier_px: float = 3.0
    """GNC: residuals beyond this many pixels are outliers at convergence."""
    seed: int = 0

    def validate(self) -> None:
        if self.loss not in ("cauchy", "huber", "l2", "gnc"):
            raise InputError(f"stage 2: loss must be 'cauchy', 'huber', 'l2' or 'gnc', got {self.loss!r}")
        for name in ("loss_scale_px", "sigma_px", "ransac_threshold_px", "landmark_sigma", "gnc_inlier_px"):
            v = getattr(self, name)
            if not (v > 0):
                raise InputError(f"stage 2: {name} must be > 0, got {v}")


@dataclass
class Stage2Result:
    T_ugvworld_uavworld: SE3
    covariance: np.ndarray
    """6x6, tangent order (rotation, translation), right perturbation."""
    T_init: SE3
    init_inliers: int = 0
    """Correspondences (over all keyframes) within ``ransac_threshold_px`` of the chosen PnP candidate."""
    inliers_per_keyframe: dict[int, int] = field(default_factory=dict)
    """Correspondences within ``ransac_threshold_px`` after refinement, per keyframe id."""
    num_correspondences: int = 0
    dropped_behind_camera: int = 0
    inlier_rmse_px: float = float("nan")
    iterations: int = 0
    seconds: float = 0.0


def reprojection_errors(T: SE3, keyframes: list[UavKeyframeMatches], points: np.ndarray) -> list[np.ndarray]:
    """Pixel errors of every correspondence (inf behind the camera) for the relative transform ``T``."""
    out = []
    for kf in keyframes:
        T_cam_world = (T @ kf.T_uavworld_cam).inverse()
        p = T_cam_world.act(points[kf.landmark_idx])
        uv, valid = kf.camera.project(p)
        err = np.linalg.norm(uv - kf.uv, axis=1)
        out.append(np.where(valid & (p[:, 2] > 0), err, np.inf))
    return out


def initialise(keyframes: list[UavKeyframeMatches], points: np.ndarray, opts: Stage2Options) -> tuple[SE3, int]:
    """The per-keyframe PnP candidate with the most inliers over all keyframes, and that inlier count."""
    best, best_score = None, -1
    for kf in keyframes:
        res = pnp_ransac(kf.camera, kf.uv, points[kf.landmark_idx], opts.ransac_threshold_px, opts.seed)
        if res is None or res[1].sum() < opts.min_inliers:
            continue
        cand = res[0] @ kf.T_uavworld_cam.inverse()
        score = sum(int((e < opts.ransac_threshold_px).sum()) for e in reprojection_errors(cand, keyframes, points))
        if score > best_score:
            best, best_score = cand, score
    if best is None:
        raise InputError(
            f"stage 2: no UAV keyframe has a PnP solution with >= {opts.min_inliers} inliers; "
            "the UAV does not see the UGV's landmarks (check loop closure / matching)"
        )
    return best, best_score


def estimate_relative_pose(
    keyframes: list[UavKeyframeMatches],
    landmarks: np.ndarray | LandmarkMap,
    options: Stage2Options | None = None,
    init: SE3 | None = None,
) -> Stage2Result:
    """``T_ugvworld_uavworld`` from all verified UAV keyframes (see the module docstring).

    ``landmarks`` is the (L, 3) array (or the :class:`LandmarkMap`) that the keyframes' ``landmark_idx`` index.
    """
    opts = options or Stage2Options()
    opts.validate()
    t0 = time.perf_counter()
    points = np.asarray(landmarks.points if isinstance(landmarks, LandmarkMap) else landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or not np.all(np.isfinite(points)):
        raise InputError(f"stage 2: landmarks must be finite (L, 3), got shape {points.shape}")
    if not keyframes:
        raise InputError("stage 2: no UAV keyframes with matches")
    for kf in keyframes:
        if len(kf.landmark_idx) and (kf.landmark_idx.min() < 0 or kf.landmark_idx.max() >= len(points)):
            raise InputError(f"stage 2: UAV keyframe {kf.kf_id} refers to a landmark outside [0, {len(points)})")
    if opts.ransac:
        T_init, init_inliers = initialise(keyframes, points, opts)
    elif init is not None:
        T_init = init
        init_inliers = sum(int((e < opts.ransac_threshold_px).sum()) for e in reprojection_errors(init, keyframes,
                                                                                                   points))  # fmt: skip
    else:
        raise InputError("stage 2: give an initial transform when RANSAC initialisation is off")

    errs0 = reprojection_errors(T_init, keyframes, points)
    graph, values = gtsam.NonlinearFactorGraph(), gtsam.Values()
    values.insert(T(0), gtsam.Pose3(T_init.matrix()))
    gnc = opts.loss == "gnc"
    noise = pixel_noise("l2" if gnc else opts.loss, opts.loss_scale_px / opts.sigma_px, opts.sigma_px)
    prior = gtsam.noiseModel.Isotropic.Sigma(3, opts.landmark_sigma)
    used: set[int] = set()
    dropped = n = 0
    for kf, e0 in zip(keyframes, errs0, strict=True):
        K = to_gtsam(kf.camera)
        factor = PROJECTION_FACTORS[type(K)]
        body = gtsam.Pose3(kf.T_uavworld_cam.matrix())
        for uv, j, e in zip(kf.uv, kf.landmark_idx, e0, strict=True):
            if not np.isfinite(e):
                dropped += 1
                continue
            j = int(j)
            if j not in used:
                used.add(j)
                values.insert(L(j), points[j])
                graph.add(gtsam.PriorFactorPoint3(L(j), points[j], prior))
            graph.add(factor(uv, noise, T(0), L(j), K, body))
            n += 1
    if n < 3:
        raise InputError(f"stage 2: only {n} correspondence(s) in front of the cameras; need at least 3")

    lm = gtsam.LevenbergMarquardtParams()
    lm.setMaxIterations(opts.max_iterations)
    if gnc:
        gp = gtsam.GncLMParams(lm)
        gp.setLossType(gtsam.GncLossType.TLS)
        gp.setKnownInliers([i for i in range(graph.size()) if isinstance(graph.at(i), gtsam.PriorFactorPoint3)])
        optimizer = gtsam.GncLMOptimizer(graph, values, gp)
        # cost of a factor is 0.5 * (r / sigma)^2: the inlier bound in pixels as a cost
        optimizer.setInlierCostThresholds(0.5 * (opts.gnc_inlier_px / opts.sigma_px) ** 2)
        result = optimizer.optimize()
        iterations = -1  # GNC runs several LM solves; it does not report a single iteration count
        # the covariance must not count the factors GNC rejected
        w = np.asarray(optimizer.getWeights())
        kept = gtsam.NonlinearFactorGraph()
        for i in range(graph.size()):
            if w[i] > 0.5:
                kept.add(graph.at(i))
        graph = kept
    else:
        optimizer = gtsam.LevenbergMarquardtOptimizer(graph, values, lm)
        result = optimizer.optimize()
        iterations = int(optimizer.iterations())
    T_est = SE3.from_matrix(result.atPose3(T(0)).matrix())
    try:
        cov = np.asarray(gtsam.Marginals(graph, result).marginalCovariance(T(0)))
    except RuntimeError as e:  # indeterminant system: too few constraints
        raise InputError(f"stage 2: the relative pose is not constrained by the matches ({e})") from None

    errs = reprojection_errors(T_est, keyframes, points)
    inl = np.concatenate([e[e < opts.ransac_threshold_px] for e in errs]) if errs else np.zeros(0)
    result_ = Stage2Result(
        T_ugvworld_uavworld=T_est,
        covariance=cov,
        T_init=T_init,
        init_inliers=init_inliers,
        inliers_per_keyframe={
            kf.kf_id: int((e < opts.ransac_threshold_px).sum()) for kf, e in zip(keyframes, errs, strict=True)
        },
        num_correspondences=n,
        dropped_behind_camera=dropped,
        inlier_rmse_px=float(np.sqrt(np.mean(inl**2))) if len(inl) else float("nan"),
        iterations=iterations,
        seconds=time.perf_counter() - t0,
    )  # fmt: skip
    log.info("stage 2: %d keyframes, %d correspondences, %d inliers, %.3f s", len(keyframes), n, len(inl),
             result_.seconds)  # fmt: skip
    return result_
