"""A sparse residual U-Net for point-cloud segmentation (MinkowskiNet's ``Res16UNet`` family, CPCM's backbone), on
the verified spconv wrapper :mod:`perception.pointnets.sparse`.

Layout (``Res16UNet34C`` upstream: ``planes = (32, 64, 128, 256, 256, 128, 96, 96)``, ``layers = (2, 3, 4, 6, 2, 2,
2, 2)``): a 5^3 SubM stem, then per encoder level a 2^3 stride-2 sparse conv + BN + ReLU and ``layers[i]`` residual
basic blocks (two 3^3 SubM convs with BN, identity or 1x1 projection shortcut); per decoder level a 2^3 transposed
conv back onto the encoder's sites (``SparseInverseConv3d`` with the encoder conv's ``indice_key``), BN + ReLU,
concatenation with the skip features of that resolution and ``layers`` basic blocks; a 1x1 classifier. BatchNorm
momentum 0.02 as upstream. ``encoder`` gives the widths of the stem and of each downsampled level, ``decoder`` the
widths of the decoder levels from coarse to fine (``len(decoder) == len(encoder) - 1``).

The CPU default (``encoder = (16, 32, 64)``, ``decoder = (32, 16)``, one block per level) is the research note's
small configuration for 2-core training; ``ResUNetConfig.res16unet34c()`` gives the upstream widths and depths.
Inputs are :func:`perception.pointnets.sparse.sparse_tensor` tensors; the output is per-voxel logits (N, classes)
in the input's voxel order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from perception.pointnets.sparse import (
    SparseConv3d,
    SparseConvTensor,
    SparseInverseConv3d,
    SubMConv3d,
)

__all__ = ["ResUNet", "ResUNetConfig"]

_BN_MOMENTUM = 0.02


@dataclass
class ResUNetConfig:
    in_channels: int = 3
    num_classes: int = 20
    encoder: tuple[int, ...] = (16, 32, 64)
    """Stem width, then the width of each downsampled level (stride 2 each)."""
    decoder: tuple[int, ...] = (32, 16)
    """Decoder widths from the coarsest level back to full resolution."""
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    """Residual blocks per level: the downsampled encoder levels, then the decoder levels (``2 len(decoder)``)."""
    stem_kernel: int = 5

    def validate(self) -> None:
        if len(self.encoder) < 2 or len(self.decoder) != len(self.encoder) - 1:
            raise ValueError(f"ResUNet: need len(decoder) == len(encoder) - 1 >= 1, got {self.encoder}, {self.decoder}")
        if len(self.blocks) != 2 * len(self.decoder):
            raise ValueError(f"ResUNet: blocks needs {2 * len(self.decoder)} entries, got {len(self.blocks)}")

    @classmethod
    def res16unet34c(cls, in_channels: int = 3, num_classes: int = 20) -> ResUNetConfig:
        """The upstream ``Res16UNet34C`` (CPCM's backbone): stem 32, four downsamplings."""
        return cls(in_channels, num_classes, (32, 32, 64, 128, 256), (256, 128, 96, 96), (2, 3, 4, 6, 2, 2, 2, 2))


def _bn(c: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(c, momentum=_BN_MOMENTUM)


def _features(x: SparseConvTensor, f: torch.Tensor) -> SparseConvTensor:
    return x.replace_feature(f)


class BasicBlock(nn.Module):
    """Two 3^3 SubM convs with BN; identity (or 1x1 projection) shortcut; ReLU after the sum."""

    def __init__(self, cin: int, cout: int, key: str) -> None:
        super().__init__()
        self.conv1 = SubMConv3d(cin, cout, 3, bias=False, indice_key=key)
        self.bn1 = _bn(cout)
        self.conv2 = SubMConv3d(cout, cout, 3, bias=False, indice_key=key)
        self.bn2 = _bn(cout)
        self.proj = None if cin == cout else nn.Sequential(nn.Linear(cin, cout, bias=False), _bn(cout))

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        identity = x.features if self.proj is None else self.proj(x.features)
        y = self.conv1(x)
        y = _features(y, torch.relu(self.bn1(y.features)))
        y = self.conv2(y)
        return _features(y, torch.relu(self.bn2(y.features) + identity))


class ResUNet(nn.Module):
    def __init__(self, cfg: ResUNetConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or ResUNetConfig()
        cfg.validate()
        self.cfg = cfg
        enc, dec, nb = cfg.encoder, cfg.decoder, cfg.blocks
        levels = len(dec)
        self.stem = SubMConv3d(cfg.in_channels, enc[0], cfg.stem_kernel, bias=False, indice_key="stem")
        self.stem_bn = _bn(enc[0])
        self.down, self.down_bn, self.enc_blocks = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i in range(levels):
            self.down.append(SparseConv3d(enc[i], enc[i + 1], 2, stride=2, bias=False, indice_key=f"down{i + 1}"))
            self.down_bn.append(_bn(enc[i + 1]))
            self.enc_blocks.append(
                nn.ModuleList(BasicBlock(enc[i + 1], enc[i + 1], f"subm{i + 1}") for _ in range(nb[i]))
            )
        self.up, self.up_bn, self.dec_blocks = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin = enc[-1]
        for j in range(levels):
            level = levels - 1 - j  # resolution the decoder level returns to
            self.up.append(SparseInverseConv3d(cin, dec[j], 2, bias=False, indice_key=f"down{level + 1}"))
            self.up_bn.append(_bn(dec[j]))
            width = dec[j] + enc[level]
            blocks = [BasicBlock(width if b == 0 else dec[j], dec[j], f"subm{level}") for b in range(nb[levels + j])]
            self.dec_blocks.append(nn.ModuleList(blocks))
            cin = dec[j]
        self.head = nn.Linear(cin, cfg.num_classes)

    @property
    def stride(self) -> int:
        """Total downsampling: spatial shapes are padded to a multiple of it (a stride-2, k = 2 conv over an odd
        extent has no output site for the last layer, whose voxels would lose all deeper context)."""
        return 2 ** len(self.cfg.decoder)

    def forward(self, x: SparseConvTensor) -> torch.Tensor:
        # pad the input's own shape (before any rulebook is built), so tensors sharing its indice_dict -- e.g.
        # x.replace_feature(...) of a second, masked pass -- reuse the cached rulebooks
        f = self.stride
        x.spatial_shape = [-(-int(s) // f) * f for s in x.spatial_shape]
        y = self.stem(x)
        y = _features(y, torch.relu(self.stem_bn(y.features)))
        skips = [y]
        for down, bn, blocks in zip(self.down, self.down_bn, self.enc_blocks, strict=True):
            y = down(y)
            y = _features(y, torch.relu(bn(y.features)))
            for blk in blocks:
                y = blk(y)
            skips.append(y)
        skips.pop()  # the bottleneck is y itself
        for up, bn, blocks in zip(self.up, self.up_bn, self.dec_blocks, strict=True):
            y = up(y)
            skip = skips.pop()
            y = _features(y, torch.cat([torch.relu(bn(y.features)), skip.features], dim=1))
            for blk in blocks:
                y = blk(y)
        return self.head(y.features)
