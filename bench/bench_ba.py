"""Bundle adjustment: sparsepipe's GTSAM back end vs pycolmap's Ceres adjuster, same input, same run.

Prints one JSON object: per scene size, wall time and accuracy (after Sim(3) alignment to ground truth) of both.
Usage: python bench/bench_ba.py [--sizes 10x300,30x1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from apps.demo import DemoConfig, evaluate, run_pycolmap_ba, synthesize_scene  # noqa: E402
from perception.fileio import json_text  # noqa: E402
from perception.sim.colmap_noise import perturb_reconstruction  # noqa: E402
from slam.factorgraph.ba import BAOptions, bundle_adjust, reprojection_residuals  # noqa: E402
from slam.factorgraph.colmap_bridge import apply_to_reconstruction, problem_from_reconstruction  # noqa: E402


def bench(n_images: int, n_points: int, repeats: int, seed: int) -> dict:
    import copy

    cfg = DemoConfig(num_images=n_images, num_points=n_points, seed=seed)
    gt = synthesize_scene(cfg)
    noisy, _ = perturb_reconstruction(gt, cfg.noise, np.random.default_rng(seed))
    problem, index = problem_from_reconstruction(noisy)
    inlier = np.ones(len(problem.observations), dtype=bool)
    rows = {}
    t_ours, t_peer = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = bundle_adjust(problem, BAOptions(loss="huber", loss_scale=1.0))
        t_ours.append(time.perf_counter() - t0)
        peer_rec, s = run_pycolmap_ba(noisy, cfg)
        t_peer.append(s)
    ours = copy.deepcopy(noisy)
    apply_to_reconstruction(ours, res, index)
    peer_problem, _ = problem_from_reconstruction(peer_rec)
    peer_res, _ = reprojection_residuals(
        peer_problem.cameras, peer_problem.T_world_cam, peer_problem.points_world, problem.observations
    )
    for name, rec, resid, times in (
        ("sparsepipe_gtsam", ours, res.residuals_px, t_ours),
        ("pycolmap_ceres", peer_rec, peer_res, t_peer),
    ):
        acc = evaluate(rec, gt, index, resid, inlier, statistics.median(times))
        rows[name] = {
            "seconds_median": statistics.median(times),
            "seconds_min": min(times),
            "rotation_deg_median": acc.rotation_deg_median,
            "center_err_median": acc.center_err_median,
            "point_rmse": acc.point_rmse,
        }
    return {"images": n_images, "points": n_points, "observations": len(problem.observations), **rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10x300,30x1000", help="IMAGESxPOINTS list (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    results = [bench(n, p, args.repeats, args.seed) for n, p in sizes]
    print(json_text({"benchmark": "bundle_adjustment", "threads": 1, "results": results}, indent=2))


if __name__ == "__main__":
    main()
