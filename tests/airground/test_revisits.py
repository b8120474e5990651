"""UGV revisits: keyframe pairs from two passes along a facade, with a look-alike stretch of facade elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from perception.camera import PinholeCamera
from perception.errors import InputError
from perception.features import Features
from perception.features.vlad import VladVocabulary
from perception.geometry import SE3, so3_exp
from perception.sim.poses import look_at
from slam.airground.revisits import RevisitOptions, find_revisits

CAM = PinholeCamera(640, 480, 450.0, 450.0, 319.5, 239.5)
D = 64


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _scene(rng):
    """Facade at y = 8 from x = -5 to 55; its stretch x in [40, 50) repeats the texture of x in [0, 10)."""
    pts = np.c_[rng.uniform(-5, 55, 6000), np.full(6000, 8.0), rng.uniform(0, 5, 6000)]
    desc = _unit(rng.normal(size=(6000, D)))
    src = np.flatnonzero((pts[:, 0] >= 0) & (pts[:, 0] < 10))
    pts = np.concatenate([pts, pts[src] + [40.0, 0, 0]])
    desc = np.concatenate([desc, desc[src]])
    return pts, desc


def _view(rng, T, pts, desc):
    uv, ok = CAM.project(T.inverse().act(pts))
    ok &= (uv[:, 0] > 0) & (uv[:, 0] < 639) & (uv[:, 1] > 0) & (uv[:, 1] < 479)
    idx = np.flatnonzero(ok)
    idx = idx[rng.permutation(len(idx))[:600]]
    d = _unit(desc[idx] + 0.15 * rng.normal(size=(len(idx), D)) / np.sqrt(D))
    return Features(uv[idx] + rng.normal(0, 0.5, (len(idx), 2)), np.ones(len(idx), np.float32), d.astype(np.float32),
                    (640, 480), "synthetic")  # fmt: skip


@pytest.fixture(scope="module")
def passes():
    rng = np.random.default_rng(0)
    pts, desc = _scene(rng)
    xs = np.r_[np.arange(0.0, 51.0, 1.0), np.arange(0.3, 10.0, 1.0)]  # first pass 0..50 m, revisit of 0..10 m
    y = np.r_[np.zeros(51), np.full(10, 0.6)]
    true = SE3.from_matrix(np.stack([look_at(np.array([x, yy, 1.5]), np.array([x, 8.0, 1.5])).matrix()
                                     for x, yy in zip(xs, y, strict=True)]))  # fmt: skip
    feats = [_view(rng, true[k], pts, desc) for k in range(len(xs))]
    # LIO: by the second pass it has drifted 0.4 m and 1 degree
    drift = SE3(so3_exp(np.array([0.0, 0.0, np.deg2rad(1.0)])), np.array([0.4, -0.2, 0.0]))
    lio = SE3.from_matrix(np.stack([(drift @ true[k]).matrix() if k >= 51 else true[k].matrix()
                                    for k in range(len(xs))]))  # fmt: skip
    vocab = VladVocabulary.fit([f.descriptors for f in feats], k=16, seed=0)
    G = np.stack([vocab.encode(f.descriptors) for f in feats])
    return feats, G, true, lio


def test_revisits_join_the_passes_and_skip_the_look_alike(passes) -> None:
    feats, G, true, lio = passes
    pairs, found = find_revisits(feats, G, lio, CAM, RevisitOptions(top_k=3))
    assert len(pairs) == len(found) > 0
    for r in found:
        assert r.i < 51 <= r.j  # first pass with second pass, nothing else is separated enough and near
        assert np.linalg.norm(true.t[r.i] - true.t[r.j]) < 4.0  # never the look-alike stretch 40 m away
        assert r.inliers >= 40 and r.rotation_error_deg < 3.0
        assert len(pairs[(r.i, r.j)]) == r.inliers
    assert len({r.j for r in found}) >= 9  # (almost) every revisit keyframe is joined to the first pass


def test_without_the_lio_gate_the_look_alike_would_pass(passes) -> None:
    """The same search with a gate wide enough to reach 40 m finds look-alike pairs: the gate is what stops them."""
    feats, G, true, lio = passes
    _, found = find_revisits(feats, G, lio, CAM, RevisitOptions(top_k=3, max_distance_m=60.0))
    assert any(np.linalg.norm(true.t[r.i] - true.t[r.j]) > 30 for r in found)


def test_rotation_check_and_options(passes) -> None:
    feats, G, true, lio = passes
    # an odometry whose second pass is 10 degrees off in yaw disagrees with every essential matrix
    bad = SE3.from_matrix(np.stack([(SE3(so3_exp(np.array([0.0, 0.0, np.deg2rad(10.0)])), np.zeros(3)) @ lio[k])
                                    .matrix() if k >= 51 else lio[k].matrix() for k in range(len(lio))]))  # fmt: skip
    assert find_revisits(feats, G, bad, CAM, RevisitOptions(max_angle_deg=45.0))[1] == []
    assert find_revisits(feats, G, lio, CAM, RevisitOptions(enabled=False)) == ({}, [])
    with pytest.raises(InputError, match="min_inliers >= 5"):
        find_revisits(feats, G, lio, CAM, RevisitOptions(min_inliers=3))
    with pytest.raises(InputError, match="61 keyframes but 3 poses"):
        find_revisits(feats, G, lio[:3], CAM)
