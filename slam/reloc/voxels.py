"""Per-landmark descriptor voxel grids (FaVoR, Polizzi et al. WACV 2025): volume rendering of feature descriptors.

Each landmark ``l`` owns a small dense grid over its own axis-aligned box (centre ``c_l``, half side ``h_l``):
``R x R x R`` vertices (R = 3 as in the paper, vertices at ``c + h * (-1, 0, 1)`` per axis, i.e.
``align_corners=True``) storing a density ``sigma`` and a ``C``-channel descriptor ``k0``, both interpolated
trilinearly. A ray ``o + t d`` crossing the box is sampled at ``S`` mid-points between its entry and exit; with
DVGO's alpha ``alpha = 1 - (1 + exp(sigma + shift))^(-delta / h)`` (``shift`` makes ``alpha = alpha_init`` per voxel
spacing at ``sigma = 0``) and transmittance ``T``, the rendered descriptor is

    d = sum_t T_t alpha_t k0(x_t) + T_last        (the leftover transmittance is a "white" background)

clamped to [-1, 1] and L2-normalised when used for matching. Everything is batched over rays of many landmarks.

Training. With the densities fixed, ``d`` is linear in ``k0``: ``d = A k0 + T_last`` where the ray's row
``A (27,)`` collects ``T_t alpha_t`` times the trilinear weight of each vertex. :func:`fit_linear` solves that
least-squares problem per landmark in closed form (ridge towards the landmark's mean descriptor), which is the CPU
shortcut recorded in the research note; :func:`fit_adam` then optionally runs the authors' joint optimisation of
density and descriptors (Adam; MSE + 0.1 entropy of ``T_last`` + 0.2 (1 - cos)).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = ["R", "VoxelGrids", "cell_weights", "fit_adam", "fit_linear", "ray_box", "ray_weights", "render"]

R = 3
"""Vertices per axis of every landmark's grid (the paper's 3 x 3 x 3)."""
CELLS = R**3


@dataclass
class VoxelGrids:
    """The grids of ``L`` landmarks (float32 torch tensors)."""

    centre: torch.Tensor
    """(L, 3) box centres = landmark positions (world frame, metres)."""
    half: torch.Tensor
    """(L,) half side of each box (metres)."""
    density: torch.Tensor
    """(L, 27) raw density per vertex, x-major order (ix * 9 + iy * 3 + iz)."""
    k0: torch.Tensor
    """(L, 27, C) descriptor per vertex."""
    alpha_init: float = 0.01
    samples: int = 16
    """Samples per ray inside the box."""

    def __len__(self) -> int:
        return int(self.centre.shape[0])

    @property
    def dim(self) -> int:
        return int(self.k0.shape[2])

    @property
    def shift(self) -> float:
        return math.log(1.0 / (1.0 - self.alpha_init) - 1.0)

    def bytes_per_landmark(self) -> int:
        """Stored float32 values of one landmark: R^3 (C + 1) grid values, its centre and half side."""
        return 4 * (CELLS * (self.dim + 1) + 3 + 1)


def initial_density(opacity: float, alpha_init: float = 0.01) -> float:
    """Uniform raw density at which a ray through the whole box (two voxel spacings) is ``opacity`` opaque."""
    if not 0.0 < opacity < 1.0:
        raise ValueError(f"opacity must be in (0, 1), got {opacity}")
    softplus = -math.log(1.0 - opacity) / 2.0
    shift = math.log(1.0 / (1.0 - alpha_init) - 1.0)
    return math.log(math.expm1(softplus)) - shift


def ray_box(o: torch.Tensor, d: torch.Tensor, centre: torch.Tensor, half: torch.Tensor, near: float = 1e-3):
    """Slab intersection of rays ``o + t d`` with boxes -> ``(t_in, t_out, hit)``, each (B,)."""
    inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t0 = (centre - half[:, None] - o) * inv
    t1 = (centre + half[:, None] - o) * inv
    t_in = torch.minimum(t0, t1).amax(dim=1).clamp(min=near)
    t_out = torch.maximum(t0, t1).amin(dim=1)
    return t_in, t_out, t_out > t_in


def cell_weights(u: torch.Tensor) -> torch.Tensor:
    """Trilinear weights of the 27 vertices for points ``u`` (..., 3) in grid units [0, R-1] -> (..., 27)."""
    grid = torch.arange(R, dtype=u.dtype, device=u.device)
    hat = (1.0 - (u[..., None] - grid).abs()).clamp(min=0.0)  # (..., 3 axes, R)
    wx, wy, wz = hat[..., 0, :], hat[..., 1, :], hat[..., 2, :]
    return (wx[..., :, None, None] * wy[..., None, :, None] * wz[..., None, None, :]).flatten(-3)


def ray_weights(grids: VoxelGrids, idx: torch.Tensor, o: torch.Tensor, d: torch.Tensor,
                density: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Compositing weights of the rays ``o + t d`` (unit ``d``) through landmark ``idx`` (B,).

    Returns ``A`` (B, 27) with ``d = A @ k0[idx] + T_last``, ``T_last`` (B,) and ``hit`` (B,) bool. Differentiable
    in ``density`` (default ``grids.density``)."""
    dens = grids.density if density is None else density
    c, h = grids.centre[idx], grids.half[idx]
    t_in, t_out, hit = ray_box(o, d, c, h)
    S = grids.samples
    length = (t_out - t_in).clamp(min=0.0)
    frac = (torch.arange(S, dtype=o.dtype) + 0.5) / S
    t = t_in[:, None] + length[:, None] * frac  # (B, S)
    x = o[:, None, :] + t[..., None] * d[:, None, :]
    u = ((x - c[:, None, :]) / h[:, None, None] + 1.0).clamp(0.0, R - 1.0)  # grid units, vertex spacing = h
    cw = cell_weights(u)  # (B, S, 27)
    sigma = torch.einsum("bsk,bk->bs", cw, dens[idx])
    interval = (length / (S * h))[:, None]
    log_keep = -interval * torch.nn.functional.softplus(sigma + grids.shift)  # log(1 - alpha)
    log_T = torch.cumsum(log_keep, dim=1) - log_keep  # exclusive
    alpha = 1.0 - torch.exp(log_keep)
    w = alpha * torch.exp(log_T)
    w = torch.where(hit[:, None], w, torch.zeros_like(w))
    A = torch.einsum("bs,bsk->bk", w, cw)
    T_last = torch.where(hit, torch.exp(log_keep.sum(dim=1)), torch.ones_like(length))
    return A, T_last, hit


def render(grids: VoxelGrids, idx: torch.Tensor, o: torch.Tensor, d: torch.Tensor, chunk: int = 32768) -> torch.Tensor:
    """Rendered descriptors (B, C): clamped to [-1, 1] and L2-normalised (FaVoR's inference output)."""
    out = []
    with torch.no_grad():
        for s in range(0, len(idx), chunk):
            sl = slice(s, s + chunk)
            A, T_last, _ = ray_weights(grids, idx[sl], o[sl], d[sl])
            desc = torch.einsum("bk,bkc->bc", A, grids.k0[idx[sl]]) + T_last[:, None]
            out.append(torch.nn.functional.normalize(desc.clamp(-1.0, 1.0), dim=1))
    return torch.cat(out) if out else grids.k0.new_zeros((0, grids.dim))


def fit_linear(grids: VoxelGrids, idx: torch.Tensor, o: torch.Tensor, d: torch.Tensor, target: torch.Tensor,
               prior: torch.Tensor, ridge: float = 1e-3, chunk: int = 65536) -> dict[str, float]:  # fmt: skip
    """Closed-form descriptors ``k0`` for fixed densities: per landmark, minimise
    ``sum_rays ||A k0 + T_last - y||^2 + ridge * n_rays * ||k0 - prior||^2`` (``prior`` (L, C): the mean descriptor,
    which also fills vertices no ray reaches). Updates ``grids.k0`` in place and returns fit statistics."""
    L = len(grids)
    with torch.no_grad():
        parts = [ray_weights(grids, idx[s : s + chunk], o[s : s + chunk], d[s : s + chunk])
                 for s in range(0, len(idx), chunk)]  # fmt: skip
        A = torch.cat([p[0] for p in parts]) if parts else torch.zeros((0, CELLS))
        T_last = torch.cat([p[1] for p in parts]) if parts else torch.zeros(0)
        hit = torch.cat([p[2] for p in parts]) if parts else torch.zeros(0, dtype=torch.bool)
        i, A, y, T_last = idx[hit], A[hit], target[hit], T_last[hit]
        order = torch.argsort(i, stable=True)
        i, A, y, T_last = i[order], A[order], y[order], T_last[order]
        counts = torch.bincount(i, minlength=L)
        k0 = prior.float()[:, None, :].repeat(1, CELLS, 1)
        eye = torch.eye(CELLS, dtype=torch.float64)
        segments = torch.nonzero(counts).flatten().tolist()
        sizes = counts[counts > 0].tolist()
        mse = cos = 0.0
        for l, A_l, y_l, T_l in zip(segments, A.split(sizes), y.split(sizes), T_last.split(sizes), strict=True):
            Ad = A_l.double()
            r = (y_l - T_l[:, None]).double()
            lam = ridge * len(A_l)
            k = torch.linalg.solve(Ad.T @ Ad + lam * eye, Ad.T @ r + lam * prior[l].double()[None, :])
            k0[l] = k.float()
            pred = A_l @ k0[l] + T_l[:, None]
            mse += float(((pred - y_l) ** 2).mean(dim=1).sum())
            cos += float(torch.nn.functional.cosine_similarity(pred.clamp(-1, 1), y_l, dim=1).sum())
        grids.k0 = k0
    m = max(len(A), 1)
    stats = {"mse": mse / m, "cosine": cos / m, "rays": len(A)}
    log.debug("fit_linear: %d landmarks, %d rays, mean cosine %.3f", L, len(idx), stats["cosine"])
    return stats


def _fit_error(grids, idx, o, d, target, chunk: int = 16384) -> dict[str, float]:
    cos, mse, m = 0.0, 0.0, 0
    for s in range(0, len(idx), chunk):
        sl = slice(s, s + chunk)
        with torch.no_grad():
            A, T_last, hit = ray_weights(grids, idx[sl], o[sl], d[sl])
            desc = torch.einsum("bk,bkc->bc", A, grids.k0[idx[sl]]) + T_last[:, None]
        y = target[sl]
        mse += float(((desc - y) ** 2).mean(dim=1)[hit].sum())
        cos += float(torch.nn.functional.cosine_similarity(desc.clamp(-1, 1), y, dim=1)[hit].sum())
        m += int(hit.sum())
    return {"mse": mse / max(m, 1), "cosine": cos / max(m, 1), "rays": m}


def fit_adam(grids: VoxelGrids, idx: torch.Tensor, o: torch.Tensor, d: torch.Tensor, target: torch.Tensor,
             steps: int = 200, rays_per_step: int = 8192, lr_density: float = 0.1, lr_k0: float = 0.01,
             seed: int = 0, progress=None) -> dict[str, float]:  # fmt: skip
    """The authors' joint optimisation of density and descriptors (Adam, betas 0.9/0.99; loss MSE + 0.1 entropy
    of ``T_last`` + 0.2 (1 - cos)), here over the rays of all landmarks at once. Updates ``grids`` in place."""
    gen = torch.Generator().manual_seed(seed)
    dens = grids.density.clone().requires_grad_(True)
    k0 = grids.k0.clone().requires_grad_(True)
    opt = torch.optim.Adam([{"params": [dens], "lr": lr_density}, {"params": [k0], "lr": lr_k0}], betas=(0.9, 0.99))
    for step in range(steps):
        sel = torch.randint(0, len(idx), (min(rays_per_step, len(idx)),), generator=gen)
        i = idx[sel]
        A, T_last, hit = ray_weights(grids, i, o[sel], d[sel], density=dens)
        desc = torch.einsum("bk,bkc->bc", A, k0[i]) + T_last[:, None]
        y = target[sel]
        h = hit.float()
        mse = (((desc - y) ** 2).mean(dim=1) * h).sum() / h.sum().clamp(min=1)
        Tl = T_last.clamp(1e-6, 1 - 1e-6)
        entropy = ((-(Tl * torch.log(Tl) + (1 - Tl) * torch.log(1 - Tl))) * h).sum() / h.sum().clamp(min=1)
        cos = ((1 - torch.nn.functional.cosine_similarity(desc, y, dim=1)) * h).sum() / h.sum().clamp(min=1)
        loss = mse + 0.1 * entropy + 0.2 * cos
        opt.zero_grad()
        loss.backward()
        opt.step()
        if progress is not None:
            progress(step + 1, steps)
    grids.density = dens.detach()
    grids.k0 = k0.detach()
    return _fit_error(grids, idx, o, d, target)


def grids_from_arrays(centre: np.ndarray, half: np.ndarray, density: np.ndarray, k0: np.ndarray,
                      alpha_init: float = 0.01, samples: int = 16) -> VoxelGrids:  # fmt: skip
    return VoxelGrids(torch.from_numpy(np.asarray(centre, np.float32)), torch.from_numpy(np.asarray(half, np.float32)),
                      torch.from_numpy(np.asarray(density, np.float32)), torch.from_numpy(np.asarray(k0, np.float32)),
                      alpha_init, samples)  # fmt: skip
