"""The spconv wrapper against dense convolution: SubM, strided and inverse, forward and backward, 1 and 2 threads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from perception.pointnets.sparse import SparseConv3d, SparseInverseConv3d, SubMConv3d, sparse_tensor


def _scene(seed: int, shape=(12, 12, 12), occ: float = 0.2, cin: int = 6, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=g) < occ
    coords = mask.nonzero()  # int64, (N, 3); the wrapper makes spconv's int32 copy contiguous
    feats = torch.randn(len(coords), cin, generator=g, dtype=dtype)
    return mask, coords, feats


def _dense(coords, feats, shape):
    d = torch.zeros((1, feats.shape[1], *shape), dtype=feats.dtype)
    d[0, :, coords[:, 0], coords[:, 1], coords[:, 2]] = feats.T
    return d


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):
    old = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(old)


def _close(a, b, tol=1e-5):
    a, b = a.detach(), b.detach()
    scale = max(float(b.abs().max()), 1e-12)
    assert float((a - b).abs().max()) / scale < tol


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_subm_matches_dense_forward_and_backward(threads, dtype) -> None:
    for seed in range(4):  # the CPU race was intermittent: several draws
        mask, coords, feats = _scene(seed, dtype=dtype)
        conv = SubMConv3d(6, 5, 3, padding=1, bias=True).to(dtype)
        feats_s = feats.clone().requires_grad_(True)
        out = conv(sparse_tensor(feats_s, coords, mask.shape))
        w = conv.weight.permute(0, 4, 1, 2, 3)
        x_d = _dense(coords, feats, mask.shape).requires_grad_(True)
        ref = F.conv3d(x_d, w.detach(), conv.bias.detach(), padding=1)
        ref_at = ref[0, :, coords[:, 0], coords[:, 1], coords[:, 2]].T  # SubM keeps the input sites
        _close(out.features, ref_at, 1e-5 if dtype == torch.float32 else 1e-10)
        g = torch.randn_like(out.features)
        out.features.backward(g)
        ref_at.backward(g)
        grad_ref = x_d.grad[0, :, coords[:, 0], coords[:, 1], coords[:, 2]].T
        _close(feats_s.grad, grad_ref, 1e-5 if dtype == torch.float32 else 1e-10)
        # weight gradient against the dense conv's
        w_d = w.detach().clone().requires_grad_(True)
        ref_w = F.conv3d(_dense(coords, feats, mask.shape), w_d, padding=1)
        ref_w[0, :, coords[:, 0], coords[:, 1], coords[:, 2]].T.backward(g)
        _close(conv.weight.grad.permute(0, 4, 1, 2, 3), w_d.grad, 1e-5 if dtype == torch.float32 else 1e-10)


def test_strided_and_inverse_match_conv3d_and_conv_transpose3d(threads) -> None:
    for seed in range(4):
        mask, coords, feats = _scene(10 + seed, shape=(10, 10, 10), dtype=torch.float64)
        down = SparseConv3d(6, 4, 3, stride=2, padding=1, bias=False, indice_key="d1").double()
        up = SparseInverseConv3d(4, 3, 3, indice_key="d1", bias=False).double()
        feats_s = feats.clone().requires_grad_(True)
        x = sparse_tensor(feats_s, coords, mask.shape)
        y = down(x)
        z = up(y)
        x_d = _dense(coords, feats, mask.shape).requires_grad_(True)
        y_d = F.conv3d(x_d, down.weight.detach().permute(0, 4, 1, 2, 3), stride=2, padding=1)
        y_sites = y.indices[:, 1:].long()
        _close(y.features, y_d[0, :, y_sites[:, 0], y_sites[:, 1], y_sites[:, 2]].T, 1e-10)
        # every active output of the dense strided conv is an spconv output site (and the others are exactly 0)
        active = torch.zeros(y_d.shape[2:], dtype=torch.bool)
        active[y_sites[:, 0], y_sites[:, 1], y_sites[:, 2]] = True
        assert float(y_d.detach()[0][:, ~active].abs().max()) == 0.0
        # inverse conv: only the input sites of the strided conv, values of conv_transpose3d there
        y_dense = torch.zeros_like(y_d)
        y_dense[0, :, y_sites[:, 0], y_sites[:, 1], y_sites[:, 2]] = y.features.T.detach()
        y_dense.requires_grad_(True)
        z_d = F.conv_transpose3d(y_dense, up.weight.detach().permute(4, 0, 1, 2, 3), stride=2, padding=1,
                                 output_padding=1)  # fmt: skip
        z_d = z_d[..., : mask.shape[0], : mask.shape[1], : mask.shape[2]]
        z_sites = z.indices[:, 1:].long()
        key = lambda c: sorted(map(tuple, c.tolist()))  # noqa: E731
        assert key(z_sites) == key(coords)  # the inverse conv restores exactly the input sites
        _close(z.features, z_d[0, :, z_sites[:, 0], z_sites[:, 1], z_sites[:, 2]].T, 1e-10)
        g = torch.randn_like(z.features)
        z.features.backward(g)
        # dense chain with the same sparsity: grad through conv3d -> (sites of y) -> conv_transpose3d -> (sites of x)
        y_chain = F.conv3d(x_d, down.weight.detach().permute(0, 4, 1, 2, 3), stride=2, padding=1) * active
        w_up = up.weight.detach().permute(4, 0, 1, 2, 3)
        z_chain = F.conv_transpose3d(y_chain, w_up, stride=2, padding=1, output_padding=1)
        z_chain = z_chain[..., : mask.shape[0], : mask.shape[1], : mask.shape[2]]
        z_chain[0, :, z_sites[:, 0], z_sites[:, 1], z_sites[:, 2]].T.backward(g)
        _close(feats_s.grad, x_d.grad[0, :, coords[:, 0], coords[:, 1], coords[:, 2]].T, 1e-10)


def test_eval_mode_with_bias_equals_train_mode() -> None:
    mask, coords, feats = _scene(3, dtype=torch.float32)
    conv = SubMConv3d(6, 5, 3, padding=1, bias=True)
    x = sparse_tensor(feats, coords, mask.shape)
    train = conv(x).features
    conv.eval()
    with torch.no_grad():
        ev = conv(x).features  # spconv asserts here on CPU without the fix
    _close(ev, train.detach(), 1e-6)


def test_bad_coordinates_are_refused() -> None:
    with pytest.raises(ValueError, match="outside the spatial shape"):
        sparse_tensor(torch.zeros(1, 2), torch.tensor([[0, 0, 12]]), (12, 12, 12))
    with pytest.raises(ValueError, match="2 coordinates for 1 feature rows"):
        sparse_tensor(torch.zeros(1, 2), torch.tensor([[0, 0, 1], [1, 1, 1]]), (12, 12, 12))
