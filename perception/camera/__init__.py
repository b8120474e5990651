"""Intrinsic camera models (numpy + torch) and converters to pycolmap / gtsam.

The torch versions live in ``perception.camera.torch_models`` (not imported here, to keep torch optional).
Pixel (0, 0) is the centre of the first pixel (OpenCV); ``convert`` shifts by 0.5 for COLMAP.
"""

from perception.camera.convert import from_gtsam, from_pycolmap, to_gtsam, to_pycolmap
from perception.camera.models import (
    MODELS,
    CameraModel,
    FisheyeCamera,
    OpenCVCamera,
    PinholeCamera,
    SimpleRadialCamera,
    camera_from_K,
)

__all__ = [
    "MODELS",
    "CameraModel",
    "FisheyeCamera",
    "OpenCVCamera",
    "PinholeCamera",
    "SimpleRadialCamera",
    "camera_from_K",
    "from_gtsam",
    "from_pycolmap",
    "to_gtsam",
    "to_pycolmap",
]
