"""NetVLAD global image descriptors (Arandjelovic et al., CVPR 2016) from a local checkpoint.

The network is VGG-16's convolutional part cropped at ``conv5_3`` (before its ReLU, as the paper's best model)
followed by a NetVLAD layer: soft-assignment by a 1x1 convolution, residuals to learned centroids summed per
cluster, intra-normalised, flattened and L2-normalised (``K * 512`` dimensions, 32768 for K = 64).

Checkpoint format: the PyTorch one of the widely used ``pytorch-NetVlad`` training code -- a ``torch.save``d dict
whose ``state_dict`` (or the dict itself) holds ``encoder.{0,2,5,7,10,12,14,17,19,21,24,26,28}.{weight,bias}``
(VGG-16 conv layers at torchvision's indices) and ``pool.centroids`` (K, 512), ``pool.conv.weight`` (K, 512, 1, 1)
and, for the "vladv2" variant, ``pool.conv.bias``; a ``module.`` prefix (DataParallel) is accepted. Nothing is
downloaded: without a checkpoint the pipeline uses VLAD over local descriptors (:mod:`perception.features.vlad`).
Images are resized so their longer side is ``max_side`` pixels and normalised with the ImageNet mean and std.

Transmission: 32768 fp16 numbers are 64 kB, more than a 0.3 Mbit/s link carries in a second. With ``out_dim`` the
vector is multiplied by a random Gaussian matrix drawn from ``projection_seed`` (Johnson-Lindenstrauss: inner
products, hence cosine rankings, are preserved up to O(1/sqrt(out_dim))) and re-normalised; sender and receiver
draw the same matrix from the seed, so nothing but the short vector crosses the link.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perception.errors import InputError

VGG16_CONV = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_encoder() -> nn.Sequential:
    """VGG-16 convolutions up to conv5_3 (no final ReLU / pool), with torchvision's layer indices."""
    layers: list[nn.Module] = []
    c = 3
    for v in VGG16_CONV:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            c = int(v)
    return nn.Sequential(*layers[:-1])


class NetVLADLayer(nn.Module):
    def __init__(self, num_clusters: int = 64, dim: int = 512, vladv2: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, num_clusters, kernel_size=1, bias=vladv2)
        self.centroids = nn.Parameter(torch.rand(num_clusters, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, d = x.shape[:2]
        x = F.normalize(x, p=2, dim=1)  # descriptor-wise normalisation of the input
        a = F.softmax(self.conv(x).view(n, self.centroids.shape[0], -1), dim=1)  # (N, K, HW)
        x = x.view(n, d, -1)  # (N, D, HW)
        # sum_i a_k(x_i) (x_i - c_k) = (a x^T)_k - (sum_i a_k(x_i)) c_k
        vlad = torch.einsum("nkp,ndp->nkd", a, x) - a.sum(-1, keepdim=True) * self.centroids[None]
        vlad = F.normalize(vlad, p=2, dim=2)  # intra-normalisation
        return F.normalize(vlad.reshape(n, -1), p=2, dim=1)


class NetVLADNet(nn.Module):
    def __init__(self, num_clusters: int = 64, vladv2: bool = False) -> None:
        super().__init__()
        self.encoder = vgg16_encoder()
        self.pool = NetVLADLayer(num_clusters, 512, vladv2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.encoder(x))


def load_netvlad_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict with keys normalised (see the module docstring); errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"NetVLAD checkpoint {p} does not exist (no weights ship with sparsepipe; "
                                "omit it to use VLAD over local features)")  # fmt: skip
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(f"{p}: not a PyTorch checkpoint ({type(e).__name__})") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{p}: expected a state dict (or a dict with 'state_dict') of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


class NetVLADDescriptor:
    """``describe(image (H, W, 3) uint8 RGB) -> (K * 512,) float32 unit vector``."""

    name = "netvlad"

    def __init__(self, weights: str | Path, max_side: int = 640, out_dim: int | None = None,
                 projection_seed: int = 0) -> None:  # fmt: skip
        state = load_netvlad_state(weights)
        if "pool.centroids" not in state:
            raise InputError(f"{weights}: no 'pool.centroids' -- not a pytorch-NetVlad (VGG-16 + NetVLAD) checkpoint")
        k = int(state["pool.centroids"].shape[0])
        self.net = NetVLADNet(k, vladv2="pool.conv.bias" in state)
        expected = self.net.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise InputError(f"{weights}: {len(missing)} missing key(s) {missing[:3]} and {len(unexpected)} unexpected "
                             f"{unexpected[:3]} for VGG-16 + NetVLAD")  # fmt: skip
        for key, t in expected.items():
            if state[key].shape != t.shape:
                raise InputError(f"{weights}: {key} has shape {tuple(state[key].shape)}, expected {tuple(t.shape)}")
        self.net.load_state_dict(state)
        self.net.eval()
        self.max_side = int(max_side)
        self.dim = k * 512
        self.projection = None
        if out_dim is not None:
            if not 1 <= int(out_dim) < self.dim:
                raise InputError(f"NetVLAD: out_dim must lie in [1, {self.dim}), got {out_dim}")
            rng = np.random.default_rng(projection_seed)
            self.projection = rng.standard_normal((self.dim, int(out_dim)), dtype=np.float32)
            self.dim = int(out_dim)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise InputError(f"NetVLAD: expected an (H, W, 3) uint8 RGB image, got {img.dtype} {img.shape}")
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0
        s = self.max_side / max(img.shape[:2])
        if s < 1.0:
            x = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False, antialias=True)
        x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        with torch.inference_mode():
            v = self.net(x)[0].numpy().astype(np.float32)
        if self.projection is not None:
            v = v @ self.projection
            v /= max(float(np.linalg.norm(v)), 1e-12)
        return v
