"""Typed containers for local features and matches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Features:
    keypoints: np.ndarray
    """(N, 2) float32 pixels, OpenCV convention (centre of the first pixel at (0, 0))."""
    scores: np.ndarray
    """(N,) float32, larger is better; sorted descending."""
    descriptors: np.ndarray
    """(N, D) float32, L2-normalised rows."""
    image_size: tuple[int, int]
    """(width, height)."""
    kind: str

    def __len__(self) -> int:
        return len(self.keypoints)

    def top(self, n: int) -> Features:
        """The ``n`` strongest features (they are stored sorted by score)."""
        return Features(self.keypoints[:n], self.scores[:n], self.descriptors[:n], self.image_size, self.kind)


@dataclass
class Matches:
    idx0: np.ndarray
    idx1: np.ndarray
    scores: np.ndarray
    """Cosine similarity of each matched pair."""

    def __len__(self) -> int:
        return len(self.idx0)

    def subset(self, mask: np.ndarray) -> Matches:
        return Matches(self.idx0[mask], self.idx1[mask], self.scores[mask])
