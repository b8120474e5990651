"""Camera placement for simulated scenes (world z-up; camera frames OpenCV: x right, y down, z forward)."""

from __future__ import annotations

import numpy as np

from perception.errors import InputError
from perception.geometry import SE3


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)) -> SE3:
    """``T_world_cam`` of cameras at ``eye`` looking at ``target`` with image "up" towards ``up`` (batched over rows).

    The camera's z axis points at the target, its y axis (image down) has a negative component along ``up``.
    """
    eye = np.asarray(eye, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    up = np.broadcast_to(np.asarray(up, dtype=np.float64), eye.shape)
    z = target - eye
    nz = np.linalg.norm(z, axis=-1, keepdims=True)
    if np.any(nz < 1e-12):
        raise InputError("look_at: eye and target coincide")
    z = z / nz
    x = np.cross(z, up)
    nx = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(nx < 1e-9):
        raise InputError("look_at: viewing direction is parallel to 'up'; choose another up vector")
    x = x / nx
    y = np.cross(z, x)
    R = np.stack([x, y, z], axis=-1)  # columns: camera axes in world coordinates
    return SE3(R, eye)


def yaw_pitch_camera(eye: np.ndarray, yaw: np.ndarray, pitch: np.ndarray | float = 0.0) -> SE3:
    """``T_world_cam`` looking along heading ``yaw`` (rad, about world z, 0 = +x) tilted down by ``pitch`` (rad)."""
    eye = np.asarray(eye, dtype=np.float64)
    yaw = np.asarray(yaw, dtype=np.float64)
    pitch = np.broadcast_to(np.asarray(pitch, dtype=np.float64), yaw.shape)
    d = np.stack([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), -np.sin(pitch)], axis=-1)
    return look_at(eye, eye + d)
