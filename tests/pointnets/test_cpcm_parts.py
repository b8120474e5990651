"""CPCM's weak labels, RegionMask, divergence and ramp."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.pointnets.cpcm import js_divergence, ramp, region_mask, weak_labels


def test_weak_labels_keep_a_fraction_of_every_class() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([1, 2, 5, 39], [20_000, 5_000, 300, 12])
    w = weak_labels(labels, 0.001, rng)
    kept = {c: int(np.sum(w == c)) for c in (1, 2, 5, 39)}
    assert kept == {1: 20, 2: 5, 5: 1, 39: 1}  # max(int(n p), 1): rare classes keep one point
    assert np.all((w == 255) | (w == labels))


def test_region_mask_boxes_follow_quantiles_and_ratio() -> None:
    g = torch.Generator().manual_seed(0)
    # uneven density along x (most points in x < 10)
    x = torch.cat([torch.randint(0, 10, (6000,), generator=g), torch.randint(10, 200, (2000,), generator=g)])
    yz = [torch.randint(0, 50, (8000,), generator=g), torch.randint(0, 20, (8000,), generator=g)]
    coords = torch.stack([x, *yz], 1)
    gens = [torch.Generator().manual_seed(s) for s in range(40)]
    fractions = [region_mask(coords, 4, 0.75, gen).float().mean().item() for gen in gens]
    assert 0.6 < np.mean(fractions) < 0.9  # 48 of 64 boxes
    m = region_mask(coords, 4, 0.75, torch.Generator().manual_seed(1))
    # a box is all-or-nothing: voxels with identical coordinates share the mask
    key = coords[:, 0] * 10_000 + coords[:, 1] * 100 + coords[:, 2]
    for k in torch.unique(key)[:200]:
        assert len(torch.unique(m[key == k])) == 1
    assert region_mask(coords, 4, 0.0).sum() == 0 and region_mask(coords, 4, 1.0).all()


def test_js_divergence_and_ramp() -> None:
    a = torch.randn(100, 20)
    same = js_divergence(a, a).item()  # ~0 up to CPCM's 1e-4 smoothing terms
    diff = js_divergence(a, torch.randn(100, 20) * 3).item()
    assert abs(same) < 0.02 and diff > 20 * abs(same) and diff > 0.1
    assert js_divergence(a, a * 2).item() == pytest.approx(js_divergence(a * 2, a).item(), rel=1e-5)  # symmetric
    assert ramp(0.0) == pytest.approx(np.exp(-5)) and ramp(1.0) == 1.0 and ramp(2.0) == 1.0
    assert ramp(0.25) < ramp(0.5) < ramp(0.75)
