"""Numpy camera models: parameters, validation, hand-computed projections, round trips, Jacobians."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from perception.camera import (
    FisheyeCamera,
    OpenCVCamera,
    PinholeCamera,
    SimpleRadialCamera,
    camera_from_K,
)

W, H = 640, 480
PINHOLE = PinholeCamera(W, H, 500.0, 505.0, 319.5, 239.5)
OPENCV = OpenCVCamera(W, H, 500.0, 505.0, 321.2, 238.7, -0.28, 0.07, 1e-3, -5e-4)
OPENCV_K3 = OpenCVCamera(W, H, 500.0, 505.0, 321.2, 238.7, -0.28, 0.07, 1e-3, -5e-4, -0.02)
FISHEYE = FisheyeCamera(W, H, 300.0, 302.0, 318.9, 241.3, -0.01, 0.003, -0.001, 0.0002)
RADIAL = SimpleRadialCamera(W, H, 500.0, 320.4, 239.1, -0.12)
ALL = [PINHOLE, OPENCV, OPENCV_K3, FISHEYE, RADIAL]
IDS = ["pinhole", "opencv", "opencv_k3", "fisheye", "simple_radial"]


def _pixel_grid(cam, step: int = 4) -> np.ndarray:
    u, v = np.meshgrid(
        np.arange(0, cam.width, step, dtype=float), np.arange(0, cam.height, step, dtype=float)
    )
    return np.stack([u, v], -1)


# ----------------------------------------------------------------------------- parameters
def test_params_order_K_and_from_params():
    np.testing.assert_array_equal(PINHOLE.params, [500.0, 505.0, 319.5, 239.5])
    np.testing.assert_array_equal(OPENCV_K3.params, [500, 505, 321.2, 238.7, -0.28, 0.07, 1e-3, -5e-4, -0.02])
    np.testing.assert_array_equal(FISHEYE.params, [300, 302, 318.9, 241.3, -0.01, 0.003, -0.001, 0.0002])
    np.testing.assert_array_equal(RADIAL.params, [500.0, 320.4, 239.1, -0.12])
    np.testing.assert_array_equal(RADIAL.K, [[500, 0, 320.4], [0, 500, 239.1], [0, 0, 1]])
    np.testing.assert_array_equal(OPENCV.K, [[500, 0, 321.2], [0, 505, 238.7], [0, 0, 1]])
    assert OPENCV.param_names == ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3")
    for cam in ALL:
        assert type(cam).from_params(cam.width, cam.height, cam.params) == cam
    # COLMAP's OPENCV has 8 parameters: k3 defaults to 0
    assert OpenCVCamera.from_params(W, H, OPENCV.params[:8]) == OPENCV
    np.testing.assert_array_equal(RADIAL.dist_coeffs, [-0.12, 0, 0, 0, 0])


@pytest.mark.parametrize(
    "build, match",
    [
        (
            lambda: OpenCVCamera(W, H, -3.0, 500, 320, 240, 0, 0, 0, 0),
            r"OpenCVCamera: fx must be > 0, got -3\.0",
        ),
        (lambda: PinholeCamera(W, H, 500, 0.0, 320, 240), r"PinholeCamera: fy must be > 0, got 0\.0"),
        (lambda: SimpleRadialCamera(W, H, -1.0, 320, 240, 0.0), r"SimpleRadialCamera: f must be > 0"),
        (lambda: PinholeCamera(0, H, 500, 500, 320, 240), r"PinholeCamera: width must be a positive integer"),
        (
            lambda: PinholeCamera(W, -2, 500, 500, 320, 240),
            r"PinholeCamera: height must be a positive integer",
        ),
        (
            lambda: PinholeCamera(640.0, H, 500, 500, 320, 240),
            r"width must be a positive integer, got 640\.0",
        ),
        (lambda: PinholeCamera(W, H, 500, 500, math.nan, 240), r"PinholeCamera: cx must be finite, got nan"),
        (
            lambda: FisheyeCamera(W, H, 300, 300, 320, 240, 0, math.inf, 0, 0),
            r"FisheyeCamera: k2 must be finite",
        ),
        (
            lambda: OpenCVCamera(W, H, 500, 500, 320, 240, "a", 0, 0, 0),
            r"OpenCVCamera: k1 must be a finite real",
        ),
        (lambda: OpenCVCamera.from_params(W, H, np.ones(7)), r"OpenCVCamera: params must have 8 or 9 values"),
        (lambda: FisheyeCamera.from_params(W, H, np.ones(9)), r"FisheyeCamera: params must have 8 values"),
        (lambda: OPENCV.with_params(p1=math.nan), r"OpenCVCamera: p1 must be finite"),
        (lambda: RADIAL.scaled(0.5, 0.25), r"SimpleRadialCamera.scaled: single focal length needs sx == sy"),
        (lambda: OPENCV.scaled(-1.0), r"sx must be finite and > 0"),
        (lambda: OPENCV.project(np.zeros((4, 2))), r"p_cam must have shape \(\.\.\., 3\)"),
    ],
)
def test_invalid_parameters_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_frozen_and_coerced():
    cam = PinholeCamera(np.int64(64), 48, 50, 50, 31, 23)
    assert type(cam.width) is int and type(cam.fx) is float
    with pytest.raises(dataclasses.FrozenInstanceError):
        cam.fx = 3.0  # type: ignore[misc]


def test_with_params_vector_and_named():
    new = OPENCV.with_params(OPENCV.params * 1.5)
    np.testing.assert_allclose(new.params, OPENCV.params * 1.5, rtol=0, atol=0)
    named = OPENCV.with_params(k3=0.01, fx=400.0)
    assert named.k3 == 0.01 and named.fx == 400.0 and named.fy == OPENCV.fy


# ----------------------------------------------------------------------------- hand-computed values
def test_hand_computed_projections():
    uv, ok = PINHOLE.project(np.array([1.0, -2.0, 4.0]))
    np.testing.assert_allclose(uv, [500 * 0.25 + 319.5, 505 * -0.5 + 239.5], atol=1e-12)
    assert ok
    # x = 0.3, y = 0.4: r^2 = 0.25; radial 1 - 0.2 * 0.25 = 0.95; tangential p1 = 0.01:
    # dx = 2 p1 x y = 0.0024, dy = p1 (r^2 + 2 y^2) = 0.0057
    cam = OpenCVCamera(W, H, 100.0, 200.0, 10.0, 20.0, -0.2, 0.0, 0.01, 0.0)
    np.testing.assert_allclose(cam.distort([0.3, 0.4]), [0.2874, 0.3857], atol=1e-15)
    uv, _ = cam.project([0.6, 0.8, 2.0])
    np.testing.assert_allclose(uv, [100 * 0.2874 + 10, 200 * 0.3857 + 20], atol=1e-12)
    # p2 term: dx = p2 (r^2 + 2 x^2), dy = 2 p2 x y ; k2, k3 terms: x r^4, x r^6
    cam = OpenCVCamera(W, H, 1.0, 1.0, 0.0, 0.0, 0.0, 0.1, 0.0, 0.02, 0.5)
    np.testing.assert_allclose(
        cam.distort([0.3, 0.4]),
        [0.3 * (1 + 0.1 * 0.0625 + 0.5 * 0.015625) + 0.02 * 0.43, 0.4 * (1 + 0.1 * 0.0625 + 0.5 * 0.015625)
         + 2 * 0.02 * 0.12],
        atol=1e-15,
    )  # fmt: skip
    # fisheye: point at 45 degrees on the x axis: theta = pi/4, theta_d = theta (1 + k1 theta^2)
    cam = FisheyeCamera(W, H, 300.0, 300.0, 320.0, 240.0, 0.1, 0.0, 0.0, 0.0)
    t = math.pi / 4
    uv, ok = cam.project([2.0, 0.0, 2.0])
    np.testing.assert_allclose(uv, [320 + 300 * t * (1 + 0.1 * t * t), 240.0], atol=1e-12)
    # simple radial: x (1 + k r^2)
    np.testing.assert_allclose(RADIAL.distort([0.5, 0.0]), [0.5 * (1 - 0.12 * 0.25), 0.0], atol=1e-15)


def test_validity_flags():
    pts = np.array([[0.1, 0.2, 1.0], [0.1, 0.2, -1.0], [0.0, 0.0, 0.0], [3.0, 0.0, 1.0]])
    _, ok = OPENCV_K3.project(pts)  # max_radius ~ 1.254: the last point (r = 3) is past the fold
    np.testing.assert_array_equal(ok, [True, False, False, False])
    assert 1.25 < OPENCV_K3.max_radius < 1.26
    _, ok = OPENCV.project(pts)  # k3 = 0 here: monotonic for every radius
    np.testing.assert_array_equal(ok, [True, False, False, True])
    # fisheye: monotonic up to 90 degrees for these coefficients; z <= 0 is invalid
    _, ok = FISHEYE.project(np.array([[10.0, 0.0, 1.0], [1.0, 0.0, -0.1]]))
    np.testing.assert_array_equal(ok, [True, False])
    # strong fisheye coefficient: theta_d'(theta) = 1 - 3 * 0.3 theta^2 = 0 at theta = 1.054
    strong = FISHEYE.with_params(k1=-0.3, k2=0.0, k3=0.0, k4=0.0)
    assert strong.max_theta == pytest.approx(1 / math.sqrt(0.9), abs=1e-12)
    _, ok = strong.project(np.array([[math.tan(1.0), 0, 1], [math.tan(1.1), 0, 1]]))
    np.testing.assert_array_equal(ok, [True, False])
    assert RADIAL.max_radius == pytest.approx(math.sqrt(1 / (3 * 0.12)), abs=1e-12)


def test_undistort_flags_points_past_the_fold():
    # r_d(r) peaks at r_max = 1.254 with r_d = 0.821: larger distorted radii have no preimage
    rmax = OPENCV_K3.max_radius
    rd_max = OPENCV_K3.distort([rmax, 0.0])[0]
    assert 0.81 < rd_max < 0.83
    xd = np.array([[0.5 * rd_max, 0.0], [0.0, 0.99 * rd_max], [1.05 * rd_max, 0.0], [np.nan, 0.0]])
    xy, ok = OPENCV_K3.undistort(xd, return_valid=True)
    np.testing.assert_array_equal(ok, [True, True, False, False])
    assert np.isnan(xy[2:]).all()
    np.testing.assert_allclose(OPENCV_K3.distort(xy[:2]), xd[:2], atol=1e-12)
    with pytest.raises(ValueError, match="did not converge"):
        OPENCV_K3.undistort(xd, strict=True)
    strong = FISHEYE.with_params(k1=-0.3, k2=0.0, k3=0.0, k4=0.0)
    td_max = strong.theta_d(np.array(strong.max_theta))[0]
    _, ok = strong.undistort(np.array([[0.9 * td_max, 0.0], [1.01 * td_max, 0.0]]), return_valid=True)
    np.testing.assert_array_equal(ok, [True, False])


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("cam", ALL, ids=IDS)
def test_pixel_round_trip_dense_grid(cam):
    uv = _pixel_grid(cam)
    rays, ok = cam.unproject(uv, return_valid=True)
    assert ok.all()
    np.testing.assert_array_equal(rays[..., 2], 1.0)
    uv2, valid = cam.project(rays * 3.7)
    assert valid.all()
    assert np.abs(uv2 - uv).max() < 1e-6
    b = cam.unproject_bearing(uv)
    np.testing.assert_allclose(np.linalg.norm(b, axis=-1), 1.0, atol=1e-14)
    np.testing.assert_allclose(b, rays / np.linalg.norm(rays, axis=-1, keepdims=True), atol=1e-12)


@pytest.mark.parametrize("cam", [OPENCV, OPENCV_K3, FISHEYE, RADIAL], ids=IDS[1:])
def test_undistort_distort_round_trip_normalised(cam):
    # dense grid of undistorted points covering the image (plus margin) inside the monotonic range
    corners = cam.unproject(np.array([[-0.5, -0.5], [cam.width - 0.5, cam.height - 0.5]]))
    lo, hi = corners[0, :2] * 1.02, corners[1, :2] * 1.02
    x, y = np.meshgrid(np.linspace(lo[0], hi[0], 161), np.linspace(lo[1], hi[1], 121))
    xy = np.stack([x, y], -1)
    xd = cam.distort(xy)
    xy2, ok = cam.undistort(xd, return_valid=True)
    assert ok.all()
    assert np.abs(xy2 - xy).max() < 1e-12
    # and the other way round, in pixels
    uv = cam.normalized_to_pixel(xd)
    uv2 = cam.normalized_to_pixel(cam.distort(cam.undistort(xd)))
    assert np.abs(uv2 - uv).max() < 1e-6


def test_fisheye_wide_angle_bearing():
    # 85 degrees off-axis: rays on z=1 are long (tan 85 = 11.4); the bearing is computed from the angle
    th = np.deg2rad([0.0, 30.0, 60.0, 85.0])
    phi = np.deg2rad([0.0, 45.0, 200.0, 300.0])
    d = np.stack([np.sin(th) * np.cos(phi), np.sin(th) * np.sin(phi), np.cos(th)], -1)
    uv, ok = FISHEYE.project(d)
    assert ok.all()
    b = FISHEYE.unproject_bearing(uv)
    np.testing.assert_allclose(b, d, atol=1e-13)
    rays = FISHEYE.unproject(uv)
    np.testing.assert_allclose(rays, d / d[:, 2:], rtol=1e-11)


def test_batched_shapes():
    rng = np.random.default_rng(1)
    p = rng.uniform([-1, -1, 2], [1, 1, 4], (2, 3, 5, 3))
    for cam in ALL:
        uv, ok = cam.project(p)
        assert uv.shape == (2, 3, 5, 2) and ok.shape == (2, 3, 5)
        uv1, J_p, J_k = cam.project_jacobians(p)
        assert J_p.shape == (2, 3, 5, 2, 3) and J_k.shape == (2, 3, 5, 2, cam.num_params())
        np.testing.assert_array_equal(uv1, uv)
        flat, _ = cam.project(p.reshape(-1, 3))
        np.testing.assert_array_equal(flat.reshape(uv.shape), uv)


# ----------------------------------------------------------------------------- Jacobians
@pytest.mark.parametrize("cam", ALL, ids=IDS)
def test_jacobians_vs_central_differences(cam):
    rng = np.random.default_rng(2)
    p = rng.uniform([-1.5, -1.0, 1.5], [1.5, 1.0, 4.0], (20, 3))
    _, J_p, J_k = cam.project_jacobians(p)
    h = 1e-6
    num_p = np.zeros_like(J_p)
    for i in range(3):
        dp = np.zeros(3)
        dp[i] = h
        num_p[..., i] = (cam.project(p + dp)[0] - cam.project(p - dp)[0]) / (2 * h)
    np.testing.assert_allclose(J_p, num_p, rtol=1e-6, atol=1e-6 * np.abs(J_p).max())
    params = cam.params
    num_k = np.zeros_like(J_k)
    for i in range(params.size):
        hi = h * max(1.0, abs(params[i]))
        dk = np.zeros(params.size)
        dk[i] = hi
        plus = cam.with_params(params + dk).project(p)[0]
        minus = cam.with_params(params - dk).project(p)[0]
        num_k[..., i] = (plus - minus) / (2 * hi)
    np.testing.assert_allclose(J_k, num_k, rtol=1e-6, atol=1e-6 * np.abs(J_k).max())


def test_fisheye_jacobian_near_axis():
    # the closed form switches to a series below r = 1e-2: compare both sides of the switch and r = 0
    p = np.array([[0.0, 0.0, 1.0], [0.00999, 0.0, 1.0], [0.01001, 0.0, 1.0], [3e-3, -4e-3, 1.0]])
    _, J_p, _ = FISHEYE.project_jacobians(p)
    h = 1e-7
    for i in range(3):
        dp = np.zeros(3)
        dp[i] = h
        num = (FISHEYE.project(p + dp)[0] - FISHEYE.project(p - dp)[0]) / (2 * h)
        np.testing.assert_allclose(J_p[..., i], num, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(J_p[0], [[300.0, 0, 0], [0, 302.0, 0]], atol=1e-12)


# ----------------------------------------------------------------------------- resizing, camera_from_K
@pytest.mark.parametrize("cam", ALL, ids=IDS)
def test_scaled_follows_pixel_centre_convention(cam):
    rng = np.random.default_rng(3)
    p = rng.uniform([-1, -0.8, 2], [1, 0.8, 4], (30, 3))
    s = 0.5
    small = cam.scaled(s)
    assert (small.width, small.height) == (cam.width // 2, cam.height // 2)
    assert small.cx == pytest.approx((cam.cx + 0.5) * s - 0.5, abs=1e-12)
    # the same 3-D point lands on the same physical image location: u' = (u + 0.5) s - 0.5
    np.testing.assert_allclose(small.project(p)[0], (cam.project(p)[0] + 0.5) * s - 0.5, atol=1e-10)
    if not isinstance(cam, SimpleRadialCamera):
        r = cam.resized(800, 300)
        sx, sy = 800 / cam.width, 300 / cam.height
        np.testing.assert_allclose(
            r.project(p)[0], (cam.project(p)[0] + 0.5) * np.array([sx, sy]) - 0.5, atol=1e-10
        )


def test_camera_from_K():
    K = OPENCV_K3.K
    assert camera_from_K(K, None, W, H) == PinholeCamera(W, H, 500, 505, 321.2, 238.7)
    assert camera_from_K(K, [], W, H) == PinholeCamera(W, H, 500, 505, 321.2, 238.7)
    assert camera_from_K(K, [-0.28, 0.07, 1e-3, -5e-4], W, H) == OPENCV
    assert camera_from_K(K, OPENCV_K3.dist_coeffs, W, H) == OPENCV_K3
    assert camera_from_K(K, np.r_[OPENCV_K3.dist_coeffs, 0, 0, 0], W, H) == OPENCV_K3
    fe = camera_from_K(FISHEYE.K, FISHEYE.dist_coeffs, W, H, fisheye=True)
    assert fe == FISHEYE
    with pytest.raises(ValueError, match="rational/thin-prism"):
        camera_from_K(K, [0, 0, 0, 0, 0, 0.1, 0, 0], W, H)
    with pytest.raises(ValueError, match="dist must have 0, 4, 5, 8, 12 or 14 values, got 3"):
        camera_from_K(K, [0.1, 0, 0], W, H)
    with pytest.raises(ValueError, match="fisheye dist must have 4 values"):
        camera_from_K(K, [0.1, 0, 0, 0, 0], W, H, fisheye=True)
    Ks = K.copy()
    Ks[0, 1] = 0.5
    with pytest.raises(ValueError, match="skew"):
        camera_from_K(Ks, None, W, H)
    with pytest.raises(ValueError, match="K must be 3x3"):
        camera_from_K(np.eye(4), None, W, H)


def test_in_image():
    uv = np.array([[-0.5, -0.5], [-0.51, 0.0], [639.49, 479.49], [639.5, 0.0]])
    np.testing.assert_array_equal(PINHOLE.in_image(uv), [True, False, True, False])
