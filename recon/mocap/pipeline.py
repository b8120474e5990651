"""Kineo (Javerliat et al. 2025): calibration-free metric motion capture from 2D keypoints of unsynchronised,
uncalibrated cameras -- the stages chained, each a plain function the CLI, nodes and tests share.

1. time alignment from the keypoints' motion (:mod:`recon.mocap.sync`), resampling onto one grid;
2. intrinsics from a field-of-view prior or given values (shared or per camera);
3. confidence-driven spatio-temporal sampling (fixed sample counts: calibration cost does not grow with length);
4. graph-based extrinsics; 5. bundle adjustment in stages (:mod:`recon.mocap.calibrate`);
6. triangulation of every frame (confidence-weighted, views that disagree dropped) and metric scale from a
   bone-length prior (subject height);
7. the pairwise reprojection consensus score per joint and frame: with ``e_k = |pi_k(X) - x_k| / f_k``,
   ``s_ij = sqrt(exp(-lam e_i) exp(-lam e_j))`` weighted by ``sqrt(c_i c_j)``, averaged over camera pairs.

The output world frame is z-up (the subject's mean hip-to-shoulder direction), its origin on the floor (lowest
ankle) below the subject's mean position, metric.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from perception.datasets.keypoints2d import Keypoints2D
from perception.errors import InputError
from perception.geometry import SE3, triangulate
from perception.sim.scenarios.mocap import BONES, bone_lengths
from recon.mocap.calibrate import (
    Intrinsics,
    bundle_adjust,
    init_extrinsics,
    normalise_views,
    project_camera,
    projection_matrices,
    sample_observations,
)
from recon.mocap.sync import audio_offsets, estimate_offsets, read_audio, resample, resample_at

log = logging.getLogger(__name__)

__all__ = ["MocapConfig", "MocapResult", "run_mocap"]


@dataclass
class MocapConfig:
    hfov_deg: float = 60.0
    """Horizontal field-of-view prior for the initial focal length (when no focal is given)."""
    focal_search: tuple[float, ...] = tuple(float(a) for a in range(30, 115, 5))
    """Fields of view (deg) also tried for the initial focal: each gets a quick extrinsics + pose-only BA and the
    one with the lowest median reprojection error starts the full calibration (Kineo uses a learned monocular
    estimate, MoGe-2, whose weights cannot be fetched here). Empty: the prior only."""
    focal_px: float | None = None
    """Known focal length (px) for every camera; fixes the focal (no focal stage)."""
    distortion: tuple[float, float, float, float, float] | None = None
    """Known Brown-Conrady k1 k2 p1 p2 k3 for every camera; fixes the distortion (no distortion stage)."""
    shared_intrinsics: bool = True
    """One focal and one distortion for all cameras (identical cameras); False: per camera."""
    estimate_distortion: bool = True
    sync: bool = True
    """Estimate clock offsets from the keypoints (else the timestamps are taken as synchronised)."""
    max_offset_s: float = 5.0
    audio_dir: str | None = None
    """Folder of ``<camera>.wav`` audio tracks (each in its camera's clock): offsets from audio cross-correlation
    instead of keypoint motion (then refined in BA like the others)."""
    refine_offsets: bool = True
    """After calibration, refine each camera's offset (within +-1 frame) by the reprojection error of the joints
    triangulated from the other cameras, then re-run the last BA stage (3+ cameras)."""
    refine_rounds: int = 2
    reference: str | None = None
    """Reference camera (default: the first by name)."""
    fps: float | None = None
    """Output rate (default: the fastest camera's)."""
    min_conf: float = 0.5
    pair_samples: int = 3000
    """Joint samples per camera pair for the essential matrices (Kineo: 3000-4000)."""
    ba_samples: int = 500
    """Joint samples in the bundle adjustment (Kineo: 400-500)."""
    subject_height_m: float = 1.75
    """Height of the subject for the bone-length scale prior."""
    triangulation_min_conf: float = 0.3
    outlier_px: float = 15.0
    """A view whose reprojection error exceeds this is dropped from a joint's triangulation (3+ views)."""
    images: str | None = None
    """Folder with one background image per camera (``<camera>.jpg`` or ``<camera>/images/*.jpg``, e.g. an
    EgoHumans ``exo/`` folder): scene points are triangulated from them with the estimated cameras."""
    consensus_lambda: float = 1.0
    """lambda of the consensus score (Kineo's 1: the score then mostly reflects the confidences)."""
    seed: int = 0

    def validate(self) -> None:
        if not 10.0 <= self.hfov_deg <= 170.0:
            raise InputError(f"mocap: hfov_deg must be in [10, 170], got {self.hfov_deg}")
        if self.ba_samples < 20 or self.pair_samples < 30:
            raise InputError("mocap: ba_samples >= 20 and pair_samples >= 30 are required")
        if self.subject_height_m <= 0.5:
            raise InputError(f"mocap: subject_height_m must be > 0.5, got {self.subject_height_m}")


@dataclass
class MocapResult:
    cameras: list[str]
    intrinsics: list[Intrinsics]
    T_world_cam: list[SE3]
    offsets_s: dict[str, float]
    times_s: np.ndarray
    """(T,) output grid in the reference camera's clock (s)."""
    joints: np.ndarray
    """(T, 17, 3) metres, world frame; NaN where fewer than two views agree."""
    consensus: np.ndarray
    """(T, 17) pairwise reprojection consensus score in [0, 1]."""
    scale: float
    """Metres per unit of the scale-free reconstruction."""
    ba_rms_px: list[float]
    timings_s: dict[str, float] = field(default_factory=dict)
    scene_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    """(N, 3) background points (world frame, metres) when images were given."""
    scene_colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))
    warnings: list[str] = field(default_factory=list)


def _check_inputs(keypoints: dict[str, Keypoints2D]) -> list[str]:
    warnings = []
    if len(keypoints) < 2:
        raise InputError(f"mocap: {len(keypoints)} camera(s); calibration-free capture needs at least 2")
    for name, kp in keypoints.items():
        if len(kp) == 0 or not np.any(kp.confidence > 0):
            raise InputError(f"mocap: camera {name} has no detections (every confidence is 0); remove its file "
                             "or re-run the detector")  # fmt: skip
        c = kp.confidence[kp.confidence > 0]
        if np.all(c == c[0]):
            msg = (f"camera {name}: every confidence is {c[0]:g} (no confidence information); all its detections "
                   "are weighted alike and only the robust losses reject its outliers")  # fmt: skip
            log.warning(msg)
            warnings.append(msg)
    if len(keypoints) == 2:
        msg = ("two cameras: no triplet constrains the scales and each joint has exactly two views, so outliers "
               "cannot be outvoted; expect a less accurate result (s-TE is undefined)")  # fmt: skip
        log.warning(msg)
        warnings.append(msg)
    return warnings


def triangulate_all(T_world_cam: list[SE3], K: list[Intrinsics], xy: np.ndarray, conf: np.ndarray,
                    min_conf: float = 0.3, outlier_px: float = 15.0) -> np.ndarray:  # fmt: skip
    """(T, 17, 3) joints: confidence-weighted DLT + LM per joint and frame; with 3+ views, views whose reprojection
    error exceeds ``outlier_px`` are dropped and the joint re-triangulated (twice)."""
    V, T = xy.shape[:2]
    P = projection_matrices([t.inverse() for t in T_world_cam])
    flat_xy = xy.reshape(V, -1, 2)
    w = np.where((conf.reshape(V, -1) >= min_conf) & np.all(np.isfinite(flat_xy), axis=-1), conf.reshape(V, -1), 0.0)
    x = normalise_views(flat_xy, w > 0, K)
    X = np.full((flat_xy.shape[1], 3), np.nan)
    for _ in range(3):
        Xi, ok = triangulate(P, x, w)
        X = np.where(ok[:, None], Xi, np.nan)
        err = np.full(w.shape, np.inf)
        for v in range(V):
            has = (w[v] > 0) & ok
            if has.any():
                pr = project_camera(X[has], T_world_cam[v], K[v])
                err[v, has] = np.linalg.norm(pr - flat_xy[v, has], axis=1)
        nviews = (w > 0).sum(0)
        worst = np.argmax(np.where(w > 0, err, -1), axis=0)
        drop = (nviews >= 3) & (err[worst, np.arange(w.shape[1])] > outlier_px)
        if not drop.any():
            break
        w[worst[drop], np.flatnonzero(drop)] = 0.0
    return X.reshape(T, 17, 3)


def refine_offsets(keypoints: dict[str, Keypoints2D], names: list[str], offsets: dict[str, float], grid: np.ndarray,
                   T_world_cam: list[SE3], K: list[Intrinsics], xy: np.ndarray, conf: np.ndarray,
                   reference: str) -> dict[str, float]:  # fmt: skip
    """Per camera, the offset (within one frame of the estimate) minimising the median reprojection error of the
    joints triangulated from the other cameras."""
    from scipy.optimize import minimize_scalar

    out = dict(offsets)
    sel = np.arange(0, len(grid), 2)
    for v, n in enumerate(names):
        if n == reference:
            continue
        others = [u for u in range(len(names)) if u != v]
        X = triangulate_all([T_world_cam[u] for u in others], [K[u] for u in others], xy[others][:, sel],
                            conf[others][:, sel]).reshape(-1, 3)  # fmt: skip
        ok = np.all(np.isfinite(X), axis=1)
        if ok.sum() < 50:
            continue
        proj = project_camera(X[ok], T_world_cam[v], K[v])
        period = float(np.median(np.diff(keypoints[n].timestamp_ns))) * 1e-9

        def cost(d: float, n=n, proj=proj, ok=ok) -> float:
            r = resample_at(keypoints[n], offsets[n] + d, grid[sel]).reshape(-1, 3)[ok]
            good = r[:, 2] >= 0.3
            if good.sum() < 30:
                return np.inf
            return float(np.median(np.linalg.norm(r[good, :2] - proj[good], axis=1)))

        res = minimize_scalar(cost, bounds=(-period, period), method="bounded", options={"xatol": period / 200})
        if np.isfinite(res.fun) and res.fun <= cost(0.0):
            out[n] = offsets[n] + float(res.x)
    return out


def track_velocity(xy: np.ndarray, dt: float, window: int = 5) -> np.ndarray:
    """Pixel velocity (..., T, 17, 2) of tracks (V, T, 17, 2) on a grid of step ``dt``: gaps filled linearly, a
    ``window``-sample moving average (detector noise is not motion), central differences; NaN where the joint is
    missing."""
    from scipy.ndimage import uniform_filter1d

    V, T = xy.shape[:2]
    flat = np.moveaxis(xy, 1, -1).reshape(-1, T)  # (V * 17 * 2, T)
    out = np.full_like(flat, np.nan)
    t = np.arange(T)
    for r in range(len(flat)):
        ok = np.isfinite(flat[r])
        if ok.sum() < 3:
            continue
        filled = np.interp(t, t[ok], flat[r, ok])
        v = np.gradient(uniform_filter1d(filled, window, mode="nearest"), dt)
        out[r] = np.where(ok, v, np.nan)
    return np.moveaxis(out.reshape(V, 17, 2, T), -1, 1)


def metric_scale(joints: np.ndarray, height_m: float) -> float:
    """Metres per unit: median over bones of (prior length / median measured length)."""
    prior = bone_lengths(height_m)
    ratios = []
    for bone, pairs in BONES.items():
        lengths = np.concatenate([np.linalg.norm(joints[:, a] - joints[:, b], axis=1) for a, b in pairs])
        lengths = lengths[np.isfinite(lengths)]
        if len(lengths) >= 10:
            ratios.append(prior[bone] / np.median(lengths))
    if not ratios:
        raise InputError("mocap: no bone is measured in enough frames to set the metric scale")
    return float(np.median(ratios))


def consensus_score(joints: np.ndarray, T_world_cam: list[SE3], K: list[Intrinsics], xy: np.ndarray,
                    conf: np.ndarray, lam: float = 1.0) -> np.ndarray:  # fmt: skip
    """(T, 17) pairwise reprojection consensus (see the module docstring); 0 where fewer than two views see it."""
    V, T = xy.shape[:2]
    Xf = joints.reshape(-1, 3)
    ok = np.all(np.isfinite(Xf), axis=1)
    s = np.full((V, Xf.shape[0]), np.nan)
    c = conf.reshape(V, -1)
    for v in range(V):
        k = K[v]
        pr = project_camera(Xf[ok], T_world_cam[v], k)
        e = np.linalg.norm(pr - xy[v].reshape(-1, 2)[ok], axis=1) / k.f
        s[v, ok] = np.exp(-lam * e)
    num = np.zeros(Xf.shape[0])
    cnt = np.zeros(Xf.shape[0])
    for i in range(V):
        for j in range(i + 1, V):
            both = np.isfinite(s[i]) & np.isfinite(s[j]) & (c[i] > 0) & (c[j] > 0)
            num[both] += np.sqrt(s[i, both] * s[j, both]) * np.sqrt(c[i, both] * c[j, both])
            cnt[both] += 1
    return np.where(cnt > 0, num / np.maximum(cnt, 1), 0.0).reshape(T, 17)


def _orient(joints: np.ndarray) -> SE3:
    """``T_out_world``: z along the mean hip-to-shoulder direction, origin on the floor below the mean hip."""
    hip = 0.5 * (joints[:, 11] + joints[:, 12])
    sh = 0.5 * (joints[:, 5] + joints[:, 6])
    up = np.nanmean(sh - hip, axis=0)
    if not np.all(np.isfinite(up)) or np.linalg.norm(up) < 1e-9:
        return SE3.identity()
    z = up / np.linalg.norm(up)
    x = np.cross([0.0, 1.0, 0.0], z) if abs(z[1]) < 0.9 else np.cross([1.0, 0.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # rows: new axes in world coordinates
    centre = np.nanmean(hip, axis=0)
    floor = np.nanmin(np.concatenate([joints[:, 15], joints[:, 16]]) @ z)
    t = -R @ centre
    t[2] = -floor
    return SE3(R, t)


def run_mocap(keypoints: dict[str, Keypoints2D], cfg: MocapConfig | None = None, progress=None) -> MocapResult:
    """All stages on the cameras' 2D keypoints (``{camera: Keypoints2D}``)."""
    cfg = cfg or MocapConfig()
    cfg.validate()
    warnings = _check_inputs(keypoints)
    names = sorted(keypoints)
    timings: dict[str, float] = {}

    def stage(name: str, t0: float) -> float:
        timings[name] = time.perf_counter() - t0
        if progress is not None:
            progress(name)
        return time.perf_counter()

    t = time.perf_counter()
    if cfg.sync and cfg.audio_dir is not None:
        offsets = audio_offsets(read_audio(cfg.audio_dir, names), cfg.reference, cfg.max_offset_s)
    elif cfg.sync:
        offsets = estimate_offsets(keypoints, cfg.reference, cfg.max_offset_s).offsets_s
    else:
        offsets = {n: 0.0 for n in names}
    grid, res = resample(keypoints, offsets, cfg.fps)
    xy = np.stack([res[n][..., :2] for n in names])
    conf = np.stack([res[n][..., 2] for n in names])
    t = stage("time alignment", t)

    def intrinsics(hfov: float) -> list[Intrinsics]:
        K = []
        for n in names:
            w, h = keypoints[n].image_size
            k = Intrinsics.from_fov(w, h, hfov)
            if cfg.focal_px is not None:
                k.f = float(cfg.focal_px)
            if cfg.distortion is not None:
                k.dist = np.asarray(cfg.distortion, np.float64)
            K.append(k)
        return K

    rng = np.random.default_rng(cfg.seed)
    hfov = cfg.hfov_deg
    if cfg.focal_px is None and cfg.focal_search:
        quick = sample_observations(conf, 150, cfg.min_conf, rng=np.random.default_rng(cfg.seed))

        def cost(cand: float) -> float:
            Kc = intrinsics(cand)
            try:
                Tc = init_extrinsics(xy, conf, Kc, 800, cfg.min_conf, seed=cfg.seed, names=names, refine=False)
                q = bundle_adjust(Tc, Kc, xy, conf, quick, shared=cfg.shared_intrinsics, stages=("poses",),
                                  max_nfev=30)  # fmt: skip
            except InputError:
                return np.inf
            log.debug("focal search: hfov %.2f deg -> median %.2f px", cand, q.median_px)
            return q.median_px

        fovs = sorted({cfg.hfov_deg, *cfg.focal_search})
        costs = [cost(c) for c in fovs]
        k = int(np.argmin(costs))
        if np.isfinite(costs[k]):
            from scipy.optimize import minimize_scalar

            lo, hi = fovs[max(k - 1, 0)], fovs[min(k + 1, len(fovs) - 1)]
            hfov = fovs[k]
            if hi > lo:
                r = minimize_scalar(cost, bounds=(lo, hi), method="bounded", options={"xatol": 0.2, "maxiter": 12})
                if r.fun < costs[k]:
                    hfov = float(r.x)
    K = intrinsics(hfov)
    T = init_extrinsics(xy, conf, K, cfg.pair_samples, cfg.min_conf, seed=cfg.seed, names=names)
    t = stage("extrinsics", t)
    samples = sample_observations(conf, cfg.ba_samples, cfg.min_conf, rng=rng)
    stages = ["poses"]
    if cfg.focal_px is None:
        stages.append("focal")
    if cfg.estimate_distortion and cfg.distortion is None:
        stages.append("distortion")
    ba = bundle_adjust(T, K, xy, conf, samples, shared=cfg.shared_intrinsics, stages=tuple(stages))
    t = stage("bundle adjustment", t)

    if cfg.sync and cfg.refine_offsets and len(names) >= 3:
        dt_grid = float(np.median(np.diff(grid)))
        for it in range(cfg.refine_rounds):
            # clock offsets as BA unknowns (observation moved along its track's velocity), then resample
            velocity = track_velocity(xy, dt_grid)
            samples = sample_observations(conf, cfg.ba_samples, cfg.min_conf,
                                          rng=np.random.default_rng(cfg.seed + 1 + it))  # fmt: skip
            ba = bundle_adjust(ba.T_world_cam, ba.intrinsics, xy, conf, samples, shared=cfg.shared_intrinsics,
                               stages=(stages[-1],), velocity=velocity)  # fmt: skip
            ref = cfg.reference or names[0]
            offsets = {n: offsets[n] + float(ba.dt_s[v]) - float(ba.dt_s[names.index(ref)])
                       for v, n in enumerate(names)}  # fmt: skip
            grid, res = resample(keypoints, offsets, cfg.fps)
            xy = np.stack([res[n][..., :2] for n in names])
            conf = np.stack([res[n][..., 2] for n in names])
        t = stage("time offset refinement", t)
    joints = triangulate_all(ba.T_world_cam, ba.intrinsics, xy, conf, cfg.triangulation_min_conf, cfg.outlier_px)
    s = metric_scale(joints, cfg.subject_height_m)
    joints = joints * s
    Ts = [SE3(Tw.R, Tw.t * s) for Tw in ba.T_world_cam]
    T_out = _orient(joints)
    joints = T_out.act(joints.reshape(-1, 3)).reshape(joints.shape)
    Ts = [T_out @ Tw for Tw in Ts]
    score = consensus_score(joints, Ts, ba.intrinsics, xy, conf, cfg.consensus_lambda)
    t = stage("triangulation and scale", t)
    result = MocapResult(names, ba.intrinsics, Ts, offsets, grid, joints, score, s, ba.stage_rms_px,
                         timings_s=timings, warnings=warnings)  # fmt: skip
    if cfg.images is not None:
        from recon.mocap.scene import find_images, scene_points

        result.scene_points, result.scene_colors = scene_points(find_images(cfg.images, names), names,
                                                                ba.intrinsics, Ts)  # fmt: skip
        stage("scene points", t)
    return result
