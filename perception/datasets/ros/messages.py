"""numpy dataclasses for the ROS messages sparsepipe reads and writes.

All values follow the project conventions (``perception.geometry``): stamps are int nanoseconds, quaternions
``(qx, qy, qz, qw)`` with ``qw >= 0``, SE(3) tangent vectors and 6x6 covariances ordered ``(omega, v)`` -- ROS
orders twists and pose covariances ``(v, omega)``, the codec permutes them at the boundary. Images are RGB
(``bgr8`` input is reordered).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perception.camera import CameraModel
from perception.geometry import SE3

__all__ = [
    "BagMessage",
    "CameraInfoMsg",
    "ImageMsg",
    "ImuMsg",
    "OdometryMsg",
    "PointCloudMsg",
    "PoseMsg",
    "RosMsg",
]


def _zero33() -> np.ndarray:
    return np.zeros((3, 3))


def _zero66() -> np.ndarray:
    return np.zeros((6, 6))


@dataclass
class ImageMsg:
    """``sensor_msgs/Image`` or ``CompressedImage``.

    ``image``: (H, W, 3) uint8 RGB, (H, W, 4) uint8 RGBA, (H, W) uint8 / uint16 / float32 (mono, depth).
    ``encoding``: the ROS encoding it was decoded from (``rgb8``, ``bgr8``, ``mono16``, ...) or, for a
    ``CompressedImage``, its ``format`` string (``jpeg``, ``rgb8; jpeg compressed bgr8``, ...).
    """

    stamp_ns: int
    frame_id: str
    image: np.ndarray
    encoding: str = ""


@dataclass
class CameraInfoMsg:
    """``sensor_msgs/CameraInfo``: intrinsic model, rectification ``R`` (3, 3) and projection ``P`` (3, 4)."""

    stamp_ns: int
    frame_id: str
    camera: CameraModel
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    P: np.ndarray | None = None  # None: [K | 0] when written


@dataclass
class ImuMsg:
    """``sensor_msgs/Imu``: ``gyro`` (rad/s) and ``accel`` (m/s^2) are (3,) float64 in the IMU frame.

    ``orientation`` is ``(qx, qy, qz, qw)`` or None when the message marks it unknown
    (``orientation_covariance[0] == -1``). Covariances are (3, 3) (zeros: unknown, ROS convention).
    """

    stamp_ns: int
    frame_id: str
    gyro: np.ndarray
    accel: np.ndarray
    orientation: np.ndarray | None = None
    orientation_covariance: np.ndarray = field(default_factory=_zero33)
    gyro_covariance: np.ndarray = field(default_factory=_zero33)
    accel_covariance: np.ndarray = field(default_factory=_zero33)


@dataclass
class PointCloudMsg:
    """``sensor_msgs/PointCloud2`` as flat per-field arrays.

    ``fields`` maps each field name to an (N,) array (``(N, count)`` when a field has ``count > 1``) in its
    stored dtype, plus ``"xyz"`` (N, 3) when the cloud has scalar x, y, z fields. ``N = height * width``;
    organised clouds (``height > 1``) keep row-major order, so ``fields["xyz"].reshape(height, width, 3)`` is
    the grid. Non-dense clouds (``is_dense == False``) may hold NaN points; they are kept so that the grid
    stays intact (see :meth:`finite`).
    """

    stamp_ns: int
    frame_id: str
    fields: dict[str, np.ndarray]
    height: int = 1
    width: int = 0
    is_dense: bool = True

    @property
    def xyz(self) -> np.ndarray:
        if "xyz" not in self.fields:
            raise KeyError(f"point cloud has no x/y/z fields (fields: {sorted(self.fields)})")
        return self.fields["xyz"]

    def __len__(self) -> int:
        return self.height * self.width

    def finite(self) -> np.ndarray:
        """Boolean (N,) mask of points whose x, y and z are all finite."""
        return np.isfinite(self.xyz).all(axis=1)


@dataclass
class OdometryMsg:
    """``nav_msgs/Odometry``: ``T_parent_child`` maps child (body) points into the parent (odom) frame.

    ``twist`` (6,) is the body velocity in the child frame ordered ``(omega, v)``; ``covariance`` (pose) and
    ``twist_covariance`` are 6x6 in the same ``(omega, v)`` order (ROS stores ``(v, omega)``).
    """

    stamp_ns: int
    frame_id: str
    child_frame_id: str
    T_parent_child: SE3
    twist: np.ndarray = field(default_factory=lambda: np.zeros(6))
    covariance: np.ndarray = field(default_factory=_zero66)
    twist_covariance: np.ndarray = field(default_factory=_zero66)

    @property
    def angular_velocity(self) -> np.ndarray:
        return self.twist[:3]

    @property
    def linear_velocity(self) -> np.ndarray:
        return self.twist[3:]


@dataclass
class PoseMsg:
    """``geometry_msgs/PoseStamped``: ``T`` is the pose of the message's object in ``frame_id``."""

    stamp_ns: int
    frame_id: str
    T: SE3


@dataclass
class PoseCovMsg:
    """``geometry_msgs/PoseWithCovarianceStamped``: ``T`` in ``frame_id`` with a 6x6 ``covariance`` in the project's
    (omega, v) tangent order (ROS stores (v, omega); converted on the way in and out)."""

    stamp_ns: int
    frame_id: str
    T: SE3
    covariance: np.ndarray = field(default_factory=_zero66)


RosMsg = ImageMsg | CameraInfoMsg | ImuMsg | PointCloudMsg | OdometryMsg | PoseMsg | PoseCovMsg


@dataclass
class BagMessage:
    """One message read from a bag: the topic, its ROS type, the bag's receive time and the decoded message.

    ``msg`` is one of the dataclasses above, or the raw rosbags message object for types read with
    ``unsupported="raw"``.
    """

    topic: str
    msgtype: str
    recv_ns: int
    msg: RosMsg | Any
