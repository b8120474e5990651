"""Incremental loop closure / place recognition with geometric verification.

Map keyframes ("places") are added as they arrive: a global descriptor goes into a :class:`PlaceIndex`, and the
place keeps its local features with, for each feature, the index of the 3D landmark it observes (-1 for none).
A query (e.g. a UAV keyframe) retrieves the top-k places by global-descriptor cosine similarity; each candidate
above ``top_threshold`` is verified: the query's local features are matched to the candidate's (a pluggable
matcher: mutual NN + ratio test, or LighterGlue), matches onto landmarks become 2D-3D correspondences, and
PnP-RANSAC counts their inliers. The correspondences of every candidate with at least ``min_candidate_inliers``
are pooled (one landmark per query keypoint, taken from the candidate with most inliers), since a view often spans
several map keyframes that each see part of it, and PnP-RANSAC runs once more on the pool: the loop is accepted
when it finds ``min_inliers`` inliers. The candidate with most inliers is the loop's match.

Joint verification: a view that matched too few landmarks on its own can still be verified when the querying robot
gives its odometry pose: the correspondences of the last ``window`` queries form a rigid multi-camera rig (their
relative poses from the odometry), poselib's generalized absolute pose RANSAC estimates the rig's pose, and the
query is accepted when it and the other queries each bring ``min_window_query_inliers`` inliers (and all together
``min_inliers``). Chance matches are almost never consistent with a pose the other views support.

Cross-view (air-ground) global descriptors are weak: on the simulated air-ground scenario VLAD cosine similarities
of true and false pairs overlap (both around 0-0.2) while the ranking still puts a true place in the top 5 for
almost every query; hence the default keeps every top-k candidate and lets geometric verification decide
(D_VINS's thresholds of 0.45 / 0.40 are for MixVPR on same-view revisits).
Every query logs one line: candidates with similarities, matches and inliers.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from perception.camera import CameraModel
from perception.errors import InputError
from perception.features.types import Matches
from perception.geometry import SE3
from slam.loop.index import PlaceIndex
from slam.pnp import pnp_ransac

log = logging.getLogger(__name__)

Matcher = Callable[[np.ndarray, np.ndarray, tuple, np.ndarray, np.ndarray, tuple], Matches]
"""``(kp_query, desc_query, size_query, kp_place, desc_place, size_place) -> Matches``."""


@dataclass
class LoopOptions:
    top_k: int = 5
    top_threshold: float = -1.0
    """Minimum global-descriptor cosine similarity of a candidate (-1: keep all top-k, see the module docstring)."""
    matcher: str = "auto"
    """``mnn`` (mutual nearest neighbour + ratio test), ``lighterglue`` (XFeat descriptors only) or ``auto``
    (LighterGlue for 64-D XFeat descriptors, else mnn). On the simulated air-ground block (seed 0, single-view
    verification only) cross-view recall was 0.61 with one false loop with mnn, 0.91 with none with LighterGlue."""
    ratio: float = 0.9
    min_matches: int = 12
    """2D-3D matches a candidate needs before PnP is tried."""
    min_inliers: int = 20
    """PnP inliers the pooled correspondences need for the loop to be accepted."""
    min_candidate_inliers: int = 8
    """PnP inliers a single candidate needs for its correspondences to join the pool (a view often spans several
    map keyframes, each seeing only part of it)."""
    ransac_threshold_px: float = 4.0
    window: int = 3
    """Queries (the current one included) whose correspondences are verified jointly when the query alone does not
    verify and the querying robot's odometry poses are given (1: off)."""
    min_window_query_inliers: int = 8
    """Joint verification: inliers the current query needs, and that the other queries of the window need in
    total, under one pose of the window (rigid through the odometry); the total must reach ``min_inliers``."""
    guided_radius_px: float = 6.0
    """Joint verification, when the query alone has too few inliers under the window's pose: landmarks projected
    with that predicted pose are matched to query keypoints within this radius (needs landmark descriptors)."""
    guided_min_similarity: float = 0.6
    """Cosine similarity a guided match needs."""
    seed: int = 0

    def validate(self) -> None:
        if self.top_k < 1:
            raise InputError(f"loop: top_k must be >= 1, got {self.top_k}")
        if self.matcher not in ("auto", "mnn", "lighterglue"):
            raise InputError(f"loop: matcher must be 'auto', 'mnn' or 'lighterglue', got {self.matcher!r}")
        if min(self.min_inliers, self.min_matches, self.min_candidate_inliers) < 4:
            raise InputError("loop: min_inliers, min_candidate_inliers and min_matches must be >= 4 (PnP needs 4)")
        if self.window < 1 or self.min_window_query_inliers < 3:
            raise InputError("loop: window must be >= 1 and min_window_query_inliers >= 3")
        if not self.ransac_threshold_px > 0:
            raise InputError(f"loop: ransac_threshold_px must be > 0, got {self.ransac_threshold_px}")


@dataclass
class Place:
    """A map keyframe's local features and the landmark each one observes."""

    keypoints: np.ndarray
    """(N, 2) pixels."""
    descriptors: np.ndarray
    """(N, D) unit rows."""
    landmark: np.ndarray
    """(N,) int64 landmark index per feature, -1 where the feature is not a landmark."""
    image_size: tuple[int, int]
    """(width, height)."""

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, np.float64).reshape(-1, 2)
        self.descriptors = np.asarray(self.descriptors, np.float32)
        self.landmark = np.asarray(self.landmark, np.int64).reshape(-1)
        n = len(self.keypoints)
        if self.descriptors.ndim != 2 or len(self.descriptors) != n or len(self.landmark) != n:
            raise InputError(f"loop place: {n} keypoints but descriptors {self.descriptors.shape} and "
                             f"{len(self.landmark)} landmark ids")  # fmt: skip


@dataclass
class LoopResult:
    query_id: int
    candidates: list[int] = field(default_factory=list)
    similarities: list[float] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)
    """2D-3D matches per candidate."""
    inliers: list[int] = field(default_factory=list)
    """PnP inliers per candidate."""
    pooled_inliers: int = 0
    window_inliers: int = 0
    """Inliers of the joint verification over the window (0 when it did not run)."""
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
            "pooled_inliers": self.pooled_inliers,
            "window_inliers": self.window_inliers,
            "accepted": self.accepted,
            "match": self.match_id,
        }


def _default_matcher(options: LoopOptions, descriptor_dim: int) -> Matcher:
    from perception.features.lighterglue import make_matcher

    name = options.matcher
    if name == "auto":
        name = "lighterglue" if descriptor_dim == 64 else "mnn"
    return make_matcher(name, ratio=options.ratio)


class LoopDetector:
    def __init__(self, index: PlaceIndex, landmark_points: np.ndarray, options: LoopOptions | None = None,
                 matcher: Matcher | None = None, landmark_descriptors: np.ndarray | None = None) -> None:  # fmt: skip
        self.options = options or LoopOptions()
        self.options.validate()
        self.index = index
        self.points = np.asarray(landmark_points, np.float64).reshape(-1, 3)
        self.matcher = matcher  # made on the first query when None (``auto`` needs the descriptor size)
        self.places: dict[int, Place] = {}
        self.landmark_descriptors = None
        if landmark_descriptors is not None:
            self.landmark_descriptors = np.asarray(landmark_descriptors, np.float32)
            if len(self.landmark_descriptors) != len(self.points):
                raise InputError(f"loop: {len(self.landmark_descriptors)} landmark descriptors for "
                                 f"{len(self.points)} points")  # fmt: skip
        self._history: deque = deque(maxlen=max(self.options.window - 1, 1))

    def add(self, place_id: int, global_descriptor: np.ndarray, place: Place) -> None:
        lm = place.landmark[place.landmark >= 0]
        if len(lm) and lm.max() >= len(self.points):
            raise InputError(f"loop place {place_id}: landmark index {lm.max()} but the map has {len(self.points)}")
        if len(lm) and not np.all(np.isfinite(self.points[lm])):
            raise InputError(f"loop place {place_id}: refers to landmarks that are not finite")
        self.index.add(place_id, global_descriptor)
        self.places[int(place_id)] = place

    def _pnp(self, camera: CameraModel, uv: np.ndarray, lm: np.ndarray):
        o = self.options
        if len(uv) < max(4, o.min_matches):
            return None, 0
        r = pnp_ransac(camera, uv, self.points[lm], o.ransac_threshold_px, o.seed)
        return (None, 0) if r is None else (r, int(r[1].sum()))

    def query(self, query_id: int, global_descriptor: np.ndarray, keypoints: np.ndarray, descriptors: np.ndarray,
              camera: CameraModel, T_odom_cam: SE3 | None = None) -> LoopResult:  # fmt: skip
        """Retrieve, match and verify one query. ``T_odom_cam`` (the query camera's pose in the querying robot's own
        odometry frame) enables joint verification with the previous ``window - 1`` queries."""
        o = self.options
        res = LoopResult(query_id)
        kp = np.asarray(keypoints, np.float64).reshape(-1, 2)
        size = (int(camera.width), int(camera.height))
        if self.matcher is None:
            self.matcher = _default_matcher(o, np.asarray(descriptors).shape[-1])
        ids, sims = self.index.query(global_descriptor, o.top_k)
        verified = []  # (inliers, query kp idx, landmark idx, candidate)
        tried = []  # the same for every candidate, for joint verification
        for cid, sim in zip(ids, sims, strict=True):
            if sim < o.top_threshold:
                break
            place = self.places[int(cid)]
            res.candidates.append(int(cid))
            res.similarities.append(float(sim))
            m = self.matcher(kp, descriptors, size, place.keypoints, place.descriptors, place.image_size)
            lm = place.landmark[m.idx1]
            on = lm >= 0
            q, lm = m.idx0[on], lm[on]
            res.matches.append(len(q))
            pnp, n_inl = self._pnp(camera, kp[q], lm)
            res.inliers.append(n_inl)
            tried.append((n_inl, q, lm, int(cid)))
            if n_inl >= o.min_candidate_inliers:
                verified.append((n_inl, q, lm, int(cid)))
        if verified:
            verified.sort(key=lambda v: -v[0])
            q = np.concatenate([v[1] for v in verified])
            lm = np.concatenate([v[2] for v in verified])
            q, first = np.unique(q, return_index=True)  # stable: the best candidate's landmark wins
            lm = lm[first]
            pnp, n_inl = self._pnp(camera, kp[q], lm)
            res.pooled_inliers = n_inl
            if n_inl >= o.min_inliers:
                res.accepted, res.match_id, res.T_world_cam = True, verified[0][3], pnp[0]
                res.uv, res.landmark_idx = kp[q][pnp[1]], lm[pnp[1]]
        if T_odom_cam is not None and o.window > 1:
            entry = self._pool(tried, kp, camera, T_odom_cam)
            if not res.accepted and self._history:
                self._verify_window(res, entry, kp, np.asarray(descriptors, np.float32))
            self._history.append(entry)
        log.info("loop query %d: candidates %s sims %s matches %s inliers %s pooled %d window %d -> %s", query_id,
                 res.candidates, [f"{s:.2f}" for s in res.similarities], res.matches, res.inliers, res.pooled_inliers,
                 res.window_inliers, f"loop with {res.match_id}" if res.accepted else "none")  # fmt: skip
        return res

    @staticmethod
    def _pool(tried, kp, camera, T_odom_cam):
        """All 2D-3D matches of one query, one landmark per keypoint (from the candidate with most inliers)."""
        tried = sorted(tried, key=lambda v: -v[0])
        q = np.concatenate([v[1] for v in tried]) if tried else np.zeros(0, np.int64)
        lm = np.concatenate([v[2] for v in tried]) if tried else np.zeros(0, np.int64)
        cid = np.concatenate([np.full(len(v[1]), v[3]) for v in tried]) if tried else np.zeros(0, np.int64)
        q, first = np.unique(q, return_index=True)
        return camera, T_odom_cam, kp[q], lm[first], cid[first]

    def _best_place(self, landmark_idx: np.ndarray) -> int:
        """The map keyframe that observes most of these landmarks."""
        ids = list(self.places)
        counts = [np.isin(self.places[i].landmark, landmark_idx).sum() for i in ids]
        return int(ids[int(np.argmax(counts))])

    def _guided(self, kp: np.ndarray, desc: np.ndarray, camera: CameraModel, T_world_cam: SE3):
        """Landmarks projected with a predicted pose, matched to the nearest-in-descriptor query keypoint within
        ``guided_radius_px`` (one landmark per keypoint, the most similar): ``(keypoint idx, landmark idx)``."""
        from scipy.spatial import cKDTree

        o = self.options
        good = np.flatnonzero(np.all(np.isfinite(self.points), axis=1))
        p = T_world_cam.inverse().act(self.points[good])
        uv, valid = camera.project(p)
        inside = valid & (p[:, 2] > 0) & (uv[:, 0] >= 0) & (uv[:, 0] <= camera.width - 1)
        inside &= (uv[:, 1] >= 0) & (uv[:, 1] <= camera.height - 1)
        lms, uv = good[inside], uv[inside]
        if not len(lms) or not len(kp):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        near = cKDTree(kp).query_ball_point(uv, o.guided_radius_px)
        best: dict[int, tuple[float, int]] = {}
        for lm, cands in zip(lms, near, strict=True):
            if not cands:
                continue
            sims = desc[cands] @ self.landmark_descriptors[lm]
            k = int(np.argmax(sims))
            if sims[k] >= o.guided_min_similarity and sims[k] > best.get(cands[k], (-2.0, -1))[0]:
                best[cands[k]] = (float(sims[k]), int(lm))
        q = np.fromiter(best.keys(), np.int64, len(best))
        return q, np.array([best[int(i)][1] for i in q], np.int64)

    def _verify_window(self, res: LoopResult, entry, kp: np.ndarray, desc: np.ndarray) -> None:
        from slam.pnp import generalized_pnp_ransac

        o = self.options
        win = [*self._history, entry]
        if sum(len(e[2]) for e in win) < 4:
            return
        r = generalized_pnp_ransac([e[0] for e in win], [e[1] for e in win], [e[2] for e in win],
                                   [self.points[e[3]] for e in win], o.ransac_threshold_px, o.seed)  # fmt: skip
        if r is None:
            return
        T_world_odom, masks = r
        n_q = int(masks[-1].sum())
        n_all = int(sum(m.sum() for m in masks))
        res.window_inliers = n_all
        if n_q >= o.min_window_query_inliers and n_all - n_q >= o.min_window_query_inliers and n_all >= o.min_inliers:
            _, T_odom_cam, uv, lm, cid = entry
            m = masks[-1]
            res.accepted, res.T_world_cam = True, T_world_odom @ T_odom_cam
            res.uv, res.landmark_idx = uv[m], lm[m]
            res.match_id = self._best_place(res.landmark_idx)
        elif n_all - n_q >= o.min_inliers and self.landmark_descriptors is not None:
            # the other views agree on a pose: search the query around the landmarks that pose projects
            camera, T_odom_cam = entry[0], entry[1]
            q, lm = self._guided(kp, desc, camera, T_world_odom @ T_odom_cam)
            pnp, n_inl = self._pnp(camera, kp[q], lm)
            res.window_inliers = n_all - n_q + n_inl
            if n_inl >= o.min_inliers:
                res.accepted, res.T_world_cam = True, pnp[0]
                res.uv, res.landmark_idx = kp[q][pnp[1]], lm[pnp[1]]
                res.match_id = self._best_place(res.landmark_idx)
