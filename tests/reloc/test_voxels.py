"""Descriptor voxel grids: ray/box geometry, compositing, the closed-form fit and the joint optimisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slam.reloc.voxels import (
    CELLS,
    VoxelGrids,
    cell_weights,
    fit_adam,
    fit_linear,
    initial_density,
    ray_box,
    ray_weights,
    render,
)


def _grids(L: int = 1, C: int = 8, opacity: float = 0.9, seed: int = 0) -> VoxelGrids:
    g = torch.Generator().manual_seed(seed)
    centre = torch.randn(L, 3, generator=g)
    half = 0.05 + 0.1 * torch.rand(L, generator=g)
    density = torch.full((L, CELLS), initial_density(opacity))
    k0 = torch.nn.functional.normalize(torch.randn(L, CELLS, C, generator=g), dim=2)
    return VoxelGrids(centre, half, density, k0, samples=32)


def _rays_at(grids: VoxelGrids, n: int, seed: int = 0, spread: float = 0.5, dist: float = 2.0):
    """Rays from cameras around each landmark (directions within ``spread`` rad of +z) through points near it."""
    rng = np.random.default_rng(seed)
    L = len(grids)
    idx = rng.integers(0, L, n)
    c = grids.centre.numpy()[idx]
    h = grids.half.numpy()[idx]
    th = rng.uniform(-spread, spread, (n, 2))
    view = np.stack([np.sin(th[:, 0]), np.sin(th[:, 1]), np.cos(th[:, 0]) * np.cos(th[:, 1])], 1)
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    o = c + dist * view
    target = c + rng.uniform(-0.5, 0.5, (n, 3)) * h[:, None]
    d = target - o
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    f = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
    return torch.from_numpy(idx), f(o), f(d), view


def test_ray_box_matches_the_slab_formula_and_misses() -> None:
    o = torch.tensor([[0.0, 0.0, -5.0], [0.0, 3.0, -5.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    t_in, t_out, hit = ray_box(o, d, torch.zeros(2, 3), torch.ones(2))
    assert hit.tolist() == [True, False]
    assert t_in[0].item() == pytest.approx(4.0) and t_out[0].item() == pytest.approx(6.0)


def test_trilinear_weights_form_a_partition_of_unity_and_reproduce_linear_fields() -> None:
    u = torch.rand(100, 3, dtype=torch.float64) * 2.0
    w = cell_weights(u)
    assert torch.allclose(w.sum(1), torch.ones(100, dtype=torch.float64))
    grid = torch.stack(torch.meshgrid(*[torch.arange(3.0, dtype=torch.float64)] * 3, indexing="ij"), -1).reshape(27, 3)
    f = grid @ torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64) + 0.7  # a linear field at the vertices
    assert torch.allclose(w @ f, u @ torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64) + 0.7)


def test_uniform_density_gives_the_requested_opacity_and_white_background() -> None:
    grids = _grids(opacity=0.9)
    c = grids.centre[0]
    o = (c + torch.tensor([0.0, 0.0, -3.0]))[None]
    d = torch.tensor([[0.0, 0.0, 1.0]])
    A, T_last, hit = ray_weights(grids, torch.tensor([0]), o, d)
    assert hit.item() and T_last.item() == pytest.approx(0.1, rel=1e-4)  # the axis ray crosses the whole box
    assert A.sum().item() == pytest.approx(0.9, rel=1e-4)  # compositing weights sum to 1 - T_last
    grids.k0[:] = torch.tensor([1.0, -1.0, 0.5, 0, 0, 0, 0, 0])  # a constant descriptor v
    raw = A @ grids.k0[0] + T_last[:, None]  # = 0.9 v + 0.1
    assert torch.allclose(raw[0], 0.9 * grids.k0[0, 0] + 0.1, atol=1e-5)
    miss = render(grids, torch.tensor([0]), o + torch.tensor([[5.0, 0.0, 0.0]]), d)
    assert torch.allclose(miss, torch.full((1, 8), 8**-0.5))  # nothing hit: the white background, normalised


def test_front_vertices_dominate_so_the_descriptor_depends_on_the_viewing_direction() -> None:
    grids = _grids(opacity=0.98)
    grids.k0[:] = 0.0
    grids.k0[0, :9, 0] = 1.0  # ix = 0 face (-x side) says channel 0
    grids.k0[0, 18:, 1] = 1.0  # ix = 2 face (+x side) says channel 1
    c = grids.centre[0]
    from_minus = render(grids, torch.tensor([0]), (c - torch.tensor([3.0, 0, 0]))[None], torch.tensor([[1.0, 0, 0]]))
    from_plus = render(grids, torch.tensor([0]), (c + torch.tensor([3.0, 0, 0]))[None], torch.tensor([[-1.0, 0, 0]]))
    assert from_minus[0, 0] > 2 * from_minus[0, 1] and from_plus[0, 1] > 2 * from_plus[0, 0]


def test_closed_form_fit_recovers_a_rendered_grid() -> None:
    truth = _grids(L=20, C=8, seed=1)
    idx, o, d, _ = _rays_at(truth, 6000, seed=2, spread=1.0)
    with torch.no_grad():
        A, T_last, hit = ray_weights(truth, idx, o, d)
        target = torch.einsum("bk,bkc->bc", A, truth.k0[idx]) + T_last[:, None]
    assert hit.all()
    est = VoxelGrids(truth.centre, truth.half, truth.density, torch.zeros_like(truth.k0), samples=truth.samples)
    prior = torch.nn.functional.normalize(truth.k0.mean(1), dim=1)
    stats = fit_linear(est, idx, o, d, target, prior, ridge=1e-6)
    assert stats["mse"] < 1e-6 and stats["cosine"] > 0.9999
    held_idx, ho, hd, _ = _rays_at(truth, 500, seed=3, spread=1.0)  # unseen rays render as the truth does
    cos = (render(est, held_idx, ho, hd) * render(truth, held_idx, ho, hd)).sum(1)
    assert cos.min().item() > 0.995 and cos.mean().item() > 0.9995


def test_view_dependent_targets_are_rendered_better_than_the_mean_after_fitting() -> None:
    """Targets that rotate with the viewing direction: the fitted grid beats the landmark's mean descriptor, and
    the authors' joint optimisation (density too) does not lose what the closed-form fit found."""
    torch.manual_seed(0)
    grids = _grids(L=10, C=8, opacity=0.98, seed=4)
    idx, o, d, view = _rays_at(grids, 8000, seed=5, spread=0.8)
    base = np.random.default_rng(6).standard_normal((10, 2, 8))
    a = (view[:, 0] + 1) / 2  # 0 .. 1 from -x to +x viewing
    y = (1 - a)[:, None] * base[idx.numpy(), 0] + a[:, None] * base[idx.numpy(), 1]
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    target = torch.from_numpy(y.astype(np.float32))
    mean = torch.zeros(10, 8).index_add_(0, idx, target)
    mean = torch.nn.functional.normalize(mean, dim=1)
    mean_cos = torch.nn.functional.cosine_similarity(mean[idx], target).mean().item()
    lin = fit_linear(grids, idx, o, d, target, mean, ridge=1e-3)
    assert lin["cosine"] > mean_cos + 0.05
    adam = fit_adam(grids, idx, o, d, target, steps=60, rays_per_step=2048, seed=0)
    assert adam["cosine"] > lin["cosine"] - 0.01
    assert grids.bytes_per_landmark() == 4 * (27 * 9 + 4)
