"""Air-ground stage 2 vs a pycolmap baseline on the same problems, printed as JSON.

sparsepipe: PnP-RANSAC initialisation + robust GTSAM over all UAV keyframes (one relative transform).
pycolmap baseline: ``estimate_and_refine_absolute_pose`` (LO-RANSAC + refinement) on each keyframe separately, then
the keyframe with most inliers gives ``T = T_ugvworld_cam @ inv(T_uavworld_cam)``.
Usage: python bench/bench_airground_stage2.py [--seeds 3] [--wrong 0.0,0.3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pycolmap  # noqa: E402

from perception.camera.convert import to_pycolmap  # noqa: E402
from perception.fileio import json_text  # noqa: E402
from perception.geometry import SE3  # noqa: E402
from perception.metrics.pose import rotation_error_deg  # noqa: E402
from slam.airground.stage2 import estimate_relative_pose  # noqa: E402
from slam.airground.synthetic import make_stage2_problem  # noqa: E402


def pycolmap_baseline(kfs, pts) -> SE3:
    best, best_n = None, -1
    for kf in kfs:
        cam = to_pycolmap(kf.camera)
        opts = pycolmap.AbsolutePoseEstimationOptions()
        opts.ransac.max_error = 4.0
        r = pycolmap.estimate_and_refine_absolute_pose(kf.uv + 0.5, pts[kf.landmark_idx], cam, opts)
        if r is None:
            continue
        n = int(r["num_inliers"])
        if n > best_n:
            M = np.vstack([r["cam_from_world"].matrix(), [0, 0, 0, 1]])
            best, best_n = SE3.from_matrix(M).inverse() @ kf.T_uavworld_cam.inverse(), n
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=3, help="problems per setting (default: %(default)s)")
    ap.add_argument("--wrong", default="0.0,0.3", help="fractions of wrong matches (default: %(default)s)")
    args = ap.parse_args()
    rows = []
    for wrong in [float(w) for w in args.wrong.split(",")]:
        for seed in range(args.seeds):
            kfs, pts, T_true = make_stage2_problem(np.random.default_rng(seed), wrong=wrong)
            for name, fn in (
                ("sparsepipe_gtsam", lambda k, p: estimate_relative_pose(k, p).T_ugvworld_uavworld),
                ("pycolmap_absolute_pose", pycolmap_baseline),
            ):
                t0 = time.perf_counter()
                T = fn(kfs, pts)
                dt = time.perf_counter() - t0
                rows.append(
                    {
                        "method": name,
                        "wrong_matches": wrong,
                        "seed": seed,
                        "seconds": dt,
                        "translation_err_m": float(np.linalg.norm(T.t - T_true.t)),
                        "rotation_err_deg": float(rotation_error_deg(T.R, T_true.R)),
                    }
                )
    summary = {}
    for r in rows:
        s = summary.setdefault(f"{r['method']}@{r['wrong_matches']}", {"t": [], "r": [], "s": []})
        s["t"].append(r["translation_err_m"])
        s["r"].append(r["rotation_err_deg"])
        s["s"].append(r["seconds"])
    out = {
        k: {
            "median_translation_err_m": float(np.median(v["t"])),
            "median_rotation_err_deg": float(np.median(v["r"])),
            "median_seconds": float(np.median(v["s"])),
        }
        for k, v in summary.items()
    }
    print(json_text({"benchmark": "airground_stage2", "summary": out, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
