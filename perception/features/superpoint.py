"""SuperPoint (DeTone, Malisiewicz, Rabinovich, CVPR-W 2018) loading MagicLeap's published ``superpoint_v1.pth``.

No weights ship with sparsepipe and nothing is downloaded: pass a local checkpoint with ``--weights PATH``.

Accepted checkpoint layouts (read with ``torch.load(..., weights_only=True)``):

- MagicLeap's plain ``state_dict`` (``conv1a.weight`` ... ``convDb.bias``, no prefix) -- the layout of
  ``superpoint_v1.pth`` in both SuperPointPretrainedNetwork and SuperGluePretrainedNetwork;
- the same wrapped in ``{"state_dict": ...}`` or ``{"model": ...}``, and/or with every key prefixed ``module.``.

Pixel conventions:

- Keypoints are in the project's OpenCV pixel-centre convention: heatmap element (row ``i``, column ``j``) is the
  keypoint ``(x, y) = (j, i)``; pixel (0, 0) is the centre of the first pixel (the original code uses the same
  integer indices).
- Descriptors are sampled from the coarse (1/8) map exactly as SuperGlue's / LightGlue's ``sample_descriptors``
  (``grid_sample`` with ``align_corners=True``): coarse column ``u = (x - 3.5) (Wc - 1) / (8 Wc - 4.5)`` and
  likewise for rows, i.e. the first cell's descriptor sits at pixel centre 3.5 (the centre of its 8x8 block) and
  the last cell's at the last pixel of the (padded) image. The coarse map is L2-normalised per cell before the
  bilinear interpolation and the result is L2-normalised again, as in the original. (MagicLeap's older demo used
  ``x / (W / 2) - 1``, which is offset by about half a cell; we follow the later, corrected convention.)
- Images whose height or width is not a multiple of 8 are padded at the bottom/right by edge replication before
  the network; the heatmap is cropped back to the original size *before* non-maximum suppression, so padding can
  neither create nor suppress keypoints, and the border margin is measured from the original image edges.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from perception.errors import InputError
from perception.features.types import Features

log = logging.getLogger(__name__)

CELL = 8
"""Size in pixels of one cell of the coarse (1/8 resolution) output maps."""

_LAYERS = (
    ("conv1a", 1, 64, 3),
    ("conv1b", 64, 64, 3),
    ("conv2a", 64, 64, 3),
    ("conv2b", 64, 64, 3),
    ("conv3a", 64, 128, 3),
    ("conv3b", 128, 128, 3),
    ("conv4a", 128, 128, 3),
    ("conv4b", 128, 128, 3),
    ("convPa", 128, 256, 3),
    ("convPb", 256, 65, 1),
    ("convDa", 128, 256, 3),
    ("convDb", 256, 256, 1),
)


class SuperPointNet(torch.nn.Module):
    """The SuperPoint network with the layer names and shapes of MagicLeap's ``SuperPointNet``.

    ``forward(x)`` takes ``(N, 1, H, W)`` grayscale in [0, 1] (``H``, ``W`` multiples of 8) and returns the raw
    detector logits ``(N, 65, H/8, W/8)`` (channel 64 is the "no keypoint" dustbin) and the raw (unnormalised)
    descriptor map ``(N, 256, H/8, W/8)``.
    """

    def __init__(self) -> None:
        super().__init__()
        for name, cin, cout, k in _LAYERS:
            setattr(self, name, torch.nn.Conv2d(cin, cout, kernel_size=k, stride=1, padding=k // 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for a, b in ((self.conv1a, self.conv1b), (self.conv2a, self.conv2b), (self.conv3a, self.conv3b)):
            x = F.max_pool2d(F.relu(b(F.relu(a(x)))), kernel_size=2, stride=2)
        x = F.relu(self.conv4b(F.relu(self.conv4a(x))))
        logits = self.convPb(F.relu(self.convPa(x)))
        desc = self.convDb(F.relu(self.convDa(x)))
        return logits, desc

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> SuperPointNet:
        """A network in eval mode with the weights of the checkpoint at ``path`` (layouts in the module docstring)."""
        net = cls()
        net.load_state_dict(load_superpoint_state(path, net.state_dict()))
        return net.eval()


def load_superpoint_state(path: str | Path, expected: Mapping[str, torch.Tensor] | None = None) -> dict:
    """The SuperPoint ``state_dict`` in the checkpoint at ``path``, validated against ``expected`` (names, shapes).

    Raises FileNotFoundError for a missing file and InputError (naming the file) for anything that is not a
    SuperPoint checkpoint in one of the accepted layouts.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SuperPoint weights {path} do not exist; pass --weights PATH to superpoint_v1.pth")
    if expected is None:
        expected = SuperPointNet().state_dict()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors of every kind: the user gave a file that is not a checkpoint
        why = f"{type(e).__name__}: {' '.join(str(e).split())[:80]}"
        raise InputError(f"SuperPoint weights {path}: not a readable torch checkpoint ({why})") from e
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise InputError(
            f"SuperPoint weights {path}: expected a state_dict (or {{'state_dict': ...}} / {{'model': ...}}), "
            f"got {type(obj).__name__}"
        )
    keys = [str(k) for k in obj]
    if all(k.startswith("module.") for k in keys):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    state = dict(obj)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_short(unexpected)}")
        raise InputError(f"SuperPoint weights {path}: not a SuperPoint (superpoint_v1) state_dict: {'; '.join(parts)}")
    for k, ref in expected.items():
        v = state[k]
        if not isinstance(v, torch.Tensor):
            raise InputError(f"SuperPoint weights {path}: {k} is a {type(v).__name__}, expected a tensor")
        if tuple(v.shape) != tuple(ref.shape):
            raise InputError(f"SuperPoint weights {path}: {k} has shape {tuple(v.shape)}, expected {tuple(ref.shape)}")
        if not v.is_floating_point():
            raise InputError(f"SuperPoint weights {path}: {k} has dtype {v.dtype}, expected floating point")
    return state


def _short(names: list[str], n: int = 4) -> str:
    more = f" (+{len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def logits_to_heatmap(logits: torch.Tensor) -> torch.Tensor:
    """``(N, 65, Hc, Wc)`` detector logits -> ``(N, 8 Hc, 8 Wc)`` keypoint probabilities.

    Softmax over the 65 channels, dustbin dropped; channel ``8 dy + dx`` of cell ``(i, j)`` is pixel
    ``(8 i + dy, 8 j + dx)``.
    """
    prob = torch.softmax(logits, dim=1)[:, :-1]
    return F.pixel_shuffle(prob, CELL)[:, 0]


def max_pool_nms(scores: torch.Tensor, radius: int) -> torch.Tensor:
    """Non-maximum suppression over square windows of side ``2 radius + 1``; suppressed scores become 0.

    A pixel survives if it is the maximum of its window; two more rounds recover maxima that were only dominated
    by already-suppressed pixels (the scheme of SuperGlue's ``simple_nms``). ``scores`` is ``(N, H, W)``.
    """
    if radius <= 0:
        return scores

    def pool(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x[:, None], kernel_size=2 * radius + 1, stride=1, padding=radius)[:, 0]

    keep = scores == pool(scores)
    for _ in range(2):
        suppressed = pool(keep.float()) > 0
        rest = scores.masked_fill(suppressed, 0.0)
        keep = keep | ((rest == pool(rest)) & ~suppressed)
    return torch.where(keep, scores, torch.zeros_like(scores))


def sample_descriptors(desc: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """Bilinear descriptors ``(K, D)`` (unit rows) of the coarse map ``desc`` ``(1, D, Hc, Wc)`` at ``keypoints``.

    ``keypoints`` is ``(K, 2)`` pixel-centre ``(x, y)`` in the (padded) full-resolution image; the mapping to the
    coarse grid is SuperGlue's (see the module docstring).
    """
    _, d, hc, wc = desc.shape
    if len(keypoints) == 0:
        return desc.new_zeros((0, d))
    desc = F.normalize(desc, p=2, dim=1)
    scale = torch.tensor([CELL * wc - CELL / 2 - 0.5, CELL * hc - CELL / 2 - 0.5], dtype=desc.dtype)
    grid = (keypoints.to(desc.dtype) - (CELL / 2 - 0.5)) / scale * 2 - 1
    out = F.grid_sample(desc, grid.view(1, 1, -1, 2), mode="bilinear", align_corners=True)
    return F.normalize(out.reshape(d, -1), p=2, dim=0).T


def to_gray(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB or ``(H, W)`` gray uint8 -> ``(H, W)`` float32 gray in [0, 1] (OpenCV's RGB2GRAY)."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise InputError(
            f"SuperPoint: expected an (H, W, 3) RGB or (H, W) gray uint8 image, got {img.dtype} {img.shape}"
        )
    if min(img.shape[:2]) < CELL:
        raise InputError(f"SuperPoint: image {img.shape[1]}x{img.shape[0]} is too small (need at least 8x8)")
    gray = img if img.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    return gray.astype(np.float32) / 255.0


class SuperPointExtractor:
    """Callable ``image -> Features`` running SuperPoint on the CPU with MagicLeap's post-processing."""

    dim = 256
    name = "superpoint"

    def __init__(
        self,
        weights: str | Path,
        max_keypoints: int = 1024,
        detection_threshold: float = 0.005,
        nms_radius: int = 4,
        border: int = 4,
    ) -> None:
        if weights is None:
            raise InputError(
                "SuperPoint needs --weights PATH (e.g. MagicLeap's superpoint_v1.pth); no weights ship with "
                "sparsepipe -- use --features xfeat for bundled weights"
            )
        if int(max_keypoints) < 1:
            raise InputError(f"SuperPoint: max_keypoints must be >= 1, got {max_keypoints}")
        if not 0.0 <= float(detection_threshold) < 1.0:
            raise InputError(f"SuperPoint: detection_threshold must be in [0, 1), got {detection_threshold}")
        if int(nms_radius) < 0 or int(border) < 0:
            raise InputError(f"SuperPoint: nms_radius and border must be >= 0, got {nms_radius} and {border}")
        self.net = SuperPointNet.from_checkpoint(weights)
        self.max_keypoints = int(max_keypoints)
        self.detection_threshold = float(detection_threshold)
        self.nms_radius = int(nms_radius)
        self.border = int(border)
        log.debug("loaded SuperPoint weights from %s", weights)

    def __call__(self, image: np.ndarray) -> Features:
        return self.extract(image)[0]

    def extract(self, image: np.ndarray) -> tuple[Features, torch.Tensor]:
        """Keypoints with descriptors, and the coarse descriptor map ``(1, 256, H/8, W/8)`` they were sampled from
        (see :func:`sample_descriptors`)."""
        gray = to_gray(image)
        h, w = gray.shape
        x = torch.from_numpy(gray)[None, None]
        pad_h, pad_w = -h % CELL, -w % CELL
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        with torch.inference_mode():
            logits, desc = self.net(x)
            heat = logits_to_heatmap(logits)[:, :h, :w]  # crop the padding before NMS
            heat = max_pool_nms(heat, self.nms_radius)[0]
            b = self.border
            valid = heat > self.detection_threshold
            valid[:b] = False
            valid[h - b :] = False
            valid[:, :b] = False
            valid[:, w - b :] = False
            ys, xs = torch.nonzero(valid, as_tuple=True)
            scores = heat[ys, xs]
            order = torch.argsort(-scores, stable=True)[: self.max_keypoints]
            kp = torch.stack([xs[order], ys[order]], dim=1).to(torch.float32)
            scores = scores[order]
            descriptors = sample_descriptors(desc, kp)
        feats = Features(
            kp.numpy().astype(np.float32),
            scores.numpy().astype(np.float32),
            descriptors.numpy().astype(np.float32),
            (w, h),
            "superpoint",
        )
        return feats, desc
