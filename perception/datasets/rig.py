"""The air-ground rig file (YAML): camera models, the UGV's camera-IMU extrinsic and time offset, topic names.

::

    ugv:
      camera: {model: PINHOLE, width: 512, height: 384, params: [fx, fy, cx, cy]}
      T_imu_cam: [[r00, r01, r02, tx], [...], [...], [0, 0, 0, 1]]   # 4x4 rows (3x4 accepted)
      # or: T_imu_cam: {translation: [x, y, z], rotation_xyzw: [qx, qy, qz, qw]}
      time_offset_s: 0.0
    uav:
      camera: {...}
      T_body_cam: [[...]]        # optional (identity): the camera in the UAV's odometry body frame
    topics:                      # optional; every role has a default (DEFAULT_TOPICS)
      ugv_odometry: /ugv/lio/odometry
      ...

Conventions:

- ``T_imu_cam`` maps camera-frame points (OpenCV: x right, y down, z forward) to the IMU/LIO body frame, i.e. it is
  the camera's pose in the IMU frame.
- Camera models use COLMAP's model names and parameter order (:data:`perception.camera.MODELS`), with OpenCV's pixel
  convention: (0, 0) is the centre of the first pixel.
- ``time_offset_s`` is the camera-to-IMU clock offset: an image stamped ``t_cam`` was exposed at IMU/LIO time
  ``t_imu = t_cam + time_offset_s`` (a camera whose stamps lag the IMU clock by 10 ms has ``+0.010``). It is the
  same convention as ``time_offset_ns`` in :meth:`slam.trajectory.Trajectory.T_world_body_at`.

Errors name the file and the key (``rig.yaml: ugv.T_imu_cam missing ...``) and are :class:`InputError`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from perception.camera import MODELS, CameraModel
from perception.errors import InputError
from perception.fileio import atomic_write_text, read_yaml
from perception.geometry import SE3

log = logging.getLogger(__name__)

DEFAULT_TOPICS: dict[str, str] = {
    "ugv_odometry": "/ugv/lio/odometry",
    "ugv_image": "/ugv/camera/image_raw",
    "ugv_camera_info": "/ugv/camera/camera_info",
    "uav_image": "/uav/camera/image_raw",
    "uav_camera_info": "/uav/camera/camera_info",
    "uav_odometry": "/uav/odometry",
}
"""Topic roles and their default names (nav_msgs/Odometry, sensor_msgs/Image, sensor_msgs/CameraInfo)."""

_UGV_KEYS = ("camera", "T_imu_cam", "time_offset_s")
_UAV_KEYS = ("camera", "T_body_cam")
_QUAT_NORM_TOL = 1e-3
_MAX_SANE_OFFSET_S = 1.0


@dataclass
class Rig:
    ugv_camera: CameraModel
    T_imu_cam: SE3
    """The UGV camera in its IMU (LIO body) frame."""
    time_offset_ns: int
    """Camera-to-IMU clock offset: ``t_imu = t_cam + time_offset_ns``."""
    uav_camera: CameraModel
    T_body_cam_uav: SE3 = field(default_factory=SE3.identity)
    """The UAV camera in the body frame of the UAV's odometry (identity when the odometry is the camera's)."""
    topics: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))

    @property
    def time_offset_s(self) -> float:
        return self.time_offset_ns / 1e9


def _name(path: Path) -> str:
    return str(path)


def _camera(d: Any, where: str, path: Path) -> CameraModel:
    if not isinstance(d, dict):
        raise InputError(f"{_name(path)}: {where} missing (needs model, width, height, params)")
    missing = [k for k in ("model", "width", "height", "params") if k not in d]
    if missing:
        raise InputError(f"{_name(path)}: {where}.{missing[0]} missing (needs model, width, height, params)")
    cls = MODELS.get(str(d["model"]))
    if cls is None:
        raise InputError(f"{_name(path)}: {where}.model {d['model']!r} is unknown; use one of {sorted(MODELS)}")
    try:
        w, h = int(d["width"]), int(d["height"])
        if w <= 0 or h <= 0:
            raise ValueError(f"width and height must be positive, got {w}x{h}")
        return cls.from_params(w, h, np.asarray(d["params"], dtype=float))
    except (ValueError, TypeError) as e:
        raise InputError(f"{_name(path)}: {where}: {str(e).splitlines()[0]}") from None


def _pose(d: Any, where: str, path: Path) -> SE3:
    try:
        if isinstance(d, dict):
            if set(d) != {"translation", "rotation_xyzw"}:
                raise ValueError(f"expected keys translation and rotation_xyzw, got {sorted(d)}")
            q = np.asarray(d["rotation_xyzw"], dtype=float)
            t = np.asarray(d["translation"], dtype=float)
            if q.shape != (4,) or t.shape != (3,):
                raise ValueError(f"rotation_xyzw needs 4 numbers and translation 3, got {q.shape} and {t.shape}")
            if not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))):
                raise ValueError("NaN/inf values")
            if abs(np.linalg.norm(q) - 1.0) > _QUAT_NORM_TOL:
                raise ValueError(f"rotation_xyzw has norm {np.linalg.norm(q):.6f}, expected a unit quaternion")
            return SE3.from_quat_t(q, t)
        M = np.asarray(d, dtype=float)
        if M.shape == (3, 4):
            M = np.vstack([M, [0.0, 0.0, 0.0, 1.0]])
        if M.shape != (4, 4):
            raise ValueError(f"expected 4x4 matrix rows, got shape {M.shape}")
        if not np.all(np.isfinite(M)):
            raise ValueError("NaN/inf values")
        return SE3.from_matrix(M)
    except (ValueError, TypeError) as e:
        raise InputError(f"{_name(path)}: {where} is not a rigid transform ({str(e).splitlines()[0]})") from None


def _section(data: dict, name: str, allowed: tuple[str, ...], path: Path) -> dict:
    sec = data.get(name)
    if not isinstance(sec, dict):
        raise InputError(f"{_name(path)}: {name} missing (a mapping with {', '.join(allowed)})")
    return sec


def _unknown(sec: dict, name: str, allowed: tuple[str, ...], path: Path) -> None:
    extra = sorted(str(k) for k in sec if k not in allowed)
    if extra:
        raise InputError(f"{_name(path)}: {name}.{extra[0]} is not a known key (expected {', '.join(allowed)})")


def _topics(d: Any, path: Path) -> dict[str, str]:
    topics = dict(DEFAULT_TOPICS)
    if d is None:
        return topics
    if not isinstance(d, dict):
        raise InputError(f"{_name(path)}: topics must be a mapping of role -> topic name")
    for role, name in d.items():
        if role not in DEFAULT_TOPICS:
            raise InputError(f"{_name(path)}: topics.{role} is not a known role (expected {', '.join(DEFAULT_TOPICS)})")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{_name(path)}: topics.{role} must be a non-empty topic name, got {name!r}")
        topics[role] = name.strip()
    return topics


def load_rig(path: str | os.PathLike) -> Rig:
    """Read and validate a rig file (see the module docstring); raises InputError naming the file and key."""
    path = Path(path)
    data = read_yaml(path, f"rig file {path} does not exist (sparsepipe sim airground writes an example)", _name(path))
    if not isinstance(data, dict):
        raise InputError(f"{_name(path)}: expected a mapping with ugv, uav and (optionally) topics sections")
    _unknown(data, "<top level>", ("ugv", "uav", "topics"), path)
    ugv = _section(data, "ugv", _UGV_KEYS, path)
    uav = _section(data, "uav", _UAV_KEYS, path)
    if "T_imu_cam" not in ugv:
        extra = sorted(str(k) for k in ugv if k not in _UGV_KEYS)
        hint = f"; unknown key(s) {', '.join(extra)}" if extra else ""
        raise InputError(f"{_name(path)}: ugv.T_imu_cam missing (the UGV camera's pose in the IMU frame{hint})")
    _unknown(ugv, "ugv", _UGV_KEYS, path)
    _unknown(uav, "uav", _UAV_KEYS, path)
    try:
        offset_s = float(ugv.get("time_offset_s", 0.0))
    except (TypeError, ValueError):
        raise InputError(f"{_name(path)}: ugv.time_offset_s must be a number of seconds") from None
    if not np.isfinite(offset_s):
        raise InputError(f"{_name(path)}: ugv.time_offset_s must be finite")
    if abs(offset_s) > _MAX_SANE_OFFSET_S:
        log.warning("%s: ugv.time_offset_s = %g s is large; the unit is seconds (t_imu = t_cam + offset)",
                    path, offset_s)  # fmt: skip
    return Rig(
        ugv_camera=_camera(ugv.get("camera"), "ugv.camera", path),
        T_imu_cam=_pose(ugv["T_imu_cam"], "ugv.T_imu_cam", path),
        time_offset_ns=int(round(offset_s * 1e9)),
        uav_camera=_camera(uav.get("camera"), "uav.camera", path),
        T_body_cam_uav=_pose(uav["T_body_cam"], "uav.T_body_cam", path) if "T_body_cam" in uav else SE3.identity(),
        topics=_topics(data.get("topics"), path),
    )


def _camera_dict(cam: CameraModel) -> dict:
    return {"model": cam.model_name, "width": int(cam.width), "height": int(cam.height),
            "params": [float(v) for v in cam.params]}  # fmt: skip


def _matrix_rows(T: SE3) -> list[list[float]]:
    return [[float(v) for v in row] for row in T.matrix()]


def rig_to_dict(rig: Rig) -> dict:
    """The YAML structure :func:`save_rig` writes (poses as 4x4 rows)."""
    unknown = sorted(set(rig.topics) - set(DEFAULT_TOPICS))
    if unknown:
        raise InputError(f"rig.topics: unknown role {unknown[0]!r} (expected {', '.join(DEFAULT_TOPICS)})")
    return {
        "ugv": {
            "camera": _camera_dict(rig.ugv_camera),
            "T_imu_cam": _matrix_rows(rig.T_imu_cam),
            "time_offset_s": rig.time_offset_ns / 1e9,
        },
        "uav": {"camera": _camera_dict(rig.uav_camera), "T_body_cam": _matrix_rows(rig.T_body_cam_uav)},
        "topics": {**DEFAULT_TOPICS, **rig.topics},
    }


def save_rig(path: str | os.PathLike, rig: Rig) -> Path:
    """Write ``rig`` atomically (temporary file + rename); numbers are written exactly (float64 repr)."""
    d = rig_to_dict(rig)
    text = (
        "# sparsepipe air-ground rig: T_a_b maps frame-b points to frame a; t_imu = t_cam + time_offset_s;\n"
        "# cameras: COLMAP model names, OpenCV pixel convention ((0, 0) = centre of the first pixel)\n"
        + yaml.safe_dump({k: d[k] for k in ("ugv", "uav")}, sort_keys=False, default_flow_style=None)
        + yaml.safe_dump({"topics": d["topics"]}, sort_keys=False, default_flow_style=False)
    )
    return atomic_write_text(path, text)
