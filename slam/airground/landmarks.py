"""UGV landmarks: feature tracks across keyframes (union-find over pairwise matches), their triangulation and the
landmark map (points + mean descriptors) that UAV keypoints are matched against.

A track is a connected component of the graph whose nodes are (keyframe, feature) pairs and whose edges are the
verified pairwise matches. A component holding two different features of the same keyframe is inconsistent (a
wrong match somewhere along it) and is dropped whole. Tracks seen by ``>= min_views`` keyframes are triangulated
(weighted DLT + refinement on undistorted normalised coordinates, :func:`perception.geometry.triangulate`, so any
camera model works) and kept only if they are in front of every observing camera within ``[min_depth, max_depth]``,
their viewing rays span at least ``min_parallax_deg`` and every observation reprojects within ``max_reproj_px``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from perception.camera import CameraModel
from perception.errors import InputError
from perception.geometry import SE3, triangulate
from slam.factorgraph.ba import Observations

log = logging.getLogger(__name__)

__all__ = ["LandmarkMap", "Tracks", "build_landmark_map", "build_tracks", "triangulate_tracks"]


@dataclass
class LandmarkMap:
    """Triangulated UGV landmarks in the UGV world frame (one row per landmark)."""

    points: np.ndarray
    """(L, 3) float64 world coordinates."""
    descriptors: np.ndarray
    """(L, D) float32, mean of the track's descriptors, L2-normalised."""
    track_ids: np.ndarray
    """(L,) int64 track id of each landmark (index into the stage-1 track arrays)."""
    num_obs: np.ndarray
    """(L,) int64 number of keyframes observing the landmark."""

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 3)
        n = len(self.points)
        self.descriptors = np.asarray(self.descriptors, dtype=np.float32)
        if self.descriptors.ndim != 2 or len(self.descriptors) != n:
            raise InputError(f"LandmarkMap: descriptors must be (L={n}, D), got shape {self.descriptors.shape}")
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        self.num_obs = np.asarray(self.num_obs, dtype=np.int64).reshape(-1)
        if len(self.track_ids) != n or len(self.num_obs) != n:
            raise InputError(f"LandmarkMap: track_ids and num_obs must have {n} entries, got "
                             f"{len(self.track_ids)} and {len(self.num_obs)}")  # fmt: skip
        if not np.all(np.isfinite(self.points)):
            raise InputError("LandmarkMap: points must be finite (drop untriangulated tracks)")

    def __len__(self) -> int:
        return len(self.points)


@dataclass
class Tracks:
    """Feature tracks over keyframes as observations: ``image_index`` = keyframe, ``point_index`` = track id."""

    observations: Observations
    feature_index: np.ndarray
    """(M,) index of each observation's feature in its keyframe's keypoint / descriptor arrays."""
    num_tracks: int
    dropped_inconsistent: int = 0
    """Components dropped because they held two features of one keyframe."""


def _pair_indices(m: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(m, "idx0") and hasattr(m, "idx1"):
        a, b = m.idx0, m.idx1
    else:
        try:
            a, b = m
        except (TypeError, ValueError):
            raise InputError(f"build_tracks: matches{name} must be a Matches or an (idx0, idx1) pair") from None
    a = np.asarray(a, dtype=np.int64).reshape(-1)
    b = np.asarray(b, dtype=np.int64).reshape(-1)
    if a.shape != b.shape:
        raise InputError(f"build_tracks: matches{name} has {len(a)} idx0 but {len(b)} idx1 entries")
    return a, b


def build_tracks(
    keypoints: Sequence[np.ndarray],
    matches: Mapping[tuple[int, int], Any],
    min_length: int = 2,
) -> Tracks:
    """Union-find tracks from pairwise matches.

    Parameters
    ----------
    keypoints : per keyframe (N_k, 2) pixel coordinates (OpenCV pixel centres).
    matches : ``{(i, j): Matches or (idx0, idx1)}``, feature ``idx0`` of keyframe i matched to ``idx1`` of j.
    min_length : keep tracks observed in at least this many keyframes.
    """
    kps = [np.asarray(k, dtype=np.float64).reshape(-1, 2) for k in keypoints]
    counts = np.array([len(k) for k in kps], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n_nodes = int(offsets[-1])
    parent = np.arange(n_nodes)

    def find(a: int) -> int:
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:  # path compression
            parent[a], a = root, parent[a]
        return root

    for key, m in matches.items():
        try:
            i, j = (int(v) for v in key)
        except (TypeError, ValueError):
            raise InputError(f"build_tracks: match keys must be (i, j) keyframe pairs, got {key!r}") from None
        if not (0 <= i < len(kps) and 0 <= j < len(kps)) or i == j:
            raise InputError(f"build_tracks: match pair {key} refers to keyframes outside [0, {len(kps)}) or to one")
        a, b = _pair_indices(m, f"[{key}]")
        if len(a) and (a.min() < 0 or a.max() >= counts[i] or b.min() < 0 or b.max() >= counts[j]):
            raise InputError(f"build_tracks: matches[{key}] index a feature outside keyframes {i} ({counts[i]}) / "
                             f"{j} ({counts[j]})")  # fmt: skip
        for x, y in zip((offsets[i] + a).tolist(), (offsets[j] + b).tolist(), strict=True):
            rx, ry = find(x), find(y)
            if rx != ry:
                parent[ry] = rx
    roots = np.fromiter((find(k) for k in range(n_nodes)), dtype=np.int64, count=n_nodes)
    kf = np.repeat(np.arange(len(kps)), counts)
    _, comp, size = np.unique(roots, return_inverse=True, return_counts=True)
    # a consistent component has at most one feature per keyframe: its size equals its number of keyframes
    n_kf = np.zeros(len(size), dtype=np.int64)
    pairs = np.unique(np.stack([comp, kf], axis=1), axis=0) if n_nodes else np.zeros((0, 2), np.int64)
    np.add.at(n_kf, pairs[:, 0], 1)
    consistent = n_kf == size
    keep_comp = consistent & (size >= max(2, int(min_length)))
    keep = keep_comp[comp]
    track = np.unique(comp[keep], return_inverse=True)[1] if keep.any() else np.zeros(0, np.int64)
    uv = np.concatenate(kps)[keep] if n_nodes else np.zeros((0, 2))
    obs = Observations(kf[keep], track, uv)
    feature_index = (np.arange(n_nodes) - offsets[kf])[keep]
    dropped = int((~consistent).sum())
    if dropped:
        log.debug("build_tracks: dropped %d inconsistent track(s)", dropped)
    return Tracks(obs, feature_index.astype(np.int64), int(keep_comp.sum()), dropped)


def triangulate_tracks(
    T_world_cam: SE3,
    camera: CameraModel,
    obs: Observations,
    num_points: int | None = None,
    *,
    min_views: int = 2,
    min_parallax_deg: float = 1.0,
    min_depth: float = 0.1,
    max_depth: float = np.inf,
    max_reproj_px: float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate every track -> ``(points (P, 3), ok (P,))``; rejected tracks are NaN with ``ok`` False."""
    K = len(T_world_cam)
    P_ = int(obs.point_index.max()) + 1 if num_points is None and len(obs) else int(num_points or 0)
    if len(obs) and (obs.image_index.min() < 0 or obs.image_index.max() >= K):
        raise InputError(f"triangulate_tracks: observation keyframe index outside [0, {K})")
    if len(obs) and (obs.point_index.min() < 0 or obs.point_index.max() >= P_):
        raise InputError(f"triangulate_tracks: observation track index outside [0, {P_})")
    pts = np.full((P_, 3), np.nan)
    ok = np.zeros(P_, dtype=bool)
    if P_ == 0 or K == 0:
        return pts, ok
    x = np.zeros((K, P_, 2))
    w = np.zeros((K, P_))
    xy = camera.unproject(obs.uv)[:, :2]
    good = np.all(np.isfinite(xy), axis=1)
    x[obs.image_index[good], obs.point_index[good]] = xy[good]
    w[obs.image_index[good], obs.point_index[good]] = 1.0
    T_cw = T_world_cam.inverse()
    Pm = np.concatenate([T_cw.R, T_cw.t[..., None]], axis=-1)
    tri, ok = triangulate(Pm, x, w, refine=True)
    ok &= (w > 0).sum(axis=0) >= min_views
    # depth, parallax and reprojection checks per observation
    sel = good & ok[obs.point_index]
    k_i, j_i = obs.image_index[sel], obs.point_index[sel]
    p_cam = np.einsum("nij,nj->ni", T_cw.R[k_i], tri[j_i]) + T_cw.t[k_i]
    uv, valid = camera.project(p_cam)
    bad = ~valid | (p_cam[:, 2] < min_depth) | (p_cam[:, 2] > max_depth)
    bad |= ~(np.linalg.norm(uv - obs.uv[sel], axis=1) <= max_reproj_px)
    ok[np.unique(j_i[bad])] = False
    rays = tri[j_i] - T_world_cam.t[k_i]
    rays /= np.maximum(np.linalg.norm(rays, axis=1, keepdims=True), 1e-12)
    # parallax: the widest angle between two viewing rays of the track
    order = np.argsort(j_i, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(j_i[order]) != 0]) if len(order) else np.zeros(0, np.int64)
    for r in np.split(order, starts[1:]) if len(order) else []:
        j = int(j_i[r[0]])
        if ok[j]:
            ray = rays[r]
            if np.degrees(np.arccos(np.clip((ray @ ray.T).min(), -1.0, 1.0))) < min_parallax_deg:
                ok[j] = False
    pts[ok] = tri[ok]
    return pts, ok


def build_landmark_map(
    points: np.ndarray,
    ok: np.ndarray,
    tracks: Tracks,
    descriptors: Sequence[np.ndarray],
) -> LandmarkMap:
    """The map of triangulated tracks with the normalised mean of their keyframe descriptors."""
    obs = tracks.observations
    points = np.asarray(points, dtype=np.float64)
    ok = np.asarray(ok, dtype=bool)
    if len(points) != tracks.num_tracks or len(ok) != tracks.num_tracks:
        raise InputError(f"build_landmark_map: {len(points)} points / {len(ok)} flags for {tracks.num_tracks} tracks")
    if len(descriptors) <= (int(obs.image_index.max()) if len(obs) else -1):
        raise InputError(f"build_landmark_map: descriptors for {len(descriptors)} keyframes, observations need more")
    dims = {np.asarray(d).shape[1] for d in descriptors if np.asarray(d).ndim == 2 and len(d)}
    if len(dims) > 1:
        raise InputError(f"build_landmark_map: keyframe descriptors have different dimensions {sorted(dims)}")
    D = dims.pop() if dims else 0
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in descriptors])]).astype(np.int64)
    all_desc = (np.concatenate([np.asarray(d, np.float32).reshape(-1, D) for d in descriptors])
                if offsets[-1] else np.zeros((0, D), np.float32))  # fmt: skip
    mean = np.zeros((tracks.num_tracks, D), np.float64)
    np.add.at(mean, obs.point_index, all_desc[offsets[obs.image_index] + tracks.feature_index])
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    n_obs = np.bincount(obs.point_index, minlength=tracks.num_tracks)
    ids = np.flatnonzero(ok & np.all(np.isfinite(points), axis=1))
    return LandmarkMap(points[ids], mean[ids].astype(np.float32), ids, n_obs[ids])
