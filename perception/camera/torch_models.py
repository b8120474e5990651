"""Differentiable torch versions of the camera models (for bundle adjustment / calibration by autograd).

Parameters are tensors in the numpy models' ``.params`` order (COLMAP order, OpenCV pixel-centre principal
point): ``params`` (..., P) broadcasts against the points' leading dimensions, so one camera (P,) or one
camera per point (N, P) both work. ``model`` is a COLMAP model name ("PINHOLE", "OPENCV", "OPENCV_FISHEYE",
"SIMPLE_RADIAL"), a ``CameraModel`` subclass or instance.

Undistortion runs a fixed number of Newton iterations on detached tensors and then one differentiable Newton
step: at the converged root this gives the exact implicit-function gradient w.r.t. the distorted points and
the distortion coefficients without back-propagating through the iterations.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from perception.camera.models import MODELS, CameraModel

__all__ = [
    "model_name",
    "camera_params",
    "split_params",
    "distort",
    "undistort",
    "project",
    "unproject",
    "unproject_bearing",
    "opencv_distort",
    "fisheye_distort",
    "simple_radial_distort",
]


def model_name(model: Any) -> str:
    """COLMAP model name from a name, a CameraModel subclass or instance."""
    if isinstance(model, str):
        name = model.upper()
    elif isinstance(model, CameraModel) or (isinstance(model, type) and issubclass(model, CameraModel)):
        name = model.model_name
    else:
        raise ValueError(f"model must be a model name or CameraModel, got {model!r}")
    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")
    return name


def camera_params(
    cam: CameraModel, dtype: torch.dtype = torch.float64, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """``cam.params`` as a tensor."""
    return torch.tensor(cam.params, dtype=dtype, device=device, requires_grad=requires_grad)


def split_params(model: Any, params: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(fx, fy, cx, cy, dist (..., Nd)) from a (..., P) parameter tensor."""
    name = model_name(model)
    cls = MODELS[name]
    if params.shape[-1] != cls.num_params():
        raise ValueError(f"params for {name} must have {cls.num_params()} values ({cls.param_names}), "
                         f"got shape {tuple(params.shape)}")  # fmt: skip
    if cls.intrinsic_names == ("f", "cx", "cy"):
        return params[..., 0], params[..., 0], params[..., 1], params[..., 2], params[..., 3:]
    return params[..., 0], params[..., 1], params[..., 2], params[..., 3], params[..., 4:]


def _check_dist(name: str, dist: Tensor) -> None:
    n = len(MODELS[name].dist_names)
    if dist.shape[-1] != n:
        raise ValueError(f"dist for {name} must have {n} coefficients, got shape {tuple(dist.shape)}")


# ---------------------------------------------------------------------- distortion functions
def opencv_distort(xy: Tensor, dist: Tensor) -> Tensor:
    """Brown-Conrady (k1, k2, p1, p2, k3) on the normalised plane."""
    return _opencv_distort_jac(xy, dist, with_jac=False)[0]


def _opencv_distort_jac(xy: Tensor, dist: Tensor, with_jac: bool = True) -> tuple[Tensor, Tensor | None]:
    k1, k2, p1, p2, k3 = (dist[..., i] for i in range(5))
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    out = torch.stack([xd, yd], -1)
    if not with_jac:
        return out, None
    dr = k1 + r2 * (2 * k2 + 3 * k3 * r2)
    j00 = radial + 2 * x * x * dr + 2 * p1 * y + 6 * p2 * x
    j01 = 2 * x * y * dr + 2 * p1 * x + 2 * p2 * y
    j11 = radial + 2 * y * y * dr + 6 * p1 * y + 2 * p2 * x
    J = torch.stack([torch.stack([j00, j01], -1), torch.stack([j01, j11], -1)], -2)
    return out, J


def simple_radial_distort(xy: Tensor, dist: Tensor) -> Tensor:
    """COLMAP SIMPLE_RADIAL: xy (1 + k r^2)."""
    k = dist[..., 0]
    r2 = (xy * xy).sum(-1)
    return xy * (1 + k * r2)[..., None]


def _simple_radial_distort_jac(xy: Tensor, dist: Tensor) -> tuple[Tensor, Tensor]:
    k = dist[..., 0]
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1 + k * r2
    j00 = radial + 2 * k * x * x
    j01 = 2 * k * x * y
    j11 = radial + 2 * k * y * y
    J = torch.stack([torch.stack([j00, j01], -1), torch.stack([j01, j11], -1)], -2)
    return xy * radial[..., None], J


def _theta_d(theta: Tensor, dist: Tensor) -> tuple[Tensor, Tensor]:
    k1, k2, k3, k4 = (dist[..., i] for i in range(4))
    t2 = theta * theta
    poly = 1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))
    dpoly = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
    return theta * poly, dpoly


def fisheye_distort(xy: Tensor, dist: Tensor) -> Tensor:
    """OpenCV fisheye on the normalised plane: xy * theta_d(atan r) / r (safe at r = 0)."""
    r2 = (xy * xy).sum(-1)
    pos = r2 > 0
    r = torch.sqrt(torch.where(pos, r2, torch.ones_like(r2)))
    theta = torch.where(pos, torch.atan(r), torch.zeros_like(r))
    t_over_r = torch.where(pos, theta / r, torch.ones_like(r))
    k1, k2, k3, k4 = (dist[..., i] for i in range(4))
    t2 = theta * theta
    poly = 1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))
    return xy * (t_over_r * poly)[..., None]


def distort(model: Any, dist: Tensor, xy: Tensor) -> Tensor:
    """Normalised undistorted (..., 2) -> distorted (..., 2); ``dist`` (..., Nd) distortion coefficients."""
    name = model_name(model)
    _check_dist(name, dist)
    if name == "PINHOLE":
        return xy
    if name == "OPENCV":
        return opencv_distort(xy, dist)
    if name == "SIMPLE_RADIAL":
        return simple_radial_distort(xy, dist)
    return fisheye_distort(xy, dist)


# ---------------------------------------------------------------------- undistortion
def _solve2x2(J: Tensor, r: Tensor) -> Tensor:
    a, b, c, d = J[..., 0, 0], J[..., 0, 1], J[..., 1, 0], J[..., 1, 1]
    det = a * d - b * c
    return torch.stack([(d * r[..., 0] - b * r[..., 1]) / det, (a * r[..., 1] - c * r[..., 0]) / det], -1)


def undistort(model: Any, dist: Tensor, xy_d: Tensor, iters: int = 10) -> Tensor:
    """Normalised distorted (..., 2) -> undistorted (..., 2): ``iters`` Newton steps + 1 differentiable step.

    No convergence check (fixed work, no data-dependent control flow): use the numpy model's ``undistort`` to
    flag points outside the invertible range.
    """
    name = model_name(model)
    _check_dist(name, dist)
    if name == "PINHOLE":
        return xy_d
    if name == "OPENCV_FISHEYE":
        return _fisheye_undistort(dist, xy_d, iters)
    jac = _opencv_distort_jac if name == "OPENCV" else _simple_radial_distort_jac
    xd0, k0 = xy_d.detach(), dist.detach()
    x = xd0
    for _ in range(iters):
        f, J = jac(x, k0)
        x = x - _solve2x2(J, f - xd0)
    _, J = jac(x, k0)
    return x - _solve2x2(J, distort(name, dist, x) - xy_d)  # differentiable (implicit-function) step


def _fisheye_undistort(dist: Tensor, xy_d: Tensor, iters: int) -> Tensor:
    theta_d_in, theta = _fisheye_theta(dist, xy_d, iters)
    r = torch.tan(theta)
    pos = theta_d_in > 0
    safe = torch.where(pos, theta_d_in, torch.ones_like(theta_d_in))
    scale = torch.where(pos, r / safe, torch.ones_like(r))
    return xy_d * scale[..., None]


def _fisheye_theta(dist: Tensor, xy_d: Tensor, iters: int) -> tuple[Tensor, Tensor]:
    """(theta_d = |xy_d|, incidence angle theta) with theta differentiable by one final Newton step."""
    r2 = (xy_d * xy_d).sum(-1)
    pos = r2 > 0
    td = torch.where(pos, torch.sqrt(torch.where(pos, r2, torch.ones_like(r2))), torch.zeros_like(r2))
    td0, k0 = td.detach(), dist.detach()
    hi = math.pi / 2 - 1e-9
    theta = td0.clamp(max=1.0)
    for _ in range(iters):
        f, df = _theta_d(theta, k0)
        theta = (theta - (f - td0) / df).clamp(0.0, hi)
    f, df = _theta_d(theta, dist)
    theta = theta - (f - td) / df.detach()
    return td, theta


# ---------------------------------------------------------------------- projection
def _monotonic(name: str, dist: Tensor, xy: Tensor) -> Tensor:
    """Local monotonicity of the radial distortion at the point (derivative of r_d(r) > 0)."""
    r2 = (xy * xy).sum(-1)
    if name == "OPENCV":
        k1, k2, k3 = dist[..., 0], dist[..., 1], dist[..., 4]
        return 1 + r2 * (3 * k1 + r2 * (5 * k2 + r2 * 7 * k3)) > 0
    if name == "SIMPLE_RADIAL":
        return 1 + 3 * dist[..., 0] * r2 > 0
    if name == "OPENCV_FISHEYE":
        theta = torch.atan(torch.sqrt(r2))
        return _theta_d(theta, dist)[1] > 0
    return torch.ones_like(r2, dtype=torch.bool)


def project(model: Any, params: Tensor, p_cam: Tensor) -> tuple[Tensor, Tensor]:
    """Camera-frame points (..., 3) -> (pixels (..., 2), valid (...,) bool).

    valid = z > 0 and the radial distortion is increasing at the point (a local version of the numpy model's
    monotonic-range test; identical for realistic coefficients).
    """
    name = model_name(model)
    fx, fy, cx, cy, dist = split_params(name, params)
    z = p_cam[..., 2]
    xy = p_cam[..., :2] / z[..., None]
    xd = distort(name, dist, xy)
    uv = torch.stack([fx * xd[..., 0] + cx, fy * xd[..., 1] + cy], -1)
    with torch.no_grad():
        valid = (z > 0) & _monotonic(name, dist.detach(), xy.detach()) & torch.isfinite(uv).all(-1)
    return uv, valid


def _pixel_to_normalized(name: str, params: Tensor, uv: Tensor) -> tuple[Tensor, Tensor]:
    fx, fy, cx, cy, dist = split_params(name, params)
    return torch.stack([(uv[..., 0] - cx) / fx, (uv[..., 1] - cy) / fy], -1), dist


def unproject(model: Any, params: Tensor, uv: Tensor, iters: int = 10) -> Tensor:
    """Pixels (..., 2) -> rays (..., 3) on the z = 1 plane."""
    name = model_name(model)
    xd, dist = _pixel_to_normalized(name, params, uv)
    xy = undistort(name, dist, xd, iters)
    return torch.cat([xy, torch.ones_like(xy[..., :1])], -1)


def unproject_bearing(model: Any, params: Tensor, uv: Tensor, iters: int = 10) -> Tensor:
    """Pixels (..., 2) -> unit bearing vectors (..., 3) (fisheye: from the incidence angle)."""
    name = model_name(model)
    if name != "OPENCV_FISHEYE":
        rays = unproject(name, params, uv, iters)
        return rays / torch.linalg.norm(rays, dim=-1, keepdim=True)
    xd, dist = _pixel_to_normalized(name, params, uv)
    td, theta = _fisheye_theta(dist, xd, iters)
    pos = td > 0
    safe = torch.where(pos, td, torch.ones_like(td))
    sin_over = torch.where(pos, torch.sin(theta) / safe, torch.ones_like(td))
    return torch.cat([xd * sin_over[..., None], torch.cos(theta)[..., None]], -1)
