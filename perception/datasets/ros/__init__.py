"""ROS bags without a ROS install: streaming reads and atomic writes of ROS 1 ``.bag`` and ROS 2 ``.db3`` / ``.mcap``.

Reading (rosbags' ``AnyReader``)::

    from perception.datasets.ros import read_bag
    for m in read_bag("flight.mcap", topics=["/cam/image_raw", "/imu"]):
        m.topic, m.recv_ns, m.msg      # m.msg: ImageMsg, ImuMsg, ... (numpy dataclasses)

Decoded types: ``sensor_msgs/Image`` (rgb8, bgr8 -> RGB, rgba8, bgra8, mono8, mono16, 16UC1, 32FC1; row padding
and byte order honoured) and ``CompressedImage`` (JPEG / PNG) -> :class:`ImageMsg`; ``CameraInfo`` ->
:class:`CameraInfoMsg` (plumb_bob -> OpenCVCamera, equidistant -> FisheyeCamera, no distortion ->
PinholeCamera); ``Imu`` -> :class:`ImuMsg`; ``PointCloud2`` -> :class:`PointCloudMsg`; ``nav_msgs/Odometry`` ->
:class:`OdometryMsg`; ``geometry_msgs/PoseStamped`` -> :class:`PoseMsg`. Header stamps become int nanoseconds;
the bag receive time is :attr:`BagMessage.recv_ns`.

Writing: :class:`BagWriter` (``format="mcap" | "db3" | "ros1"``), a context manager that renames the finished
bag into place. Errors (missing path, corrupt or truncated bag, unknown topic, unsupported encoding) are one-line
:class:`perception.errors.InputError` / ``FileNotFoundError`` messages naming the file or topic.
"""

from perception.datasets.ros.bag import BagReader, BagWriter, bag_topics, read_bag
from perception.datasets.ros.codec import camera_from_ros, camera_to_ros, decode_message
from perception.datasets.ros.messages import (
    BagMessage,
    CameraInfoMsg,
    ImageMsg,
    ImuMsg,
    OdometryMsg,
    PointCloudMsg,
    PoseCovMsg,
    PoseMsg,
)

__all__ = [
    "BagMessage",
    "BagReader",
    "BagWriter",
    "CameraInfoMsg",
    "ImageMsg",
    "ImuMsg",
    "OdometryMsg",
    "PointCloudMsg",
    "PoseCovMsg",
    "PoseMsg",
    "bag_topics",
    "camera_from_ros",
    "camera_to_ros",
    "decode_message",
    "read_bag",
]
