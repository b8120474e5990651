"""DSVT's set partition on hand-made windows: the paper's rank mapping floor(k n / (S L)), both sort orders."""

from __future__ import annotations

import math

import torch

from perception.pointnets.dsvt_sets import in_group_rank, set_partition, window_index


def _window(n: int, shape=(12, 12, 1), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    cells = torch.randperm(shape[0] * shape[1], generator=g)[:n]
    return torch.stack([cells % shape[0], cells // shape[0], torch.zeros(n, dtype=torch.long)], 1)  # x, y, z


def test_rank_mapping_of_the_paper() -> None:
    L = 36
    for n in (1, 10, 36, 37, 50, 72, 100, 144):
        xyz = _window(n, seed=n)
        part = set_partition(torch.zeros(n, dtype=torch.long), xyz, (12, 12, 1), L)
        S = math.ceil(n / L)
        assert part.voxel_inds.shape == (2, S, L)
        for o, key in enumerate([xyz[:, 1] * 12 + xyz[:, 0], xyz[:, 0] * 12 + xyz[:, 1]]):  # "y" then "x" sort
            order = torch.argsort(key)  # rank -> voxel
            expect = torch.tensor([int(order[(k * n) // (S * L)]) for k in range(S * L)]).reshape(S, L)
            assert torch.equal(part.voxel_inds[o], expect)
            # every voxel appears, repeats are adjacent and masked, slot 0 never is
            assert set(part.voxel_inds[o].flatten().tolist()) == set(range(n))
            m = part.mask[o]
            assert not m[:, 0].any()
            flat = part.voxel_inds[o]
            assert torch.equal(m[:, 1:], flat[:, 1:] == flat[:, :-1])
    # the two toy cases of the research note: 50 voxels -> 2 sets of ranks 0-24 and 25-49; 10 -> each voxel 3-4 times
    xyz = _window(50, seed=1)
    p = set_partition(torch.zeros(50, dtype=torch.long), xyz, (12, 12, 1), 36)
    order = torch.argsort(xyz[:, 1] * 12 + xyz[:, 0])
    rank_of = torch.empty(50, dtype=torch.long)
    rank_of[order] = torch.arange(50)
    assert set(rank_of[p.voxel_inds[0, 0]].tolist()) == set(range(25))
    assert set(rank_of[p.voxel_inds[0, 1]].tolist()) == set(range(25, 50))
    p10 = set_partition(torch.zeros(10, dtype=torch.long), _window(10, seed=2), (12, 12, 1), 36)
    reps = torch.bincount(p10.voxel_inds[0].flatten(), minlength=10)
    assert reps.min() == 3 and reps.max() == 4


def test_windows_shift_and_several_windows() -> None:
    # voxels (b, z, y, x) in a 24 x 24 x 1 grid, windows 12 x 12, then shifted by (6, 6)
    coords = torch.tensor([[0, 0, 0, 0], [0, 0, 11, 11], [0, 0, 12, 0], [0, 0, 5, 5], [0, 0, 6, 6], [1, 0, 0, 0]])
    wid, inw = window_index(coords, (24, 24, 1), (12, 12, 1))
    assert wid[0] == wid[1] == wid[3] == wid[4] and wid[2] != wid[0] and wid[5] != wid[0]  # batch separates
    assert inw[1].tolist() == [11, 11, 0]
    wid_s, inw_s = window_index(coords, (24, 24, 1), (12, 12, 1), shift=(6, 6, 0))
    assert wid_s[3] == wid_s[0] and wid_s[4] != wid_s[3]  # (5, 5) and (6, 6) split by the shifted border
    assert inw_s[0].tolist() == [6, 6, 0]
    part = set_partition(wid, inw, (12, 12, 1), 4)
    for s in range(part.voxel_inds.shape[1]):  # each set holds voxels of one window only
        assert len(set(wid[part.voxel_inds[0, s]].tolist())) == 1


def test_in_group_rank_is_stable() -> None:
    g = torch.tensor([2, 0, 2, 1, 0, 2])
    key = torch.tensor([5.0, 1.0, 5.0, 0.0, 0.0, 1.0])
    assert in_group_rank(g, key).tolist() == [1, 1, 2, 0, 0, 0]
