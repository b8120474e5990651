"""DSVT-P forward latency vs pillar count, printed as JSON, beside a no-transformer peer in the same run.

For each pillar count the input is one frame with that many occupied 0.32 m pillars (clustered in blobs, as objects
and facades are, 4 points each) of the CPU detector (:func:`perception.pointnets.detect3d.cpu_model_config`).
Reported per count (median of ``--repeat`` eval-mode runs, one thread): the whole detector, its stages (pillar VFE,
set partition, DSVT blocks, BEV backbone + head), the number of sets per window configuration, and the peer: the
same detector with the transformer removed (VFE -> BEV scatter -> BEV backbone -> head, i.e. a PointPillars-style
baseline), so the column "dsvt_overhead_ms" is what the sparse transformer costs. ``--upstream`` adds DSVT-P's
upstream width (d = 192, 4 blocks) for the backbone alone.
Usage: python bench/bench_dsvt.py [--counts 1000,2000,5000,10000,20000] [--repeat 3] [--threads 1] [--upstream]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from perception.fileio import json_text
from perception.pointnets.detect3d import cpu_model_config
from perception.pointnets.dsvt import DSVTConfig, DSVTDetector


def _points(cfg: DSVTConfig, n_pillars: int, rng: np.random.Generator) -> torch.Tensor:
    nx, ny, _ = cfg.grid_size
    r, v = cfg.point_cloud_range, cfg.voxel_size
    cells: set[tuple[int, int]] = set()
    while len(cells) < n_pillars:  # blobs of up to 40 pillars around random centres
        cx, cy = rng.integers(0, nx), rng.integers(0, ny)
        for dx, dy in rng.integers(-4, 5, (40, 2)):
            if 0 <= cx + dx < nx and 0 <= cy + dy < ny and len(cells) < n_pillars:
                cells.add((int(cx + dx), int(cy + dy)))
    c = np.array(sorted(cells), dtype=np.float64).repeat(4, axis=0)
    xy = (c + rng.random(c.shape)) * np.array(v[:2]) + np.array(r[:2])
    z = rng.uniform(r[2], r[5], len(c))
    return torch.from_numpy(np.column_stack([xy, z, rng.random(len(c))]).astype(np.float32))


def _median(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * sorted(ts)[len(ts) // 2]


@torch.no_grad()
def _stages(model: DSVTDetector, pts: torch.Tensor, repeat: int) -> dict:
    batch = model.batch_points([pts])
    feats, coords = model.vfe(batch)
    sets = model.backbone.input_layer(coords)
    x = model.backbone(feats, coords)
    bev = model.scatter(x, coords, 1)
    partition_ms = _median(lambda: model.backbone.input_layer(coords), repeat)
    return {
        "pillars": len(coords),
        "sets_per_window_config": [None if p is None else int(p.voxel_inds.shape[1]) for p in sets.partitions],
        "total_ms": _median(lambda: model([pts]), repeat),
        "vfe_ms": _median(lambda: model.vfe(batch), repeat),
        "set_partition_ms": partition_ms,
        "dsvt_blocks_ms": _median(lambda: model.backbone(feats, coords), repeat) - partition_ms,
        "bev_and_head_ms": _median(lambda: model.head(model.bev(bev)), repeat),
        "peer_no_transformer_ms": _median(lambda: model.head(model.bev(model.scatter(*model.vfe(batch), 1))), repeat),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--counts", default="1000,2000,5000,10000,20000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--upstream", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = cpu_model_config()
    model = DSVTDetector(cfg).eval()
    rows = []
    for n in (int(c) for c in args.counts.split(",")):
        row = _stages(model, _points(cfg, n, rng), args.repeat)
        row["dsvt_overhead_ms"] = row["total_ms"] - row["peer_no_transformer_ms"]
        if args.upstream:
            up = DSVTDetector(DSVTConfig(**{**cfg.__dict__, "d_model": 192, "dim_feedforward": 384, "num_blocks": 4}))
            up.eval()
            with torch.no_grad():
                f, c = up.vfe(up.batch_points([_points(cfg, n, rng)]))
                row["upstream_width_backbone_ms"] = _median(lambda: up.backbone(f, c), args.repeat)  # noqa: B023
        rows.append(row)
    params = sum(p.numel() for p in model.parameters())
    print(json_text({"model": "DSVT-P (CPU config)", "parameters": params, "threads": args.threads,
                      "grid": list(cfg.grid_size), "rows": rows}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
