"""DSVT-P (Wang et al., "DSVT: Dynamic Sparse Voxel Transformer with Rotated Sets", CVPR 2023) with a CenterPoint
head, in plain PyTorch for the CPU (no spconv, torch_scatter or CUDA ops).

Pipeline (upstream ``Haiyang-W/DSVT``, ``dsvt_plain_1f_onestage.yaml``; research note ``pointnets.md`` section 1):

1. :class:`DynamicPillarVFE` -- dynamic pillars (``torch.unique`` over ``(batch, y, x)`` keys), point features
   ``x y z i`` + offset to the pillar's point mean + offset to the pillar centre, two PFNLayerV2 (Linear, BN, ReLU,
   per-pillar max; the first concatenates point feature and pillar max).
2. :class:`DSVT` -- the sparse transformer over the pillars. :class:`DSVTInputLayer` builds, for the two window
   configurations (``window_shape`` unshifted and ``window_shape * hybrid_factor`` shifted by ``shift``), the exact
   Eq. 3 set partition of :mod:`perception.pointnets.dsvt_sets` (sets sorted along y and along x, key-padding masks)
   and one learned positional embedding per block. Block ``b`` uses window configuration ``b % 2``; its first layer
   attends within the y-sorted sets, its second within the x-sorted ones.
3. :class:`PointPillarScatter` -> dense BEV map, :class:`BEVResBackbone` (BaseBEVResBackbone: residual stages and
   transposed-conv upsampling, concatenated).
4. :class:`CenterHead` -- CenterPoint heatmaps and regression, targets, losses and top-K decoding (no NMS: run
   :func:`perception.pointnets.boxes.nms_bev` on the result).

Boxes are ``(x, y, z, l, w, h, yaw)`` in the LiDAR frame with ``z`` the box centre (as :mod:`.boxes`); class labels
are 0-based indices into :attr:`DSVTConfig.class_names`. Points are ``(x, y, z, intensity)``; points outside
``point_cloud_range`` (``min <= p < max`` on each axis) are dropped before voxelisation, as OpenPCDet's data
processor does.

Sizes: the defaults are the CPU-sized model of the research note (d = 64, 2 blocks, BEV filters 64/64/128); the
upstream Waymo DSVT-P uses d = 192, feed-forward 384, 4 blocks, BEV filters 128/128/256 and upsampling to 128 each.
Left out from upstream: the IoU-rectification head and multi-head class grouping (one heatmap head covers all
classes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from perception.errors import InputError
from perception.pointnets.dsvt_sets import SetPartition, set_partition, window_index

__all__ = [
    "BEVResBackbone",
    "CenterHead",
    "DSVT",
    "DSVTBlock",
    "DSVTConfig",
    "DSVTDetector",
    "DSVTInputLayer",
    "DSVTSets",
    "DynamicPillarVFE",
    "PointPillarScatter",
    "SetAttention",
    "draw_gaussian",
    "gaussian_focal_loss",
    "gaussian_radius",
]

REG_CODE = ("dx", "dy", "z", "log_l", "log_w", "log_h", "sin", "cos")
"""The regression target at an object's centre cell: offset of the centre in the cell (in cells), centre z, log
sizes, sin and cos of the yaw."""


@dataclass
class DSVTConfig:
    """DSVT-P + CenterHead settings. The BEV grid is derived from ``point_cloud_range`` / ``voxel_size``."""

    point_cloud_range: tuple[float, float, float, float, float, float] = (0.0, -39.68, -3.0, 69.12, 39.68, 1.0)
    voxel_size: tuple[float, float, float] = (0.32, 0.32, 4.0)
    class_names: tuple[str, ...] = ("Car", "Pedestrian", "Cyclist")
    # DSVT backbone (the VFE outputs d_model channels)
    d_model: int = 64
    nhead: int = 8
    dim_feedforward: int = 128
    set_size: int = 36
    window_shape: tuple[int, int, int] = (12, 12, 1)
    hybrid_factor: tuple[int, int, int] = (2, 2, 1)
    shift: tuple[int, int, int] = (6, 6, 0)
    """Shift of window configuration 1 (configuration 0 is unshifted)."""
    num_blocks: int = 2
    # BEV backbone
    bev_layer_nums: tuple[int, ...] = (1, 2, 2)
    bev_layer_strides: tuple[int, ...] = (1, 2, 2)
    bev_num_filters: tuple[int, ...] = (64, 64, 128)
    bev_upsample_strides: tuple[int, ...] = (1, 2, 4)
    bev_upsample_filters: tuple[int, ...] = (64, 64, 64)
    # head
    head_channels: int = 64
    num_hm_conv: int = 2
    gaussian_overlap: float = 0.1
    min_radius: int = 2
    max_objs: int = 500
    cls_weight: float = 1.0
    loc_weight: float = 2.0
    """Weight of the summed L1 regression loss: 2.0 as OpenPCDet's CenterPoint / DSVT configs (det3d's CenterPoint
    uses 0.25)."""
    code_weights: tuple[float, ...] = (1.0,) * 8
    """Per-entry weights of the regression code :data:`REG_CODE`."""
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ derived
    @property
    def grid_size(self) -> tuple[int, int, int]:
        """Voxels along (x, y, z)."""
        r, v = self.point_cloud_range, self.voxel_size
        return tuple(int(round((r[i + 3] - r[i]) / v[i])) for i in range(3))  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def window_shapes(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        w, h = self.window_shape, self.hybrid_factor
        return tuple(w), (w[0] * h[0], w[1] * h[1], w[2] * h[2])  # type: ignore[return-value]

    @property
    def feature_stride(self) -> int:
        """Stride of the BEV feature map (the head's cells) in voxels."""
        cum = math.prod(self.bev_layer_strides[:1])
        return cum // self.bev_upsample_strides[0]

    @property
    def feature_size(self) -> tuple[int, int]:
        """(H, W) = (ny, nx) of the head's maps."""
        nx, ny, _ = self.grid_size
        s = self.feature_stride
        return ny // s, nx // s

    def validate(self) -> None:
        r, v = self.point_cloud_range, self.voxel_size
        if len(r) != 6 or len(v) != 3:
            raise InputError(f"point_cloud_range needs 6 values and voxel_size 3, got {len(r)} and {len(v)}")
        for i, ax in enumerate("xyz"):
            if not v[i] > 0 or not r[i + 3] > r[i]:
                raise InputError(f"need voxel_size > 0 and range max > min along {ax}, got voxel {v[i]}, "
                                 f"range [{r[i]}, {r[i + 3]}]")  # fmt: skip
            n = (r[i + 3] - r[i]) / v[i]
            if abs(n - round(n)) > 1e-4:
                extent = r[i + 3] - r[i]
                raise InputError(f"point_cloud_range extent along {ax} ({extent:g} m) is not a multiple of "
                                 f"voxel_size {v[i]:g} ({n:.4f} voxels); change the range or voxel_size")  # fmt: skip
        nx, ny, nz = self.grid_size
        if nz != 1:
            raise InputError(f"DSVT-P works on pillars: voxel_size z must equal the range's z extent "
                             f"({r[5] - r[2]:g} m), got {v[2]:g} ({nz} voxels along z)")  # fmt: skip
        if self.d_model % self.nhead:
            raise InputError(f"d_model {self.d_model} is not divisible by nhead {self.nhead}")
        if self.d_model % 2:
            raise InputError(f"d_model must be even (the first VFE layer outputs d_model / 2), got {self.d_model}")
        n = len(self.bev_layer_nums)
        lens = {len(self.bev_layer_strides), len(self.bev_num_filters), len(self.bev_upsample_strides),
                len(self.bev_upsample_filters)}  # fmt: skip
        if lens != {n}:
            raise InputError("bev_layer_nums, bev_layer_strides, bev_num_filters, bev_upsample_strides and "
                             "bev_upsample_filters need the same length")  # fmt: skip
        total = math.prod(self.bev_layer_strides)
        if nx % total or ny % total:
            raise InputError(f"BEV grid {nx} x {ny} (x, y) is not divisible by the BEV backbone's total stride "
                             f"{total}; change point_cloud_range or voxel_size")  # fmt: skip
        strides = set()
        for i in range(n):
            cum, up = math.prod(self.bev_layer_strides[: i + 1]), self.bev_upsample_strides[i]
            if up < 1 or cum % up:
                raise InputError(f"BEV level {i}: cumulative stride {cum} is not a multiple of upsample stride {up}")
            strides.add(cum // up)
        if len(strides) != 1:
            raise InputError(f"BEV levels end at different strides {sorted(strides)}; adjust bev_upsample_strides")
        if len(self.code_weights) != len(REG_CODE):
            raise InputError(f"code_weights needs {len(REG_CODE)} values {REG_CODE}, got {len(self.code_weights)}")
        if not self.class_names:
            raise InputError("class_names is empty")
        if self.set_size < 1 or self.num_blocks < 1:
            raise InputError("set_size and num_blocks must be >= 1")


# ---------------------------------------------------------------------------------------------------- scatter ops
def _scatter(src: torch.Tensor, index: torch.Tensor, n: int, reduce: str) -> torch.Tensor:
    """Reduce rows of ``src`` (N, C) into ``n`` rows by ``index`` (N,); every row of the output must get >= 1."""
    out = src.new_zeros(n, src.shape[1])
    return out.scatter_reduce(0, index[:, None].expand_as(src), src, reduce, include_self=False)


# ---------------------------------------------------------------------------------------------------- VFE
class PFNLayerV2(nn.Module):
    """Linear -> BN1d -> ReLU -> per-pillar max; not last: ``[point feature, pillar max]`` per point."""

    def __init__(self, cin: int, cout: int, last: bool, eps: float = 1e-3, momentum: float = 0.01) -> None:
        super().__init__()
        self.last = last
        c = cout if last else cout // 2
        self.linear = nn.Linear(cin, c, bias=False)
        self.norm = nn.BatchNorm1d(c, eps=eps, momentum=momentum)

    def forward(self, x: torch.Tensor, inv: torch.Tensor, num_pillars: int) -> torch.Tensor:
        x = F.relu(self.norm(self.linear(x)))
        x_max = _scatter(x, inv, num_pillars, "amax")
        return x_max if self.last else torch.cat([x, x_max[inv]], 1)


class DynamicPillarVFE(nn.Module):
    """Dynamic pillar feature net (OpenPCDet ``DynamicPillarVFE``) with two PFNLayerV2 of ``d_model`` channels.

    ``forward(points (N, 5) = (b, x, y, z, i))`` -> ``(features (P, d_model), coords (P, 4) long = (b, z, y, x))``
    with pillars sorted by (b, y, x). Points whose pillar lies outside the x-y grid are ignored."""

    def __init__(self, cfg: DSVTConfig) -> None:
        super().__init__()
        self.grid = cfg.grid_size
        self.register_buffer("pc_min", torch.tensor(cfg.point_cloud_range[:3], dtype=torch.float32), persistent=False)
        self.register_buffer("voxel", torch.tensor(cfg.voxel_size, dtype=torch.float32), persistent=False)
        d = cfg.d_model
        self.pfn = nn.ModuleList([PFNLayerV2(10, d, False, cfg.bn_eps, cfg.bn_momentum),
                                  PFNLayerV2(d, d, True, cfg.bn_eps, cfg.bn_momentum)])  # fmt: skip

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nx, ny, _ = self.grid
        xyz = points[:, 1:4]
        ij = torch.floor((xyz[:, :2] - self.pc_min[:2]) / self.voxel[:2]).long()  # (ix, iy)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < nx) & (ij[:, 1] >= 0) & (ij[:, 1] < ny)
        points, xyz, ij = points[ok], xyz[ok], ij[ok]
        b = points[:, 0].long()
        key = (b * ny + ij[:, 1]) * nx + ij[:, 0]
        uniq, inv = torch.unique(key, return_inverse=True)
        p = len(uniq)
        mean = _scatter(xyz, inv, p, "mean")
        f_cluster = xyz - mean[inv]
        centre = torch.cat([(ij.to(xyz.dtype) + 0.5) * self.voxel[:2] + self.pc_min[:2],
                            (self.pc_min[2] + self.voxel[2] / 2).expand(len(xyz), 1)], 1)  # fmt: skip
        f_center = xyz - centre
        x = torch.cat([points[:, 1:5], f_cluster, f_center], 1)
        for layer in self.pfn:
            x = layer(x, inv, p)
        coords = torch.stack([uniq // (nx * ny), torch.zeros_like(uniq), (uniq // nx) % ny, uniq % nx], 1)
        return x, coords


# ---------------------------------------------------------------------------------------------------- DSVT
class PositionEmbeddingLearned(nn.Module):
    """Linear(k -> d) -> BN1d -> ReLU -> Linear(d -> d) of the window-relative position."""

    def __init__(self, k: int, d: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(k, d), nn.BatchNorm1d(d), nn.ReLU(inplace=True), nn.Linear(d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class DSVTSets:
    partitions: list[SetPartition | None]
    """Per window configuration (0: ``window_shape``, 1: hybrid + shifted); None where no block uses it."""
    pos: list[torch.Tensor]
    """Per block: positional embedding (P, d) of every voxel in the block's window configuration."""


class DSVTInputLayer(nn.Module):
    """Window partitions, rotated sets, key-padding masks and positional embeddings for every block.

    Block ``b`` uses window configuration ``b % 2``. Upstream builds one embedding per (block, configuration) and
    -- its issue #50 -- feeds layer ``i`` of every block the embedding of configuration ``i``, so a block's second
    layer gets positions relative to the *other* configuration's windows. Here both layers of a block use the
    embedding of the block's own configuration (the position is per voxel, so the y- and x-sorted layers share
    it); the embedding of the configuration a block never uses would get no gradient and is not built."""

    def __init__(self, cfg: DSVTConfig) -> None:
        super().__init__()
        self.grid = cfg.grid_size
        self.window_shapes = cfg.window_shapes
        self.shifts = ((0, 0, 0), tuple(cfg.shift))
        self.set_size = cfg.set_size
        self.num_blocks = cfg.num_blocks
        self.pos_embed = nn.ModuleList()
        for b in range(cfg.num_blocks):
            w = self.window_shapes[b % 2]
            self.pos_embed.append(PositionEmbeddingLearned(2 if w[2] == 1 else 3, cfg.d_model))

    def forward(self, coords: torch.Tensor) -> DSVTSets:
        partitions: list[SetPartition | None] = [None, None]
        in_win: list[torch.Tensor | None] = [None, None]
        for c in sorted({b % 2 for b in range(self.num_blocks)}):
            wid, inw = window_index(coords, self.grid, self.window_shapes[c], self.shifts[c])
            partitions[c] = set_partition(wid, inw, self.window_shapes[c], self.set_size)
            in_win[c] = inw
        dtype = self.pos_embed[0].net[0].weight.dtype
        pos = []
        for b, embed in enumerate(self.pos_embed):
            c = b % 2
            w = torch.tensor(self.window_shapes[c], dtype=dtype)
            k = 2 if self.window_shapes[c][2] == 1 else 3
            rel = in_win[c].to(dtype)[:, :k] - w[:k] / 2  # (x - win_x / 2, y - win_y / 2[, z - win_z / 2])
            pos.append(embed(rel))
        return DSVTSets(partitions, pos)


def _first_occurrence(voxel_inds: torch.Tensor, n: int) -> torch.Tensor:
    """Flat slot index of the first occurrence of each of the ``n`` voxels in ``voxel_inds`` (S, L)."""
    flat = voxel_inds.reshape(-1)
    slots = torch.arange(len(flat))
    return torch.full((n,), len(flat), dtype=torch.long).scatter_reduce(0, flat, slots, "amin")


class SetAttention(nn.Module):
    """Attention within sets: Q = K = x + pos, V = x over (num_sets, L, d) with the key-padding mask; each voxel
    takes the output of its first slot; then post-norm residual and a GELU feed-forward."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_model = d_model
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, voxel_inds: torch.Tensor,
                key_padding_mask: torch.Tensor) -> torch.Tensor:  # fmt: skip
        feats = x[voxel_inds]  # (S, L, d)
        qk = feats + pos[voxel_inds]
        out = self.self_attn(qk, qk, feats, key_padding_mask=key_padding_mask, need_weights=False)[0]
        out = out.reshape(-1, self.d_model)[_first_occurrence(voxel_inds, len(x))]
        x = self.norm1(x + self.dropout(out))
        return self.norm2(x + self.dropout(self.linear2(F.gelu(self.linear1(x)))))


class DSVTBlock(nn.Module):
    """Two set-attention layers (y-sorted sets, then x-sorted), each wrapped as ``LN(x + layer(x))`` (upstream's
    ``DSVT_EncoderLayer``)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList([SetAttention(d_model, nhead, dim_feedforward, dropout) for _ in range(2)])
        self.norms = nn.ModuleList([nn.LayerNorm(d_model) for _ in range(2)])

    def forward(self, x: torch.Tensor, partition: SetPartition, pos: torch.Tensor) -> torch.Tensor:
        for i, (layer, norm) in enumerate(zip(self.layers, self.norms, strict=True)):
            x = norm(x + layer(x, pos, partition.voxel_inds[i], partition.mask[i]))
        return x


class DSVT(nn.Module):
    """DSVT-P backbone: ``forward(features (P, d), coords (P, 4) = (b, z, y, x)) -> (P, d)``. Blocks alternate window
    configurations 0 / 1; each is wrapped as ``LN(block(x) + x)``; weights with dim > 1 are xavier-initialised."""

    def __init__(self, cfg: DSVTConfig) -> None:
        super().__init__()
        self.input_layer = DSVTInputLayer(cfg)
        d = cfg.d_model
        self.blocks = nn.ModuleList([DSVTBlock(d, cfg.nhead, cfg.dim_feedforward) for _ in range(cfg.num_blocks)])
        self.residual_norms = nn.ModuleList([nn.LayerNorm(d) for _ in range(cfg.num_blocks)])
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        if len(features) == 0:
            return features
        sets = self.input_layer(coords)
        x = features
        for b, (block, norm) in enumerate(zip(self.blocks, self.residual_norms, strict=True)):
            x = norm(block(x, sets.partitions[b % 2], sets.pos[b]) + x)
        return x


# ---------------------------------------------------------------------------------------------------- BEV
class PointPillarScatter(nn.Module):
    """Pillar features (P, C) at coords (b, z, y, x) -> dense (B, C * nz, ny, nx) (zeros where empty)."""

    def __init__(self, cfg: DSVTConfig) -> None:
        super().__init__()
        self.grid = cfg.grid_size

    def forward(self, features: torch.Tensor, coords: torch.Tensor, batch_size: int) -> torch.Tensor:
        nx, ny, nz = self.grid
        c = features.shape[1]
        lin = ((coords[:, 0] * nz + coords[:, 1]) * ny + coords[:, 2]) * nx + coords[:, 3]
        out = features.new_zeros(batch_size * nz * ny * nx, c).index_put((lin,), features)
        return out.view(batch_size, nz, ny, nx, c).permute(0, 4, 1, 2, 3).reshape(batch_size, c * nz, ny, nx)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, downsample: bool = False, eps: float = 1e-3,
                 momentum: float = 0.01) -> None:  # fmt: skip
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=eps, momentum=momentum)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=eps, momentum=momentum)
        self.down = None
        if downsample:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout, eps=eps, momentum=momentum))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.down is None else self.down(x)))


class BEVResBackbone(nn.Module):
    """OpenPCDet ``BaseBEVResBackbone``: per level a strided BasicBlock with a 1x1 shortcut plus ``layer_nums``
    BasicBlocks, a ConvTranspose2d -> BN -> ReLU upsampling, outputs concatenated along channels."""

    def __init__(self, cfg: DSVTConfig, in_channels: int) -> None:
        super().__init__()
        eps, mom = cfg.bn_eps, cfg.bn_momentum
        cins = [in_channels, *cfg.bev_num_filters[:-1]]
        self.blocks = nn.ModuleList()
        self.deblocks = nn.ModuleList()
        levels = zip(cfg.bev_layer_nums, cfg.bev_layer_strides, cfg.bev_num_filters, cfg.bev_upsample_strides,
                     cfg.bev_upsample_filters, strict=True)  # fmt: skip
        for i, (n, s, c, us, uc) in enumerate(levels):
            layers = [BasicBlock(cins[i], c, s, True, eps, mom)]
            layers += [BasicBlock(c, c, 1, False, eps, mom) for _ in range(n)]
            self.blocks.append(nn.Sequential(*layers))
            self.deblocks.append(nn.Sequential(nn.ConvTranspose2d(c, uc, us, stride=us, bias=False),
                                               nn.BatchNorm2d(uc, eps=eps, momentum=mom), nn.ReLU()))  # fmt: skip
        self.out_channels = sum(cfg.bev_upsample_filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ups = []
        for block, deblock in zip(self.blocks, self.deblocks, strict=True):
            x = block(x)
            ups.append(deblock(x))
        return torch.cat(ups, 1) if len(ups) > 1 else ups[0]


# ---------------------------------------------------------------------------------------------------- head
def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.5) -> torch.Tensor:
    """CenterNet / CenterPoint gaussian radius (OpenPCDet ``centernet_utils.gaussian_radius``, including the
    CornerNet quirk of dividing the first two roots by 2 rather than 2a) of boxes ``height`` x ``width`` cells."""
    h, w = torch.as_tensor(height, dtype=torch.float64), torch.as_tensor(width, dtype=torch.float64)
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + (b1**2 - 4 * c1).sqrt()) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + (b2**2 - 16 * c2).sqrt()) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + (b3**2 - 4 * a3 * c3).sqrt()) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def draw_gaussian(heatmap: torch.Tensor, x: int, y: int, radius: int, k: float = 1.0) -> None:
    """In place: ``heatmap (H, W) = max(heatmap, k * gaussian)`` with sigma ``(2 r + 1) / 6`` centred on cell (x, y)."""
    r = int(radius)
    sigma = (2 * r + 1) / 6
    m = torch.arange(-r, r + 1, dtype=heatmap.dtype)
    g = torch.exp(-(m[None] ** 2 + m[:, None] ** 2) / (2 * sigma * sigma))
    g[g < torch.finfo(g.dtype).eps * g.max()] = 0
    hgt, wid = heatmap.shape
    left, right = min(x, r), min(wid - x, r + 1)
    top, bottom = min(y, r), min(hgt - y, r + 1)
    if left + right <= 0 or top + bottom <= 0:
        return
    sub = heatmap[y - top : y + bottom, x - left : x + right]
    sub.copy_(torch.maximum(sub, k * g[r - top : r + bottom, r - left : r + right]))


def gaussian_focal_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet focal loss on probabilities ``pred`` against gaussian ``target`` (1 at centres), normalised by the
    number of centres (alpha 2, beta 4)."""
    pos = target.eq(1).to(pred.dtype)
    neg = 1 - pos
    pos_loss = torch.log(pred) * (1 - pred) ** 2 * pos
    neg_loss = torch.log(1 - pred) * pred**2 * (1 - target) ** 4 * neg
    num_pos = pos.sum()
    return -(pos_loss.sum() + neg_loss.sum()) / num_pos.clamp_min(1)


class CenterHead(nn.Module):
    """CenterPoint head (OpenPCDet ``CenterHead`` with one SeparateHead for all classes).

    ``forward(bev (B, C, H, W))`` -> dict of maps: ``heatmap`` (B, num_classes, H, W) logits, ``center`` (2: offset
    of the centre in its cell, x then y, in cells), ``center_z`` (1: box centre z, m), ``dim`` (3: log l, w, h),
    ``rot`` (2: sin, cos of yaw). The maps' cells are ``feature_stride`` voxels; cell (i, j) covers
    ``x in range_x0 + [j, j + 1) * stride * voxel_x`` and likewise y with i."""

    HEADS = (("center", 2), ("center_z", 1), ("dim", 3), ("rot", 2))

    def __init__(self, cfg: DSVTConfig, in_channels: int) -> None:
        super().__init__()
        self.cfg = cfg
        hc, eps, mom = cfg.head_channels, cfg.bn_eps, cfg.bn_momentum
        self.shared_conv = nn.Sequential(nn.Conv2d(in_channels, hc, 3, padding=1, bias=False),
                                         nn.BatchNorm2d(hc, eps=eps, momentum=mom), nn.ReLU())  # fmt: skip
        self.heads = nn.ModuleDict()
        for name, c in (("heatmap", cfg.num_classes), *self.HEADS):
            layers: list[nn.Module] = []
            for _ in range(cfg.num_hm_conv - 1):
                layers += [nn.Conv2d(hc, hc, 3, padding=1, bias=False), nn.BatchNorm2d(hc, eps=eps, momentum=mom),
                           nn.ReLU()]  # fmt: skip
            layers.append(nn.Conv2d(hc, c, 3, padding=1, bias=True))
            head = nn.Sequential(*layers)
            if name == "heatmap":
                nn.init.constant_(head[-1].bias, -2.19)
            else:
                for m in head.modules():
                    if isinstance(m, nn.Conv2d):
                        nn.init.kaiming_normal_(m.weight)
                        if m.bias is not None:
                            nn.init.zeros_(m.bias)
            self.heads[name] = head
        self.register_buffer("code_weights", torch.tensor(cfg.code_weights, dtype=torch.float32), persistent=False)

    def forward(self, bev: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.shared_conv(bev)
        return {name: head(x) for name, head in self.heads.items()}

    # ------------------------------------------------------------------ targets
    def assign_targets(self, gt_boxes: list[torch.Tensor], gt_labels: list[torch.Tensor],
                       feature_size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
        """CenterPoint targets: ``heatmap`` (B, C, H, W), ``inds`` (B, M) flat cell ``y * W + x``, ``mask`` (B, M) bool,
        ``box`` (B, M, 8) regression code :data:`REG_CODE`. Centres are clamped into the map as upstream; boxes with a
        non-positive length or width and those beyond ``max_objs`` are skipped."""
        cfg = self.cfg
        hgt, wid = feature_size or cfg.feature_size
        stride = cfg.feature_stride
        r0, vs = cfg.point_cloud_range, cfg.voxel_size
        bsz = len(gt_boxes)
        m = max(1, min(cfg.max_objs, max((len(b) for b in gt_boxes), default=0)))
        heat = torch.zeros(bsz, cfg.num_classes, hgt, wid)
        inds = torch.zeros(bsz, m, dtype=torch.long)
        mask = torch.zeros(bsz, m, dtype=torch.bool)
        box = torch.zeros(bsz, m, len(REG_CODE))
        for b, (boxes, labels) in enumerate(zip(gt_boxes, gt_labels, strict=True)):
            boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 7)[:m]
            labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)[:m]
            if len(labels) and (labels.min() < 0 or labels.max() >= cfg.num_classes):
                raise InputError(f"gt_labels must be 0-based class indices < {cfg.num_classes}, got "
                                 f"{labels.min().item()}..{labels.max().item()}")  # fmt: skip
            cx = ((boxes[:, 0] - r0[0]) / vs[0] / stride).clamp(0, wid - 0.5)
            cy = ((boxes[:, 1] - r0[1]) / vs[1] / stride).clamp(0, hgt - 0.5)
            ix, iy = cx.floor().long(), cy.floor().long()
            dx = boxes[:, 3] / vs[0] / stride
            dy = boxes[:, 4] / vs[1] / stride
            radius = gaussian_radius(dx, dy, cfg.gaussian_overlap).floor().clamp_min(cfg.min_radius).long()
            for k in range(len(boxes)):
                if not (dx[k] > 0 and dy[k] > 0 and boxes[k, 5] > 0):
                    continue
                draw_gaussian(heat[b, labels[k]], int(ix[k]), int(iy[k]), int(radius[k]))
                inds[b, k] = iy[k] * wid + ix[k]
                mask[b, k] = True
                yaw = boxes[k, 6]
                box[b, k] = torch.stack([cx[k] - ix[k], cy[k] - iy[k], boxes[k, 2], *boxes[k, 3:6].log(), yaw.sin(),
                                         yaw.cos()])  # fmt: skip
        return {"heatmap": heat, "inds": inds, "mask": mask, "box": box}

    @staticmethod
    def _gather_code(outputs: dict[str, torch.Tensor], inds: torch.Tensor) -> torch.Tensor:
        """(B, M, 8) regression code of the maps at flat cells ``inds`` (B, M)."""
        code = torch.cat([outputs[n] for n, _ in CenterHead.HEADS], 1).flatten(2)  # (B, 8, H W)
        return code.gather(2, inds[:, None].expand(-1, code.shape[1], -1)).transpose(1, 2)

    def loss(self, outputs: dict[str, torch.Tensor], gt_boxes: list[torch.Tensor],
             gt_labels: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        """``cls_weight * focal(heatmap) + loc_weight * sum_c code_weight_c * L1_c`` (L1 summed over objects and
        divided by their number). Parts: ``heatmap``, ``regression`` (weighted) and per-code L1 ``reg_<name>``."""
        hm_logits = outputs["heatmap"]
        t = self.assign_targets(gt_boxes, gt_labels, tuple(hm_logits.shape[2:]))
        t = {k: v.to(hm_logits.device) for k, v in t.items()}
        hm = torch.sigmoid(hm_logits.float()).clamp(1e-4, 1 - 1e-4)
        hm_loss = gaussian_focal_loss(hm, t["heatmap"])
        pred = self._gather_code(outputs, t["inds"]).float()
        msk = t["mask"][..., None].to(pred.dtype)
        reg = ((pred - t["box"]).abs() * msk).sum((0, 1)) / msk.sum().clamp_min(1)
        loc = (reg * self.code_weights).sum()
        total = self.cfg.cls_weight * hm_loss + self.cfg.loc_weight * loc
        parts = {"heatmap": hm_loss.detach(), "regression": (self.cfg.loc_weight * loc).detach()}
        parts.update({f"reg_{n}": reg[i].detach() for i, n in enumerate(REG_CODE)})
        return total, parts

    # ------------------------------------------------------------------ decoding
    @torch.no_grad()
    def decode(self, outputs: dict[str, torch.Tensor], score_threshold: float = 0.1,
               top_k: int = 100) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:  # fmt: skip
        """Per batch item the ``top_k`` heatmap peaks over all classes with score > ``score_threshold``:
        ``(boxes (K, 7) x y z l w h yaw, scores (K,), labels (K,) long)`` in the LiDAR frame, sorted by score.
        No NMS and no local-maximum filter (as upstream's decoding; run NMS on the result)."""
        cfg = self.cfg
        r0, vs, stride = cfg.point_cloud_range, cfg.voxel_size, cfg.feature_stride
        heat = torch.sigmoid(outputs["heatmap"].float())
        bsz, ncls, hgt, wid = heat.shape
        k = min(int(top_k), ncls * hgt * wid)
        scores, idx = heat.flatten(1).topk(k, dim=1)
        labels = idx // (hgt * wid)
        cell = idx % (hgt * wid)
        code = self._gather_code(outputs, cell).float()  # (B, K, 8)
        xs = ((cell % wid).to(code.dtype) + code[..., 0]) * stride * vs[0] + r0[0]
        ys = ((cell // wid).to(code.dtype) + code[..., 1]) * stride * vs[1] + r0[1]
        yaw = torch.atan2(code[..., 6], code[..., 7])
        boxes = torch.cat([xs[..., None], ys[..., None], code[..., 2:3], code[..., 3:6].exp(), yaw[..., None]], -1)
        out = []
        for b in range(bsz):
            keep = scores[b] > score_threshold
            out.append((boxes[b][keep], scores[b][keep], labels[b][keep]))
        return out


# ---------------------------------------------------------------------------------------------------- detector
class DSVTDetector(nn.Module):
    """DSVT-P + CenterHead. ``forward(points)`` with ``points`` a list (one per frame) of (N_i, >= 4) tensors
    ``x y z intensity`` (extra columns ignored; points outside ``point_cloud_range`` dropped) -> head maps (see
    :class:`CenterHead`)."""

    def __init__(self, cfg: DSVTConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or DSVTConfig()
        self.vfe = DynamicPillarVFE(cfg)
        self.backbone = DSVT(cfg)
        self.scatter = PointPillarScatter(cfg)
        self.bev = BEVResBackbone(cfg, cfg.d_model * cfg.grid_size[2])
        self.head = CenterHead(cfg, self.bev.out_channels)

    def batch_points(self, points: list[torch.Tensor]) -> torch.Tensor:
        """(N, 5) ``(b, x, y, z, i)`` of the points inside the range, in the model's dtype."""
        r = self.cfg.point_cloud_range
        dtype = self.head.code_weights.dtype
        rows = []
        for b, p in enumerate(points):
            p = torch.as_tensor(p).to(dtype)
            if p.ndim != 2 or p.shape[1] < 4:
                raise InputError(f"points[{b}] must be (N, 4) x y z intensity, got shape {tuple(p.shape)}")
            p = p[:, :4]
            ok = torch.ones(len(p), dtype=torch.bool)
            for a in range(3):
                ok &= (p[:, a] >= r[a]) & (p[:, a] < r[a + 3])
            p = p[ok]
            rows.append(torch.cat([p.new_full((len(p), 1), b), p], 1))
        return torch.cat(rows) if rows else torch.zeros(0, 5, dtype=dtype)

    def forward(self, points: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        bsz = len(points)
        pts = self.batch_points(points)
        nx, ny, nz = self.cfg.grid_size
        if len(pts):
            feats, coords = self.vfe(pts)
            feats = self.backbone(feats, coords)
            bev = self.scatter(feats, coords, bsz)
        else:
            bev = pts.new_zeros(bsz, self.cfg.d_model * nz, ny, nx)
        return self.head(self.bev(bev))

    def loss(self, outputs: dict[str, torch.Tensor], gt_boxes: list[torch.Tensor],
             gt_labels: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        """See :meth:`CenterHead.loss`: boxes (K_i, 7), labels (K_i,) 0-based."""
        return self.head.loss(outputs, gt_boxes, gt_labels)

    @torch.no_grad()
    def predict(self, points: list[torch.Tensor], score_threshold: float = 0.1,
                top_k: int = 100) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:  # fmt: skip
        """Eval-mode forward + :meth:`CenterHead.decode` (the module's train / eval mode is restored after)."""
        was = self.training
        self.eval()
        try:
            return self.head.decode(self(points), score_threshold, top_k)
        finally:
            self.train(was)
