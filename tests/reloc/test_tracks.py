"""Tracks from known poses: pose-based pairs, epipolar verification, union-find, triangulation with depth."""

from __future__ import annotations

import numpy as np

from perception.camera import PinholeCamera
from perception.features.types import Features
from perception.sim.poses import yaw_pitch_camera
from slam.reloc.tracks import frame_pairs, link_tracks, match_pair, triangulate_tracks

CAM = PinholeCamera(320, 240, 260.0, 260.0, 160.0, 120.0)


def _scene(seed: int = 0, n_frames: int = 8, n_points: int = 300):
    rng = np.random.default_rng(seed)
    X = np.c_[rng.uniform(-1.5, 1.5, n_points), np.full(n_points, 3.0) + rng.uniform(-0.3, 0.3, n_points),
              rng.uniform(0.5, 2.0, n_points)]  # fmt: skip
    eye = np.c_[np.linspace(-0.6, 0.6, n_frames), np.zeros(n_frames), np.full(n_frames, 1.2)]
    T = yaw_pitch_camera(eye, np.full(n_frames, np.pi / 2) + np.linspace(-0.1, 0.1, n_frames), np.zeros(n_frames))
    desc = rng.standard_normal((n_points, 32))
    feats, truth = [], []
    for i in range(n_frames):
        pc = T[i].inverse().act(X)
        uv = pc[:, :2] / pc[:, 2:3] * 260.0 + [160.0, 120.0]
        vis = np.flatnonzero((pc[:, 2] > 0) & (uv[:, 0] > 2) & (uv[:, 0] < 318) & (uv[:, 1] > 2) & (uv[:, 1] < 238))
        d = desc[vis] + 0.1 * rng.standard_normal((len(vis), 32))
        # distractors: descriptors of visible points at wrong positions (fail the epipolar check)
        k = 20
        fake_uv = rng.uniform([0, 0], [320, 240], (k, 2))
        fake_d = desc[rng.choice(vis, k)] + 0.1 * rng.standard_normal((k, 32))
        kp = np.r_[uv[vis] + 0.2 * rng.standard_normal((len(vis), 2)), fake_uv]
        dd = np.r_[d, fake_d]
        dd /= np.linalg.norm(dd, axis=1, keepdims=True)
        feats.append(Features(kp.astype(np.float32), np.ones(len(kp), np.float32), dd.astype(np.float32), (320, 240),
                              "test"))  # fmt: skip
        truth.append(np.r_[vis, -np.ones(k, int)])
    return X, T, feats, truth, [pc for pc in [T[i].inverse().act(X)[:, 2] for i in range(n_frames)]]


def test_pairs_come_from_poses_and_include_successors() -> None:
    _, T, *_ = _scene()
    pairs = frame_pairs(T, np.zeros(len(T), int), neighbours=2)
    assert all((i, i + 1) in pairs for i in range(len(T) - 1))
    assert all(i < j for i, j in pairs)
    far = frame_pairs(T, np.zeros(len(T), int), neighbours=2, max_angle_deg=1.0)  # directions differ by up to 11 deg
    assert set(far) <= set(pairs) and len(far) < len(pairs)


def test_tracks_link_only_true_correspondences_and_triangulate_exactly() -> None:
    X, T, feats, truth, depth = _scene()
    matches = {}
    for i, j in frame_pairs(T, np.zeros(len(T), int), neighbours=3):
        a, b = match_pair(feats[i], feats[j], CAM, T[i], T[j], min_cosine=0.5, epipolar_px=2.0)
        assert np.mean(truth[i][a] == truth[j][b]) > 0.98  # the known epipolar geometry removes the distractors
        matches[(i, j)] = (a, b)
    tracks = link_tracks([len(f) for f in feats], matches, min_length=3)
    assert len(tracks) > 150
    for t in tracks:
        ids = {int(truth[f][k]) for f, k in zip(t.frames, t.keypoints, strict=True)}
        assert len(ids) == 1 and -1 not in ids
    kps = [f.keypoints.astype(np.float64) for f in feats]
    P, kept = triangulate_tracks(tracks, kps, CAM, T, max_reproj_px=2.0, min_parallax_deg=0.5)
    ids = np.array([truth[t.frames[0]][t.keypoints[0]] for t in kept])
    err = np.linalg.norm(P - X[ids], axis=1)
    assert len(kept) > 0.9 * len(tracks) and np.median(err) < 0.01
    # with depth: landmarks whose measured depth disagrees by more than 5% are dropped
    depths = []
    for i in range(len(feats)):
        z = np.where(truth[i] >= 0, depth[i][np.maximum(truth[i], 0)], 0.0)
        depths.append(z)
    P2, kept2 = triangulate_tracks(tracks, kps, CAM, T, depths=[d * 1.3 for d in depths])
    assert len(kept2) == 0  # every measured depth 30% off: nothing agrees
    P3, kept3 = triangulate_tracks(tracks, kps, CAM, T, depths=depths, min_parallax_deg=0.5)
    assert len(kept3) >= 0.9 * len(kept)


def test_a_track_with_two_keypoints_in_one_frame_is_dropped() -> None:
    matches = {(0, 1): (np.array([0, 1]), np.array([0, 0])), (1, 2): (np.array([0]), np.array([0]))}
    assert link_tracks([2, 1, 1], matches, min_length=2) == []
    ok = link_tracks([2, 1, 1], {(0, 1): (np.array([0]), np.array([0])), (1, 2): (np.array([0]), np.array([0]))}, 3)
    assert len(ok) == 1 and ok[0].frames.tolist() == [0, 1, 2]
