"""Incremental loop closure / place recognition with geometric verification.

Map keyframes are added to a :class:`PlaceIndex` as they arrive. A query (e.g. a UAV keyframe) retrieves the top-k
map keyframes by global-descriptor cosine similarity; candidates above ``top_threshold`` are verified, best first:
the query's local descriptors are matched (mutual NN + ratio) to the descriptors of the landmarks that candidate
keyframe observed, and PnP-RANSAC must find ``min_inliers`` inliers. The first verified candidate is the loop.
Every query logs one line: candidates with similarities, matches and inliers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from perception.camera import CameraModel
from perception.features.matching import match_mutual_nn
from perception.geometry import SE3
from slam.loop.index import PlaceIndex
from slam.pnp import pnp_ransac

log = logging.getLogger(__name__)


@dataclass
class LoopOptions:
    top_k: int = 5
    top_threshold: float = 0.3
    """Minimum global-descriptor cosine similarity of a candidate."""
    ratio: float = 0.9
    min_matches: int = 20
    min_inliers: int = 15
    ransac_threshold_px: float = 4.0
    seed: int = 0


@dataclass
class LoopResult:
    query_id: int
    candidates: list[int] = field(default_factory=list)
    similarities: list[float] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)
    inliers: list[int] = field(default_factory=list)
    accepted: bool = False
    match_id: int | None = None
    T_world_cam: SE3 | None = None
    uv: np.ndarray | None = None
    """Inlier query keypoints of the accepted loop."""
    landmark_idx: np.ndarray | None = None
    """Their landmarks."""

    def to_json(self) -> dict:
        return {
            "query": self.query_id,
            "candidates": self.candidates,
            "similarities": [round(float(s), 4) for s in self.similarities],
            "matches": self.matches,
            "inliers": self.inliers,
            "accepted": self.accepted,
            "match": self.match_id,
        }


class LoopDetector:
    def __init__(self, index: PlaceIndex, landmark_points: np.ndarray, landmark_descriptors: np.ndarray,
                 landmarks_of: Callable[[int], np.ndarray], options: LoopOptions | None = None) -> None:  # fmt: skip
        self.index = index
        self.points = np.asarray(landmark_points, np.float64)
        self.descriptors = np.asarray(landmark_descriptors, np.float32)
        self.landmarks_of = landmarks_of
        self.options = options or LoopOptions()

    def add(self, place_id: int, global_descriptor: np.ndarray) -> None:
        self.index.add(place_id, global_descriptor)

    def query(self, query_id: int, global_descriptor: np.ndarray, keypoints: np.ndarray, descriptors: np.ndarray,
              camera: CameraModel) -> LoopResult:  # fmt: skip
        o = self.options
        res = LoopResult(query_id)
        ids, sims = self.index.query(global_descriptor, o.top_k)
        for cid, sim in zip(ids, sims, strict=True):
            if sim < o.top_threshold:
                break
            res.candidates.append(int(cid))
            res.similarities.append(float(sim))
            lms = np.asarray(self.landmarks_of(int(cid)), dtype=np.int64)
            m = match_mutual_nn(descriptors, self.descriptors[lms], ratio=o.ratio)
            res.matches.append(len(m))
            if len(m) < o.min_matches:
                res.inliers.append(0)
                continue
            uv, lm = np.asarray(keypoints)[m.idx0], lms[m.idx1]
            pnp = pnp_ransac(camera, uv, self.points[lm], o.ransac_threshold_px, o.seed)
            n_inl = 0 if pnp is None else int(pnp[1].sum())
            res.inliers.append(n_inl)
            if n_inl >= o.min_inliers:
                res.accepted, res.match_id, res.T_world_cam = True, int(cid), pnp[0]
                res.uv, res.landmark_idx = uv[pnp[1]], lm[pnp[1]]
                break
        log.info("loop query %d: candidates %s sims %s matches %s inliers %s -> %s", query_id, res.candidates,
                 [f"{s:.2f}" for s in res.similarities], res.matches, res.inliers,
                 f"loop with {res.match_id}" if res.accepted else "none")  # fmt: skip
        return res
