"""NetVLAD from a local checkpoint: the layer against a numpy reference, checkpoint layouts and errors, the
random projection for transmission, and the air-ground pipeline using it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from perception.errors import InputError
from perception.features.netvlad import NetVLADDescriptor, NetVLADLayer, NetVLADNet


def _reference(x: np.ndarray, W: np.ndarray, b: np.ndarray | None, C: np.ndarray) -> np.ndarray:
    """NetVLAD by its definition, one descriptor at a time (x: (D, H, W))."""
    D = x.shape[0]
    f = x.reshape(D, -1).T
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    logits = f @ W.T + (0 if b is None else b)
    a = np.exp(logits - logits.max(1, keepdims=True))
    a /= a.sum(1, keepdims=True)
    V = np.zeros_like(C)
    for i in range(len(f)):
        V += a[i][:, None] * (f[i][None] - C)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    v = V.reshape(-1)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("vladv2", [False, True])
def test_layer_matches_the_definition(vladv2) -> None:
    torch.manual_seed(0)
    layer = NetVLADLayer(8, 16, vladv2).double()
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    out = layer(x).detach().numpy()
    W = layer.conv.weight.detach().numpy()[:, :, 0, 0]
    b = layer.conv.bias.detach().numpy() if vladv2 else None
    C = layer.centroids.detach().numpy()
    for n in range(2):
        np.testing.assert_allclose(out[n], _reference(x[n].numpy(), W, b, C), atol=1e-10)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, NetVLADNet]:
    torch.manual_seed(1)
    net = NetVLADNet(num_clusters=8).eval()
    path = tmp_path_factory.mktemp("nv") / "netvlad.pth.tar"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    return path, net


def test_checkpoint_loads_and_describes(checkpoint, rng) -> None:
    path, net = checkpoint
    d = NetVLADDescriptor(path, max_side=96)
    img = rng.integers(0, 256, (72, 96, 3), dtype=np.uint8)
    v = d(img)
    assert v.shape == (8 * 512,) and abs(np.linalg.norm(v) - 1) < 1e-5
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.no_grad():
        np.testing.assert_allclose(v, net(x)[0].numpy(), atol=1e-5)
    # projection for transmission: seeded, unit norm, cosine similarities kept
    p = NetVLADDescriptor(path, max_side=96, out_dim=512, projection_seed=5)
    q = NetVLADDescriptor(path, max_side=96, out_dim=512, projection_seed=5)
    assert p.dim == 512 and np.array_equal(p(img), q(img)) and abs(np.linalg.norm(p(img)) - 1) < 1e-5
    u = rng.normal(size=(6, 4096)).astype(np.float32)
    u[1:] += 1.5 * u[0]  # some similar, some not
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    w = u @ p.projection
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    assert np.abs(w @ w.T - u @ u.T).max() < 0.12


def test_bad_checkpoints(tmp_path: Path, checkpoint) -> None:
    path, net = checkpoint
    with pytest.raises(FileNotFoundError, match="nope.pth does not exist"):
        NetVLADDescriptor(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pth: not a PyTorch checkpoint"):
        NetVLADDescriptor(junk)
    state = net.state_dict()
    broken = {k: v for k, v in state.items() if k != "encoder.28.bias"}
    torch.save(broken, tmp_path / "missing.pth")
    with pytest.raises(InputError, match=r"missing.pth: 1 missing key\(s\) \['encoder.28.bias'\]"):
        NetVLADDescriptor(tmp_path / "missing.pth")
    torch.save({**state, "pool.centroids": torch.zeros(8, 256)}, tmp_path / "shape.pth")
    with pytest.raises(InputError, match=r"shape.pth: pool.conv.weight has shape|shape.pth: pool.centroids"):
        NetVLADDescriptor(tmp_path / "shape.pth")
    torch.save({"encoder.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="no 'pool.centroids'"):
        NetVLADDescriptor(tmp_path / "other.pth")
    with pytest.raises(InputError, match="out_dim must lie in"):
        NetVLADDescriptor(path, out_dim=10**6)
    with pytest.raises(InputError, match="uint8 RGB image"):
        NetVLADDescriptor(path)(np.zeros((8, 8), np.float32))
