"""Place recognition: VLAD + incremental hnswlib index + PnP-verified loop detector on places with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from perception.camera import PinholeCamera
from perception.errors import InputError
from perception.features import match_mutual_nn
from perception.features.vlad import VladVocabulary
from perception.sim.poses import look_at
from slam.loop import LoopDetector, LoopOptions, Place, PlaceIndex

CAM = PinholeCamera(640, 480, 450.0, 450.0, 319.5, 239.5)
N_PLACES, PER_PLACE, D = 24, 150, 64


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(7)
    # descriptors share a low-dimensional structure (like real ones), so places are not trivially separable
    basis = rng.normal(size=(16, D))
    desc = _unit(rng.normal(size=(N_PLACES * PER_PLACE, 16)) @ basis + 0.5 * rng.normal(size=(N_PLACES * PER_PLACE, D)))
    pts, poses = [], []
    for p in range(N_PLACES):
        centre = np.array([6.0 * p, 0.0, 0.0])
        pts.append(centre + rng.uniform([-3, 6, -1], [3, 9, 3], (PER_PLACE, 3)))
        poses.append(look_at(centre + [0, 0, 1.0], centre + [0, 8, 1.0]))
    return rng, np.concatenate(pts), desc.astype(np.float32), poses


def _observe(rng, T_world_cam, pts, desc, idx, noise=0.15, pix=1.0):
    p = T_world_cam.inverse().act(pts[idx])
    uv, valid = CAM.project(p)
    inside = valid & (uv[:, 0] > 0) & (uv[:, 0] < 639) & (uv[:, 1] > 0) & (uv[:, 1] < 479)
    idx = idx[inside]
    noise_vec = noise * rng.normal(size=(len(idx), D)) / np.sqrt(D)  # noise norm ~ noise (descriptors are unit)
    return uv[inside] + rng.normal(0, pix, (len(idx), 2)), _unit(desc[idx] + noise_vec), idx


def _detector(world, exact=False):
    rng, pts, desc, poses = world
    obs = [_observe(rng, poses[p], pts, desc, np.arange(p * PER_PLACE, (p + 1) * PER_PLACE)) for p in range(N_PLACES)]
    vocab = VladVocabulary.fit([o[1] for o in obs], k=16, seed=0)
    det = LoopDetector(PlaceIndex(vocab.dim, exact=exact), pts, LoopOptions(matcher="mnn"))
    for p, (uv, d, idx) in enumerate(obs):
        # every other feature is a triangulated landmark, the rest are not (-1)
        lm = np.where(np.arange(len(idx)) % 2 == 0, idx, -1)
        det.add(p, vocab.encode(d), Place(uv, d, lm, (640, 480)))
    return det, vocab


def test_revisits_are_found_and_verified(world) -> None:
    rng, pts, desc, poses = world
    det, vocab = _detector(world)
    hits = 0
    for p in range(N_PLACES):
        # a revisit from another viewpoint (0.8 m aside, 10 deg yaw), with noisier descriptors (air vs ground)
        eye = poses[p].t + [0.8, -0.5, 0.3]
        T = look_at(eye, poses[p].t + [1.5, 8, 0.5])
        uv, d, _ = _observe(rng, T, pts, desc, np.arange(p * PER_PLACE, (p + 1) * PER_PLACE), noise=0.7)
        r = det.query(100 + p, vocab.encode(d), uv, d, CAM)
        if r.accepted and r.match_id == p:
            hits += 1
            assert np.linalg.norm(r.T_world_cam.t - T.t) < 0.1
        assert not (r.accepted and r.match_id != p)  # never a wrong loop
    assert hits / N_PLACES >= 0.9


def test_no_loop_on_unseen_places(world) -> None:
    rng, pts, desc, poses = world
    det, vocab = _detector(world)
    accepted = 0
    for q in range(20):
        # look-alike descriptors (a mix of two known places) but unrelated geometry
        a, b = rng.integers(0, N_PLACES, 2)
        idx = np.r_[np.arange(a * PER_PLACE, a * PER_PLACE + 75), np.arange(b * PER_PLACE, b * PER_PLACE + 75)]
        d = _unit(desc[idx] + 0.25 * rng.normal(size=(len(idx), D)) / np.sqrt(D))
        uv = rng.uniform([0, 0], [640, 480], (len(idx), 2))
        r = det.query(500 + q, vocab.encode(d), uv, d, CAM)
        accepted += r.accepted
    assert accepted == 0


def test_hnswlib_agrees_with_brute_force(world) -> None:
    rng = np.random.default_rng(1)
    vecs = _unit(rng.normal(size=(300, 128))).astype(np.float32)
    approx, exact = PlaceIndex(128, capacity=8), PlaceIndex(128, exact=True)  # capacity grows as needed
    for i, v in enumerate(vecs):
        approx.add(i, v)
        exact.add(i, v)
    recall = []
    for q in _unit(vecs[:50] + 0.3 * rng.normal(size=(50, 128))):
        a, sa = approx.query(q, 5)
        e, se = exact.query(q, 5)
        recall.append(len(set(a) & set(e)) / 5)
        assert abs(sa[0] - se[0]) < 1e-5
    assert np.mean(recall) >= 0.95
    with pytest.raises(InputError, match="128 finite numbers"):
        exact.add(1, np.zeros(3))


def test_vlad_properties(rng) -> None:
    d = _unit(rng.normal(size=(2000, D))).astype(np.float32)
    vocab = VladVocabulary.fit(d, k=8, seed=0)
    v = vocab.encode(d[:200])
    assert v.shape == (8 * D,) and abs(np.linalg.norm(v) - 1) < 1e-5
    assert np.allclose(vocab.encode(d[:200]), vocab.encode(d[:200][::-1]), atol=1e-6)  # order-invariant
    assert np.all(vocab.encode(d[:0]) == 0)
    with pytest.raises(InputError, match="cannot make a vocabulary"):
        VladVocabulary.fit(d[:4], k=8)


def test_a_view_spanning_two_places_pools_their_landmarks(world) -> None:
    """A query seeing halves of two neighbouring places: each candidate verifies on its own, the pooled PnP uses
    the landmarks of both (more inliers than either) and gives the true pose."""
    rng, pts, desc, poses = world
    det, vocab = _detector(world)
    p = 5
    centre = 0.5 * (poses[p].t + poses[p + 1].t)
    T = look_at(centre + [0, -3.0, 0.5], centre + [0, 8, 0.5])
    idx = np.arange(p * PER_PLACE, (p + 2) * PER_PLACE)
    uv, d, _ = _observe(rng, T, pts, desc, idx, noise=0.3)
    r = det.query(900, vocab.encode(d), uv, d, CAM)
    assert r.accepted and r.match_id in (p, p + 1)
    verified = [n for n in r.inliers if n >= det.options.min_inliers]
    assert len(verified) >= 2
    assert r.pooled_inliers > max(verified)
    assert np.linalg.norm(r.T_world_cam.t - T.t) < 0.05
    assert set(np.unique(r.landmark_idx // PER_PLACE)) >= {p, p + 1}
    assert len(r.uv) == len(r.landmark_idx) == r.pooled_inliers


def test_bad_places_and_options(world) -> None:
    _, pts, _, _ = world
    det = LoopDetector(PlaceIndex(4, exact=True), pts[:10], LoopOptions(matcher="mnn"))
    with pytest.raises(InputError, match="3 keypoints but descriptors"):
        Place(np.zeros((3, 2)), np.zeros((2, 8)), np.zeros(3), (640, 480))
    with pytest.raises(InputError, match="landmark index 12 but the map has 10"):
        det.add(0, np.ones(4) / 2, Place(np.zeros((2, 2)), np.zeros((2, 8)), [3, 12], (640, 480)))
    with pytest.raises(InputError, match="matcher must be"):
        LoopDetector(PlaceIndex(4, exact=True), pts, LoopOptions(matcher="superglue"))
    with pytest.raises(InputError, match="min_candidate_inliers and min_matches must be >= 4"):
        LoopOptions(min_inliers=3).validate()


def test_generalized_pnp_recovers_a_rig_pose_from_few_points_per_camera() -> None:
    from perception.geometry import SE3, so3_exp
    from slam.pnp import generalized_pnp_ransac

    rng = np.random.default_rng(4)
    T_world_rig = SE3(so3_exp(np.array([0.1, -0.2, 1.0])), np.array([3.0, -2.0, 1.0]))
    pts = rng.uniform([-10, 10, 0], [10, 20, 5], (500, 3))
    uvs, Xs, Ts = [], [], []
    for k in range(3):
        T_world_cam = look_at(np.array([-4.0 + 4 * k, 0, 10]), np.array([0.0, 15, 1]))
        uv, ok = CAM.project(T_world_cam.inverse().act(pts))
        ok &= (uv[:, 0] > 0) & (uv[:, 0] < 639) & (uv[:, 1] > 0) & (uv[:, 1] < 479)
        idx = np.flatnonzero(ok)[:8]
        X = pts[idx].copy()
        X[:2] = rng.uniform(-10, 10, (2, 3))  # two outliers per camera
        uvs.append(uv[idx] + rng.normal(0, 0.3, (len(idx), 2)))
        Xs.append(X)
        Ts.append(T_world_rig.inverse() @ T_world_cam)
    T, masks = generalized_pnp_ransac([CAM] * 3, Ts, uvs, Xs, threshold_px=2.0)
    assert np.linalg.norm(T.t - T_world_rig.t) < 0.05
    assert [int(m.sum()) for m in masks] == [6, 6, 6] and not any(m[:2].any() for m in masks)
    assert generalized_pnp_ransac([CAM], Ts[:1], [uvs[0][:3]], [Xs[0][:3]]) is None


def test_window_verification_with_odometry_recovers_a_poorly_matched_view(world) -> None:
    """A UAV-like sequence along the places with odometry poses (own frame = world moved by a known transform):
    the middle query's matcher output is corrupted, so it cannot verify alone; the two views before it fix the
    pose through the odometry and guided matching around the projected landmarks verifies it with the right pose.
    A query of random keypoints right after is still rejected."""
    from perception.geometry import SE3, so3_exp

    rng, pts, desc, poses = world
    base, vocab = _detector(world)
    corrupt = {"on": False}

    def matcher(kp0, d0, s0, kp1, d1, s1):
        m = match_mutual_nn(d0, d1, ratio=0.9)
        if corrupt["on"]:  # the same number of matches, onto the wrong features
            m.idx1 = rng.permutation(len(d1))[: len(m)]
        return m

    det = LoopDetector(PlaceIndex(vocab.dim, exact=True), pts, LoopOptions(matcher="mnn"), matcher=matcher,
                       landmark_descriptors=desc)  # fmt: skip
    for p, place in base.places.items():
        det.add(p, base.index._vecs[p], place)
    T_world_odom = SE3(so3_exp(np.array([0.0, 0.0, 0.7])), np.array([2.0, -1.0, 0.3]))
    results = []
    for k, p in enumerate([8, 9, 10]):
        T = look_at(poses[p].t + [0.3, -0.6, 0.4], poses[p].t + [0.5, 8, 0.6])
        uv, d, _ = _observe(rng, T, pts, desc, np.arange(p * PER_PLACE, (p + 1) * PER_PLACE), noise=0.5)
        corrupt["on"] = k == 2
        r = det.query(k, vocab.encode(d), uv, d, CAM, T_odom_cam=T_world_odom.inverse() @ T)
        results.append((r, T))
    assert results[0][0].accepted and results[1][0].accepted and results[0][0].window_inliers == 0
    r, T = results[2]
    assert r.accepted and r.pooled_inliers < det.options.min_inliers and r.window_inliers >= det.options.min_inliers
    assert np.linalg.norm(r.T_world_cam.t - T.t) < 0.1 and r.match_id == 10
    corrupt["on"] = False
    uv = rng.uniform([0, 0], [640, 480], (150, 2))
    d = _unit(rng.normal(size=(150, D))).astype(np.float32)
    r = det.query(3, vocab.encode(d), uv, d, CAM, T_odom_cam=T_world_odom.inverse() @ results[2][1])
    assert not r.accepted
    with pytest.raises(InputError, match="landmark descriptors for"):
        LoopDetector(PlaceIndex(4, exact=True), pts, LoopOptions(matcher="mnn"), landmark_descriptors=desc[:5])
