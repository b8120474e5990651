"""Sparse convolution (the project's spconv wrapper) vs dense ``F.conv3d`` at several occupancies, printed as JSON.

SubM 3x3x3, 32 -> 32 channels, float32, on a ``--grid``^3 volume with a fraction of voxels occupied; forward and
forward + backward times (median of ``--repeat``), and the peak of the dense input/output memory vs the sparse
features. Usage: python bench/bench_sparse_conv.py [--grid 64] [--threads 1] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from perception.fileio import json_text
from perception.pointnets.sparse import SubMConv3d, sparse_tensor


def _time(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--grid", type=int, default=64)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    C, n = args.channels, args.grid
    rows = []
    for occ in (0.005, 0.02, 0.05, 0.2):
        g = torch.Generator().manual_seed(0)
        mask = torch.rand((n, n, n), generator=g) < occ
        coords = mask.nonzero()
        feats = torch.randn(len(coords), C, generator=g)
        conv = SubMConv3d(C, C, 3, padding=1, bias=False)
        w = conv.weight.detach().permute(0, 4, 1, 2, 3).contiguous()
        dense = torch.zeros((1, C, n, n, n))
        dense[0, :, coords[:, 0], coords[:, 1], coords[:, 2]] = feats.T

        def sparse_fwd(conv=conv, feats=feats, coords=coords):
            with torch.no_grad():
                conv(sparse_tensor(feats, coords, (n, n, n)))

        def sparse_fwd_bwd(conv=conv, feats=feats, coords=coords):
            f = feats.clone().requires_grad_(True)
            conv(sparse_tensor(f, coords, (n, n, n))).features.sum().backward()

        def dense_fwd(dense=dense, w=w):
            with torch.no_grad():
                F.conv3d(dense, w, padding=1)

        def dense_fwd_bwd(dense=dense, w=w):
            d = dense.clone().requires_grad_(True)
            F.conv3d(d, w, padding=1).sum().backward()

        rows.append({
            "occupancy": occ, "voxels": len(coords),
            "sparse_fwd_s": _time(sparse_fwd, args.repeat), "dense_fwd_s": _time(dense_fwd, args.repeat),
            "sparse_fwd_bwd_s": _time(sparse_fwd_bwd, args.repeat),
            "dense_fwd_bwd_s": _time(dense_fwd_bwd, args.repeat),
            "sparse_feature_bytes": len(coords) * C * 4, "dense_tensor_bytes": C * n**3 * 4,
        })  # fmt: skip
    print(json_text({"grid": n, "channels": C, "threads": args.threads, "kernel": 3, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
