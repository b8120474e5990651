"""Umeyama alignment: exact recovery, agreement with evo, weights, degenerate input."""

from __future__ import annotations

import numpy as np
import pytest
from evo.core.geometry import umeyama_alignment
from hypothesis import given, settings
from hypothesis import strategies as st

from perception.geometry import SE3, Sim3, align_se3, align_sim3, umeyama

FAST = settings(max_examples=50, deadline=None, derandomize=True)
seeds = st.integers(0, 2**32 - 1)


@FAST
@given(seed=seeds, n=st.integers(3, 60))
def test_recovers_known_sim3_exactly(seed, n):
    rng = np.random.default_rng(seed)
    S_true = Sim3.random(rng, trans_scale=5.0, log_scale_std=1.0)
    src = rng.normal(size=(n, 3)) * 2.0
    dst = S_true.act(src)
    S = align_sim3(src, dst)
    np.testing.assert_allclose(S.s, S_true.s, rtol=1e-9)
    np.testing.assert_allclose(S.R, S_true.R, atol=1e-9)
    np.testing.assert_allclose(S.t, S_true.t, atol=1e-9 * max(1.0, np.abs(S_true.t).max()))
    np.testing.assert_allclose(umeyama(src, dst).matrix(), S.matrix(), atol=0)


@FAST
@given(seed=seeds, n=st.integers(3, 60))
def test_recovers_known_se3_exactly(seed, n):
    rng = np.random.default_rng(seed)
    T_true = SE3.random(rng, trans_scale=5.0)
    src = rng.normal(size=(n, 3)) * 2.0
    dst = T_true.act(src)
    T = align_se3(src, dst)
    assert isinstance(T, SE3)
    np.testing.assert_allclose(T.matrix(), T_true.matrix(), atol=1e-9)
    S = umeyama(src, dst, with_scale=False)
    assert float(S.s) == 1.0
    np.testing.assert_allclose(S.matrix(), T_true.matrix(), atol=1e-9)


def test_coplanar_points_need_reflection_fix():
    rng = np.random.default_rng(4)
    src = np.c_[rng.normal(size=(20, 2)), np.zeros(20)]  # planar: the SVD alone may return a reflection
    S_true = Sim3.random(rng)
    S = align_sim3(src, S_true.act(src))
    assert np.linalg.det(S.R) > 0
    np.testing.assert_allclose(S.matrix(), S_true.matrix(), atol=1e-9)


@pytest.mark.parametrize("with_scale", [True, False])
def test_noisy_agrees_with_evo(with_scale):
    rng = np.random.default_rng(8)
    S_true = Sim3(1.7 if with_scale else 1.0, SE3.random(rng).R, [1.0, -2.0, 0.5])
    src = rng.normal(size=(100, 3)) * 3
    dst = S_true.act(src) + 0.05 * rng.normal(size=(100, 3))
    S = umeyama(src, dst, with_scale=with_scale)
    R_e, t_e, c_e = umeyama_alignment(src.T, dst.T, with_scale)
    np.testing.assert_allclose(S.R, R_e, atol=1e-12)
    np.testing.assert_allclose(S.t, t_e, atol=1e-12)
    np.testing.assert_allclose(S.s, c_e, rtol=1e-12)
    # and is close to the truth
    np.testing.assert_allclose(S.R, S_true.R, atol=0.01)


def test_weights_zero_weight_outliers_ignored():
    rng = np.random.default_rng(12)
    S_true = Sim3.random(rng, trans_scale=3.0)
    src = rng.normal(size=(30, 3))
    dst = S_true.act(src)
    dst[:5] += rng.normal(size=(5, 3)) * 10.0  # gross outliers
    w = np.ones(30)
    w[:5] = 0.0
    S = umeyama(src, dst, weights=w)
    np.testing.assert_allclose(S.matrix(), S_true.matrix(), atol=1e-9)
    # the unweighted estimate is pulled away by the outliers (so the weights did something)
    assert np.abs(umeyama(src, dst).matrix() - S_true.matrix()).max() > 0.1


def test_integer_weights_equal_duplicated_points():
    rng = np.random.default_rng(13)
    src = rng.normal(size=(15, 3))
    dst = Sim3.random(rng).act(src) + 0.1 * rng.normal(size=(15, 3))
    w = rng.integers(1, 4, size=15)
    S_w = umeyama(src, dst, weights=w)
    S_dup = umeyama(np.repeat(src, w, axis=0), np.repeat(dst, w, axis=0))
    np.testing.assert_allclose(S_w.matrix(), S_dup.matrix(), atol=1e-12)
    # scaling all weights changes nothing
    np.testing.assert_allclose(umeyama(src, dst, weights=7.5 * w).matrix(), S_w.matrix(), atol=1e-12)


def test_hand_computed_translation_and_scale():
    src = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    dst = 2.0 * src + np.array([1.0, 2.0, 3.0])
    S = align_sim3(src, dst)
    np.testing.assert_allclose([float(S.s), *S.t], [2.0, 1.0, 2.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(S.R, np.eye(3), atol=1e-12)


def test_bad_input_raises_clear_errors():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="at least 3"):
        umeyama(src[:2], src[:2])
    with pytest.raises(ValueError, match="at least 3"):
        umeyama(src, src, weights=np.r_[1.0, 1.0, np.zeros(8)])
    line = np.outer(rng.normal(size=10), [1.0, 2.0, -1.0]) + [0.5, 0.0, 1.0]
    with pytest.raises(ValueError, match="collinear"):
        umeyama(line, line + 1.0)
    with pytest.raises(ValueError, match="collinear"):
        umeyama(np.ones((5, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="dst"):
        umeyama(src, src[:9])
    with pytest.raises(ValueError, match="src"):
        umeyama(src[:, :2], src[:, :2])
    with pytest.raises(ValueError, match="weights"):
        umeyama(src, src, weights=np.ones(9))
    with pytest.raises(ValueError, match="weights"):
        umeyama(src, src, weights=-np.ones(10))
    bad = src.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        umeyama(bad, src)
