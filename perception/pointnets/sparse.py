"""A verified sparse-convolution layer over spconv 2.3.8: correct on CPU at any thread count, CUDA kernels on a GPU.

spconv's CPU wheel ("only for debug usage", Native algorithm, a Python gather -> mm -> scatter-add loop) has four
bugs, all measured (research note ``pointnets.md`` section 4), fixed here once by :func:`patch_spconv` (idempotent,
applied on import):

1. backward calls ``torch.cuda.current_stream()`` unconditionally -> without CUDA the stream getter returns 0;
2. ``SpconvOps.scatter_add_cpu`` races between torch threads (buffers captured by reference) and silently returns
   wrong sums with more than one thread -> replaced by ``Tensor.index_add_`` on zero-copy views of the same buffers;
3. non-contiguous int32 indices (``mask.nonzero().int()``) are read as raw memory -> :func:`sparse_tensor` always
   hands spconv contiguous int32 indices;
4. eval mode fuses bias/activation, which asserts on CPU -> on CPU the convolution runs without them and the bias
   and activation are applied afterwards.

Use :func:`sparse_tensor` to build inputs and the layer classes re-exported here (spconv's own ``SubMConv3d``,
``SparseConv3d``, ``SparseInverseConv3d``, ``SparseSequential``): their weights are ``[Cout, k0, k1, k2, Cin]``
(dense equivalent: ``w.permute(0, 4, 1, 2, 3)`` with ``F.conv3d``; inverse: ``w.permute(4, 0, 1, 2, 3)`` with
``F.conv_transpose3d``, no flip).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)
# spconv's modules call torch.fx's deprecated is_fx_tracing() in every forward; torch logs a warning about it
logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)

__all__ = ["SparseConv3d", "SparseConvTensor", "SparseInverseConv3d", "SparseSequential", "SubMConv3d",
           "patch_spconv", "sparse_tensor", "to_dense"]  # fmt: skip

_PATCHED = False


def _scatter_add_cpu(out: Any, inp: Any, inds: Any) -> None:
    """Race-free replacement of ``SpconvOps.scatter_add_cpu``: ``out[inds] += inp[:len(inds)]`` in place."""
    o = torch.from_numpy(out.numpy_view())
    i = torch.from_numpy(inp.numpy_view())
    idx = torch.from_numpy(inds.numpy_view()).long()
    o.index_add_(0, idx, i[: len(idx)])


def patch_spconv() -> None:
    """Apply the four CPU fixes to the imported spconv (once)."""
    global _PATCHED
    if _PATCHED:
        return
    import cumm.tensorview as tv
    from spconv.core_cc.csrc.sparse.all import SpconvOps
    from spconv.pytorch import ops

    if not torch.cuda.is_available():
        ops.get_current_stream = lambda: 0  # (1): no CUDA stream to ask for
    SpconvOps.scatter_add_cpu = staticmethod(_scatter_add_cpu)  # (2)
    original = ops.indice_conv

    def indice_conv(features, filters, indice_pairs, indice_pair_num, num_activate_out, inverse=False, subm=False,
                    algo=None, timer=None, bias=None, act_alpha=0.0, act_beta=0.0,
                    act_type=tv.gemm.Activation.None_):  # fmt: skip
        kwargs = {} if algo is None else {"algo": algo}
        if timer is not None:
            kwargs["timer"] = timer
        if features.is_cuda or (bias is None and act_type == tv.gemm.Activation.None_):
            return original(features, filters, indice_pairs, indice_pair_num, num_activate_out, inverse, subm,
                            bias=bias, act_alpha=act_alpha, act_beta=act_beta, act_type=act_type, **kwargs)  # fmt: skip
        out = original(features, filters, indice_pairs, indice_pair_num, num_activate_out, inverse, subm, **kwargs)
        if bias is not None:  # (4): what the fused CUDA epilogue does
            out = out + bias
        from spconv.pytorch.conv import _apply_act

        return _apply_act(out, act_type, act_alpha, act_beta)

    ops.indice_conv = indice_conv
    _PATCHED = True
    log.debug("spconv CPU fixes applied (stream getter, race-free scatter-add, CPU bias/activation)")


patch_spconv()

from spconv.pytorch import (  # noqa: E402 - after the patch, so every use goes through it
    SparseConv3d,
    SparseConvTensor,
    SparseInverseConv3d,
    SparseSequential,
    SubMConv3d,
)


def sparse_tensor(features: torch.Tensor, coords: torch.Tensor | np.ndarray, spatial_shape, batch_size: int = 1,
                  batch_index: torch.Tensor | np.ndarray | None = None) -> SparseConvTensor:  # fmt: skip
    """A ``SparseConvTensor`` from features (N, C) and integer voxel coordinates (N, 3) (or (N, 4) with the batch
    index first). Indices are made contiguous int32 (fix 3) and checked against ``spatial_shape``."""
    c = torch.as_tensor(np.asarray(coords) if isinstance(coords, np.ndarray) else coords)
    if c.ndim != 2 or c.shape[1] not in (3, 4):
        raise ValueError(f"sparse_tensor: coords must be (N, 3) or (N, 4), got {tuple(c.shape)}")
    if c.shape[1] == 3:
        b = torch.zeros(len(c), dtype=torch.int64) if batch_index is None else torch.as_tensor(batch_index)
        c = torch.cat([b.reshape(-1, 1).to(torch.int64), c.to(torch.int64)], 1)
    shape = [int(s) for s in spatial_shape]
    if len(c) and (c[:, 1:].min() < 0 or (c[:, 1:] >= torch.tensor(shape)).any()):
        raise ValueError(f"sparse_tensor: voxel coordinates outside the spatial shape {shape}")
    if len(c) != len(features):
        raise ValueError(f"sparse_tensor: {len(c)} coordinates for {len(features)} feature rows")
    idx = c.to(device=features.device, dtype=torch.int32).contiguous()
    return SparseConvTensor(features.contiguous(), idx, shape, int(batch_size))


def to_dense(x: SparseConvTensor) -> torch.Tensor:
    """(B, C, D0, D1, D2) dense tensor (zeros where no voxel)."""
    return x.dense()
