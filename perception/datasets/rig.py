"""The air-ground rig file (YAML): camera models, the UGV's camera-IMU extrinsic and time offset, topic names.

::

    ugv:
      camera: {model: PINHOLE, width: 512, height: 384, params: [fx, fy, cx, cy]}   # OpenCV pixel centres
      T_imu_cam: [[...4x4 rows...]]        # or {translation: [x, y, z], rotation_xyzw: [qx, qy, qz, qw]}
      time_offset_s: 0.0                   # t_imu = t_cam + time_offset_s
    uav:
      camera: {...}
      T_body_cam: [[...]]                  # optional (identity): the camera in the UAV's odometry body frame
    topics: {ugv_odometry: ..., ugv_image: ..., uav_image: ..., uav_odometry: ...}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from perception.camera import MODELS, CameraModel
from perception.errors import InputError
from perception.geometry import SE3

DEFAULT_TOPICS = {
    "ugv_odometry": "/ugv/lio/odometry",
    "ugv_image": "/ugv/camera/image_raw",
    "ugv_camera_info": "/ugv/camera/camera_info",
    "uav_image": "/uav/camera/image_raw",
    "uav_camera_info": "/uav/camera/camera_info",
    "uav_odometry": "/uav/odometry",
}


@dataclass
class Rig:
    ugv_camera: CameraModel
    T_imu_cam: SE3
    time_offset_ns: int
    uav_camera: CameraModel
    T_body_cam_uav: SE3
    topics: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))


def _camera(d: object, where: str, path: Path) -> CameraModel:
    if not isinstance(d, dict) or not {"model", "width", "height", "params"} <= set(d):
        raise InputError(f"{path}: {where} needs model, width, height and params")
    cls = MODELS.get(str(d["model"]))
    if cls is None:
        raise InputError(f"{path}: {where}.model {d['model']!r} is unknown; use one of {sorted(MODELS)}")
    try:
        return cls.from_params(int(d["width"]), int(d["height"]), np.asarray(d["params"], float))
    except ValueError as e:
        raise InputError(f"{path}: {where}: {e}") from None


def _pose(d: object, where: str, path: Path) -> SE3:
    try:
        if isinstance(d, dict):
            return SE3.from_quat_t(np.asarray(d["rotation_xyzw"], float), np.asarray(d["translation"], float))
        M = np.asarray(d, dtype=float)
        if M.shape == (3, 4):
            M = np.vstack([M, [0, 0, 0, 1]])
        if M.shape != (4, 4):
            raise ValueError(f"expected a 4x4 matrix, got shape {M.shape}")
        return SE3.from_matrix(M)
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(f"{path}: {where} is not a rigid transform ({str(e).splitlines()[0]})") from None


def load_rig(path: str | os.PathLike) -> Rig:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rig file {path} does not exist (sparsepipe sim airground writes an example)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise InputError(f"{path}: not valid YAML") from None
    if not isinstance(data, dict) or "ugv" not in data or "uav" not in data:
        raise InputError(f"{path}: expected top-level 'ugv' and 'uav' sections")
    ugv, uav = data["ugv"], data["uav"]
    if "T_imu_cam" not in ugv:
        raise InputError(f"{path}: ugv.T_imu_cam missing (the camera pose in the IMU frame)")
    topics = dict(DEFAULT_TOPICS)
    topics.update(data.get("topics") or {})
    return Rig(
        ugv_camera=_camera(ugv.get("camera"), "ugv.camera", path),
        T_imu_cam=_pose(ugv["T_imu_cam"], "ugv.T_imu_cam", path),
        time_offset_ns=int(round(float(ugv.get("time_offset_s", 0.0)) * 1e9)),
        uav_camera=_camera(uav.get("camera"), "uav.camera", path),
        T_body_cam_uav=_pose(uav["T_body_cam"], "uav.T_body_cam", path) if "T_body_cam" in uav else SE3.identity(),
        topics=topics,
    )
