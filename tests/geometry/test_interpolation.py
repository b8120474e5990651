"""Pose interpolation against gtsam (Pose3.slerp, Rot3.slerp), scipy Slerp and hand-computed values."""

from __future__ import annotations

import gtsam
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation, Slerp

from perception.geometry import SE3, interpolate_decoupled, interpolate_geodesic

FAST = settings(max_examples=50, deadline=None, derandomize=True)
seeds = st.integers(0, 2**32 - 1)
alphas = st.floats(0.0, 1.0)


def _pose3(T: SE3) -> gtsam.Pose3:
    return gtsam.Pose3(gtsam.Rot3(T.R), T.t)


def _pair(seed: int) -> tuple[SE3, SE3]:
    rng = np.random.default_rng(seed)
    T0 = SE3.random(rng, trans_scale=3.0)
    # keep the relative rotation below pi - 1e-2 so that the geodesic is unique
    xi = rng.normal(size=6)
    xi[:3] *= (np.pi - 1e-2) * rng.uniform() / np.linalg.norm(xi[:3])
    xi[3:] *= 3.0
    return T0, T0 @ SE3.exp(xi)


@FAST
@given(seed=seeds, alpha=alphas)
def test_geodesic_matches_gtsam_pose3_slerp(seed, alpha):
    T0, T1 = _pair(seed)
    T = interpolate_geodesic(T0, T1, alpha)
    expected = _pose3(T0).slerp(alpha, _pose3(T1)).matrix()
    np.testing.assert_allclose(T.matrix(), expected, atol=1e-10)


@FAST
@given(seed=seeds, alpha=alphas)
def test_decoupled_matches_gtsam_rot3_slerp_scipy_and_lerp(seed, alpha):
    T0, T1 = _pair(seed)
    T = interpolate_decoupled(T0, T1, alpha)
    np.testing.assert_allclose(T.R, gtsam.Rot3(T0.R).slerp(alpha, gtsam.Rot3(T1.R)).matrix(), atol=1e-10)
    slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([T0.R, T1.R])))
    np.testing.assert_allclose(T.R, slerp([alpha]).as_matrix()[0], atol=1e-10)
    np.testing.assert_allclose(T.t, (1 - alpha) * T0.t + alpha * T1.t, atol=1e-12)


def test_endpoints_and_array_alpha():
    T0, T1 = _pair(7)
    for interp in (interpolate_geodesic, interpolate_decoupled):
        np.testing.assert_allclose(interp(T0, T1, 0.0).matrix(), T0.matrix(), atol=1e-12)
        np.testing.assert_allclose(interp(T0, T1, 1.0).matrix(), T1.matrix(), atol=1e-12)
        a = np.linspace(0.0, 1.0, 11)
        Ts = interp(T0, T1, a)
        assert Ts.shape == (11,)
        for k in (0, 3, 10):
            np.testing.assert_allclose(Ts[k].matrix(), interp(T0, T1, a[k]).matrix(), atol=1e-14)


def test_batched_poses_and_broadcasting():
    rng = np.random.default_rng(11)
    T0 = SE3.random(rng, (5,), trans_scale=2.0)
    T1 = T0 @ SE3.exp(0.5 * rng.normal(size=(5, 6)))
    alpha = rng.uniform(size=5)
    for interp in (interpolate_geodesic, interpolate_decoupled):
        out = interp(T0, T1, alpha)  # element-wise
        assert out.shape == (5,)
        for i in range(5):
            np.testing.assert_allclose(out[i].matrix(), interp(T0[i], T1[i], alpha[i]).matrix(), atol=1e-14)
        grid = interp(T0, T1, np.array([[0.25], [0.75]]))  # (2, 1) against (5,) -> (2, 5)
        assert grid.shape == (2, 5)
        np.testing.assert_allclose(grid[1, 3].matrix(), interp(T0[3], T1[3], 0.75).matrix(), atol=1e-14)


def test_geodesic_is_constant_twist_and_hand_value():
    T0, T1 = _pair(3)
    delta = (T0.inverse() @ T1).log()
    a, b = 0.2, 0.65
    Ta, Tb = interpolate_geodesic(T0, T1, a), interpolate_geodesic(T0, T1, b)
    np.testing.assert_allclose((Ta.inverse() @ Tb).log(), (b - a) * delta, atol=1e-11)
    # half-way along a quarter-turn screw about z with unit speed along x, from the identity:
    # R = Rz(pi/4), t = 1/2 * (sin(th) / th, (1 - cos(th)) / th, 0) with th = pi/4
    T1 = SE3.exp([0, 0, np.pi / 2, 1.0, 0, 0])
    half = interpolate_geodesic(SE3.identity(), T1, 0.5)
    th = np.pi / 4
    np.testing.assert_allclose(half.t, 0.5 * np.array([np.sin(th) / th, (1 - np.cos(th)) / th, 0.0]), atol=1e-15)
    np.testing.assert_allclose(half.R, Rotation.from_euler("z", 45, degrees=True).as_matrix(), atol=1e-15)
    # the decoupled version moves on the chord instead
    np.testing.assert_allclose(interpolate_decoupled(SE3.identity(), T1, 0.5).t, T1.t / 2, atol=1e-15)


def test_pure_translation_both_methods_lerp():
    T0 = SE3(np.eye(3), [1.0, 2.0, 3.0])
    T1 = SE3(np.eye(3), [-1.0, 0.0, 5.0])
    for interp in (interpolate_geodesic, interpolate_decoupled):
        np.testing.assert_allclose(interp(T0, T1, 0.25).t, [0.5, 1.5, 3.5], atol=1e-15)
        np.testing.assert_allclose(interp(T0, T1, 0.25).R, np.eye(3), atol=0)


def test_bad_alpha():
    T0, T1 = _pair(1)
    with pytest.raises(ValueError, match="alpha"):
        interpolate_geodesic(T0, T1, np.nan)
    with pytest.raises(ValueError, match="T1"):
        interpolate_decoupled(T0, T1.matrix(), 0.5)
