"""Intrinsic camera models (numpy): pinhole, OpenCV (Brown-Conrady), OpenCV fisheye, COLMAP SIMPLE_RADIAL.

Conventions (see ``perception.geometry``): camera frame x right, y down, z forward; pixel (0, 0) is the
centre of the first pixel (OpenCV). The normalised image plane is z = 1: ``xy_n = (X / Z, Y / Z)``;
distortion maps ``xy_n`` to ``xy_d`` on the same plane; pixels: ``u = fx * x_d + cx``, ``v = fy * y_d + cy``.

``.params`` follows COLMAP's parameter order for the model (``fx, fy, cx, cy, <distortion>``), but the
principal point is in the OpenCV pixel-centre convention; ``perception.camera.convert`` adds/subtracts the
0.5 for COLMAP.
Intrinsics are scalars; every point function is batched over leading dimensions.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "CameraModel",
    "PinholeCamera",
    "OpenCVCamera",
    "FisheyeCamera",
    "SimpleRadialCamera",
    "camera_from_K",
]


def _as_points(a: Any, dim: int, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (..., {dim}), got {arr.shape}")
    return arr


def _smallest_positive_root(coeffs_low_to_high: list[float]) -> float:
    """Smallest real root > 0 of the polynomial sum_i c_i s^i (inf if none)."""
    c = np.trim_zeros(np.asarray(coeffs_low_to_high, dtype=np.float64), "b")
    if c.size <= 1:
        return math.inf
    roots = np.roots(c[::-1])
    real = roots[np.abs(roots.imag) <= 1e-9 * np.maximum(1.0, np.abs(roots.real))].real
    real = real[real > 0]
    return float(real.min()) if real.size else math.inf


def _solve2x2(J: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Solve J dx = r for batched 2x2 J (...,2,2) and r (...,2)."""
    a, b, c, d = J[..., 0, 0], J[..., 0, 1], J[..., 1, 0], J[..., 1, 1]
    det = a * d - b * c
    with np.errstate(divide="ignore", invalid="ignore"):
        x0 = (d * r[..., 0] - b * r[..., 1]) / det
        x1 = (a * r[..., 1] - c * r[..., 0]) / det
    return np.stack([x0, x1], axis=-1)


class CameraModel(ABC):
    """Abstract base of the intrinsic camera models (frozen dataclasses in the subclasses).

    Subclasses define the dataclass fields ``width, height, <intrinsics>, <distortion>`` and the class
    variables below; all geometry is written once here in terms of ``_distort_jac``.
    """

    model_name: ClassVar[str]  # COLMAP model name
    intrinsic_names: ClassVar[tuple[str, ...]]  # ("fx", "fy", "cx", "cy") or ("f", "cx", "cy")
    dist_names: ClassVar[tuple[str, ...]]  # distortion coefficients, COLMAP/OpenCV order
    focal_names: ClassVar[tuple[str, ...]]
    optional_trailing: ClassVar[int] = 0  # trailing params that from_params may omit (default 0)
    param_names: ClassVar[tuple[str, ...]] = ()  # intrinsic_names + dist_names, set per subclass

    # subclasses provide: width, height, cx, cy and fx, fy (fields or properties)
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    # ------------------------------------------------------------------ construction / validation
    def __post_init__(self) -> None:
        cls = type(self).__name__
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise ValueError(f"{cls}: {name} must be a positive integer, got {v!r}")
            if int(v) <= 0:
                raise ValueError(f"{cls}: {name} must be a positive integer, got {int(v)}")
            object.__setattr__(self, name, int(v))
        for name in self.param_names:
            v = getattr(self, name)
            if isinstance(v, bool):
                raise ValueError(f"{cls}: {name} must be a finite real number, got {v!r}")
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{cls}: {name} must be a finite real number, got {v!r}") from None
            if not math.isfinite(f):
                raise ValueError(f"{cls}: {name} must be finite, got {f}")
            if name in self.focal_names and f <= 0:
                raise ValueError(f"{cls}: {name} must be > 0, got {f}")
            object.__setattr__(self, name, f)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "intrinsic_names" in cls.__dict__ or "dist_names" in cls.__dict__:
            cls.param_names = cls.intrinsic_names + cls.dist_names

    @classmethod
    def num_params(cls) -> int:
        return len(cls.intrinsic_names) + len(cls.dist_names)

    @classmethod
    def from_params(cls, width: int, height: int, params: Any) -> CameraModel:
        """Build from a parameter vector in ``.params`` order (principal point in the OpenCV convention)."""
        p = np.asarray(params, dtype=np.float64).reshape(-1)
        n = cls.num_params()
        allowed = {n - i for i in range(cls.optional_trailing + 1)}
        if p.size not in allowed:
            want = " or ".join(str(a) for a in sorted(allowed))
            raise ValueError(
                f"{cls.__name__}: params must have {want} values ({', '.join(cls.param_names)}), got {p.size}"
            )
        return cls(width, height, *(float(x) for x in p))

    @property
    def params(self) -> np.ndarray:
        """Parameters in COLMAP's order for this model (principal point: OpenCV pixel-centre convention)."""
        return np.array([getattr(self, n) for n in self.param_names], dtype=np.float64)

    @property
    def dist_params(self) -> np.ndarray:
        return np.array([getattr(self, n) for n in self.dist_names], dtype=np.float64)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    @property
    def dist_coeffs(self) -> np.ndarray:
        """Distortion vector for OpenCV functions (``cv2.*`` or ``cv2.fisheye.*`` for FisheyeCamera)."""
        return self.dist_params

    def with_params(self, params: Any = None, **changes: Any) -> CameraModel:
        """Copy with a new parameter vector (``.params`` order) and/or named fields replaced."""
        cam: CameraModel = self
        if params is not None:
            cam = type(self).from_params(self.width, self.height, params)
        return dataclasses.replace(cam, **changes) if changes else cam  # type: ignore[type-var]

    def scaled(self, sx: float, sy: float | None = None) -> CameraModel:
        """Camera for the image resized by (sx, sy) (pixel-centre convention: c' = (c + 0.5) s - 0.5)."""
        sy = sx if sy is None else sy
        if not (math.isfinite(sx) and sx > 0):
            raise ValueError(f"{type(self).__name__}.scaled: sx must be finite and > 0, got {sx}")
        if not (math.isfinite(sy) and sy > 0):
            raise ValueError(f"{type(self).__name__}.scaled: sy must be finite and > 0, got {sy}")
        w = max(1, int(round(self.width * sx)))
        h = max(1, int(round(self.height * sy)))
        return self._rescaled(w, h, sx, sy)

    def resized(self, width: int, height: int) -> CameraModel:
        """Camera for the image resized to exactly (width, height) pixels."""
        return self._rescaled(width, height, width / self.width, height / self.height)

    def _rescaled(self, w: int, h: int, sx: float, sy: float) -> CameraModel:
        changes: dict[str, Any] = {
            "width": w,
            "height": h,
            "cx": (self.cx + 0.5) * sx - 0.5,
            "cy": (self.cy + 0.5) * sy - 0.5,
        }
        if "f" in self.intrinsic_names:
            if not math.isclose(sx, sy, rel_tol=1e-9):
                raise ValueError(
                    f"{type(self).__name__}.scaled: single focal length needs sx == sy, got {sx} and {sy}"
                )
            changes["f"] = self.fx * sx
        else:
            changes["fx"] = self.fx * sx
            changes["fy"] = self.fy * sy
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    # ------------------------------------------------------------------ distortion (model specific)
    @abstractmethod
    def _distort_jac(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xy_d (...,2), d xy_d / d xy (...,2,2), d xy_d / d dist (...,2,Nd))."""

    @abstractmethod
    def _in_range(self, p_cam: np.ndarray) -> np.ndarray:
        """Inside the monotonic range of the distortion (z > 0 is checked separately)."""

    def distort(self, xy_n: Any) -> np.ndarray:
        """Normalised undistorted (...,2) -> normalised distorted (...,2)."""
        xy = _as_points(xy_n, 2, "xy_n")
        return self._distort_jac(xy)[0]

    def undistort(
        self,
        xy_d: Any,
        *,
        max_iters: int = 50,
        tol: float = 1e-12,
        return_valid: bool = False,
        strict: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Normalised distorted (...,2) -> normalised undistorted (...,2) by (damped) Newton iterations.

        Points that do not converge to ``tol`` (residual in normalised units) inside the model's monotonic
        range are NaN; ``return_valid`` also returns that mask, ``strict`` raises ValueError instead.
        """
        xd = _as_points(xy_d, 2, "xy_d")
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # failures end up in `ok`
            xy, ok = self._undistort(xd, max_iters, tol)
        xy = np.where(ok[..., None], xy, np.nan)
        if strict and not ok.all():
            raise ValueError(
                f"{type(self).__name__}.undistort: {int((~ok).sum())} of {ok.size} points did not converge "
                "(outside the field of view / monotonic range of the distortion)"
            )
        return (xy, ok) if return_valid else xy

    def _undistort(self, xd: np.ndarray, max_iters: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
        """Damped 2-D Newton on distort(x) = xd, started at x = xd; returns (x, converged & in range)."""
        finite = np.isfinite(xd).all(axis=-1)
        target = np.where(finite[..., None], xd, 0.0)
        x = target.copy()
        f, J, _ = self._distort_jac(x)
        res = f - target
        err = np.linalg.norm(res, axis=-1)
        failed = ~finite
        for _ in range(max_iters):
            active = (err > tol) & ~failed
            if not active.any():
                break
            step = -_solve2x2(J, res)
            failed |= active & ~np.isfinite(step).all(axis=-1)
            active &= ~failed
            step = np.where(active[..., None], step, 0.0)
            alpha = np.ones(err.shape)
            for _ in range(40):  # backtracking: halve steps that do not reduce the residual
                cand = x + alpha[..., None] * step
                fc, Jc, _ = self._distort_jac(cand)
                rc = fc - target
                ec = np.linalg.norm(rc, axis=-1)
                worse = active & ~(ec < err)
                if not worse.any():
                    break
                alpha = np.where(worse, 0.5 * alpha, alpha)
            upd = active & (ec < err)
            failed |= active & ~upd  # no descent possible: stalled outside the invertible range
            x = np.where(upd[..., None], cand, x)
            J = np.where(upd[..., None, None], Jc, J)
            res = np.where(upd[..., None], rc, res)
            err = np.where(upd, ec, err)
        ok = ~failed & (err <= tol)
        # polish: one more Newton step (quadratic convergence), kept where it does not increase the residual
        cand = x - np.where(ok[..., None], _solve2x2(J, res), 0.0)
        fc = self._distort_jac(cand)[0]
        better = ok & np.isfinite(cand).all(axis=-1) & (np.linalg.norm(fc - target, axis=-1) <= err)
        x = np.where(better[..., None], cand, x)
        p = np.concatenate([x, np.ones(x.shape[:-1] + (1,))], axis=-1)
        ok &= self._in_range(np.where(ok[..., None], p, 0.0))
        return x, ok

    # ------------------------------------------------------------------ pixel <-> normalised
    def normalized_to_pixel(self, xy_d: Any) -> np.ndarray:
        xy = _as_points(xy_d, 2, "xy_d")
        return np.stack([self.fx * xy[..., 0] + self.cx, self.fy * xy[..., 1] + self.cy], axis=-1)

    def pixel_to_normalized(self, uv: Any) -> np.ndarray:
        uv = _as_points(uv, 2, "uv")
        return np.stack([(uv[..., 0] - self.cx) / self.fx, (uv[..., 1] - self.cy) / self.fy], axis=-1)

    def in_image(self, uv: Any, margin: float = 0.0) -> np.ndarray:
        """Pixel lies inside the image (pixel-centre convention: [-0.5, W-0.5) x [-0.5, H-0.5))."""
        uv = _as_points(uv, 2, "uv")
        u, v = uv[..., 0], uv[..., 1]
        return (
            (u >= -0.5 + margin)
            & (u < self.width - 0.5 - margin)
            & (v >= -0.5 + margin)
            & (v < self.height - 0.5 - margin)
        )

    # ------------------------------------------------------------------ projection
    def _valid(self, p: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (p[..., 2] > 0) & self._in_range(p) & np.isfinite(p).all(axis=-1)

    def project(self, p_cam: Any) -> tuple[np.ndarray, np.ndarray]:
        """Camera-frame points (...,3) -> (pixels (...,2), valid (...,)); valid = z > 0 and inside the
        monotonic range of the distortion (pixels of invalid points are still computed where defined)."""
        p = _as_points(p_cam, 3, "p_cam")
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = p[..., :2] / p[..., 2:3]
            xd = self._distort_jac(xy)[0]
        return self.normalized_to_pixel(xd), self._valid(p)

    def unproject(self, uv: Any, *, return_valid: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Pixels (...,2) -> rays (...,3) on the z = 1 plane (NaN where undistortion fails)."""
        xy, ok = self.undistort(self.pixel_to_normalized(uv), return_valid=True)
        rays = np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], axis=-1)
        rays = np.where(ok[..., None], rays, np.nan)
        return (rays, ok) if return_valid else rays

    def unproject_bearing(
        self, uv: Any, *, return_valid: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Pixels (...,2) -> unit bearing vectors (...,3) (NaN where undistortion fails)."""
        rays, ok = self.unproject(uv, return_valid=True)
        b = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
        return (b, ok) if return_valid else b

    def _intrinsic_jac(self, xd: np.ndarray) -> np.ndarray:
        """d uv / d intrinsics (...,2,nI) given the distorted normalised point."""
        one, zero = np.ones(xd.shape[:-1]), np.zeros(xd.shape[:-1])
        x, y = xd[..., 0], xd[..., 1]
        if self.intrinsic_names == ("f", "cx", "cy"):
            rows = [[x, one, zero], [y, zero, one]]
        else:
            rows = [[x, zero, one, zero], [zero, y, zero, one]]
        return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)

    def project_jacobians(self, p_cam: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(uv (...,2), d uv / d p_cam (...,2,3), d uv / d params (...,2,P) in ``.params`` order)."""
        p = _as_points(p_cam, 3, "p_cam")
        X, Y, Z = p[..., 0], p[..., 1], p[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            iz = 1.0 / Z
            xy = p[..., :2] / Z[..., None]
            xd, Jd, Jk = self._distort_jac(xy)
            zero = np.zeros_like(Z)
            Jn = np.stack(
                [np.stack([iz, zero, -X * iz * iz], -1), np.stack([zero, iz, -Y * iz * iz], -1)], axis=-2
            )
        F = np.array([self.fx, self.fy])[:, None]
        J_point = F * (Jd @ Jn)
        J_params = np.concatenate([self._intrinsic_jac(xd), F * Jk], axis=-1)
        return self.normalized_to_pixel(xd), J_point, J_params


# ====================================================================== concrete models
@dataclass(frozen=True)
class PinholeCamera(CameraModel):
    """Distortion-free pinhole camera (COLMAP PINHOLE)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    model_name: ClassVar[str] = "PINHOLE"
    intrinsic_names: ClassVar[tuple[str, ...]] = ("fx", "fy", "cx", "cy")
    dist_names: ClassVar[tuple[str, ...]] = ()
    focal_names: ClassVar[tuple[str, ...]] = ("fx", "fy")

    def _distort_jac(self, xy):
        eye = np.broadcast_to(np.eye(2), xy.shape[:-1] + (2, 2)).copy()
        return xy.copy(), eye, np.zeros(xy.shape[:-1] + (2, 0))

    def _in_range(self, p_cam):
        return np.ones(p_cam.shape[:-1], dtype=bool)

    def _undistort(self, xd, max_iters, tol):
        return xd.copy(), np.isfinite(xd).all(axis=-1)


def _radial_poly_jac(xy, r2, radial, dradial_dr2):
    """Jacobian of xy * radial(r2) w.r.t. xy."""
    x, y = xy[..., 0], xy[..., 1]
    return np.stack(
        [
            np.stack([radial + 2 * x * x * dradial_dr2, 2 * x * y * dradial_dr2], -1),
            np.stack([2 * x * y * dradial_dr2, radial + 2 * y * y * dradial_dr2], -1),
        ],
        axis=-2,
    )


@dataclass(frozen=True)
class OpenCVCamera(CameraModel):
    """OpenCV's 5-coefficient Brown-Conrady model (k1, k2, p1, p2, k3); COLMAP OPENCV (+ k3 = FULL_OPENCV)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    k1: float
    k2: float
    p1: float
    p2: float
    k3: float = 0.0

    model_name: ClassVar[str] = "OPENCV"
    intrinsic_names: ClassVar[tuple[str, ...]] = ("fx", "fy", "cx", "cy")
    dist_names: ClassVar[tuple[str, ...]] = ("k1", "k2", "p1", "p2", "k3")
    focal_names: ClassVar[tuple[str, ...]] = ("fx", "fy")
    optional_trailing: ClassVar[int] = 1  # COLMAP OPENCV has 8 params (k3 = 0)

    @property
    def max_radius(self) -> float:
        """Undistorted normalised radius where r (1 + k1 r^2 + k2 r^4 + k3 r^6) stops increasing (inf: never).

        The tangential terms are ignored for this bound (they are small for real lenses).
        """
        return _radial_max_radius(self.k1, self.k2, self.k3)

    def _distort_jac(self, xy):
        k1, k2, p1, p2, k3 = self.k1, self.k2, self.p1, self.p2, self.k3
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dr = k1 + r2 * (2 * k2 + 3 * k3 * r2)
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        J = _radial_poly_jac(xy, r2, radial, dr)
        J[..., 0, 0] += 2 * p1 * y + 6 * p2 * x
        J[..., 0, 1] += 2 * p1 * x + 2 * p2 * y
        J[..., 1, 0] += 2 * p1 * x + 2 * p2 * y
        J[..., 1, 1] += 6 * p1 * y + 2 * p2 * x
        r4 = r2 * r2
        Jk = np.stack(
            [
                np.stack([x * r2, x * r4, 2 * x * y, r2 + 2 * x * x, x * r4 * r2], -1),
                np.stack([y * r2, y * r4, r2 + 2 * y * y, 2 * x * y, y * r4 * r2], -1),
            ],
            axis=-2,
        )
        return np.stack([xd, yd], -1), J, Jk

    def _in_range(self, p_cam):
        return _radius_in_range(p_cam, self.max_radius)


def _radius_in_range(p_cam: np.ndarray, rmax: float) -> np.ndarray:
    if math.isinf(rmax):
        return np.ones(p_cam.shape[:-1], dtype=bool)
    z = p_cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = (p_cam[..., 0] ** 2 + p_cam[..., 1] ** 2) / (z * z)
    return r2 < rmax * rmax


@functools.lru_cache(maxsize=256)
def _radial_max_radius(k1: float, k2: float, k3: float) -> float:
    # d/dr [r (1 + k1 r^2 + k2 r^4 + k3 r^6)] = 1 + 3 k1 s + 5 k2 s^2 + 7 k3 s^3, s = r^2
    s = _smallest_positive_root([1.0, 3 * k1, 5 * k2, 7 * k3])
    return math.sqrt(s)


@dataclass(frozen=True)
class SimpleRadialCamera(CameraModel):
    """COLMAP SIMPLE_RADIAL: single focal f, x_d = x (1 + k r^2)."""

    width: int
    height: int
    f: float
    cx: float
    cy: float
    k: float

    model_name: ClassVar[str] = "SIMPLE_RADIAL"
    intrinsic_names: ClassVar[tuple[str, ...]] = ("f", "cx", "cy")
    dist_names: ClassVar[tuple[str, ...]] = ("k",)
    focal_names: ClassVar[tuple[str, ...]] = ("f",)

    @property
    def fx(self) -> float:  # type: ignore[override]
        return self.f

    @property
    def fy(self) -> float:  # type: ignore[override]
        return self.f

    @property
    def dist_coeffs(self) -> np.ndarray:
        return np.array([self.k, 0.0, 0.0, 0.0, 0.0])

    @property
    def max_radius(self) -> float:
        return _radial_max_radius(self.k, 0.0, 0.0)

    def _distort_jac(self, xy):
        r2 = (xy * xy).sum(-1)
        radial = 1 + self.k * r2
        J = _radial_poly_jac(xy, r2, radial, np.full_like(r2, self.k))
        return xy * radial[..., None], J, (xy * r2[..., None])[..., None]

    def _in_range(self, p_cam):
        return _radius_in_range(p_cam, self.max_radius)


@dataclass(frozen=True)
class FisheyeCamera(CameraModel):
    """OpenCV fisheye (equidistant + polynomial): theta_d = theta (1 + k1 t^2 + k2 t^4 + k3 t^6 + k4 t^8).

    theta = atan2(r, z) is the angle from the optical axis; COLMAP OPENCV_FISHEYE.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    k1: float
    k2: float
    k3: float
    k4: float

    model_name: ClassVar[str] = "OPENCV_FISHEYE"
    intrinsic_names: ClassVar[tuple[str, ...]] = ("fx", "fy", "cx", "cy")
    dist_names: ClassVar[tuple[str, ...]] = ("k1", "k2", "k3", "k4")
    focal_names: ClassVar[tuple[str, ...]] = ("fx", "fy")

    @property
    def max_theta(self) -> float:
        """Largest incidence angle (rad) of the monotonic range of theta_d(theta), at most pi/2."""
        k1, k2, k3, k4 = self.k1, self.k2, self.k3, self.k4
        u = _smallest_positive_root([1.0, 3 * k1, 5 * k2, 7 * k3, 9 * k4])
        return min(math.sqrt(u), math.pi / 2)

    def theta_d(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(theta_d(theta), d theta_d / d theta)."""
        t2 = theta * theta
        k1, k2, k3, k4 = self.k1, self.k2, self.k3, self.k4
        poly = 1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))
        dpoly = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
        return theta * poly, dpoly

    def _distort_jac(self, xy):
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        r = np.sqrt(r2)
        theta = np.arctan(r)
        safe_r = np.where(r > 0, r, 1.0)
        t_over_r = np.where(r > 0, theta / safe_r, 1.0)
        t2 = theta * theta
        k1, k2, k3, k4 = self.k1, self.k2, self.k3, self.k4
        P = 1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))
        Q = 2 * k1 + t2 * (4 * k2 + t2 * (6 * k3 + t2 * 8 * k4))  # P'(theta) / theta
        # h = (r / (1 + r^2) - atan r) / r^3, series below 1e-2 (cancellation)
        small = r < 1e-2
        rr = np.where(small, 1.0, r)
        h_exact = (rr / (1 + rr * rr) - np.arctan(rr)) / (rr * rr * rr)
        h_series = -2.0 / 3 + r2 * (4.0 / 5 + r2 * (-6.0 / 7 + r2 * (8.0 / 9 - r2 * 10.0 / 11)))
        h = np.where(small, h_series, h_exact)
        s = t_over_r * P
        g = h * P + t_over_r * t_over_r * Q / (1 + r2)  # (ds/dr) / r
        xd = xy * s[..., None]
        J = np.stack(
            [np.stack([s + g * x * x, g * x * y], -1), np.stack([g * x * y, s + g * y * y], -1)], axis=-2
        )
        base = xy * t_over_r[..., None]
        tp = np.stack([t2, t2**2, t2**3, t2**4], -1)
        Jk = base[..., :, None] * tp[..., None, :]
        return xd, J, Jk

    def _in_range(self, p_cam):
        theta = np.arctan2(np.hypot(p_cam[..., 0], p_cam[..., 1]), p_cam[..., 2])
        return theta < self.max_theta

    def _solve_theta(
        self, td_target: np.ndarray, max_iters: int, tol: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Newton on theta_d(theta) = td_target inside [0, max_theta); returns (theta, ok)."""
        tmax = self.max_theta
        td_max = float(self.theta_d(np.array(tmax))[0])
        theta = np.minimum(td_target, 0.5 * tmax)
        for _ in range(max_iters):
            td, dtd = self.theta_d(theta)
            res = td - td_target
            active = np.abs(res) > tol
            if not active.any():
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                new = theta - res / dtd
            # keep iterates inside [0, tmax): bisect towards the bound instead of jumping past it
            new = np.where((new >= tmax) | ~np.isfinite(new), 0.5 * (theta + tmax), new)
            new = np.where(new < 0, 0.5 * theta, new)
            theta = np.where(active, new, theta)
        td, dtd = self.theta_d(theta)
        err = np.abs(td - td_target)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            polished = theta - (td - td_target) / dtd  # one more Newton step (quadratic convergence)
            polished = np.where(np.isfinite(polished), polished, theta)
            err_p = np.abs(self.theta_d(polished)[0] - td_target)
        better = np.isfinite(polished) & (err_p <= err) & (polished >= 0) & (polished < tmax)
        theta = np.where(better, polished, theta)
        err = np.where(better, err_p, err)
        ok = (err <= tol) & (td_target < td_max) & (theta < tmax)
        return theta, ok

    def _undistort(self, xd, max_iters, tol):
        finite = np.isfinite(xd).all(axis=-1)
        xd0 = np.where(finite[..., None], xd, 0.0)
        td = np.linalg.norm(xd0, axis=-1)
        theta, ok = self._solve_theta(td, max_iters, tol)
        ok &= finite & (theta < math.pi / 2)
        with np.errstate(invalid="ignore", over="ignore"):
            r = np.tan(np.where(ok, theta, 0.0))
        safe_td = np.where(td > 0, td, 1.0)
        scale = np.where(td > 0, r / safe_td, 1.0)
        return xd0 * scale[..., None], ok

    def unproject_bearing(self, uv, *, return_valid=False):
        """Pixels -> unit bearings from the incidence angle (stable up to 90 degrees)."""
        xd = self.pixel_to_normalized(uv)
        finite = np.isfinite(xd).all(axis=-1)
        xd0 = np.where(finite[..., None], xd, 0.0)
        td = np.linalg.norm(xd0, axis=-1)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            theta, ok = self._solve_theta(td, 50, 1e-12)
        ok &= finite
        safe_td = np.where(td > 0, td, 1.0)
        sin_over = np.where(td > 0, np.sin(theta) / safe_td, 1.0)
        b = np.concatenate([xd0 * sin_over[..., None], np.cos(theta)[..., None]], axis=-1)
        b = np.where(ok[..., None], b, np.nan)
        return (b, ok) if return_valid else b


MODELS: dict[str, type[CameraModel]] = {
    c.model_name: c for c in (PinholeCamera, OpenCVCamera, FisheyeCamera, SimpleRadialCamera)
}


def camera_from_K(K: Any, dist: Any, width: int, height: int, *, fisheye: bool = False) -> CameraModel:
    """Camera from an OpenCV K (3x3, zero skew) and distortion vector.

    ``dist`` empty/None -> PinholeCamera; 4 values with ``fisheye=True`` -> FisheyeCamera; 4 or 5 values ->
    OpenCVCamera (k1, k2, p1, p2[, k3]); 8, 12 or 14 values are accepted when the extra terms are zero.
    """
    Km = np.asarray(K, dtype=np.float64)
    if Km.shape != (3, 3):
        raise ValueError(f"camera_from_K: K must be 3x3, got shape {Km.shape}")
    if not np.allclose(Km[2], [0, 0, 1]) or Km[1, 0] != 0:
        raise ValueError(f"camera_from_K: K's last row must be [0, 0, 1] and K[1,0] = 0, got {Km.tolist()}")
    if Km[0, 1] != 0:
        raise ValueError(f"camera_from_K: K has skew K[0,1] = {Km[0, 1]}; skewed cameras are not supported")
    fx, fy, cx, cy = Km[0, 0], Km[1, 1], Km[0, 2], Km[1, 2]
    d = np.zeros(0) if dist is None else np.asarray(dist, dtype=np.float64).reshape(-1)
    if fisheye:
        if d.size != 4:
            raise ValueError(f"camera_from_K: fisheye dist must have 4 values (k1..k4), got {d.size}")
        return FisheyeCamera(width, height, fx, fy, cx, cy, *d)
    if d.size == 0:
        return PinholeCamera(width, height, fx, fy, cx, cy)
    if d.size in (4, 5):
        return OpenCVCamera(width, height, fx, fy, cx, cy, *d)
    if d.size in (8, 12, 14):
        if np.any(d[5:] != 0):
            raise ValueError(
                f"camera_from_K: dist has nonzero rational/thin-prism/tilt terms {d[5:].tolist()}; only the "
                "5-coefficient model (k1, k2, p1, p2, k3) is supported"
            )
        return OpenCVCamera(width, height, fx, fy, cx, cy, *d[:5])
    raise ValueError(f"camera_from_K: dist must have 0, 4, 5, 8, 12 or 14 values, got {d.size}")
