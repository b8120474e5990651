"""Air-ground stage 1 vs a pycolmap bundle-adjustment baseline on the same problems, printed as JSON.

Problems: :func:`slam.airground.synthetic.make_stage1_problem` (a 20 s UGV drive, LIO drifting 2 mrad / 2 cm per
sweep, 1 px noise). Both methods start from the same LIO-interpolated camera poses and the same landmarks
triangulated from them (:func:`slam.airground.landmarks.triangulate_tracks`).

- sparsepipe: :func:`slam.airground.stage1.run_stage1` (GTSAM, Huber, IMU poses with ``body_P_sensor`` and LIO
  between-factors, gauge = prior on the first keyframe).
- pycolmap: ``pycolmap.bundle_adjustment`` (Ceres, Huber of the same scale) on the same observations -- a purely
  visual BA: no LIO factors, gauge chosen by pycolmap, so its scale is free; compare it after Sim(3) alignment.

Errors are median keyframe camera position (m) and rotation (deg) against ground truth, raw (in the LIO frame) and
after Sim(3) alignment of the camera centres, plus the median landmark error (raw) and the wall time (median of
``--repeats``). Usage: python bench/bench_airground_stage1.py [--seeds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from dataclasses import dataclass

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from perception.datasets.colmap import ColmapImage, ColmapModel, ColmapPoints, model_to_reconstruction  # noqa: E402
from perception.geometry import SE3, align_sim3  # noqa: E402
from perception.metrics.pose import rotation_error_deg  # noqa: E402
from slam.airground.landmarks import triangulate_tracks  # noqa: E402
from slam.airground.stage1 import Stage1Options, Stage1Problem, run_stage1  # noqa: E402
from slam.airground.synthetic import make_stage1_problem  # noqa: E402

OPTS = Stage1Options(between_sigma_rot=4.5e-3, between_sigma_trans=0.045)


@dataclass
class _Cfg:
    loss: str = "huber"
    loss_scale_px: float = 2.0


def accuracy(T_world_cam: SE3, points: np.ndarray, ok: np.ndarray, scenario) -> dict:
    true = scenario.T_world_cam_true
    raw_t = np.linalg.norm(T_world_cam.t - true.t, axis=1)
    raw_r = rotation_error_deg(T_world_cam.R, true.R)
    S = align_sim3(T_world_cam.t, true.t)
    aligned = S.act(T_world_cam.t)
    lm = np.linalg.norm(points[ok] - scenario.points[: len(ok)][ok], axis=1) if ok.any() else np.array([np.nan])
    return {
        "camera_pos_median_m": float(np.median(raw_t)),
        "camera_rot_median_deg": float(np.median(raw_r)),
        "camera_pos_median_m_sim3_aligned": float(np.median(np.linalg.norm(aligned - true.t, axis=1))),
        "landmark_median_m": float(np.median(lm)),
    }


def pycolmap_ba(scenario, T_world_cam0: SE3, points0: np.ndarray, ok: np.ndarray) -> tuple[SE3, np.ndarray, float]:
    from apps.demo import run_pycolmap_ba

    obs = scenario.observations
    use = ok[obs.point_index]
    images = {}
    for k in range(len(T_world_cam0)):
        sel = np.flatnonzero(use & (obs.image_index == k))
        images[k + 1] = ColmapImage(k + 1, f"kf{k:04d}.png", 1, T_world_cam0[k], obs.uv[sel],
                                    obs.point_index[sel].astype(np.int64) + 1)  # fmt: skip
    ids = np.flatnonzero(ok)
    pts = ColmapPoints(ids + 1, points0[ids], np.zeros((len(ids), 3), np.uint8), np.zeros(len(ids)))
    rec = model_to_reconstruction(ColmapModel({1: scenario.camera}, images, pts))
    rec, seconds = run_pycolmap_ba(rec, _Cfg())
    T = SE3.from_matrix(np.stack([np.vstack([rec.images[k + 1].cam_from_world().matrix(), [0, 0, 0, 1]])
                                  for k in range(len(T_world_cam0))])).inverse()  # fmt: skip
    points = np.full_like(points0, np.nan)
    for j in ids:
        points[j] = rec.points3D[int(j) + 1].xyz
    return T, points, seconds


def run_case(seed: int, repeats: int = 1, duration: float = 20.0) -> dict:
    sc = make_stage1_problem(np.random.default_rng(seed), duration=duration)
    T_cam0 = sc.T_world_imu_lio @ sc.T_imu_cam
    n_pts = int(sc.observations.point_index.max()) + 1
    points0, ok0 = triangulate_tracks(T_cam0, sc.camera, sc.observations, n_pts, min_parallax_deg=OPTS.min_parallax_deg,
                                      min_depth=OPTS.min_depth_m, max_depth=OPTS.max_depth_m)  # fmt: skip
    row: dict = {"seed": seed, "keyframes": len(T_cam0), "observations": len(sc.observations),
                 "lio": accuracy(T_cam0, points0, ok0, sc)}  # fmt: skip
    times, res = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = run_stage1(Stage1Problem(sc.T_world_imu_lio, sc.T_imu_cam, sc.camera, sc.observations), OPTS)
        times.append(time.perf_counter() - t0)
    row["sparsepipe_gtsam"] = {**accuracy(res.T_world_cam, res.points, res.point_ok, sc),
                               "seconds_median": statistics.median(times), "timings": res.timings}  # fmt: skip
    times = []
    for _ in range(repeats):
        T, pts, s = pycolmap_ba(sc, copy.deepcopy(T_cam0), points0, ok0)
        times.append(s)
    note = "visual-only BA (no LIO factors); its scale is free, see the Sim(3)-aligned error"
    row["pycolmap_ceres"] = {**accuracy(T, pts, ok0 & np.all(np.isfinite(pts), axis=1), sc),
                             "seconds_median": statistics.median(times), "note": note}  # fmt: skip
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="problems (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per method and problem (default: %(default)s)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of driving (default: %(default)s)")
    args = ap.parse_args()
    rows = [run_case(s, args.repeats, args.duration) for s in range(args.seeds)]
    print(json.dumps({"benchmark": "airground_stage1", "cases": rows}, indent=2))


if __name__ == "__main__":
    main()
