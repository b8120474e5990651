"""DSVT's dynamic set partition (Wang et al., CVPR 2023, Eq. 3; ``dsvt_input_layer.py`` of Haiyang-W/DSVT), in torch.

Voxels ``(b, z, y, x)`` fall into windows ``((x, y, z) + shift) // window_shape``; inside its window a voxel sits at
``(coord + shift) % window_shape``. A window holding ``n`` voxels gets ``S = ceil(n / L)`` sets of ``L`` slots, and
slot ``k`` (``0 <= k < S L``) takes the voxel of rank ``floor(k n / (S L))`` in the window's sort order -- every voxel
at least once, repeats adjacent. Two sort orders give the two rotated partitions: ``"y"`` sorts by
``y * wx * wz + x * wz + z`` (y-major: a set is a run along x), ``"x"`` by ``x * wy * wz + y * wz + z``. A slot that
repeats the slot before it is masked (the attention's key-padding mask); slot 0 of a set never is.

The rank of a voxel inside its window (the CUDA ``ingroup_inds`` op upstream) is computed with a stable argsort.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["SetPartition", "in_group_rank", "set_partition", "window_index"]


def in_group_rank(group: torch.Tensor, key: torch.Tensor | None = None) -> torch.Tensor:
    """Rank (0-based) of every element within its group, in increasing ``key`` (ties: original order)."""
    n = len(group)
    if n == 0:
        return group.new_zeros(0)
    k = torch.zeros(n, dtype=torch.float64) if key is None else key.to(torch.float64)
    order = torch.argsort(k, stable=True)
    order = order[torch.argsort(group[order], stable=True)]  # by group, then key, then index
    g = group[order]
    start = torch.ones(n, dtype=torch.bool)
    start[1:] = g[1:] != g[:-1]
    pos = torch.arange(n)
    first = torch.cummax(torch.where(start, pos, torch.zeros_like(pos)), 0).values
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = pos - first
    return rank


def window_index(coords: torch.Tensor, sparse_shape: tuple[int, int, int], window_shape: tuple[int, int, int],
                 shift: tuple[int, int, int] = (0, 0, 0)) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(window id (N,), in-window coordinates (N, 3) as x, y, z)`` of voxels ``coords`` (N, 4) = (b, z, y, x).

    ``sparse_shape`` and the window shape and shift are (x, y, z) as in DSVT's configs."""
    xyz = coords[:, [3, 2, 1]].long() + torch.tensor(shift)
    win = torch.tensor(window_shape)
    nwin = (torch.tensor(sparse_shape) + torch.tensor(shift)) // win + 1  # windows per axis (with the shift margin)
    w = xyz // win
    wid = ((coords[:, 0].long() * nwin[2] + w[:, 2]) * nwin[1] + w[:, 1]) * nwin[0] + w[:, 0]
    return wid, xyz % win


@dataclass
class SetPartition:
    voxel_inds: torch.Tensor
    """(2, num_sets, L) voxel index of every slot, for the y-sorted and x-sorted partitions."""
    mask: torch.Tensor
    """(2, num_sets, L) True where the slot repeats the previous one (key padding)."""
    set_window: torch.Tensor
    """(num_sets,) window id of every set."""


def set_partition(window_id: torch.Tensor, in_window: torch.Tensor, window_shape: tuple[int, int, int],
                  set_size: int) -> SetPartition:  # fmt: skip
    """The exact DSVT partition of voxels with window ids (N,) and in-window (x, y, z) (N, 3) into sets of
    ``set_size`` slots (see the module docstring). Sets are ordered by window id."""
    L = int(set_size)
    wx, wy, wz = (int(v) for v in window_shape)
    uniq, inv, counts = torch.unique(window_id, return_inverse=True, return_counts=True)
    n_sets = (counts + L - 1) // L  # S per window
    set_start = torch.cumsum(n_sets, 0) - n_sets
    total = int(n_sets.sum())
    set_window_local = torch.repeat_interleave(torch.arange(len(uniq)), n_sets)
    k_in_window = torch.arange(total) - set_start[set_window_local]  # s of each set within its window
    slots = k_in_window[:, None] * L + torch.arange(L)[None]  # k = s L + j
    n = counts[set_window_local][:, None]
    S = n_sets[set_window_local][:, None]
    rank = torch.div(slots * n, S * L, rounding_mode="floor")  # Eq. 3
    x, y, z = in_window[:, 0].long(), in_window[:, 1].long(), in_window[:, 2].long()
    keys = {"y": y * wx * wz + x * wz + z, "x": x * wy * wz + y * wz + z}
    out, masks = [], []
    starts = torch.cumsum(counts, 0) - counts
    for sort in ("y", "x"):
        r = in_group_rank(inv, keys[sort])
        # voxel of rank r in window w: place voxels at (start of window w) + r in a flat table
        table = torch.empty(len(window_id), dtype=torch.long)
        table[starts[inv] + r] = torch.arange(len(window_id))
        inds = table[starts[set_window_local][:, None] + rank]
        m = torch.zeros_like(inds, dtype=torch.bool)
        m[:, 1:] = inds[:, 1:] == inds[:, :-1]
        out.append(inds)
        masks.append(m)
    return SetPartition(torch.stack(out), torch.stack(masks), uniq[set_window_local])
