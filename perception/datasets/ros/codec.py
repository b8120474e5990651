"""Conversion between rosbags message objects and the numpy dataclasses of :mod:`.messages`.

Decoders take a deserialised rosbags message (from any typestore: ROS 1 names such as CameraInfo's ``K`` and
ROS 2 names such as ``k`` are both accepted) and the topic (for error messages). Encoders build a message of a
given typestore (``ts``), so the same code writes ROS 1 and ROS 2 bags.

Boundary conversions done here: header ``(sec, nanosec)`` <-> int nanoseconds; ``bgr8`` -> RGB; quaternions
normalised with ``qw >= 0``; ROS twist / 6x6 covariance order ``(v, omega)`` <-> the project's ``(omega, v)``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np
from numpy.lib.stride_tricks import as_strided

from perception.camera import CameraModel, FisheyeCamera, OpenCVCamera, PinholeCamera, SimpleRadialCamera, camera_from_K
from perception.datasets.ros.messages import (
    CameraInfoMsg,
    ImageMsg,
    ImuMsg,
    OdometryMsg,
    PointCloudMsg,
    PoseCovMsg,
    PoseMsg,
)
from perception.errors import InputError
from perception.geometry import SE3

logger = logging.getLogger(__name__)

__all__ = [
    "CAMERA_INFO",
    "COMPRESSED_IMAGE",
    "DECODERS",
    "IMAGE",
    "IMU",
    "ODOMETRY",
    "POINTCLOUD2",
    "POSE_STAMPED",
    "RAW_ENCODINGS",
    "camera_from_ros",
    "camera_to_ros",
    "decode_message",
    "encode_camera_info",
    "encode_compressed_image",
    "encode_image",
    "encode_imu",
    "encode_odometry",
    "encode_pointcloud",
    "encode_pose",
    "normalize_msgtype",
    "ns_to_stamp",
    "stamp_to_ns",
    "to_ros",
]

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMU = "sensor_msgs/msg/Imu"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
ODOMETRY = "nav_msgs/msg/Odometry"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
POSE_COV_STAMPED = "geometry_msgs/msg/PoseWithCovarianceStamped"

NS_PER_S = 1_000_000_000
_MAX_STAMP_NS = 2**31 * NS_PER_S  # ROS 2 Time.sec is int32 (ROS 1: uint32)

# ROS twist and pose covariance order (x, y, z, rx, ry, rz) <-> project order (omega, v); an involution.
_SWAP6 = np.array([3, 4, 5, 0, 1, 2])

_LITTLE = sys.byteorder == "little"


def normalize_msgtype(msgtype: str) -> str:
    """``sensor_msgs/Image`` -> ``sensor_msgs/msg/Image`` (names already with ``/msg/`` pass unchanged)."""
    parts = str(msgtype).split("/")
    if len(parts) == 2 and all(parts):
        return f"{parts[0]}/msg/{parts[1]}"
    return str(msgtype)


# --------------------------------------------------------------------------------------------------- helpers
def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` (``sec``, ``nanosec``) -> int nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(ts: Any, ns: int) -> Any:
    ns = _check_ns(ns, "stamp_ns")
    sec, nsec = divmod(ns, NS_PER_S)
    return ts.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec)


def _check_ns(ns: Any, name: str) -> int:
    if isinstance(ns, bool) or not isinstance(ns, (int, np.integer)):
        raise InputError(f"{name} must be an integer number of nanoseconds, got {ns!r}")
    ns = int(ns)
    if not 0 <= ns < _MAX_STAMP_NS:
        raise InputError(f"{name} must be in [0, 2^31 s) as nanoseconds, got {ns}")
    return ns


def _field(msg: Any, *names: str) -> Any:
    """First present attribute among ``names`` (ROS 2 ``k`` vs ROS 1 ``K``)."""
    for n in names:
        if hasattr(msg, n):
            return getattr(msg, n)
    raise AttributeError(f"{getattr(msg, '__msgtype__', type(msg).__name__)} has none of the fields {names}")


def _new(ts: Any, msgtype: str, **kw: Any) -> Any:
    """Message of ``ts``'s class for ``msgtype``; keyword names map to the store's spelling (``k`` or ``K``).

    ROS 1 headers get ``seq = 0``.
    """
    cls = ts.types[msgtype]
    names = {f.name for f in dataclasses.fields(cls)}
    args: dict[str, Any] = {}
    for k, v in kw.items():
        if k in names:
            args[k] = v
        elif k.upper() in names:
            args[k.upper()] = v
    if "seq" in names and "seq" not in args:
        args["seq"] = 0
    return cls(**args)


def _header(ts: Any, stamp_ns: int, frame_id: str) -> Any:
    return _new(ts, "std_msgs/msg/Header", stamp=ns_to_stamp(ts, stamp_ns), frame_id=str(frame_id))


def _bytes(data: Any) -> np.ndarray:
    """A message's ``data`` as a flat uint8 array (numpy from rosbags, or bytes / a list when built by hand)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    a = np.asarray(data)
    return (a if a.dtype == np.uint8 else a.astype(np.uint8)).reshape(-1)


def _head(msg: Any) -> tuple[int, str]:
    return stamp_to_ns(msg.header.stamp), str(msg.header.frame_id)


def _vec3(v: Any) -> np.ndarray:
    return np.array([v.x, v.y, v.z], dtype=np.float64)


def _quat(q: Any, topic: str, what: str) -> np.ndarray:
    """ROS quaternion -> normalised (qx, qy, qz, qw) with qw >= 0."""
    a = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    n = float(np.linalg.norm(a))
    if not (math.isfinite(n) and n > 1e-9):
        raise InputError(f"{topic}: {what} quaternion {a.tolist()} has zero or non-finite norm")
    a /= n
    return -a if a[3] < 0 else a


def _pose_from_ros(pose: Any, topic: str, what: str) -> SE3:
    q = _quat(pose.orientation, topic, what)
    return SE3.from_quat_t(q, _vec3(pose.position))


def _pose_to_ros(ts: Any, T: Any, name: str) -> Any:
    T = _as_se3(T, name)
    q, t = T.as_quat_t()
    return _new(
        ts,
        "geometry_msgs/msg/Pose",
        position=_new(ts, "geometry_msgs/msg/Point", x=float(t[0]), y=float(t[1]), z=float(t[2])),
        orientation=_new(
            ts, "geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])
        ),
    )


def _as_se3(T: Any, name: str) -> SE3:
    if isinstance(T, SE3):
        if T.shape != ():
            raise InputError(f"{name}: expected a single SE3, got a batch of shape {T.shape}")
        return T
    M = np.asarray(T, dtype=np.float64)
    if M.shape != (4, 4):
        raise InputError(f"{name}: expected an SE3 or a 4x4 matrix, got shape {M.shape}")
    return SE3.from_matrix(M)


def _v3(ts: Any, v: Any, name: str) -> Any:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape != (3,):
        raise InputError(f"{name}: expected 3 values, got shape {np.shape(v)}")
    return _new(ts, "geometry_msgs/msg/Vector3", x=float(a[0]), y=float(a[1]), z=float(a[2]))


def _cov(c: Any, n: int, name: str, swap: bool = False) -> np.ndarray:
    """(n, n) matrix (or n*n values) -> flat float64 ROS covariance (permuted to ROS order for 6x6)."""
    a = np.zeros((n, n)) if c is None else np.asarray(c, dtype=np.float64)
    if a.size != n * n:
        raise InputError(f"{name}: expected a {n}x{n} covariance, got shape {a.shape}")
    a = a.reshape(n, n)
    if swap:
        a = a[np.ix_(_SWAP6, _SWAP6)]
    return np.ascontiguousarray(a).reshape(-1)


def _cov_from_ros(c: Any, n: int, swap: bool = False) -> np.ndarray:
    a = np.asarray(c, dtype=np.float64).reshape(n, n).copy()
    return a[np.ix_(_SWAP6, _SWAP6)].copy() if swap else a


# --------------------------------------------------------------------------------------------------- images
# encoding -> (dtype, channels, channel order applied on decode to get RGB[A])
RAW_ENCODINGS: dict[str, tuple[np.dtype, int, tuple[int, ...] | None]] = {
    "rgb8": (np.dtype(np.uint8), 3, None),
    "bgr8": (np.dtype(np.uint8), 3, (2, 1, 0)),
    "rgba8": (np.dtype(np.uint8), 4, None),
    "bgra8": (np.dtype(np.uint8), 4, (2, 1, 0, 3)),
    "mono8": (np.dtype(np.uint8), 1, None),
    "8UC1": (np.dtype(np.uint8), 1, None),
    "mono16": (np.dtype(np.uint16), 1, None),
    "16UC1": (np.dtype(np.uint16), 1, None),
    "32FC1": (np.dtype(np.float32), 1, None),
}


def decode_image(msg: Any, topic: str) -> ImageMsg:
    stamp, frame = _head(msg)
    enc = str(msg.encoding)
    spec = RAW_ENCODINGS.get(enc) or RAW_ENCODINGS.get(enc.lower())
    if spec is None:
        raise InputError(f"{topic}: unsupported image encoding {enc!r}; supported: {', '.join(RAW_ENCODINGS)}")
    dtype, ch, order = spec
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row = w * ch * dtype.itemsize
    if step < row:
        raise InputError(f"{topic}: Image step {step} is smaller than a {w}-pixel {enc} row ({row} bytes)")
    data = _bytes(msg.data)
    need = step * (h - 1) + row if h > 0 else 0
    if data.size < need:
        raise InputError(f"{topic}: Image data holds {data.size} bytes; {h}x{w} {enc} with step {step} needs {need}")
    if h == 0 or row == 0:
        rows = np.zeros((h, row), dtype=np.uint8)
    elif step == row:
        rows = data[: h * row].reshape(h, row)
    else:
        rows = as_strided(data, shape=(h, row), strides=(step, 1), writeable=False)
    stored = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    img = np.ascontiguousarray(rows).view(stored).reshape((h, w, ch) if ch > 1 else (h, w))
    img = img.astype(dtype.newbyteorder("="), copy=True)
    if order is not None:
        img = np.ascontiguousarray(img[..., list(order)])
    return ImageMsg(stamp, frame, img, enc)


def _default_encoding(img: np.ndarray) -> str:
    if img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3:
        return "rgb8"
    if img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 4:
        return "rgba8"
    if img.ndim == 2:
        return {np.dtype(np.uint8): "mono8", np.dtype(np.uint16): "mono16", np.dtype(np.float32): "32FC1"}.get(
            img.dtype, ""
        )
    return ""


def encode_image(ts: Any, image: Any, *, stamp_ns: int, frame_id: str = "", encoding: str | None = None) -> Any:
    """``sensor_msgs/Image`` from an RGB(A) / mono / depth array (``bgr8``/``bgra8``: channels are reordered)."""
    img = np.asarray(image)
    enc = encoding or _default_encoding(img)
    if not enc:
        raise InputError(
            f"write_image: cannot pick an encoding for a {img.dtype} array of shape {img.shape}; expected "
            "(H,W,3|4) uint8 or (H,W) uint8/uint16/float32, or pass encoding="
        )
    spec = RAW_ENCODINGS.get(enc)
    if spec is None:
        raise InputError(f"write_image: unsupported encoding {enc!r}; supported: {', '.join(RAW_ENCODINGS)}")
    dtype, ch, order = spec
    shape_ok = img.ndim == 3 and img.shape[2] == ch if ch > 1 else img.ndim == 2
    if img.dtype != dtype or not shape_ok:
        want = f"(H,W,{ch})" if ch > 1 else "(H,W)"
        raise InputError(f"write_image: encoding {enc!r} needs a {want} {dtype} array, got {img.dtype} {img.shape}")
    if order is not None:
        img = img[..., list(order)]  # RGB(A) -> BGR(A); the permutation is its own inverse
    img = np.ascontiguousarray(img, dtype=dtype.newbyteorder("="))
    h, w = img.shape[:2]
    return _new(
        ts,
        IMAGE,
        header=_header(ts, stamp_ns, frame_id),
        height=h,
        width=w,
        encoding=enc,
        is_bigendian=0 if _LITTLE or dtype.itemsize == 1 else 1,
        step=w * ch * dtype.itemsize,
        data=img.reshape(-1).view(np.uint8).copy(),
    )


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def decode_compressed_image(msg: Any, topic: str) -> ImageMsg:
    stamp, frame = _head(msg)
    fmt = str(msg.format)
    f = fmt.lower()
    data = _bytes(msg.data)
    if "compresseddepth" in f:
        # image_transport's compressedDepth: a 12-byte config header, then PNG (16UC1 only; 32FC1 is quantised)
        if not (f.startswith("16uc1") or f.startswith("mono16")) or "png" not in f:
            raise InputError(f"{topic}: unsupported CompressedImage format {fmt!r}; only 16UC1 compressedDepth png")
        payload = data if data[:8].tobytes() == _PNG_MAGIC else data[12:]
    elif any(k in f for k in ("jpeg", "jpg", "png")):
        payload = data
    else:
        raise InputError(f"{topic}: unsupported CompressedImage format {fmt!r}; expected jpeg or png")
    img = None
    if payload.size:
        try:
            img = cv2.imdecode(payload, cv2.IMREAD_UNCHANGED)
        except cv2.error:
            img = None
    if img is None:
        raise InputError(f"{topic}: CompressedImage ({fmt!r}, {payload.size} bytes) cannot be decoded; it is corrupt")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return ImageMsg(stamp, frame, np.ascontiguousarray(img), fmt)


def encode_compressed_image(
    ts: Any, image: Any, *, stamp_ns: int, frame_id: str = "", format: str = "jpeg", quality: int = 95
) -> Any:
    """``sensor_msgs/CompressedImage`` (JPEG or PNG via OpenCV) from RGB (H,W,3) / mono (H,W) uint8 (PNG: uint16)."""
    fmt = format.lower()
    if fmt not in ("jpeg", "jpg", "png"):
        raise InputError(f"write_compressed_image: format must be 'jpeg' or 'png', got {format!r}")
    img = np.asarray(image)
    ok_types = (np.uint8, np.uint16) if fmt == "png" else (np.uint8,)
    if img.dtype not in ok_types or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (3, 4))):
        raise InputError(
            f"write_compressed_image: {fmt} needs (H,W[,3|4]) {'/'.join(np.dtype(t).name for t in ok_types)}, "
            f"got {img.dtype} {img.shape}"
        )
    if fmt == "jpg":
        fmt = "jpeg"
    if img.ndim == 3 and img.shape[2] == 4 and fmt == "jpeg":
        raise InputError("write_compressed_image: JPEG has no alpha channel; pass RGB or use format='png'")
    if img.ndim == 3:
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR if img.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
        src = "rgb8" if img.shape[2] == 3 else "rgba8"
        dst = "bgr8" if img.shape[2] == 3 else "bgra8"
    else:
        bgr = img
        src = dst = "mono8" if img.dtype == np.uint8 else "mono16"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", np.ascontiguousarray(bgr), params)
    if not ok:  # pragma: no cover - OpenCV encodes every array accepted above
        raise InputError(f"write_compressed_image: OpenCV failed to encode a {img.dtype} {img.shape} image")
    return _new(
        ts,
        COMPRESSED_IMAGE,
        header=_header(ts, stamp_ns, frame_id),
        format=f"{src}; {fmt} compressed {dst}",
        data=buf.reshape(-1).astype(np.uint8),
    )


# --------------------------------------------------------------------------------------------------- camera info
_FISHEYE_MODELS = ("equidistant", "fisheye")
_BROWN_MODELS = ("plumb_bob", "rational_polynomial")


def camera_from_ros(
    width: int, height: int, distortion_model: str, D: Any, K: Any, *, where: str = "CameraInfo"
) -> CameraModel:
    """Camera model from CameraInfo fields.

    ``plumb_bob`` (k1 k2 t1 t2 k3) and ``rational_polynomial`` (k4..k6 must be 0) -> :class:`OpenCVCamera`,
    ``equidistant`` (k1..k4) -> :class:`FisheyeCamera`; no distortion (empty or all-zero ``D`` with a
    Brown-Conrady or empty model) -> :class:`PinholeCamera`.
    """
    model = str(distortion_model).strip().lower()
    d = np.asarray(D, dtype=np.float64).reshape(-1)
    Km = np.asarray(K, dtype=np.float64).reshape(-1)
    if Km.size != 9:
        raise InputError(f"{where}: K must have 9 values, got {Km.size}")
    Km = Km.reshape(3, 3)
    if not np.any(Km):
        raise InputError(f"{where}: camera is uncalibrated (K is all zeros); calibrate it or pass intrinsics")
    try:
        if model in _FISHEYE_MODELS:
            if d.size != 4:
                raise InputError(f"{where}: equidistant distortion needs 4 coefficients (k1..k4), got {d.size}")
            return camera_from_K(Km, d, int(width), int(height), fisheye=True)
        if model not in _BROWN_MODELS + ("", "none"):
            raise InputError(
                f"{where}: unsupported distortion_model {distortion_model!r}; expected plumb_bob, "
                "rational_polynomial or equidistant"
            )
        if d.size == 0 or not np.any(d):
            return camera_from_K(Km, None, int(width), int(height))
        return camera_from_K(Km, d, int(width), int(height))
    except InputError:
        raise
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None


def camera_to_ros(cam: CameraModel) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(distortion_model, D, K (9,), P (12,)) for a camera model; a pinhole is ``plumb_bob`` with zero ``D``."""
    if isinstance(cam, FisheyeCamera):
        model, d = "equidistant", cam.dist_params
    elif isinstance(cam, OpenCVCamera):
        model, d = "plumb_bob", cam.dist_params
    elif isinstance(cam, SimpleRadialCamera):
        model, d = "plumb_bob", np.array([cam.dist_params[0], 0.0, 0.0, 0.0, 0.0])
    elif isinstance(cam, PinholeCamera):
        model, d = "plumb_bob", np.zeros(5)
    else:
        raise InputError(f"write_camera_info: unsupported camera model {type(cam).__name__}")
    K = cam.K
    P = np.hstack([K, np.zeros((3, 1))])
    return model, np.asarray(d, dtype=np.float64), K.reshape(-1), P.reshape(-1)


def decode_camera_info(msg: Any, topic: str) -> CameraInfoMsg:
    stamp, frame = _head(msg)
    cam = camera_from_ros(
        msg.width, msg.height, msg.distortion_model, _field(msg, "d", "D"), _field(msg, "k", "K"),
        where=f"{topic}: CameraInfo",
    )  # fmt: skip
    R = np.asarray(_field(msg, "r", "R"), dtype=np.float64).reshape(3, 3).copy()
    P = np.asarray(_field(msg, "p", "P"), dtype=np.float64).reshape(3, 4).copy()
    return CameraInfoMsg(stamp, frame, cam, R, P)


def encode_camera_info(
    ts: Any, camera: CameraModel, *, stamp_ns: int, frame_id: str = "", R: Any = None, P: Any = None
) -> Any:
    if not isinstance(camera, CameraModel):
        raise InputError(f"write_camera_info: expected a perception.camera model, got {type(camera).__name__}")
    model, d, K, P0 = camera_to_ros(camera)
    Rm = np.eye(3) if R is None else np.asarray(R, dtype=np.float64)
    Pm = P0 if P is None else np.asarray(P, dtype=np.float64)
    if Rm.size != 9 or Pm.size != 12:
        raise InputError(f"write_camera_info: R must be 3x3 and P 3x4, got {Rm.shape} and {Pm.shape}")
    roi = _new(ts, "sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return _new(
        ts,
        CAMERA_INFO,
        header=_header(ts, stamp_ns, frame_id),
        height=camera.height,
        width=camera.width,
        distortion_model=model,
        d=d,
        k=K,
        r=Rm.reshape(-1).copy(),
        p=Pm.reshape(-1).copy(),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


# --------------------------------------------------------------------------------------------------- imu
def decode_imu(msg: Any, topic: str) -> ImuMsg:
    stamp, frame = _head(msg)
    ocov = np.asarray(msg.orientation_covariance, dtype=np.float64).reshape(3, 3).copy()
    q = None
    if ocov[0, 0] != -1:
        o = msg.orientation
        raw = np.array([o.x, o.y, o.z, o.w], dtype=np.float64)
        if np.any(raw):  # some drivers send a zero quaternion without the -1 marker
            q = _quat(o, topic, "Imu orientation")
    return ImuMsg(
        stamp,
        frame,
        _vec3(msg.angular_velocity),
        _vec3(msg.linear_acceleration),
        q,
        ocov,
        _cov_from_ros(msg.angular_velocity_covariance, 3),
        _cov_from_ros(msg.linear_acceleration_covariance, 3),
    )


def encode_imu(
    ts: Any,
    gyro: Any,
    accel: Any,
    *,
    stamp_ns: int,
    frame_id: str = "",
    orientation: Any = None,
    orientation_covariance: Any = None,
    gyro_covariance: Any = None,
    accel_covariance: Any = None,
) -> Any:
    """``sensor_msgs/Imu``; ``orientation=None`` marks it unknown (``orientation_covariance[0] = -1``)."""
    Q = "geometry_msgs/msg/Quaternion"
    if orientation is None:
        quat = _new(ts, Q, x=0.0, y=0.0, z=0.0, w=1.0)
        ocov = np.zeros(9)
        ocov[0] = -1.0
    else:
        q = np.asarray(orientation, dtype=np.float64).reshape(-1)
        if q.shape != (4,) or not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-9:
            raise InputError(f"write_imu: orientation must be a non-zero (qx, qy, qz, qw), got {orientation!r}")
        quat = _new(ts, Q, x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))
        ocov = _cov(orientation_covariance, 3, "orientation_covariance")
    return _new(
        ts,
        IMU,
        header=_header(ts, stamp_ns, frame_id),
        orientation=quat,
        orientation_covariance=ocov,
        angular_velocity=_v3(ts, gyro, "gyro"),
        angular_velocity_covariance=_cov(gyro_covariance, 3, "gyro_covariance"),
        linear_acceleration=_v3(ts, accel, "accel"),
        linear_acceleration_covariance=_cov(accel_covariance, 3, "accel_covariance"),
    )


# --------------------------------------------------------------------------------------------------- point clouds
_PF_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.int8),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int16),
    4: np.dtype(np.uint16),
    5: np.dtype(np.int32),
    6: np.dtype(np.uint32),
    7: np.dtype(np.float32),
    8: np.dtype(np.float64),
}
_DTYPE_PF = {v: k for k, v in _PF_DTYPES.items()}


def decode_pointcloud(msg: Any, topic: str) -> PointCloudMsg:
    stamp, frame = _head(msg)
    h, w = int(msg.height), int(msg.width)
    ps, rs = int(msg.point_step), int(msg.row_step)
    order = ">" if msg.is_bigendian else "<"
    names: list[str] = []
    formats: list[Any] = []
    offsets: list[int] = []
    natives: list[np.dtype] = []
    for f in msg.fields:
        name = str(f.name)
        if name in ("", "_"):  # PCL padding fields
            continue
        base = _PF_DTYPES.get(int(f.datatype))
        if base is None:
            raise InputError(
                f"{topic}: PointCloud2 field {name!r} has unknown datatype {int(f.datatype)}; expected 1..8 "
                "(INT8..FLOAT64)"
            )
        count = max(int(f.count), 1)
        off = int(f.offset)
        if off < 0 or off + base.itemsize * count > ps:
            raise InputError(
                f"{topic}: PointCloud2 field {name!r} ({count} x {base}, offset {off}) does not fit in point_step {ps}"
            )
        if name in names or name == "xyz":
            raise InputError(f"{topic}: PointCloud2 has a duplicated or reserved field name {name!r}")
        stored = base.newbyteorder(order)
        names.append(name)
        formats.append(stored if count == 1 else (stored, (count,)))
        offsets.append(off)
        natives.append(base)
    n = h * w
    row_bytes = w * ps
    if rs < row_bytes:
        if h > 1:
            raise InputError(f"{topic}: PointCloud2 row_step {rs} < width {w} x point_step {ps}")
        rs = row_bytes  # tolerate a missing row_step on unorganised clouds
    data = _bytes(msg.data)
    need = rs * (h - 1) + row_bytes if n > 0 else 0
    if data.size < need:
        raise InputError(
            f"{topic}: PointCloud2 data holds {data.size} bytes; {h}x{w} points with point_step {ps} and "
            f"row_step {rs} need {need}"
        )
    fields: dict[str, np.ndarray] = {}
    if n > 0 and names:
        if rs == row_bytes:
            rows = data[: n * ps]
        else:
            rows = np.ascontiguousarray(as_strided(data, shape=(h, row_bytes), strides=(rs, 1), writeable=False))
        st = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": ps})
        pts = np.ascontiguousarray(rows).reshape(-1).view(st)
        for name, base in zip(names, natives, strict=True):
            fields[name] = pts[name].astype(base, copy=True)
    else:
        for name, fmt, base in zip(names, formats, natives, strict=True):
            shape = (n,) if not isinstance(fmt, tuple) else (n, fmt[1][0])
            fields[name] = np.zeros(shape, dtype=base)
    if all(k in fields and fields[k].ndim == 1 for k in ("x", "y", "z")):
        dt = np.result_type(fields["x"], fields["y"], fields["z"])
        if not np.issubdtype(dt, np.floating):
            dt = np.dtype(np.float64)
        fields["xyz"] = np.stack([fields["x"], fields["y"], fields["z"]], axis=1).astype(dt, copy=False)
    return PointCloudMsg(stamp, frame, fields, h, w, bool(msg.is_dense))


def _pf_dtype(a: np.ndarray, name: str) -> np.dtype:
    dt = a.dtype
    if dt == np.bool_:
        return np.dtype(np.uint8)
    if dt == np.float16:
        return np.dtype(np.float32)
    dt = dt.newbyteorder("=")
    if dt not in _DTYPE_PF:
        raise InputError(
            f"write_pointcloud: field {name!r} has dtype {a.dtype}; PointCloud2 stores int8/16/32, uint8/16/32, "
            "float32 or float64"
        )
    return dt


def encode_pointcloud(
    ts: Any,
    xyz: Any,
    *,
    stamp_ns: int,
    frame_id: str = "",
    intensity: Any = None,
    fields: Mapping[str, Any] | None = None,
    is_dense: bool | None = None,
) -> Any:
    """``sensor_msgs/PointCloud2`` from xyz (N, 3) or organised (H, W, 3) plus optional per-point fields.

    xyz keeps float32 / float64 (other dtypes become float32); every other field keeps its dtype (bool ->
    uint8, float16 -> float32) and may be (N,) or (N, count). Fields are packed with C-struct alignment.
    """
    P = np.asarray(xyz)
    if P.ndim == 3 and P.shape[2] == 3:
        h, w = P.shape[:2]
    elif P.ndim == 2 and P.shape[1] == 3:
        h, w = 1, P.shape[0]
    else:
        raise InputError(f"write_pointcloud: xyz must be (N, 3) or (H, W, 3), got shape {P.shape}")
    n = h * w
    if P.dtype not in (np.float32, np.float64):
        P = P.astype(np.float32)
    P = P.reshape(n, 3)
    cols: list[tuple[str, np.ndarray]] = [("x", P[:, 0]), ("y", P[:, 1]), ("z", P[:, 2])]
    extra: dict[str, Any] = {}
    if intensity is not None:
        extra["intensity"] = intensity
    for k, v in (fields or {}).items():
        if k in ("x", "y", "z", "xyz") or k in extra:
            raise InputError(f"write_pointcloud: field {k!r} is given twice (xyz / intensity are separate)")
        extra[k] = v
    for k, v in extra.items():
        a = np.asarray(v)
        if a.shape[:1] != (n,) and a.shape[:2] != (h, w):
            raise InputError(f"write_pointcloud: field {k!r} has shape {a.shape}; expected ({n},) or ({n}, count)")
        a = a.reshape((n,) + a.shape[(2 if a.shape[:2] == (h, w) and h > 1 else 1) :])
        if a.ndim > 2:
            raise InputError(f"write_pointcloud: field {k!r} has shape {a.shape}; expected ({n},) or ({n}, count)")
        cols.append((k, a))
    spec = []
    for k, a in cols:
        dt = _pf_dtype(a, k)
        spec.append((k, dt) if a.ndim == 1 else (k, dt, (a.shape[1],)))
    st = np.dtype(spec, align=True)
    arr = np.zeros(n, dtype=st)
    for k, a in cols:
        arr[k] = a
    pf = []
    for k, a in cols:
        fdt, off = st.fields[k][0], st.fields[k][1]
        base = fdt.base if fdt.subdtype else fdt
        pf.append(
            _new(
                ts,
                "sensor_msgs/msg/PointField",
                name=k,
                offset=int(off),
                datatype=_DTYPE_PF[base.newbyteorder("=")],
                count=1 if a.ndim == 1 else int(a.shape[1]),
            )
        )
    dense = bool(np.isfinite(P).all()) if is_dense is None else bool(is_dense)
    return _new(
        ts,
        POINTCLOUD2,
        header=_header(ts, stamp_ns, frame_id),
        height=h,
        width=w,
        fields=pf,
        is_bigendian=not _LITTLE,
        point_step=st.itemsize,
        row_step=w * st.itemsize,
        data=arr.view(np.uint8).reshape(-1).copy(),
        is_dense=dense,
    )


# --------------------------------------------------------------------------------------------------- poses
def decode_odometry(msg: Any, topic: str) -> OdometryMsg:
    stamp, frame = _head(msg)
    T = _pose_from_ros(msg.pose.pose, topic, "Odometry pose")
    tw = msg.twist.twist
    twist = np.concatenate([_vec3(tw.angular), _vec3(tw.linear)])
    return OdometryMsg(
        stamp,
        frame,
        str(msg.child_frame_id),
        T,
        twist,
        _cov_from_ros(msg.pose.covariance, 6, swap=True),
        _cov_from_ros(msg.twist.covariance, 6, swap=True),
    )


def encode_odometry(
    ts: Any,
    T_parent_child: Any,
    *,
    stamp_ns: int,
    frame_id: str = "",
    child_frame_id: str = "",
    twist: Any = None,
    covariance: Any = None,
    twist_covariance: Any = None,
) -> Any:
    """``nav_msgs/Odometry``; ``twist`` (6,) and the 6x6 covariances are in the project's (omega, v) order."""
    tw = np.zeros(6) if twist is None else np.asarray(twist, dtype=np.float64).reshape(-1)
    if tw.shape != (6,):
        raise InputError(f"write_odometry: twist must have 6 values (omega, v), got shape {np.shape(twist)}")
    twist_msg = _new(ts, "geometry_msgs/msg/Twist", linear=_v3(ts, tw[3:], "twist"), angular=_v3(ts, tw[:3], "twist"))
    return _new(
        ts,
        ODOMETRY,
        header=_header(ts, stamp_ns, frame_id),
        child_frame_id=str(child_frame_id),
        pose=_new(
            ts,
            "geometry_msgs/msg/PoseWithCovariance",
            pose=_pose_to_ros(ts, T_parent_child, "write_odometry: T_parent_child"),
            covariance=_cov(covariance, 6, "covariance", swap=True),
        ),
        twist=_new(
            ts,
            "geometry_msgs/msg/TwistWithCovariance",
            twist=twist_msg,
            covariance=_cov(twist_covariance, 6, "twist_covariance", swap=True),
        ),
    )


def decode_pose(msg: Any, topic: str) -> PoseMsg:
    stamp, frame = _head(msg)
    return PoseMsg(stamp, frame, _pose_from_ros(msg.pose, topic, "PoseStamped"))


def encode_pose(ts: Any, T: Any, *, stamp_ns: int, frame_id: str = "") -> Any:
    return _new(ts, POSE_STAMPED, header=_header(ts, stamp_ns, frame_id), pose=_pose_to_ros(ts, T, "write_pose: T"))


def decode_pose_cov(msg: Any, topic: str) -> PoseCovMsg:
    stamp, frame = _head(msg)
    T = _pose_from_ros(msg.pose.pose, topic, "PoseWithCovarianceStamped")
    return PoseCovMsg(stamp, frame, T, _cov_from_ros(msg.pose.covariance, 6, swap=True))


def encode_pose_cov(ts: Any, T: Any, covariance: Any = None, *, stamp_ns: int, frame_id: str = "") -> Any:
    pose = _new(ts, "geometry_msgs/msg/PoseWithCovariance", pose=_pose_to_ros(ts, T, "pose: T"),
                covariance=_cov(covariance, 6, "covariance", swap=True))  # fmt: skip
    return _new(ts, POSE_COV_STAMPED, header=_header(ts, stamp_ns, frame_id), pose=pose)


# --------------------------------------------------------------------------------------------------- dispatch
DECODERS: dict[str, Callable[[Any, str], Any]] = {
    IMAGE: decode_image,
    COMPRESSED_IMAGE: decode_compressed_image,
    CAMERA_INFO: decode_camera_info,
    IMU: decode_imu,
    POINTCLOUD2: decode_pointcloud,
    ODOMETRY: decode_odometry,
    POSE_STAMPED: decode_pose,
    POSE_COV_STAMPED: decode_pose_cov,
}


def decode_message(msgtype: str, msg: Any, topic: str) -> Any:
    """The dataclass for a deserialised rosbags message of a supported type (see :data:`DECODERS`)."""
    dec = DECODERS.get(normalize_msgtype(msgtype))
    if dec is None:
        raise InputError(f"{topic}: message type {msgtype} is not supported; supported: {', '.join(DECODERS)}")
    return dec(msg, topic)


def to_ros(ts: Any, msgtype: str, obj: Any, t_ns: int, topic: str) -> Any:
    """A message of ``ts`` for ``obj``: one of the dataclasses, a numpy array (Image / CompressedImage: the
    image; PointCloud2: xyz; PoseStamped / Odometry: a 4x4 matrix), an SE3, a camera model, or a rosbags
    message of ``msgtype`` (passed through). Bare arrays, SE3s and cameras are stamped with ``t_ns``."""
    if getattr(obj, "__msgtype__", None) is not None:
        if normalize_msgtype(obj.__msgtype__) != msgtype:
            raise InputError(f"{topic}: topic has type {msgtype}, cannot write a {obj.__msgtype__} message")
        return obj
    stamp = getattr(obj, "stamp_ns", t_ns)
    frame = getattr(obj, "frame_id", "")
    bad = InputError(f"{topic}: cannot write a {type(obj).__name__} to a {msgtype} topic")
    if msgtype == IMAGE:
        if isinstance(obj, ImageMsg):
            enc = obj.encoding if obj.encoding in RAW_ENCODINGS else None
            return encode_image(ts, obj.image, stamp_ns=stamp, frame_id=frame, encoding=enc)
        if isinstance(obj, np.ndarray):
            return encode_image(ts, obj, stamp_ns=stamp)
    elif msgtype == COMPRESSED_IMAGE:
        if isinstance(obj, ImageMsg):
            fmt = "png" if "png" in obj.encoding.lower() else "jpeg"
            return encode_compressed_image(ts, obj.image, stamp_ns=stamp, frame_id=frame, format=fmt)
        if isinstance(obj, np.ndarray):
            return encode_compressed_image(ts, obj, stamp_ns=stamp)
    elif msgtype == CAMERA_INFO:
        if isinstance(obj, CameraInfoMsg):
            return encode_camera_info(ts, obj.camera, stamp_ns=stamp, frame_id=frame, R=obj.R, P=obj.P)
        if isinstance(obj, CameraModel):
            return encode_camera_info(ts, obj, stamp_ns=stamp)
    elif msgtype == IMU:
        if isinstance(obj, ImuMsg):
            return encode_imu(
                ts, obj.gyro, obj.accel, stamp_ns=stamp, frame_id=frame, orientation=obj.orientation,
                orientation_covariance=obj.orientation_covariance, gyro_covariance=obj.gyro_covariance,
                accel_covariance=obj.accel_covariance,
            )  # fmt: skip
    elif msgtype == POINTCLOUD2:
        if isinstance(obj, PointCloudMsg):
            extra = {k: v for k, v in obj.fields.items() if k not in ("x", "y", "z", "xyz")}
            xyz = obj.xyz.reshape(obj.height, obj.width, 3) if obj.height > 1 else obj.xyz
            return encode_pointcloud(ts, xyz, stamp_ns=stamp, frame_id=frame, fields=extra, is_dense=obj.is_dense)
        if isinstance(obj, np.ndarray):
            return encode_pointcloud(ts, obj, stamp_ns=stamp)
    elif msgtype == ODOMETRY:
        if isinstance(obj, OdometryMsg):
            return encode_odometry(
                ts, obj.T_parent_child, stamp_ns=stamp, frame_id=frame, child_frame_id=obj.child_frame_id,
                twist=obj.twist, covariance=obj.covariance, twist_covariance=obj.twist_covariance,
            )  # fmt: skip
        if isinstance(obj, (SE3, np.ndarray)):
            return encode_odometry(ts, obj, stamp_ns=stamp)
    elif msgtype == POSE_COV_STAMPED:
        if isinstance(obj, PoseCovMsg):
            return encode_pose_cov(ts, obj.T, obj.covariance, stamp_ns=stamp, frame_id=frame)
    elif msgtype == POSE_STAMPED:
        if isinstance(obj, PoseMsg):
            return encode_pose(ts, obj.T, stamp_ns=stamp, frame_id=frame)
        if isinstance(obj, (SE3, np.ndarray)):
            return encode_pose(ts, obj, stamp_ns=stamp)
    else:
        raise InputError(
            f"{topic}: no converter for {msgtype}; pass a message object of the writer's typestore instead"
        )
    raise bad


def default_msgtype(obj: Any) -> str | None:
    """The ROS type a dataclass (or SE3 / camera model / rosbags message) is written as by default."""
    if getattr(obj, "__msgtype__", None) is not None:
        return normalize_msgtype(obj.__msgtype__)
    for cls, mt in (
        (ImageMsg, IMAGE),
        (CameraInfoMsg, CAMERA_INFO),
        (CameraModel, CAMERA_INFO),
        (ImuMsg, IMU),
        (PointCloudMsg, POINTCLOUD2),
        (OdometryMsg, ODOMETRY),
        (PoseMsg, POSE_STAMPED),
        (PoseCovMsg, POSE_COV_STAMPED),
        (SE3, POSE_STAMPED),
    ):
        if isinstance(obj, cls):
            return mt
    return None
