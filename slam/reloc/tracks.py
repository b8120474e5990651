"""Keypoint tracks over posed training frames and their triangulation (FaVoR's landmark stage).

Pairs of frames are chosen from the known poses (each frame with its nearest neighbours by camera centre and
viewing direction, plus its successor in the sequence), matched by mutual nearest neighbour on descriptor cosine,
and verified against the epipolar geometry of the *known* relative pose (Sampson distance), so no RANSAC is
needed. Matches are joined into tracks with union-find; tracks that hold two keypoints of one frame are dropped.
Tracks are triangulated (DLT + LM on the reprojection error) with observations beyond the reprojection threshold
removed; with depth images, landmarks whose triangulated depth disagrees with the measured depth are dropped and
low-parallax tracks are lifted from depth instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from perception.camera import CameraModel
from perception.features.matching import match_mutual_nn
from perception.features.types import Features
from perception.geometry import SE3, essential_from_pose, sampson_distance, triangulate

log = logging.getLogger(__name__)

__all__ = ["Track", "frame_pairs", "link_tracks", "match_pair", "triangulate_tracks"]


@dataclass
class Track:
    frames: np.ndarray
    """(n,) frame indices, ascending."""
    keypoints: np.ndarray
    """(n,) keypoint index in each frame."""


def frame_pairs(T_world_cam: SE3, sequence: np.ndarray, neighbours: int = 5, max_angle_deg: float = 45.0,
                angle_weight_m: float = 1.0) -> list[tuple[int, int]]:  # fmt: skip
    """Pairs ``(i, j)``, ``i < j``: each frame with its ``neighbours`` nearest frames by
    ``|c_i - c_j| + angle_weight_m * angle(z_i, z_j)`` (viewing directions within ``max_angle_deg``) and with the
    next frame of its sequence."""
    c = T_world_cam.t.reshape(-1, 3)
    z = T_world_cam.R.reshape(-1, 3, 3)[:, :, 2]
    n = len(c)
    cosang = np.clip(z @ z.T, -1.0, 1.0)
    ang = np.arccos(cosang)
    cost = np.linalg.norm(c[:, None] - c[None], axis=2) + angle_weight_m * ang
    cost[ang > np.deg2rad(max_angle_deg)] = np.inf
    np.fill_diagonal(cost, np.inf)
    pairs = set()
    for i in range(n):
        order = np.argsort(cost[i], kind="stable")[:neighbours]
        for j in order:
            if np.isfinite(cost[i, j]):
                pairs.add((min(i, int(j)), max(i, int(j))))
        if i + 1 < n and sequence[i + 1] == sequence[i]:
            pairs.add((i, i + 1))
    return sorted(pairs)


def match_pair(f0: Features, f1: Features, camera: CameraModel, T0: SE3, T1: SE3, min_cosine: float = 0.7,
               ratio: float = 0.95, epipolar_px: float = 2.0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Indices ``(i0, i1)`` of mutual-NN matches consistent with the known relative pose."""
    m = match_mutual_nn(f0.descriptors, f1.descriptors, ratio=ratio, min_score=min_cosine)
    if len(m) == 0:
        return m.idx0, m.idx1
    x0 = camera.unproject(f0.keypoints[m.idx0].astype(np.float64))[:, :2]  # normalised, undistorted
    x1 = camera.unproject(f1.keypoints[m.idx1].astype(np.float64))[:, :2]
    focal = float(np.mean(np.diag(camera.K)[:2]))
    T10 = T1.inverse() @ T0  # camera 0 -> camera 1
    ok = np.abs(sampson_distance(essential_from_pose(T10.R, T10.t), x0, x1)) * focal < epipolar_px
    return m.idx0[ok], m.idx1[ok]


def link_tracks(num_keypoints: list[int], matches: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]],
                min_length: int = 3) -> list[Track]:  # fmt: skip
    """Union-find over pairwise matches -> tracks with at most one keypoint per frame and ``min_length`` frames."""
    offset = np.concatenate([[0], np.cumsum(num_keypoints)]).astype(np.int64)
    parent = np.arange(offset[-1], dtype=np.int64)

    def find(a: int) -> int:
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root

    for (i, j), (a, b) in matches.items():
        for u, v in zip(offset[i] + a, offset[j] + b, strict=True):
            ru, rv = find(int(u)), find(int(v))
            if ru != rv:
                parent[max(ru, rv)] = min(ru, rv)
    roots = np.array([find(int(u)) for u in range(offset[-1])], dtype=np.int64)
    frame_of = np.repeat(np.arange(len(num_keypoints)), num_keypoints)
    kp_of = np.arange(offset[-1]) - offset[frame_of]
    order = np.argsort(roots, kind="stable")
    roots_s = roots[order]
    bounds = np.flatnonzero(np.diff(roots_s)) + 1
    tracks = []
    for group in np.split(order, bounds):
        if len(group) < min_length:
            continue
        fr = frame_of[group]
        if len(np.unique(fr)) != len(fr):  # two keypoints of one frame: ambiguous, drop
            continue
        o = np.argsort(fr)
        tracks.append(Track(fr[o], kp_of[group][o]))
    return tracks


def _projections(K: np.ndarray, T_world_cam: SE3) -> np.ndarray:
    Tcw = T_world_cam.inverse()
    Rt = np.concatenate([Tcw.R, Tcw.t[..., None]], axis=-1)
    return K @ Rt


def triangulate_tracks(tracks: list[Track], keypoints: list[np.ndarray], camera: CameraModel, T_world_cam: SE3,
                       max_reproj_px: float = 2.0, min_parallax_deg: float = 1.0, min_length: int = 3,
                       depths: list[np.ndarray] | None = None, depth_tolerance: float = 0.05,
                       chunk: int = 512) -> tuple[np.ndarray, list[Track]]:  # fmt: skip
    """Landmarks ``(M, 3)`` and their (inlier) tracks.

    ``keypoints[f]`` are the (undistorted) pixel positions of frame ``f``'s keypoints. ``depths[f]`` (optional) are
    per-keypoint measured depths (metres, 0 or NaN = none) used to check the triangulation and to place
    low-parallax landmarks."""
    K = camera.K
    P_all = _projections(K, T_world_cam)
    centres = T_world_cam.t.reshape(-1, 3)
    pts, kept = [], []
    for _ in range(2):  # triangulate, drop outlying observations, triangulate again
        X_all = np.full((len(tracks), 3), np.nan)
        for s in range(0, len(tracks), chunk):
            block = tracks[s : s + chunk]
            frames = np.unique(np.concatenate([t.frames for t in block]))
            col = {f: k for k, f in enumerate(frames)}
            x = np.zeros((len(frames), len(block), 2))
            w = np.zeros((len(frames), len(block)))
            for n, t in enumerate(block):
                rows = [col[f] for f in t.frames]
                x[rows, n] = [keypoints[f][k] for f, k in zip(t.frames, t.keypoints, strict=True)]
                w[rows, n] = 1.0
            X, ok = triangulate(P_all[frames], x, w)
            X_all[s : s + len(block)] = np.where(ok[:, None], X, np.nan)
        new_tracks = []
        for t, X in zip(tracks, X_all, strict=True):
            if not np.all(np.isfinite(X)):
                new_tracks.append(None)
                continue
            uv = np.array([keypoints[f][k] for f, k in zip(t.frames, t.keypoints, strict=True)])
            proj = P_all[t.frames] @ np.append(X, 1.0)
            err = np.linalg.norm(proj[:, :2] / proj[:, 2:3] - uv, axis=1)
            good = (err < max_reproj_px) & (proj[:, 2] > 0)
            new_tracks.append(Track(t.frames[good], t.keypoints[good]) if good.sum() >= min_length else None)
        tracks = [t for t in new_tracks if t is not None]
    for t, X in zip(tracks, X_all[[i for i, t in enumerate(new_tracks) if t is not None]], strict=True):
        rays = X - centres[t.frames]
        dist = np.linalg.norm(rays, axis=1)
        rays = rays / dist[:, None]
        cosmin = float(np.min(rays @ rays.T))
        parallax = np.degrees(np.arccos(np.clip(cosmin, -1.0, 1.0)))
        if depths is not None:
            z_meas = np.array([depths[f][k] for f, k in zip(t.frames, t.keypoints, strict=True)], np.float64)
            Tcw = T_world_cam[t.frames].inverse()
            z_tri = Tcw.R[:, 2, :] @ X + Tcw.t[:, 2]
            valid = np.isfinite(z_meas) & (z_meas > 0)
            if valid.sum() >= 1:
                rel = np.abs(z_tri[valid] - z_meas[valid]) / z_meas[valid]
                if parallax < min_parallax_deg:  # too little baseline: lift from the measured depth instead
                    X = _lift(camera, keypoints, t, T_world_cam, z_meas, valid)
                    if X is None:
                        continue
                elif np.median(rel) > depth_tolerance:
                    continue
            elif parallax < min_parallax_deg:
                continue
        elif parallax < min_parallax_deg:
            continue
        pts.append(X)
        kept.append(t)
    log.debug("triangulate_tracks: %d of %d tracks kept", len(kept), len(tracks))
    return np.asarray(pts, np.float64).reshape(-1, 3), kept


def _lift(camera, keypoints, t: Track, T_world_cam: SE3, z: np.ndarray, valid: np.ndarray) -> np.ndarray | None:
    """Landmark from measured depth: the median of the back-projected observations, if they agree within 2%."""
    f = t.frames[valid]
    uv = np.array([keypoints[i][k] for i, k in zip(f, t.keypoints[valid], strict=True)])
    xy = camera.unproject(uv)
    p_cam = xy / xy[:, 2:3] * z[valid][:, None]
    p_world = T_world_cam[f].act(p_cam) if len(f) > 1 else T_world_cam[f[0]].act(p_cam[0])[None]
    X = np.median(p_world.reshape(-1, 3), axis=0)
    spread = np.linalg.norm(p_world.reshape(-1, 3) - X, axis=1).max()
    return X if spread < 0.02 * float(np.median(z[valid])) else None
