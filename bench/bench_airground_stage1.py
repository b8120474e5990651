"""Air-ground stage 1 vs a pycolmap bundle-adjustment baseline on the same problems, printed as JSON.

Problems: :func:`slam.airground.synthetic.make_stage1_problem` (a UGV driving past facades for ``--duration`` s,
LIO at 10 Hz drifting 2 mrad / 2 cm per sweep, camera with a lever arm, 2 Hz keyframes, 1 px noise). Both methods
start from the same LIO-interpolated camera poses and the same landmarks triangulated from them
(:func:`slam.airground.landmarks.triangulate_tracks` with the options run_stage1 uses).

- ``lio``: the initial estimate (LIO-interpolated camera poses, landmarks triangulated from them).
- ``sparsepipe_gtsam``: :func:`slam.airground.stage1.run_stage1` (GTSAM LM, Huber 2 px, IMU poses with
  ``body_P_sensor``, LIO between-factors, gauge = prior on the first keyframe's LIO pose).
- ``pycolmap_ceres``: ``pycolmap.bundle_adjustment`` (Ceres, Huber 2 px, intrinsics fixed) on the same observations
  (pixels +0.5 for COLMAP's corner convention), called through ``apps.demo.run_pycolmap_ba``. A purely visual BA:
  no LIO factors. Its gauge is pycolmap's own (``TWO_CAMS_FROM_WORLD``): the first keyframe's pose and the x
  coordinate of the second keyframe's ``cam_from_world`` translation stay at their LIO values, so its metric scale
  comes from the LIO over the first 0.5 s only; compare it after Sim(3) alignment.

Accuracy: median keyframe camera position (m) and rotation (deg) error against ground truth, raw (in the LIO frame)
and after Sim(3) / SE(3) alignment of the camera centres (Umeyama), median landmark error raw and after the same
Sim(3). Wall time: median of ``--repeats`` runs, per step (triangulate, build, optimize) and in total; the pycolmap
total includes the same triangulation, building the ``pycolmap.Reconstruction`` and reading it back.

Usage: python bench/bench_airground_stage1.py [--seeds 3] [--repeats 3] [--duration 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from perception.datasets.colmap import ColmapImage, ColmapModel, ColmapPoints, model_to_reconstruction  # noqa: E402
from perception.errors import InputError  # noqa: E402
from perception.fileio import json_text  # noqa: E402
from perception.geometry import SE3, align_se3, align_sim3  # noqa: E402
from perception.metrics.pose import rotation_error_deg  # noqa: E402
from slam.airground.landmarks import triangulate_tracks  # noqa: E402
from slam.airground.stage1 import Stage1Options, run_stage1  # noqa: E402
from slam.airground.synthetic import Stage1Scenario, make_stage1_problem  # noqa: E402

# between-factor sigmas: sqrt(5 sweeps per keyframe) x the simulated per-sweep drift
OPTS = Stage1Options(between_sigma_rot=4.5e-3, between_sigma_trans=0.045)
DRIFT = (2e-3, 0.02)
"""LIO random-walk step per 10 Hz sweep (rad, m), as in make_stage1_problem's default."""
PIXEL_NOISE = 1.0
MIN_DURATION_S = 10.0
"""The drive is straight for 8 s; shorter runs have collinear camera centres, which Sim(3) alignment cannot use."""
PYCOLMAP_NOTE = (
    "pure visual BA (pycolmap.bundle_adjustment, Ceres, Huber 2 px, intrinsics fixed): no LIO between-factors; "
    "gauge by pycolmap (TWO_CAMS_FROM_WORLD): first keyframe pose and the x coordinate of the second keyframe's "
    "cam_from_world translation held at their LIO values, so its metric scale comes from the LIO's first 0.5 s; "
    "compare the Sim(3)-aligned errors"
)


def accuracy(T_world_cam: SE3, points: np.ndarray, ok: np.ndarray, scenario: Stage1Scenario) -> dict[str, float]:
    """Median camera position / rotation errors (raw, Sim(3)- and SE(3)-aligned) and landmark errors."""
    true = scenario.T_world_cam_true
    S = align_sim3(T_world_cam.t, true.t)
    E = align_se3(T_world_cam.t, true.t)
    ok = ok & np.all(np.isfinite(points), axis=1)
    pts, pts_true = points[ok], scenario.points[: len(ok)][ok]
    nan = np.array([np.nan])
    return {
        "camera_pos_median_m": float(np.median(np.linalg.norm(T_world_cam.t - true.t, axis=1))),
        "camera_rot_median_deg": float(np.median(rotation_error_deg(T_world_cam.R, true.R))),
        "camera_pos_median_m_sim3_aligned": float(np.median(np.linalg.norm(S.act(T_world_cam.t) - true.t, axis=1))),
        "camera_rot_median_deg_sim3_aligned": float(np.median(rotation_error_deg(S.R @ T_world_cam.R, true.R))),
        "camera_pos_median_m_se3_aligned": float(np.median(np.linalg.norm(E.act(T_world_cam.t) - true.t, axis=1))),
        "sim3_scale": float(S.s),
        "landmark_median_m": float(np.median(np.linalg.norm(pts - pts_true, axis=1) if len(pts) else nan)),
        "landmark_median_m_sim3_aligned": float(
            np.median(np.linalg.norm(S.act(pts) - pts_true, axis=1) if len(pts) else nan)
        ),
    }


def initial_landmarks(scenario: Stage1Scenario, T_world_cam0: SE3) -> tuple[np.ndarray, np.ndarray]:
    """The landmarks run_stage1 starts from: triangulated from the LIO camera poses with its options."""
    obs = scenario.observations
    return triangulate_tracks(
        T_world_cam0, scenario.camera, obs, int(obs.point_index.max()) + 1, min_views=OPTS.min_views,
        min_parallax_deg=OPTS.min_parallax_deg, min_depth=OPTS.min_depth_m, max_depth=OPTS.max_depth_m,
    )  # fmt: skip


def pycolmap_ba(scenario: Stage1Scenario, T_world_cam0: SE3) -> tuple[SE3, np.ndarray, np.ndarray, dict, int]:
    """Triangulate as run_stage1 does, then pycolmap BA -> (T_world_cam, points, ok, timings, observations used)."""
    from apps.demo import DemoConfig, run_pycolmap_ba

    t0 = time.perf_counter()
    points0, ok = initial_landmarks(scenario, T_world_cam0)
    t_tri = time.perf_counter()
    obs = scenario.observations
    use = ok[obs.point_index]
    images = {}
    for k in range(len(T_world_cam0)):
        sel = np.flatnonzero(use & (obs.image_index == k))
        images[k + 1] = ColmapImage(k + 1, f"kf{k:04d}.png", 1, T_world_cam0[k], obs.uv[sel],
                                    obs.point_index[sel].astype(np.int64) + 1)  # fmt: skip
    ids = np.flatnonzero(ok)
    pts = ColmapPoints(ids + 1, points0[ids], np.zeros((len(ids), 3), np.uint8), np.zeros(len(ids)))
    rec = model_to_reconstruction(ColmapModel({1: scenario.camera}, images, pts))  # keypoints +0.5 here
    t_build = time.perf_counter()
    rec, seconds = run_pycolmap_ba(rec, DemoConfig(loss="huber", loss_scale_px=OPTS.loss_scale_px))
    T = SE3.from_matrix(np.stack([np.vstack([rec.images[k + 1].cam_from_world().matrix(), [0, 0, 0, 1]])
                                  for k in range(len(T_world_cam0))])).inverse()  # fmt: skip
    points = np.full_like(points0, np.nan)
    for j in ids:
        points[j] = rec.points3D[int(j) + 1].xyz
    t_end = time.perf_counter()
    timings = {"triangulate": t_tri - t0, "build": t_build - t_tri, "optimize": seconds, "total": t_end - t0}
    return T, points, ok, timings, int(use.sum())


def _median_timings(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def run_case(seed: int, repeats: int = 1, duration: float = 20.0, n_landmarks: int = 1500) -> dict:
    """One problem: accuracy of the LIO, sparsepipe stage 1 and pycolmap BA, and their median timings."""
    if repeats < 1:
        raise InputError(f"repeats: expected >= 1, got {repeats}")
    if not duration >= MIN_DURATION_S:
        raise InputError(
            f"duration: expected >= {MIN_DURATION_S} s (a straight drive cannot be aligned), got {duration}"
        )
    sc = make_stage1_problem(
        np.random.default_rng(seed), duration=duration, drift=DRIFT, pix=PIXEL_NOISE, n_landmarks=n_landmarks
    )
    T_cam0 = sc.T_world_imu_lio @ sc.T_imu_cam
    points0, ok0 = initial_landmarks(sc, T_cam0)
    row: dict = {"seed": seed, "keyframes": len(T_cam0), "observations": len(sc.observations),
                 "landmarks_triangulated": int(ok0.sum()), "lio": accuracy(T_cam0, points0, ok0, sc)}  # fmt: skip
    runs, res = [], None
    for _ in range(repeats):
        res = run_stage1(sc.problem, OPTS)
        runs.append(res.timings)
    tm = _median_timings(runs)
    row["sparsepipe_gtsam"] = {
        **accuracy(res.T_world_cam, res.points, res.point_ok, sc),
        "observations_used": res.num_observations,
        "seconds_median": tm["total"],
        "optimize_seconds_median": tm["optimize"],
        "timings": tm,
    }
    runs = []
    for _ in range(repeats):
        T, pts, ok, timings, n_used = pycolmap_ba(sc, T_cam0)
        runs.append(timings)
    tm = _median_timings(runs)
    row["pycolmap_ceres"] = {
        **accuracy(T, pts, ok, sc),
        "observations_used": n_used,
        "seconds_median": tm["total"],
        "optimize_seconds_median": tm["optimize"],
        "timings": tm,
        "note": PYCOLMAP_NOTE,
    }
    return row


def summarize(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per method, the median over problems of every accuracy number and of the total time."""
    out = {}
    for method in ("lio", "sparsepipe_gtsam", "pycolmap_ceres"):
        keys = [k for k, v in rows[0][method].items() if isinstance(v, float)]
        out[method] = {k: float(np.median([r[method][k] for r in rows])) for k in keys}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="problems, seeds 0..N-1 (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per method and problem (default: %(default)s)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of driving (default: %(default)s)")
    args = ap.parse_args()
    if args.seeds < 1:
        ap.error(f"--seeds: expected >= 1, got {args.seeds}")
    if args.repeats < 1:
        ap.error(f"--repeats: expected >= 1, got {args.repeats}")
    if not args.duration >= MIN_DURATION_S:
        ap.error(f"--duration: expected >= {MIN_DURATION_S} s (the drive turns after 8 s), got {args.duration}")
    rows = [run_case(s, args.repeats, args.duration) for s in range(args.seeds)]
    out = {
        "benchmark": "airground_stage1",
        "settings": {
            "seeds": args.seeds,
            "repeats": args.repeats,
            "duration_s": args.duration,
            "lio_drift_per_sweep": {"rad": DRIFT[0], "m": DRIFT[1]},
            "pixel_noise_px": PIXEL_NOISE,
            "robust_loss": f"huber {OPTS.loss_scale_px} px (both)",
        },  # fmt: skip
        "note": "pycolmap_ceres: " + PYCOLMAP_NOTE,
        "summary": summarize(rows),
        "cases": rows,
    }
    print(json_text(out, indent=2))


if __name__ == "__main__":
    main()
