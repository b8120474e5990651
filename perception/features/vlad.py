"""VLAD global descriptors (Jegou et al. 2010) over local descriptors, with intra-normalisation (Arandjelovic &
Zisserman 2013) and signed square-root normalisation; the vocabulary is k-means (k-means++ seeding) on descriptors
of the map's keyframes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.vq import kmeans2

from perception.errors import InputError


@dataclass
class VladVocabulary:
    centers: np.ndarray
    """(K, D) float32 cluster centres."""

    @property
    def dim(self) -> int:
        return int(self.centers.size)

    @classmethod
    def fit(cls, descriptors: list[np.ndarray] | np.ndarray, k: int = 32, seed: int = 0,
            max_samples: int = 50_000) -> VladVocabulary:  # fmt: skip
        d = np.concatenate(list(descriptors)) if isinstance(descriptors, list) else np.asarray(descriptors)
        d = d.astype(np.float64)
        if len(d) < k:
            raise InputError(f"VLAD: {len(d)} descriptors cannot make a vocabulary of {k} words")
        rng = np.random.default_rng(seed)
        if len(d) > max_samples:
            d = d[rng.choice(len(d), max_samples, replace=False)]
        centers, _ = kmeans2(d, k, iter=20, minit="++", seed=rng)
        return cls(centers.astype(np.float32))

    def encode(self, descriptors: np.ndarray) -> np.ndarray:
        """(K*D,) unit-norm VLAD vector (zeros when there are no descriptors)."""
        d = np.asarray(descriptors, dtype=np.float32)
        K, D = self.centers.shape
        if len(d) == 0:
            return np.zeros(K * D, np.float32)
        if d.shape[1] != D:
            raise InputError(f"VLAD: descriptors have {d.shape[1]} dimensions, the vocabulary {D}")
        assign = np.argmax(d @ self.centers.T - 0.5 * (self.centers**2).sum(1), axis=1)  # nearest centre
        v = np.zeros((K, D), np.float32)
        np.add.at(v, assign, d - self.centers[assign])
        n = np.linalg.norm(v, axis=1, keepdims=True)
        v = v / np.where(n > 0, n, 1.0)  # intra-normalisation
        v = np.sign(v) * np.sqrt(np.abs(v))
        v = v.reshape(-1)
        return v / max(float(np.linalg.norm(v)), 1e-12)
