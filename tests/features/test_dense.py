"""Dense descriptor maps: sampling at the detected keypoints reproduces their descriptors; any pixel can be read."""

from __future__ import annotations

import numpy as np
import pytest

from perception.errors import InputError
from perception.features.dense import make_dense_extractor
from perception.features.xfeat import XFeatExtractor
from perception.sim.textures import random_texture


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return random_texture(np.random.default_rng(0), (240, 320))


def test_xfeat_dense_matches_the_sparse_extractor(image) -> None:
    dense = make_dense_extractor("xfeat", 512)(image)
    sparse = XFeatExtractor(512)(image)
    assert len(dense.features) == len(sparse) > 100
    np.testing.assert_allclose(dense.features.keypoints, sparse.keypoints, atol=1e-4)
    np.testing.assert_allclose(dense.features.descriptors, sparse.descriptors, atol=1e-5)
    # the map is smooth at the 1/8 resolution: a pixel's neighbour has a close descriptor, a far pixel does not
    kp = dense.features.keypoints[:50].astype(np.float64)
    near = dense.sample(kp + [1.0, 0.0])
    far = dense.sample((kp + [160.0, 120.0]) % [320, 240])
    cos_near = np.sum(near * dense.features.descriptors[:50], axis=1)
    cos_far = np.sum(far * dense.features.descriptors[:50], axis=1)
    assert np.median(cos_near) > 0.9 > np.median(cos_far)
    assert np.allclose(np.linalg.norm(near, axis=1), 1.0, atol=1e-5)


def test_upright_sift_samples_at_keypoints_with_their_sizes(image) -> None:
    dense = make_dense_extractor("sift", 300)(image)
    f = dense.features
    assert 50 < len(f) <= 300 and dense.sizes is not None
    again = dense.sample(f.keypoints, dense.sizes)
    np.testing.assert_allclose(again, f.descriptors, atol=1e-6)
    assert dense.sample(np.zeros((0, 2))).shape == (0, 128)


def test_bad_inputs(image) -> None:
    with pytest.raises(InputError, match="uint8 RGB"):
        make_dense_extractor("xfeat")(image.astype(np.float32))
    with pytest.raises(InputError, match="too small"):
        make_dense_extractor("xfeat")(image[:16, :16])
    with pytest.raises(InputError, match="unknown dense descriptor"):
        make_dense_extractor("orb")
    with pytest.raises(InputError, match="needs --weights"):
        make_dense_extractor("superpoint")
