"""Conversions between ``perception.camera`` models and pycolmap / gtsam calibrations.

COLMAP uses the pixel-corner convention (the centre of the first pixel is (0.5, 0.5)), so ``to_pycolmap`` adds
0.5 to the principal point and ``from_pycolmap`` subtracts it. gtsam uses the OpenCV convention (no shift).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from perception.camera.models import (
    CameraModel,
    FisheyeCamera,
    OpenCVCamera,
    PinholeCamera,
    SimpleRadialCamera,
)

logger = logging.getLogger(__name__)

__all__ = ["to_pycolmap", "from_pycolmap", "to_gtsam", "from_gtsam", "COLMAP_PIXEL_SHIFT"]

COLMAP_PIXEL_SHIFT = 0.5


def _shift_pp(params: np.ndarray, pp_idx: tuple[int, int], delta: float) -> np.ndarray:
    out = np.array(params, dtype=np.float64)
    out[list(pp_idx)] += delta
    return out


def to_pycolmap(cam: CameraModel, camera_id: int | None = None) -> Any:
    """pycolmap.Camera for ``cam`` (principal point + 0.5).

    OpenCVCamera maps to OPENCV, or to FULL_OPENCV (k4 = k5 = k6 = 0) when k3 != 0.
    """
    import pycolmap

    if isinstance(cam, PinholeCamera):
        model, params = "PINHOLE", _shift_pp(cam.params, (2, 3), COLMAP_PIXEL_SHIFT)
    elif isinstance(cam, OpenCVCamera):
        p = _shift_pp(cam.params, (2, 3), COLMAP_PIXEL_SHIFT)
        if cam.k3 == 0.0:
            model, params = "OPENCV", p[:8]
        else:
            model, params = "FULL_OPENCV", np.concatenate([p, np.zeros(3)])
    elif isinstance(cam, FisheyeCamera):
        model, params = "OPENCV_FISHEYE", _shift_pp(cam.params, (2, 3), COLMAP_PIXEL_SHIFT)
    elif isinstance(cam, SimpleRadialCamera):
        model, params = "SIMPLE_RADIAL", _shift_pp(cam.params, (1, 2), COLMAP_PIXEL_SHIFT)
    else:
        raise ValueError(f"to_pycolmap: unsupported camera type {type(cam).__name__}")
    kwargs: dict[str, Any] = {"model": model, "width": cam.width, "height": cam.height, "params": params}
    if camera_id is not None:
        kwargs["camera_id"] = int(camera_id)
    return pycolmap.Camera(**kwargs)


def from_pycolmap(camera: Any) -> CameraModel:
    """CameraModel from a pycolmap.Camera (principal point - 0.5).

    SIMPLE_PINHOLE/PINHOLE -> PinholeCamera, SIMPLE_RADIAL -> SimpleRadialCamera,
    RADIAL/OPENCV/FULL_OPENCV (k4 = k5 = k6 = 0 only) -> OpenCVCamera, OPENCV_FISHEYE -> FisheyeCamera.
    """
    name = str(camera.model_name)
    p = np.asarray(camera.params, dtype=np.float64)
    w, h = int(camera.width), int(camera.height)
    s = COLMAP_PIXEL_SHIFT
    expected = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4, "SIMPLE_RADIAL": 4, "RADIAL": 5, "OPENCV": 8,
                "FULL_OPENCV": 12, "OPENCV_FISHEYE": 8}  # fmt: skip
    if name not in expected:
        raise ValueError(
            f"from_pycolmap: camera model {name} is not supported (use one of {', '.join(expected)})"
        )
    if p.size != expected[name]:
        raise ValueError(f"from_pycolmap: {name} camera must have {expected[name]} params, got {p.size}")
    if name == "SIMPLE_PINHOLE":
        f, cx, cy = p
        return PinholeCamera(w, h, f, f, cx - s, cy - s)
    if name == "PINHOLE":
        return PinholeCamera(w, h, p[0], p[1], p[2] - s, p[3] - s)
    if name == "SIMPLE_RADIAL":
        return SimpleRadialCamera(w, h, p[0], p[1] - s, p[2] - s, p[3])
    if name == "RADIAL":
        f, cx, cy, k1, k2 = p
        return OpenCVCamera(w, h, f, f, cx - s, cy - s, k1, k2, 0.0, 0.0, 0.0)
    if name == "OPENCV":
        return OpenCVCamera(w, h, p[0], p[1], p[2] - s, p[3] - s, *p[4:8])
    if name == "FULL_OPENCV":
        if np.any(p[9:12] != 0):
            raise ValueError(
                f"from_pycolmap: FULL_OPENCV with rational terms k4..k6 = {p[9:12].tolist()} is not "
                "supported (only the 5-coefficient OpenCV model: k4 = k5 = k6 = 0)"
            )
        return OpenCVCamera(w, h, p[0], p[1], p[2] - s, p[3] - s, *p[4:9])
    return FisheyeCamera(w, h, p[0], p[1], p[2] - s, p[3] - s, *p[4:8])


def to_gtsam(cam: CameraModel, fisheye_tol: float = 1e-10) -> Any:
    """gtsam calibration for ``cam`` (same pixel convention, no shift).

    PinholeCamera -> Cal3_S2, OpenCVCamera (k3 = 0) -> Cal3DS2, SimpleRadialCamera -> Cal3DS2(f, f, 0, cx, cy,
    k, 0, 0, 0), FisheyeCamera -> Cal3Fisheye (``fisheye_tol``: gtsam's calibrate() iteration tolerance; its
    uncalibrate() equals OpenCV's fisheye model exactly).
    """
    import gtsam

    if isinstance(cam, PinholeCamera):
        return gtsam.Cal3_S2(cam.fx, cam.fy, 0.0, cam.cx, cam.cy)
    if isinstance(cam, OpenCVCamera):
        if cam.k3 != 0.0:
            raise ValueError(
                f"to_gtsam: OpenCVCamera k3 = {cam.k3} has no gtsam Cal3DS2 equivalent (Cal3DS2 has k1, k2, "
                "p1, p2 only); recalibrate with k3 fixed to 0 (cv2.CALIB_FIX_K3) or use with_params(k3=0.0)"
            )
        return gtsam.Cal3DS2(cam.fx, cam.fy, 0.0, cam.cx, cam.cy, cam.k1, cam.k2, cam.p1, cam.p2)
    if isinstance(cam, SimpleRadialCamera):
        return gtsam.Cal3DS2(cam.f, cam.f, 0.0, cam.cx, cam.cy, cam.k, 0.0, 0.0, 0.0)
    if isinstance(cam, FisheyeCamera):
        return gtsam.Cal3Fisheye(
            cam.fx, cam.fy, 0.0, cam.cx, cam.cy, cam.k1, cam.k2, cam.k3, cam.k4, fisheye_tol
        )
    raise ValueError(f"to_gtsam: unsupported camera type {type(cam).__name__}")


def from_gtsam(calibration: Any, width: int, height: int) -> CameraModel:
    """CameraModel from a gtsam Cal3_S2 / Cal3DS2 / Cal3Fisheye (gtsam stores no image size: pass it).

    Cal3DS2 always maps to OpenCVCamera (k3 = 0). Skewed calibrations raise ValueError.
    """
    import gtsam

    kind = type(calibration).__name__
    if not isinstance(calibration, (gtsam.Cal3_S2, gtsam.Cal3DS2, gtsam.Cal3Fisheye)):
        raise ValueError(f"from_gtsam: unsupported calibration type {kind} (Cal3_S2, Cal3DS2 or Cal3Fisheye)")
    if calibration.skew() != 0.0:
        raise ValueError(f"from_gtsam: {kind} skew must be 0, got {calibration.skew()}")
    fx, fy, cx, cy = calibration.fx(), calibration.fy(), calibration.px(), calibration.py()
    if isinstance(calibration, gtsam.Cal3_S2):
        return PinholeCamera(width, height, fx, fy, cx, cy)
    if isinstance(calibration, gtsam.Cal3DS2):
        c = calibration
        return OpenCVCamera(width, height, fx, fy, cx, cy, c.k1(), c.k2(), c.p1(), c.p2(), 0.0)
    c = calibration
    return FisheyeCamera(width, height, fx, fy, cx, cy, c.k1(), c.k2(), c.k3(), c.k4())
