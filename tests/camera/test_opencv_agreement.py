"""Agreement with OpenCV (cv2.projectPoints / undistortPoints / cv2.fisheye.*) to < 1e-6 px."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from perception.camera import FisheyeCamera, OpenCVCamera, PinholeCamera, SimpleRadialCamera

W, H = 640, 480
PINHOLE = PinholeCamera(W, H, 500.0, 505.0, 319.5, 239.5)
OPENCV = OpenCVCamera(W, H, 500.0, 505.0, 321.2, 238.7, -0.28, 0.07, 1e-3, -5e-4)
OPENCV_K3 = OpenCVCamera(W, H, 500.0, 505.0, 321.2, 238.7, -0.28, 0.07, 1e-3, -5e-4, -0.02)
RADIAL = SimpleRadialCamera(W, H, 500.0, 320.4, 239.1, -0.12)
FISHEYE = FisheyeCamera(W, H, 300.0, 302.0, 318.9, 241.3, -0.01, 0.003, -0.001, 0.0002)
PERSPECTIVE = [PINHOLE, OPENCV, OPENCV_K3, RADIAL]
PIDS = ["pinhole", "opencv", "opencv_k3", "simple_radial"]
# OpenCV's default undistortPoints criteria stop after 5 fixed-point iterations (mpx errors): converge fully
CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 1000, 1e-15)
TOL_PX = 1e-6


def _random_scene(seed: int, n: int = 200):
    """Random world points in front of a random pose; returns (P_world, rvec, tvec, p_cam = R P + t)."""
    rng = np.random.default_rng(seed)
    rvec = rng.normal(size=3) * 0.3
    tvec = rng.normal(size=3) * 0.2
    R, _ = cv2.Rodrigues(rvec)
    # sample in the camera frame inside the field of view, then map to the world frame
    z = rng.uniform(1.0, 6.0, n)
    p_cam = np.stack([rng.uniform(-0.6, 0.6, n) * z, rng.uniform(-0.45, 0.45, n) * z, z], -1)
    P = (p_cam - tvec) @ R  # R^T (p - t)
    return P, rvec, tvec, P @ R.T + tvec


@pytest.mark.parametrize("cam", PERSPECTIVE, ids=PIDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_project_points_matches_cv2(cam, seed):
    P, rvec, tvec, p_cam = _random_scene(seed)
    uv, valid = cam.project(p_cam)
    assert valid.all()
    uv_cv, jac = cv2.projectPoints(P, rvec, tvec, cam.K, cam.dist_coeffs)
    assert np.abs(uv - uv_cv[:, 0]).max() < TOL_PX
    # cv2 jacobian columns: rvec(3) tvec(3) fx fy cx cy dist...; d/dtvec == d/dp_cam since p_cam = R P + t
    jac = jac.reshape(len(P), 2, -1)
    _, J_p, J_k = cam.project_jacobians(p_cam)
    np.testing.assert_allclose(J_p, jac[:, :, 3:6], rtol=1e-9, atol=1e-9)
    if isinstance(cam, SimpleRadialCamera):
        # f = fx = fy -> d/df = d/dfx + d/dfy ; k = k1
        expect = np.stack([jac[:, :, 6] + jac[:, :, 7], jac[:, :, 8], jac[:, :, 9], jac[:, :, 10]], -1)
    else:
        expect = jac[:, :, 6 : 6 + cam.num_params()]
    np.testing.assert_allclose(J_k, expect, rtol=1e-9, atol=1e-9 * np.abs(expect).max())


def test_project_points_pinhole_empty_dist():
    P, rvec, tvec, p_cam = _random_scene(5)
    uv_cv, _ = cv2.projectPoints(P, rvec, tvec, PINHOLE.K, np.zeros(0))
    assert np.abs(PINHOLE.project(p_cam)[0] - uv_cv[:, 0]).max() < TOL_PX


@pytest.mark.parametrize("cam", PERSPECTIVE, ids=PIDS)
def test_undistort_points_matches_cv2(cam):
    u, v = np.meshgrid(np.linspace(0, W - 1, 33), np.linspace(0, H - 1, 25))
    uv = np.stack([u, v], -1).reshape(-1, 2)
    xn = cam.undistort(cam.pixel_to_normalized(uv))
    cv_n = cv2.undistortPoints(uv[:, None], cam.K, cam.dist_coeffs, criteria=CRITERIA)[:, 0]
    assert np.abs(xn - cv_n).max() * cam.fx < TOL_PX  # normalised -> pixels
    cv_k = cv2.undistortPoints(uv[:, None], cam.K, cam.dist_coeffs, P=cam.K, criteria=CRITERIA)[:, 0]
    ideal_px = PinholeCamera(W, H, cam.fx, cam.fy, cam.cx, cam.cy).normalized_to_pixel(xn)
    assert np.abs(ideal_px - cv_k).max() < TOL_PX
    rays = cam.unproject(uv)
    assert np.abs(rays[:, :2] - cv_n).max() * cam.fx < TOL_PX


@pytest.mark.parametrize("seed", [0, 1])
def test_fisheye_project_points_matches_cv2(seed):
    cam = FISHEYE
    P, rvec, tvec, p_cam = _random_scene(seed)
    uv, valid = cam.project(p_cam)
    assert valid.all()
    uv_cv, jac = cv2.fisheye.projectPoints(P[:, None], rvec, tvec, cam.K, cam.dist_coeffs)
    assert np.abs(uv - uv_cv[:, 0]).max() < TOL_PX
    # cv2.fisheye jacobian columns: fx fy cx cy k1..k4 (= our params order), rvec(3), tvec(3), skew
    jac = jac.reshape(len(P), 2, 15)
    _, J_p, J_k = cam.project_jacobians(p_cam)
    np.testing.assert_allclose(J_k, jac[:, :, :8], rtol=1e-9, atol=1e-9 * np.abs(J_k).max())
    np.testing.assert_allclose(J_p, jac[:, :, 11:14], rtol=1e-9, atol=1e-9)


def test_fisheye_undistort_and_distort_points_match_cv2():
    cam = FISHEYE
    u, v = np.meshgrid(np.linspace(0, W - 1, 33), np.linspace(0, H - 1, 25))
    uv = np.stack([u, v], -1).reshape(-1, 2)
    xn = cam.undistort(cam.pixel_to_normalized(uv))
    cv_n = cv2.fisheye.undistortPoints(uv[:, None], cam.K, cam.dist_coeffs, criteria=CRITERIA)[:, 0]
    assert np.abs(xn - cv_n).max() * cam.fx < TOL_PX
    cv_k = cv2.fisheye.undistortPoints(uv[:, None], cam.K, cam.dist_coeffs, P=cam.K, criteria=CRITERIA)[:, 0]
    assert (
        np.abs(PinholeCamera(W, H, cam.fx, cam.fy, cam.cx, cam.cy).normalized_to_pixel(xn) - cv_k).max()
        < TOL_PX
    )
    # distortPoints: K = I gives normalised distorted points, K = cam.K gives pixels
    d_n = cv2.fisheye.distortPoints(xn[:, None], np.eye(3), cam.dist_coeffs)[:, 0]
    assert np.abs(cam.distort(xn) - d_n).max() * cam.fx < TOL_PX
    d_px = cv2.fisheye.distortPoints(xn[:, None], cam.K, cam.dist_coeffs)[:, 0]
    assert np.abs(cam.project(np.c_[xn, np.ones(len(xn))])[0] - d_px).max() < TOL_PX
    assert np.abs(d_px - uv).max() < TOL_PX
