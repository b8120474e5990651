"""Torch camera functions: agreement with the numpy models (float64, 1e-9) and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.camera import FisheyeCamera, OpenCVCamera, PinholeCamera, SimpleRadialCamera
from perception.camera import torch_models as tm

torch.set_num_threads(1)

W, H = 640, 480
PINHOLE = PinholeCamera(W, H, 500.0, 505.0, 319.5, 239.5)
OPENCV = OpenCVCamera(W, H, 500.0, 505.0, 321.2, 238.7, -0.28, 0.07, 1e-3, -5e-4)
OPENCV_K3 = OpenCVCamera(W, H, 500.0, 505.0, 321.2, 238.7, -0.28, 0.07, 1e-3, -5e-4, -0.02)
RADIAL = SimpleRadialCamera(W, H, 500.0, 320.4, 239.1, -0.12)
FISHEYE = FisheyeCamera(W, H, 300.0, 302.0, 318.9, 241.3, -0.01, 0.003, -0.001, 0.0002)
ALL = [PINHOLE, OPENCV, OPENCV_K3, RADIAL, FISHEYE]
IDS = ["pinhole", "opencv", "opencv_k3", "simple_radial", "fisheye"]


def _points(seed: int = 0, n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.uniform(1.0, 6.0, n)
    p = np.stack([rng.uniform(-0.65, 0.65, n) * z, rng.uniform(-0.5, 0.5, n) * z, z], -1)
    p[0] = [0.0, 0.0, 2.0]  # on the optical axis (fisheye r = 0 branch)
    return p


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


@pytest.mark.parametrize("cam", ALL, ids=IDS)
def test_torch_matches_numpy(cam):
    p = _points()
    params = tm.camera_params(cam)
    uv_t, valid_t = tm.project(cam, params, _t(p))
    uv, valid = cam.project(p)
    np.testing.assert_allclose(uv_t.numpy(), uv, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(valid_t.numpy(), valid)
    xy = p[:, :2] / p[:, 2:]
    xd = cam.distort(xy)
    np.testing.assert_allclose(tm.distort(cam, _t(cam.dist_params), _t(xy)).numpy(), xd, rtol=0, atol=1e-12)
    und = tm.undistort(cam, _t(cam.dist_params), _t(xd)).numpy()
    np.testing.assert_allclose(und, cam.undistort(xd), rtol=0, atol=1e-11)
    np.testing.assert_allclose(und, xy, rtol=0, atol=1e-11)
    np.testing.assert_allclose(tm.unproject(cam, params, uv_t).numpy(), cam.unproject(uv), rtol=0, atol=1e-11)
    np.testing.assert_allclose(
        tm.unproject_bearing(cam, params, uv_t).numpy(), cam.unproject_bearing(uv), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("cam", ALL, ids=IDS)
def test_autograd_jacobians_match_analytic(cam):
    p = _points(1, n=6)
    params = tm.camera_params(cam)
    _, J_p, J_k = cam.project_jacobians(p)
    for i in range(len(p)):
        jp, jk = torch.autograd.functional.jacobian(lambda q, k: tm.project(cam, k, q)[0], (_t(p[i]), params))
        np.testing.assert_allclose(jp.numpy(), J_p[i], rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(jk.numpy(), J_k[i], rtol=1e-10, atol=1e-9)


def test_validity_and_batched_params():
    p = _t([[0.1, 0.2, 1.0], [0.1, 0.2, -1.0], [3.0, 0.0, 1.0]])
    _, valid = tm.project(OPENCV_K3, tm.camera_params(OPENCV_K3), p)
    np.testing.assert_array_equal(valid.numpy(), OPENCV_K3.project(p.numpy())[1])
    np.testing.assert_array_equal(valid.numpy(), [True, False, False])
    # one camera per point: (N, P) params broadcast against (N, 3) points
    cams = [OPENCV, OPENCV_K3, OPENCV.with_params(fx=420.0, k1=-0.1)]
    params = torch.stack([tm.camera_params(c) for c in cams])
    q = _t(_points(2, n=3))
    uv, _ = tm.project("OPENCV", params, q)
    expect = np.stack([c.project(q[i].numpy())[0] for i, c in enumerate(cams)])
    np.testing.assert_allclose(uv.numpy(), expect, rtol=0, atol=1e-9)


def test_bad_model_and_params():
    with pytest.raises(ValueError, match="model must be one of"):
        tm.project("KANNALA", torch.zeros(4), torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"params for OPENCV must have 9 values"):
        tm.project("OPENCV", torch.ones(8), torch.ones(1, 3))
    with pytest.raises(ValueError, match="dist for OPENCV_FISHEYE must have 4 coefficients"):
        tm.distort(FISHEYE, torch.zeros(5), torch.zeros(1, 2))


@pytest.mark.parametrize("cam", ALL, ids=IDS)
def test_gradcheck(cam):
    p = _t(_points(3, n=4)).requires_grad_(True)
    params = tm.camera_params(cam, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k, q: tm.project(cam, k, q)[0], (params, p), eps=1e-6, atol=1e-5)
    uv = tm.project(cam, params, p)[0].detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda k, x: tm.unproject(cam, k, x), (params, uv), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(
        lambda k, x: tm.unproject_bearing(cam, k, x), (params, uv), eps=1e-6, atol=1e-6
    )
    if cam.dist_names:
        dist = torch.tensor(cam.dist_params, dtype=torch.float64, requires_grad=True)
        xd = tm.distort(cam, dist, p[:, :2] / p[:, 2:]).detach().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda k, x: tm.undistort(cam, k, x), (dist, xd), eps=1e-7, atol=1e-6)


def test_fisheye_gradient_on_axis():
    # r = 0 is handled by safe branches: finite gradients equal to the paraxial Jacobian
    params = tm.camera_params(FISHEYE, requires_grad=True)
    p = torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64, requires_grad=True)
    uv, _ = tm.project(FISHEYE, params, p)
    uv[0, 0].backward()
    np.testing.assert_allclose(p.grad.numpy(), [[300.0 / 2, 0.0, 0.0]], atol=1e-12)
    assert torch.isfinite(params.grad).all()
    xd = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    tm.undistort(FISHEYE, _t(FISHEYE.dist_params), xd)[0, 1].backward()
    np.testing.assert_allclose(xd.grad.numpy(), [[0.0, 1.0]], atol=1e-12)


@pytest.mark.parametrize("cam", ALL, ids=IDS)
def test_torch_unproject_dense_pixel_grid(cam):
    # fixed 10 Newton iterations suffice over the whole image, including the corners close to the fold of
    # OPENCV_K3 (distorted radius 0.80 vs. 0.82 at the fold)
    u, v = np.meshgrid(np.arange(0.0, W, 8.0), np.arange(0.0, H, 8.0))
    uv = np.stack([u, v], -1)
    uv[0, 0] = [-0.5, -0.5]
    rays = tm.unproject(cam, tm.camera_params(cam), _t(uv)).numpy()
    np.testing.assert_allclose(rays, cam.unproject(uv), rtol=0, atol=1e-10)
