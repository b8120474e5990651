"""Reading an air-ground recording: odometry streams as trajectories, image streams lazily, with clear errors.

A recording is any ROS 1 ``.bag`` / ROS 2 ``.db3`` / ``.mcap`` bag (see :mod:`perception.datasets.ros`). The topic
names come from the rig file. Odometry messages become :class:`slam.trajectory.Trajectory` objects stamped with
the *header* stamps (LIO publishes at scan end); images are streamed, never all held in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception.datasets.ros import BagReader, CameraInfoMsg, ImageMsg, OdometryMsg
from perception.errors import InputError
from perception.geometry import SE3
from slam.trajectory import Trajectory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingTopics:
    ugv_odometry: str = "/ugv/lio/odometry"
    ugv_image: str = "/ugv/camera/image_raw"
    ugv_camera_info: str = "/ugv/camera/camera_info"
    uav_image: str = "/uav/camera/image_raw"
    uav_camera_info: str = "/uav/camera/camera_info"
    uav_odometry: str = "/uav/odometry"


def check_topics(path: Path, available: dict[str, str], needed: dict[str, str]) -> None:
    """One error listing every missing topic (role and name) and the topics the bag does have."""
    missing = [f"{role} ({topic})" for role, topic in needed.items() if topic not in available]
    if missing:
        raise InputError(
            f"{path}: missing topic(s) {', '.join(missing)}; the bag has {sorted(available)} — "
            "fix the topic names in the rig file"
        )


def read_odometry(bag: BagReader, topic: str) -> Trajectory:
    """All ``nav_msgs/Odometry`` messages of ``topic`` as a trajectory ``T_parent_child`` at header stamps."""
    stamps, poses = [], []
    frame = child = None
    for m in bag.messages([topic]):
        msg = m.msg
        if not isinstance(msg, OdometryMsg):
            raise InputError(f"{bag.path}: topic {topic} carries {m.msgtype}, expected nav_msgs/msg/Odometry")
        stamps.append(msg.stamp_ns)
        poses.append(msg.T_parent_child)
        frame, child = msg.frame_id, msg.child_frame_id
    if len(stamps) < 2:
        raise InputError(f"{bag.path}: topic {topic} has {len(stamps)} odometry message(s); need at least 2")
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
    stamps_arr = np.asarray(stamps, dtype=np.int64)[order]
    if np.any(np.diff(stamps_arr) <= 0):
        k = int(np.flatnonzero(np.diff(stamps_arr) <= 0)[0])
        raise InputError(f"{bag.path}: topic {topic} repeats the stamp {stamps_arr[k] / 1e9:.9f} s; fix the recording")
    mats = np.stack([poses[i].matrix() for i in order])
    if not np.all(np.isfinite(mats)):
        k = int(np.flatnonzero(~np.all(np.isfinite(mats.reshape(len(mats), -1)), axis=1))[0])
        raise InputError(f"{bag.path}: topic {topic} has a NaN/inf pose at {stamps_arr[k] / 1e9:.9f} s")
    return Trajectory(stamps_arr, SE3.from_matrix(mats), frame_id=frame, child_frame_id=child)


def read_camera_info(bag: BagReader, topic: str):
    """The camera model of the first ``CameraInfo`` message on ``topic`` (None when the topic is absent)."""
    if topic not in bag.topics:
        return None
    for m in bag.messages([topic]):
        if isinstance(m.msg, CameraInfoMsg):
            return m.msg.camera
    return None


def iter_images(bag: BagReader, topic: str) -> Iterator[tuple[int, np.ndarray]]:
    """``(header stamp ns, RGB uint8 image)`` in time order."""
    for m in bag.messages([topic]):
        if not isinstance(m.msg, ImageMsg):
            raise InputError(f"{bag.path}: topic {topic} carries {m.msgtype}, expected an image")
        img = m.msg.image
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)  # grayscale cameras work too
        if img.dtype != np.uint8:
            raise InputError(f"{bag.path}: topic {topic} has {img.dtype} images; expected 8-bit colour or mono")
        yield int(m.msg.stamp_ns), img


def image_stamps(bag: BagReader, topic: str) -> np.ndarray:
    """Header stamps of every image on ``topic`` (decodes the messages once; images are dropped)."""
    return np.array([s for s, _ in iter_images(bag, topic)], dtype=np.int64)
