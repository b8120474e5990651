"""pycolmap / gtsam conversions: round trips and numerical agreement of their projection functions."""

from __future__ import annotations

import gtsam
import numpy as np
import pycolmap
import pytest
from scipy.spatial.transform import Rotation

from perception.camera import FisheyeCamera, OpenCVCamera, PinholeCamera, SimpleRadialCamera
from perception.camera.convert import from_gtsam, from_pycolmap, to_gtsam, to_pycolmap

W, H = 640, 480
PINHOLE = PinholeCamera(W, H, 500.0, 505.0, 319.5, 239.5)
OPENCV = OpenCVCamera(W, H, 500.0, 505.0, 321.2, 238.7, -0.28, 0.07, 1e-3, -5e-4)
OPENCV_K3 = OpenCVCamera(W, H, 500.0, 505.0, 321.2, 238.7, -0.28, 0.07, 1e-3, -5e-4, -0.02)
RADIAL = SimpleRadialCamera(W, H, 500.0, 320.4, 239.1, -0.12)
FISHEYE = FisheyeCamera(W, H, 300.0, 302.0, 318.9, 241.3, -0.01, 0.003, -0.001, 0.0002)
ALL = [PINHOLE, OPENCV, OPENCV_K3, RADIAL, FISHEYE]
IDS = ["pinhole", "opencv", "opencv_k3", "simple_radial", "fisheye"]
COLMAP_NAMES = ["PINHOLE", "OPENCV", "FULL_OPENCV", "SIMPLE_RADIAL", "OPENCV_FISHEYE"]


def _points(seed: int = 0, n: int = 100) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.uniform(1.0, 6.0, n)
    return np.stack([rng.uniform(-0.6, 0.6, n) * z, rng.uniform(-0.45, 0.45, n) * z, z], -1)


# ----------------------------------------------------------------------------- pycolmap
@pytest.mark.parametrize("cam, name", list(zip(ALL, COLMAP_NAMES, strict=True)), ids=IDS)
def test_pycolmap_round_trip_and_shift(cam, name):
    pc = to_pycolmap(cam, camera_id=7)
    assert pc.model_name == name and pc.camera_id == 7
    assert (pc.width, pc.height) == (W, H)
    assert pc.principal_point_x == pytest.approx(cam.cx + 0.5, abs=1e-12)
    assert pc.principal_point_y == pytest.approx(cam.cy + 0.5, abs=1e-12)
    back = from_pycolmap(pc)
    assert type(back) is type(cam)
    np.testing.assert_allclose(back.params, cam.params, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cam", ALL, ids=IDS)
def test_pycolmap_img_from_cam_agrees_with_project(cam):
    p = _points()
    pc = to_pycolmap(cam)
    uv, valid = cam.project(p)
    assert valid.all()
    np.testing.assert_allclose(pc.img_from_cam(p) - 0.5, uv, rtol=0, atol=1e-9)
    # and the inverse (COLMAP's own iterative undistortion converges to ~1e-11)
    np.testing.assert_allclose(pc.cam_from_img(uv + 0.5), cam.unproject(uv)[:, :2], rtol=0, atol=1e-9)
    np.testing.assert_allclose(pc.cam_ray_from_img(uv + 0.5), cam.unproject_bearing(uv), rtol=0, atol=1e-9)


def test_from_pycolmap_other_models():
    sp = pycolmap.Camera(model="SIMPLE_PINHOLE", width=W, height=H, params=[480.0, 320.0, 240.0])
    assert from_pycolmap(sp) == PinholeCamera(W, H, 480.0, 480.0, 319.5, 239.5)
    rad = pycolmap.Camera(model="RADIAL", width=W, height=H, params=[480.0, 320.0, 240.0, -0.1, 0.02])
    cam = from_pycolmap(rad)
    assert cam == OpenCVCamera(W, H, 480.0, 480.0, 319.5, 239.5, -0.1, 0.02, 0.0, 0.0, 0.0)
    p = _points(1)
    np.testing.assert_allclose(rad.img_from_cam(p) - 0.5, cam.project(p)[0], rtol=0, atol=1e-9)
    full = pycolmap.Camera(
        model="FULL_OPENCV", width=W, height=H, params=[500, 500, 320, 240] + [0.0] * 5 + [0.1, 0, 0]
    )
    with pytest.raises(ValueError, match="FULL_OPENCV with rational terms"):
        from_pycolmap(full)
    fov = pycolmap.Camera(model="FOV", width=W, height=H, params=[500.0, 500.0, 320.0, 240.0, 0.5])
    with pytest.raises(ValueError, match="camera model FOV is not supported"):
        from_pycolmap(fov)


# ----------------------------------------------------------------------------- gtsam
def _pose(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random T_world_cam (R, t)."""
    rng = np.random.default_rng(seed)
    return Rotation.from_rotvec(rng.normal(size=3) * 0.3).as_matrix(), rng.normal(size=3)


@pytest.mark.parametrize(
    "cam, cls, camera_cls",
    [
        (PINHOLE, gtsam.Cal3_S2, gtsam.PinholeCameraCal3_S2),
        (OPENCV, gtsam.Cal3DS2, gtsam.PinholeCameraCal3DS2),
        (RADIAL, gtsam.Cal3DS2, gtsam.PinholeCameraCal3DS2),
        (FISHEYE, gtsam.Cal3Fisheye, gtsam.PinholeCameraCal3Fisheye),
    ],
    ids=["pinhole", "opencv", "simple_radial", "fisheye"],
)
def test_gtsam_calibration_agrees(cam, cls, camera_cls):
    cal = to_gtsam(cam)
    assert isinstance(cal, cls)
    # uncalibrate: normalised undistorted -> pixels
    xy = _points(2)[:, :2] / _points(2)[:, 2:]
    uv_g = np.array([cal.uncalibrate(q) for q in xy])
    np.testing.assert_allclose(uv_g, cam.normalized_to_pixel(cam.distort(xy)), rtol=0, atol=1e-9)
    # calibrate: pixels -> normalised undistorted. gtsam iterates to its own tolerance: Cal3DS2's python
    # constructor cannot set it (fixed 1e-5 -> ~2e-8 here); to_gtsam passes 1e-10 to Cal3Fisheye
    xy_g = np.array([cal.calibrate(q) for q in uv_g])
    tol = 1e-7 if cls is gtsam.Cal3DS2 else 1e-9
    np.testing.assert_allclose(xy_g, cam.unproject(uv_g)[:, :2], rtol=0, atol=tol)
    # posed camera: gtsam's Pose3 is T_world_cam; our project takes p_cam = R^T (p_world - t)
    R, t = _pose(3)
    gcam = camera_cls(gtsam.Pose3(gtsam.Rot3(R), t), cal)
    p_cam = _points(4)
    p_world = p_cam @ R.T + t
    uv_pose = np.array([gcam.project(q) for q in p_world])
    np.testing.assert_allclose(uv_pose, cam.project(p_cam)[0], rtol=0, atol=1e-9)


@pytest.mark.parametrize("cam", [PINHOLE, OPENCV, FISHEYE], ids=["pinhole", "opencv", "fisheye"])
def test_gtsam_round_trip(cam):
    back = from_gtsam(to_gtsam(cam), W, H)
    assert type(back) is type(cam)
    np.testing.assert_allclose(back.params, cam.params, rtol=0, atol=0)


def test_gtsam_errors():
    with pytest.raises(ValueError, match=r"k3 = -0\.02 has no gtsam Cal3DS2 equivalent.*CALIB_FIX_K3"):
        to_gtsam(OPENCV_K3)
    with pytest.raises(ValueError, match="Cal3DS2 skew must be 0"):
        from_gtsam(gtsam.Cal3DS2(500, 500, 0.1, 320, 240, 0, 0, 0, 0), W, H)
    with pytest.raises(ValueError, match="unsupported calibration type Cal3Bundler"):
        from_gtsam(gtsam.Cal3Bundler(500, 0, 0, 320, 240), W, H)
    # from_gtsam applies the same validation as the constructors
    with pytest.raises(ValueError, match="PinholeCamera: width must be a positive integer"):
        from_gtsam(gtsam.Cal3_S2(500, 500, 0, 320, 240), 0, H)
