"""Incremental place index over unit global descriptors: hnswlib (inner product = cosine), with the authors'
settings (M = 32, ef_construction = 400, ef = 200), or exact brute force."""

from __future__ import annotations

import numpy as np

from perception.errors import InputError


class PlaceIndex:
    def __init__(self, dim: int, exact: bool = False, capacity: int = 1024, M: int = 32, ef_construction: int = 400,
                 ef: int = 200) -> None:  # fmt: skip
        self.dim, self.exact = int(dim), exact
        self._ids: list[int] = []
        self._vecs: list[np.ndarray] = []
        self._ef = ef
        if not exact:
            import hnswlib

            self._index = hnswlib.Index(space="ip", dim=self.dim)
            self._index.init_index(max_elements=capacity, M=M, ef_construction=ef_construction, random_seed=0)
            self._index.set_ef(ef)
            self._index.set_num_threads(1)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, place_id: int, vec: np.ndarray) -> None:
        v = np.asarray(vec, np.float32).reshape(-1)
        if v.shape != (self.dim,) or not np.all(np.isfinite(v)):
            raise InputError(f"place index: descriptor must be {self.dim} finite numbers")
        self._ids.append(int(place_id))
        self._vecs.append(v)
        if not self.exact:
            if len(self._ids) > self._index.get_max_elements():
                self._index.resize_index(2 * self._index.get_max_elements())
            self._index.add_items(v[None], np.array([int(place_id)]))

    def query(self, vec: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """(ids, cosine similarities), best first."""
        if not self._ids:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        v = np.asarray(vec, np.float32).reshape(1, -1)
        k = min(k, len(self._ids))
        if self.exact:
            sims = np.stack(self._vecs) @ v[0]
            order = np.argsort(-sims, kind="stable")[:k]
            return np.asarray(self._ids)[order], sims[order]
        self._index.set_ef(max(self._ef, k))
        labels, dist = self._index.knn_query(v, k=k)
        return labels[0].astype(np.int64), (1.0 - dist[0]).astype(np.float32)
