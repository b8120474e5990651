"""Bundle-adjust a synthetic COLMAP scene with sparsepipe's GTSAM back end and compare it, in the same run, with
pycolmap's Ceres bundle adjuster on the same noisy input.

Stages: synthesise a scene with exact ground truth (pycolmap) -> corrupt it (pixel noise, outlier observations,
perturbed poses and points) -> robust BA in GTSAM (ours) and in pycolmap (peer) -> Sim(3)-align each to ground
truth and measure pose / point / reprojection errors -> write a COLMAP model, a TUM trajectory, a PLY point
cloud, metrics.json, config.yaml and a Rerun recording.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from apps.config import PipelineConfig, save_resolved_config
from perception.errors import InputError
from perception.fileio import atomic_dir, atomic_path, atomic_write_json
from perception.geometry import SE3, umeyama
from perception.metrics.pose import rotation_error_deg
from perception.sim.colmap_noise import ColmapNoise, perturb_reconstruction
from slam.factorgraph.ba import BAOptions, BAResult, bundle_adjust, reprojection_residuals
from slam.factorgraph.colmap_bridge import ColmapIndex, apply_to_reconstruction, problem_from_reconstruction

log = logging.getLogger(__name__)


@dataclass
class DemoConfig(PipelineConfig):
    out: Path = Path("out/demo_ba")
    """Output folder."""
    num_images: int = 12
    """Images in the synthetic scene (one camera each)."""
    num_points: int = 400
    """3D points in the synthetic scene."""
    noise: ColmapNoise = field(default_factory=lambda: ColmapNoise(outlier_ratio=0.05))
    """How the ground truth is corrupted into the initial estimate."""
    loss: Literal["huber", "cauchy", "l2"] = "huber"
    """Robust kernel used by both bundle adjusters."""
    loss_scale_px: float = 1.0
    """Kernel scale in pixels, the same for both adjusters."""
    compare_pycolmap: bool = True
    """Also run pycolmap's bundle adjuster on the same input (the peer)."""


@dataclass
class Scene:
    gt: object  # pycolmap.Reconstruction
    noisy: object  # pycolmap.Reconstruction


@dataclass
class Accuracy:
    rotation_deg_median: float
    rotation_deg_max: float
    center_err_median: float
    center_err_max: float
    point_rmse: float
    reprojection_rmse_px: float
    inlier_reprojection_rmse_px: float
    seconds: float


def synthesize_scene(cfg: DemoConfig) -> object:
    """A pycolmap synthetic scene: ``num_images`` single-camera rigs looking at ``num_points`` points."""
    import pycolmap

    if cfg.num_images < 3 or cfg.num_points < 20:
        raise InputError("demo: need --num-images >= 3 and --num-points >= 20")
    pycolmap.set_random_seed(cfg.seed)
    opts = pycolmap.SyntheticDatasetOptions()
    opts.num_rigs = cfg.num_images
    opts.num_cameras_per_rig = 1
    opts.num_frames_per_rig = 1
    opts.num_points3D = cfg.num_points
    opts.camera_model_id = pycolmap.CameraModelId.OPENCV
    opts.camera_params = [800.0, 810.0, 512.0, 384.0, -0.12, 0.03, 1e-3, -5e-4]
    return pycolmap.synthesize_dataset(opts)


def _poses_points(rec, index: ColmapIndex) -> tuple[SE3, np.ndarray]:
    T_cw = [np.vstack([rec.images[i].cam_from_world().matrix(), [0, 0, 0, 1]]) for i in index.image_ids]
    pts = np.array([rec.points3D[p].xyz for p in index.point3D_ids])
    return SE3.from_matrix(np.stack(T_cw)).inverse(), pts


def evaluate(est_rec, gt_rec, index: ColmapIndex, residuals_px: np.ndarray, inlier: np.ndarray, seconds: float):
    """Sim(3)-align camera centres to ground truth, then compare rotations, centres and points."""
    T_est, P_est = _poses_points(est_rec, index)
    T_gt, P_gt = _poses_points(gt_rec, index)
    S = umeyama(T_est.t, T_gt.t, with_scale=True)
    centres = S.act(T_est.t)
    R_al = S.R @ T_est.R
    rot = rotation_error_deg(R_al, T_gt.R)
    cerr = np.linalg.norm(centres - T_gt.t, axis=1)
    perr = np.linalg.norm(S.act(P_est) - P_gt, axis=1)
    r = residuals_px[np.isfinite(residuals_px)]
    ri = residuals_px[inlier & np.isfinite(residuals_px)]
    return Accuracy(
        rotation_deg_median=float(np.median(rot)),
        rotation_deg_max=float(np.max(rot)),
        center_err_median=float(np.median(cerr)),
        center_err_max=float(np.max(cerr)),
        point_rmse=float(np.sqrt(np.mean(perr**2))),
        reprojection_rmse_px=float(np.sqrt(np.mean(r**2))),
        inlier_reprojection_rmse_px=float(np.sqrt(np.mean(ri**2))),
        seconds=seconds,
    )


def run_pycolmap_ba(rec, cfg: DemoConfig) -> tuple[object, float]:
    import pycolmap

    rec = copy.deepcopy(rec)
    pycolmap.logging.minloglevel = max(pycolmap.logging.minloglevel, 1)  # glog INFO lines would flood the terminal
    opts = pycolmap.BundleAdjustmentOptions()
    opts.refine_focal_length = False
    opts.refine_principal_point = False
    opts.refine_extra_params = False
    opts.refine_sensor_from_rig = False
    opts.print_summary = False
    loss = {"huber": "HUBER", "cauchy": "CAUCHY", "l2": "TRIVIAL"}[cfg.loss]
    opts.ceres.loss_function_type = getattr(pycolmap.LossFunctionType, loss)
    opts.ceres.loss_function_scale = cfg.loss_scale_px
    opts.ceres.solver_options.num_threads = 1
    t0 = time.perf_counter()
    with _native_stderr_to_debug_log():
        pycolmap.bundle_adjustment(rec, opts)
    return rec, time.perf_counter() - t0


@contextlib.contextmanager
def _native_stderr_to_debug_log():
    """pycolmap's glog INFO lines ignore its logging flags; route the C++ stderr to the debug log instead."""
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines():
                log.debug("pycolmap: %s", line)


def write_outputs(out: Path, rec, result: BAResult, index: ColmapIndex) -> dict[str, Path]:
    import open3d as o3d

    from slam.trajectory import Trajectory
    from slam.trajectory.io import write_tum

    paths = {}
    with atomic_dir(out / "sparse") as d:
        rec.write(str(d))
    paths["colmap_model"] = out / "sparse"
    # Synthetic images have no clock: stamp them 0.1 s apart in image-id order.
    stamps = (np.arange(len(index.image_ids)) * 100_000_000).astype(np.int64)
    write_tum(out / "trajectory.tum", Trajectory(stamps, result.T_world_cam))
    paths["trajectory"] = out / "trajectory.tum"
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(result.points_world))
    with atomic_path(out / "points.ply") as tmp:
        if not o3d.io.write_point_cloud(str(tmp), pcd):
            raise OSError(f"could not write {out / 'points.ply'}")
    paths["points"] = out / "points.ply"
    return paths


def log_to_rerun(spec, result: BAResult, problem, T_gt: SE3, P_gt: np.ndarray) -> None:
    """Ground truth and the bundle-adjusted scene: points, trajectories, cameras, per-image reprojection error."""
    from apps.viz import blueprint_for, recording
    from apps.viz.log import log_camera, log_points, log_scalars, log_trajectory, log_world, set_time

    with recording("sparsepipe-demo", spec, blueprint_for("demo")) as rec:
        log_world(rec, "world", up="-y")
        log_points(rec, "world/gt/points", P_gt, colors=(120, 120, 120), static=True)
        log_trajectory(rec, "world/gt/trajectory", None, T_gt, color=(80, 200, 80), static=True)
        log_points(rec, "world/ba/points", result.points_world, colors=(230, 120, 40), static=True)
        log_trajectory(rec, "world/ba/trajectory", None, result.T_world_cam, color=(230, 120, 40), static=True)
        for i, cam in enumerate(problem.cameras):
            set_time(rec, frame=i)
            log_camera(rec, "world/camera", result.T_world_cam[i], cam)
            sel = problem.observations.image_index == i
            log_scalars(rec, "metrics/reprojection_px_median", float(np.median(result.residuals_px[sel])))


def run(cfg: DemoConfig) -> int:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from apps.viz import parse_rerun_spec

    out = Path(cfg.out)
    spec = parse_rerun_spec(cfg.rerun, out)  # a bad --rerun fails before any work
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    stages = ["synthesise", "corrupt", "GTSAM BA", "pycolmap BA", "evaluate", "write"]
    with Progress(transient=True) as progress:
        task = progress.add_task("demo", total=len(stages))

        def step(name: str) -> None:
            progress.update(task, description=name)

        step("synthesise scene")
        gt = synthesize_scene(cfg)
        progress.advance(task)
        step("corrupt observations and initial estimate")
        noisy, outliers = perturb_reconstruction(gt, cfg.noise, rng)
        problem, index = problem_from_reconstruction(noisy, fixed_images=cfg.noise.fixed_images)
        inlier = np.array(
            [
                (iid, k) not in outliers
                for iid in index.image_ids
                for k, p in enumerate(noisy.images[iid].points2D)
                if p.has_point3D()
            ]
        )
        progress.advance(task)
        step("bundle adjustment (GTSAM)")
        options = BAOptions(loss=cfg.loss, loss_scale=cfg.loss_scale_px, sigma_px=1.0)
        result = bundle_adjust(problem, options)
        ours = copy.deepcopy(noisy)
        apply_to_reconstruction(ours, result, index)
        progress.advance(task)
        step("bundle adjustment (pycolmap peer)")
        if cfg.compare_pycolmap:
            peer_rec, peer_s = run_pycolmap_ba(noisy, cfg)
            peer_problem, _ = problem_from_reconstruction(peer_rec)
            peer_res, _ = reprojection_residuals(
                peer_problem.cameras,
                peer_problem.T_world_cam,
                peer_problem.points_world,
                problem.observations,
            )
        progress.advance(task)
        step("evaluate against ground truth")
        init_res, _ = reprojection_residuals(
            problem.cameras, problem.T_world_cam, problem.points_world, problem.observations
        )
        acc = {
            "initial": evaluate(noisy, gt, index, init_res, inlier, 0.0),
            "gtsam": evaluate(ours, gt, index, result.residuals_px, inlier, result.seconds),
        }
        if cfg.compare_pycolmap:
            acc["pycolmap"] = evaluate(peer_rec, gt, index, peer_res, inlier, peer_s)
        progress.advance(task)
        step("write outputs")
        paths = write_outputs(out, ours, result, index)
        T_gt, P_gt = _poses_points(gt, index)
        log_to_rerun(spec, result, problem, T_gt, P_gt)
        metrics = {
            "scene": {
                "images": len(index.image_ids),
                "points": len(index.point3D_ids),
                "observations": len(problem.observations),
                "outliers": int((~inlier).sum()),
            },
            "gtsam": {
                "iterations": result.iterations,
                "initial_cost": result.initial_cost,
                "final_cost": result.final_cost,
                "dropped_behind_camera": result.dropped_behind_camera,
            },
            "accuracy": {k: asdict(v) for k, v in acc.items()},
            "outputs": {k: str(v) for k, v in paths.items()},
        }
        atomic_write_json(out / "metrics.json", metrics)
        save_resolved_config(cfg, "demo")
        progress.advance(task)

    table = Table(title=f"sparsepipe demo — {len(index.image_ids)} images, {len(index.point3D_ids)} points")
    cols = ["", "rot median (deg)", "centre median", "point RMSE", "inlier reproj RMSE (px)", "time (s)"]
    for c in cols:
        table.add_column(c)
    for name, a in acc.items():
        table.add_row(
            name,
            f"{a.rotation_deg_median:.4f}",
            f"{a.center_err_median:.4f}",
            f"{a.point_rmse:.4f}",
            f"{a.inlier_reprojection_rmse_px:.3f}",
            f"{a.seconds:.3f}",
        )
    console = Console()
    console.print(table)
    console.print(f"outputs in {out}/: sparse/ trajectory.tum points.ply metrics.json config.yaml run.rrd")
    return 0
