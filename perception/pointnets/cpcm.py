"""CPCM's data-side pieces (Liu et al., ICCV 2023; ``lizhaoliu-Lec/CPCM``): weak-label sampling, RegionMask in grid
mode, the masked-consistency divergence and its ramp. The network and training loop build on these.

- :func:`weak_labels`: for every NYU40 label present in a scene, ``max(int(n_c * p), 1)`` random points keep their
  label (CPCM's "percentage ... evenc" rule); the rest become ``ignore``.
- :func:`region_mask`: per axis, ``G`` pivots at ``unique_coords[i * floor(len / G)]`` give ``G^3`` boxes of about
  equal quantile width; ``int(G^3 * ratio)`` boxes are drawn and the features of every voxel inside them set to 0
  (coordinates kept).
- :func:`js_divergence`: CPCM's ``js_divergence_v2`` on logits, ``sum_c p log(p / (m + 1e-4) + 1e-4) +
  q log(q / (m + 1e-4) + 1e-4)`` with ``m = (p + q) / 2``, averaged over points.
- :func:`ramp`: ``exp(-5 (1 - t)^2)`` for ``t`` = progress through the ramp (clipped to [0, 1]).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["js_divergence", "ramp", "region_mask", "weak_labels"]


def weak_labels(labels: np.ndarray, fraction: float, rng: np.random.Generator, ignore: int = 255) -> np.ndarray:
    """Labels with only ``max(int(n_c * fraction), 1)`` points of every present class kept (others ``ignore``)."""
    labels = np.asarray(labels)
    out = np.full_like(labels, ignore)
    for c in np.unique(labels):
        if c == ignore:
            continue
        idx = np.flatnonzero(labels == c)
        k = max(int(len(idx) * fraction), 1)
        pick = rng.choice(idx, k, replace=False)
        out[pick] = c
    return out


def region_mask(coords: torch.Tensor, grid: int = 4, ratio: float = 0.75,
                generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """Boolean (N,) mask of the voxels (integer ``coords`` (N, 3)) inside the ``int(grid^3 * ratio)`` drawn boxes."""
    coords = coords.long()
    box = torch.zeros(len(coords), dtype=torch.long)
    for axis in range(3):
        u = torch.unique(coords[:, axis])
        step = max(len(u) // grid, 1)
        pivots = u[torch.arange(1, grid) * step] if len(u) > grid else u[1:]
        cell = torch.bucketize(coords[:, axis].contiguous(), pivots, right=True).clamp(max=grid - 1)
        box = box * grid + cell
    chosen = torch.randperm(grid**3, generator=generator)[: int(grid**3 * ratio)]
    return torch.isin(box, chosen)


def js_divergence(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """CPCM's Jensen-Shannon-style divergence between two (N, C) logit sets, averaged over points."""
    p = torch.softmax(logits_p, dim=1)
    q = torch.softmax(logits_q, dim=1)
    m = 0.5 * (p + q)
    d = p * torch.log(p / (m + 1e-4) + 1e-4) + q * torch.log(q / (m + 1e-4) + 1e-4)
    return d.sum(dim=1).mean()


def ramp(progress: float) -> float:
    """CPCM's sigmoid-shaped ramp-up weight in (0, 1]."""
    t = min(max(float(progress), 0.0), 1.0)
    return float(np.exp(-5.0 * (1.0 - t) ** 2))
