"""Place recognition: VLAD + incremental hnswlib index + PnP-verified loop detector on places with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from perception.camera import PinholeCamera
from perception.errors import InputError
from perception.features.vlad import VladVocabulary
from perception.sim.poses import look_at
from slam.loop import LoopDetector, LoopOptions, PlaceIndex

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
    return uv[inside] + rng.normal(0, pix, (len(idx), 2)), _unit(desc[idx] + noise_vec)


def _detector(world, exact=False):
    rng, pts, desc, poses = world
    obs = [_observe(rng, poses[p], pts, desc, np.arange(p * PER_PLACE, (p + 1) * PER_PLACE)) for p in range(N_PLACES)]
    vocab = VladVocabulary.fit([o[1] for o in obs], k=16, seed=0)
    det = LoopDetector(PlaceIndex(vocab.dim, exact=exact), pts, desc,
                       lambda p: np.arange(p * PER_PLACE, (p + 1) * PER_PLACE), LoopOptions())  # fmt: skip
    for p, (_, d) in enumerate(obs):
        det.add(p, vocab.encode(d))
    return det, vocab


def test_revisits_are_found_and_verified(world) -> None:
    rng, pts, desc, poses = world
    det, vocab = _detector(world)
    hits = 0
    for p in range(N_PLACES):
        # a revisit from another viewpoint (0.8 m aside, 10 deg yaw), with noisier descriptors (air vs ground)
        eye = poses[p].t + [0.8, -0.5, 0.3]
        T = look_at(eye, poses[p].t + [1.5, 8, 0.5])
        uv, d = _observe(rng, T, pts, desc, np.arange(p * PER_PLACE, (p + 1) * PER_PLACE), noise=0.7)
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
