"""Triangulation: exact multi-view recovery, OpenCV agreement, refinement quality, weights and ok flags."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from perception.geometry import SE3, refine_triangulation, triangulate, triangulate_dlt

K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])


def _look_at(center: np.ndarray) -> SE3:
    """T_world_cam of an OpenCV camera at ``center`` looking at the origin (x right, y down, z forward)."""
    z = -center / np.linalg.norm(center)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return SE3(np.stack([x, y, z], axis=1), center)


def _scene(seed: int, V: int, N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P (V,3,4) = K [R | t] from T_cam_world, points X (N,3) in the unit cube, pixels x (V,N,2)."""
    rng = np.random.default_rng(seed)
    az = rng.uniform(0, 2 * np.pi, V)
    el = rng.uniform(0.1, 0.6, V)
    r = rng.uniform(5.0, 8.0, V)
    C = r[:, None] * np.c_[np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)]
    T_cam_world = SE3.stack([_look_at(c) for c in C]).inverse()
    P = K @ np.concatenate([T_cam_world.R, T_cam_world.t[..., None]], axis=-1)
    X = rng.uniform(-1.0, 1.0, (N, 3))
    Xc = T_cam_world[:, None].act(X[None])  # (V, N, 3)
    assert np.all(Xc[..., 2] > 0)
    uvw = Xc @ K.T
    return P, X, uvw[..., :2] / uvw[..., 2:]


def _reproj_rms(P: np.ndarray, X: np.ndarray, x: np.ndarray) -> np.ndarray:
    u = np.einsum("vij,nj->vni", P, np.c_[X, np.ones(len(X))])
    return np.sqrt(np.mean(np.sum((u[..., :2] / u[..., 2:] - x) ** 2, axis=-1), axis=0))


@pytest.mark.parametrize("V", [2, 3, 5, 8])
def test_noise_free_multiview_recovery(V):
    P, X, x = _scene(V, V, 200)
    np.testing.assert_allclose(triangulate_dlt(P, x), X, atol=1e-8)
    X_ref, ok = triangulate(P, x)
    assert ok.all()
    np.testing.assert_allclose(X_ref, X, atol=1e-8)
    # refinement from a perturbed start converges back to the exact point
    X_start = X + 0.05 * np.random.default_rng(0).normal(size=X.shape)
    np.testing.assert_allclose(refine_triangulation(P, x, X_start, iters=20), X, atol=1e-8)


def test_matches_cv2_triangulate_points_two_views():
    P, X, x = _scene(1, 2, 300)
    x_noisy = x + np.random.default_rng(1).normal(size=x.shape)
    for obs in (x, x_noisy):
        h = cv2.triangulatePoints(P[0], P[1], obs[0].T.copy(), obs[1].T.copy())
        X_cv = (h[:3] / h[3]).T
        np.testing.assert_allclose(triangulate_dlt(P, obs), X_cv, atol=1e-9)
    h = cv2.triangulatePoints(P[0], P[1], x[0].T.copy(), x[1].T.copy())
    np.testing.assert_allclose((h[:3] / h[3]).T, X, atol=1e-8)


def test_dlt_invariant_to_projection_matrix_scale_and_sign():
    P, X, x = _scene(2, 4, 100)
    x = x + np.random.default_rng(2).normal(size=x.shape)
    scaled = P * np.array([3.7, -0.2, 1.0, -12.0])[:, None, None]
    np.testing.assert_allclose(triangulate_dlt(scaled, x), triangulate_dlt(P, x), atol=1e-10)
    X1, ok1 = triangulate(scaled, x)
    X2, ok2 = triangulate(P, x)
    np.testing.assert_allclose(X1, X2, atol=1e-10)
    assert ok1.all() and ok2.all()


@pytest.mark.parametrize("V", [2, 4, 8])
def test_refinement_with_pixel_noise(V):
    P, X, x = _scene(10 + V, V, 400)
    x_noisy = x + np.random.default_rng(V).normal(size=x.shape)  # 1 px
    X_dlt = triangulate_dlt(P, x_noisy)
    X_ref = refine_triangulation(P, x_noisy, X_dlt)
    r_dlt, r_ref = _reproj_rms(P, X_dlt, x_noisy), _reproj_rms(P, X_ref, x_noisy)
    assert np.all(r_ref <= r_dlt + 1e-12)  # never worse, point by point
    assert r_ref.mean() < r_dlt.mean()
    e_dlt = np.linalg.norm(X_dlt - X, axis=1).mean()
    e_ref = np.linalg.norm(X_ref - X, axis=1).mean()
    assert e_ref <= e_dlt
    assert e_ref < 0.05  # 1 px at f = 500 and 5-8 m is ~1-2 cm per view
    # the refined point is a stationary point of the reprojection error: moving it a little only hurts
    for d in np.eye(3) * 1e-4:
        assert np.all(_reproj_rms(P, X_ref + d, x_noisy) >= r_ref - 1e-9)


def test_weights_outlier_view_with_zero_weight_is_ignored():
    P, X, x = _scene(3, 4, 50)
    x_noisy = x + np.random.default_rng(3).normal(size=x.shape)
    x_out = np.concatenate([x_noisy, x_noisy[:1] + 60.0])  # a fifth "view" that is wildly wrong
    P_out = np.concatenate([P, P[:1]])
    w = np.ones((5, 50))
    w[4] = 0.0
    for refine in (False, True):
        X_ref, ok_ref = triangulate(P, x_noisy, refine=refine)
        X_w, ok_w = triangulate(P_out, x_out, weights=w, refine=refine)
        np.testing.assert_allclose(X_w, X_ref, atol=1e-10)
        assert ok_w.all() and ok_ref.all()
        # with weight 1 the outlier does pull the estimate (so the test can fail)
        X_bad, _ = triangulate(P_out, x_out, refine=refine)
        assert np.linalg.norm(X_bad - X, axis=1).mean() > 5 * np.linalg.norm(X_ref - X, axis=1).mean()
    # NaN observations count as unobserved
    x_nan = x_out.copy()
    x_nan[4] = np.nan
    np.testing.assert_allclose(triangulate(P_out, x_nan)[0], triangulate(P, x_noisy)[0], atol=1e-10)


def test_weights_scale_residuals():
    # two views disagree; the weighted optimum moves toward the view with the larger weight
    P, X, x = _scene(4, 3, 20)
    x = x.copy()
    x[2] += 3.0
    w_lo = np.ones((3, 20))
    w_hi = w_lo.copy()
    w_hi[2] = 10.0
    X_lo = triangulate(P, x, w_lo)[0]
    X_hi = triangulate(P, x, w_hi)[0]
    d_lo = np.linalg.norm(np.einsum("ij,nj->ni", P[2], np.c_[X_lo, np.ones(20)]), axis=1)
    r_lo = _reproj_rms(P[2:], X_lo, x[2:])
    r_hi = _reproj_rms(P[2:], X_hi, x[2:])
    assert np.all(d_lo > 0) and np.all(r_hi < 0.2 * r_lo)


def test_ok_flags_single_view_and_behind_camera():
    P, X, x = _scene(5, 3, 10)
    w = np.ones((3, 10))
    w[1:, 0] = 0.0  # point 0: one view only
    X_out, ok = triangulate(P, x, w)
    assert not ok[0] and ok[1:].all()
    assert np.all(np.isnan(X_out[0]))
    assert np.all(np.isnan(triangulate_dlt(P, x, w)[0]))
    # a point behind a camera projects to valid-looking pixels; DLT recovers it but ok is False
    C0 = -np.linalg.solve(P[0, :, :3], P[0, :, 3])  # centre of camera 0, which looks at the origin
    X_behind = 1.5 * C0
    uvw = np.einsum("vij,j->vi", P, np.r_[X_behind, 1.0])
    assert uvw[0, 2] < 0
    x2 = np.concatenate([x, (uvw[:, :2] / uvw[:, 2:])[:, None]], axis=1)
    X2, ok2 = triangulate(P, x2)
    np.testing.assert_allclose(X2[-1], X_behind, atol=1e-8)
    assert not ok2[-1] and ok2[:-1].all()
    # refinement leaves such points alone instead of dragging them through the camera
    np.testing.assert_allclose(refine_triangulation(P, x2, X2)[-1], X_behind, atol=1e-8)


def test_bad_input():
    P, X, x = _scene(6, 3, 5)
    with pytest.raises(ValueError, match="P"):
        triangulate_dlt(P[:, :2], x)
    with pytest.raises(ValueError, match="x"):
        triangulate_dlt(P, x[:2])
    with pytest.raises(ValueError, match="weights"):
        triangulate(P, x, np.ones((3, 4)))
    with pytest.raises(ValueError, match="weights"):
        triangulate(P, x, -np.ones((3, 5)))
    with pytest.raises(ValueError, match="X0"):
        refine_triangulation(P, x, X[:4])
    assert triangulate_dlt(P, x[:, :0]).shape == (0, 3)
