"""Streaming ROS bag reader and atomic bag writer on top of rosbags (ROS 1 ``.bag``, ROS 2 ``.db3`` / ``.mcap``).

Reading goes through rosbags' ``AnyReader``: a ROS 1 ``.bag`` file, a rosbag2 folder (``metadata.yaml`` plus
``.db3`` or ``.mcap`` files) or a bare ``.db3`` / ``.mcap`` file. Messages come out of a generator in bag
receive-time order across the chosen topics and are decoded one at a time (a bag is never loaded whole).

Writing builds the bag in a hidden temporary sibling (``.name.partial-XXXX``) and renames it into place on a
clean close, so an interrupted run never leaves a bag that looks complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from perception.datasets.ros import codec
from perception.datasets.ros.messages import BagMessage
from perception.errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["BagReader", "BagWriter", "bag_topics", "read_bag"]

BagFormat = Literal["mcap", "db3", "ros1"]
FORMATS: tuple[str, ...] = ("mcap", "db3", "ros1")
_LAYOUT = "a ROS 1 .bag, a ROS 2 .db3 / .mcap file or a rosbag2 folder with metadata.yaml"


def _typestore(ros1: bool, typestore: Any = None) -> Any:
    from rosbags.typesys import Stores, get_typestore

    if typestore is None:
        return get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
    if isinstance(typestore, Stores):
        return get_typestore(typestore)
    return typestore


def _detail(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _corrupt(path: Path, err: BaseException) -> InputError:
    if path.suffix == ".bag":
        hint = f"try `rosbag reindex {path}`"
    elif path.is_dir():
        hint = f"try `ros2 bag reindex {path}`"
    else:
        hint = "try `ros2 bag reindex` on its recording folder"
    return InputError(
        f"{path}: cannot read ROS bag ({_detail(err)}); it looks truncated or corrupt - {hint}, or re-record it"
    )


def _check_bag_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"ROS bag: missing {p} (expected {_LAYOUT})")
    if p.is_dir():
        if not (p / "metadata.yaml").is_file():
            raise InputError(f"ROS bag: folder {p} has no metadata.yaml; expected {_LAYOUT}")
    elif p.suffix not in (".bag", ".db3", ".mcap"):
        raise InputError(f"ROS bag: {p} has an unknown suffix {p.suffix!r}; expected {_LAYOUT}")
    return p


class BagReader:
    """Open a bag for streaming reads::

        with BagReader("run.mcap") as bag:
            print(bag.topics)  # {topic: msgtype}
            for m in bag.messages(["/cam/image_raw", "/imu"], start_ns=t0):
                m.topic, m.recv_ns, m.msg  # m.msg: ImageMsg, ImuMsg, ...

    ``typestore`` (a rosbags ``Typestore`` or ``Stores`` member) is used only for bags without embedded type
    definitions (e.g. ROS 2 Humble ``.db3``); default ROS 2 Humble (ROS 1 Noetic for ``.bag``).
    """

    def __init__(self, path: str | os.PathLike, *, typestore: Any = None) -> None:
        self.path = _check_bag_path(path)
        self._typestore = typestore
        self._reader: Any = None

    # -- lifetime -------------------------------------------------------------------------------------------
    def open(self) -> BagReader:
        if self._reader is not None:
            return self
        from rosbags.highlevel import AnyReader

        ts = _typestore(self.path.suffix == ".bag", self._typestore)
        try:
            reader = AnyReader([self.path], default_typestore=ts)
            reader.open()
        except (FileNotFoundError, PermissionError):
            raise
        except Exception as e:
            raise _corrupt(self.path, e) from None
        self._reader = reader
        return self

    def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            with contextlib.suppress(Exception):
                reader.close()

    def __enter__(self) -> BagReader:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def reader(self) -> Any:
        """The open rosbags ``AnyReader``."""
        if self._reader is None:
            raise RuntimeError("BagReader is not open; use it as a context manager or call open()")
        return self._reader

    # -- summary --------------------------------------------------------------------------------------------
    @property
    def topics(self) -> dict[str, str]:
        """Topic -> message type (``pkg/msg/Type``), sorted by topic."""
        return {c.topic: c.msgtype for c in sorted(self.reader.connections, key=lambda c: c.topic)}

    @property
    def message_count(self) -> int:
        return int(self.reader.message_count)

    @property
    def start_ns(self) -> int:
        """Receive time of the first message."""
        return int(self.reader.start_time)

    @property
    def end_ns(self) -> int:
        """Just after the receive time of the last message (so ``end_ns > start_ns`` for a non-empty bag)."""
        return int(self.reader.end_time)

    def _available(self) -> str:
        return ", ".join(f"{t} ({mt})" for t, mt in self.topics.items()) or "none (the bag is empty)"

    # -- reading --------------------------------------------------------------------------------------------
    def messages(
        self,
        topics: str | Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        unsupported: Literal["skip", "raw", "error"] = "skip",
    ) -> Iterator[BagMessage]:
        """Messages with ``start_ns <= recv_ns < end_ns`` on ``topics`` (default all), in receive-time order.

        Supported types (see ``codec.DECODERS``) are decoded to the dataclasses of
        :mod:`perception.datasets.ros.messages`. Other types: ``"skip"`` leaves them out when reading all topics
        (asking for such a topic by name is an error), ``"raw"`` yields the deserialised rosbags message,
        ``"error"`` raises. Topic and time arguments are checked at once; messages are read lazily.
        """
        if unsupported not in ("skip", "raw", "error"):
            raise InputError(f"unsupported must be 'skip', 'raw' or 'error', got {unsupported!r}")
        if start_ns is not None and end_ns is not None and end_ns < start_ns:
            raise InputError(f"{self.path}: end_ns ({end_ns}) is before start_ns ({start_ns})")
        reader = self.reader
        conns = list(reader.connections)
        explicit = topics is not None
        if explicit:
            wanted = [topics] if isinstance(topics, str) else list(topics)
            have = {c.topic for c in conns}
            missing = [t for t in wanted if t not in have]
            if missing:
                raise InputError(
                    f"{self.path}: no topic {', '.join(map(repr, missing))} in the bag; available: {self._available()}"
                )
            conns = [c for c in conns if c.topic in set(wanted)]
        keep = []
        for c in conns:
            if codec.normalize_msgtype(c.msgtype) in codec.DECODERS or unsupported == "raw":
                keep.append(c)
            elif explicit or unsupported == "error":
                raise InputError(
                    f"{self.path}: topic {c.topic} has type {c.msgtype}, which sparsepipe does not decode "
                    f"(supported: {', '.join(codec.DECODERS)}); pass unsupported='raw' for rosbags messages"
                )
            else:
                logger.info("%s: skipping topic %s of unsupported type %s", self.path, c.topic, c.msgtype)
        if not keep:  # AnyReader treats an empty selection as "all connections"
            return iter(())
        return self._stream(reader, keep, start_ns, end_ns)

    def _stream(self, reader: Any, conns: list[Any], start: int | None, stop: int | None) -> Iterator[BagMessage]:
        try:
            raw_iter = reader.messages(connections=conns, start=start, stop=stop)
        except Exception as e:
            raise _corrupt(self.path, e) from None
        while True:
            if self._reader is None:
                raise RuntimeError(f"BagReader for {self.path} was closed while its messages were being read")
            try:
                conn, t, raw = next(raw_iter)
            except StopIteration:
                return
            except Exception as e:
                raise _corrupt(self.path, e) from None
            try:
                obj = reader.deserialize(raw, conn.msgtype)
            except Exception as e:
                raise InputError(
                    f"{self.path}: topic {conn.topic}: cannot deserialise a {conn.msgtype} message at {t} ns "
                    f"({_detail(e)}); the bag is corrupt or its type definitions do not match"
                ) from None
            mt = codec.normalize_msgtype(conn.msgtype)
            msg = codec.DECODERS[mt](obj, conn.topic) if mt in codec.DECODERS else obj
            yield BagMessage(conn.topic, conn.msgtype, int(t), msg)


def read_bag(
    path: str | os.PathLike,
    topics: str | Iterable[str] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    *,
    typestore: Any = None,
    unsupported: Literal["skip", "raw", "error"] = "skip",
) -> Iterator[BagMessage]:
    """Iterator over a bag's messages (see :meth:`BagReader.messages`); the bag closes when it is exhausted or
    the iterator is closed. The path and topics are checked at once."""
    bag = BagReader(path, typestore=typestore).open()
    try:
        it = bag.messages(topics, start_ns, end_ns, unsupported=unsupported)
    except BaseException:
        bag.close()
        raise
    return _closing(bag, it)


def _closing(bag: BagReader, it: Iterator[BagMessage]) -> Iterator[BagMessage]:
    try:
        yield from it
    finally:
        bag.close()


def bag_topics(path: str | os.PathLike, *, typestore: Any = None) -> dict[str, str]:
    """Topic -> message type of a bag."""
    with BagReader(path, typestore=typestore) as bag:
        return bag.topics


class BagWriter:
    """Write a bag atomically::

        with BagWriter("out.mcap", format="mcap") as w:
            w.write_image("/cam/image", rgb, t_ns)
            w.write_imu("/imu", gyro, accel, t_ns)
            w.write("/pose", PoseMsg(...), t_ns)

    Layout: ``format="mcap"`` / ``"db3"`` write a rosbag2 folder (``metadata.yaml`` + ``<name>.mcap|.db3``), or a
    bare storage file when ``path`` ends in ``.mcap`` / ``.db3``; ``"ros1"`` writes a ``.bag`` file (the path
    must end in ``.bag``). ``typestore`` defaults to ROS 2 Humble (ROS 1 Noetic for ``"ros1"``). Each ``write``
    takes the bag receive time ``t_ns``; typed helpers stamp the header with ``stamp_ns`` (default ``t_ns``).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        format: BagFormat = "mcap",
        *,
        typestore: Any = None,
        overwrite: bool = False,
    ) -> None:
        if format not in FORMATS:
            raise InputError(f"BagWriter: format must be one of {', '.join(FORMATS)}, got {format!r}")
        path = Path(path)
        suffix = path.suffix.lower()
        if format == "ros1" and suffix != ".bag":
            raise InputError(f"BagWriter: ROS 1 bags must be named *.bag, got {path}")
        if format != "ros1" and suffix in (".bag", ".db3", ".mcap") and suffix != f".{format}":
            raise InputError(f"BagWriter: {path} has suffix {suffix} but format is {format!r}")
        if path.exists() and not overwrite:
            raise FileExistsError(f"BagWriter: {path} exists already; pass overwrite=True to replace it")
        self.path = path
        self.format = format
        self.overwrite = overwrite
        self.typestore = _typestore(format == "ros1", typestore)
        self._bare = format != "ros1" and suffix == f".{format}"
        self._writer: Any = None
        self._tmp: Path | None = None
        self._inner: Path | None = None
        self._conns: dict[str, Any] = {}
        self._types: dict[str, str] = {}
        self.count = 0

    # -- lifetime -------------------------------------------------------------------------------------------
    def open(self) -> BagWriter:
        if self._writer is not None:
            return self
        parent = self.path.parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=parent))
        try:
            if self.format == "ros1":
                from rosbags.rosbag1 import Writer as Writer1

                inner = tmp / self.path.name
                writer: Any = Writer1(inner)
            else:
                from rosbags.rosbag2 import StoragePlugin, Writer

                plugin = StoragePlugin.MCAP if self.format == "mcap" else StoragePlugin.SQLITE3
                inner = tmp / (self.path.stem if self._bare else self.path.name)
                writer = Writer(inner, version=9, storage_plugin=plugin)
            writer.open()
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._tmp, self._inner, self._writer = tmp, inner, writer
        return self

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def abort(self) -> None:
        """Drop everything written so far (nothing appears at ``path``)."""
        writer, self._writer = self._writer, None
        if writer is not None and self.format != "ros1":
            with contextlib.suppress(Exception):
                writer.abort()
        elif writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def close(self) -> Path:
        """Finish the bag and move it into place; returns ``path``."""
        if self._writer is None:
            raise RuntimeError("BagWriter is not open")
        writer, self._writer = self._writer, None
        tmp, inner = self._tmp, self._inner
        assert tmp is not None and inner is not None
        try:
            writer.close()
            src = inner / f"{inner.name}.{self.format}" if self._bare else inner
            self._replace(src)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            self._tmp = None
        logger.debug("wrote %d messages to %s", self.count, self.path)
        return self.path

    def _replace(self, src: Path) -> None:
        dst = self.path
        old = None
        if dst.exists() or dst.is_symlink():
            if not self.overwrite:
                raise FileExistsError(f"BagWriter: {dst} appeared while writing; the new bag was discarded")
            old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(dst, old)
        os.replace(src, dst)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)

    # -- topics and raw writes ------------------------------------------------------------------------------
    @property
    def topics(self) -> dict[str, str]:
        return dict(self._types)

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare ``topic`` with ``msgtype`` (``sensor_msgs/msg/Image`` or ``sensor_msgs/Image``)."""
        if self._writer is None:
            raise RuntimeError("BagWriter is not open; use it as a context manager or call open()")
        mt = codec.normalize_msgtype(msgtype)
        if topic in self._types:
            if self._types[topic] != mt:
                raise InputError(f"BagWriter: topic {topic} already has type {self._types[topic]}, not {mt}")
            return
        if mt not in self.typestore.types:
            raise InputError(f"BagWriter: message type {msgtype!r} is not in the writer's typestore")
        if not topic.startswith("/"):
            raise InputError(f"BagWriter: topic names must start with '/', got {topic!r}")
        self._conns[topic] = self._writer.add_connection(topic, mt, typestore=self.typestore)
        self._types[topic] = mt

    def _ensure(self, topic: str, msgtype: str) -> None:
        if topic not in self._types:
            self.add_topic(topic, msgtype)
        elif self._types[topic] != msgtype:
            raise InputError(f"BagWriter: topic {topic} has type {self._types[topic]}, cannot write {msgtype}")

    def _write_ros(self, topic: str, ros_msg: Any, t_ns: int) -> None:
        mt = self._types[topic]
        ts = self.typestore
        data = ts.serialize_ros1(ros_msg, mt) if self.format == "ros1" else ts.serialize_cdr(ros_msg, mt)
        self._writer.write(self._conns[topic], t_ns, data)
        self.count += 1

    def write(self, topic: str, msg: Any, t_ns: int) -> None:
        """Write one message received at ``t_ns``.

        ``msg``: a dataclass of :mod:`.messages`, an SE3 (PoseStamped), a camera model (CameraInfo), a rosbags
        message of the writer's typestore, or a numpy array for a topic declared with :meth:`add_topic` (image,
        point-cloud xyz or 4x4 pose). The topic is declared on first use from the message's type.
        """
        t = codec._check_ns(t_ns, "t_ns")
        if topic not in self._types:
            mt = codec.default_msgtype(msg)
            if mt is None:
                raise InputError(
                    f"BagWriter: cannot infer the message type of a {type(msg).__name__} for {topic}; call "
                    "add_topic(topic, msgtype) first"
                )
            self.add_topic(topic, mt)
        self._write_ros(topic, codec.to_ros(self.typestore, self._types[topic], msg, t, topic), t)

    # -- typed helpers --------------------------------------------------------------------------------------
    def _stamp(self, t_ns: int, stamp_ns: int | None) -> tuple[int, int]:
        t = codec._check_ns(t_ns, "t_ns")
        return t, t if stamp_ns is None else stamp_ns

    def write_image(
        self,
        topic: str,
        image: Any,
        t_ns: int,
        *,
        encoding: str | None = None,
        frame_id: str = "",
        stamp_ns: int | None = None,
    ) -> None:
        """``sensor_msgs/Image``; encoding defaults from the array (rgb8, rgba8, mono8, mono16, 32FC1)."""
        t, s = self._stamp(t_ns, stamp_ns)
        self._ensure(topic, codec.IMAGE)
        self._write_ros(
            topic, codec.encode_image(self.typestore, image, stamp_ns=s, frame_id=frame_id, encoding=encoding), t
        )

    def write_compressed_image(
        self,
        topic: str,
        image: Any,
        t_ns: int,
        *,
        format: str = "jpeg",
        quality: int = 95,
        frame_id: str = "",
        stamp_ns: int | None = None,
    ) -> None:
        """``sensor_msgs/CompressedImage`` (JPEG or PNG) from an RGB or mono image."""
        t, s = self._stamp(t_ns, stamp_ns)
        self._ensure(topic, codec.COMPRESSED_IMAGE)
        ros = codec.encode_compressed_image(
            self.typestore, image, stamp_ns=s, frame_id=frame_id, format=format, quality=quality
        )
        self._write_ros(topic, ros, t)

    def write_camera_info(
        self,
        topic: str,
        camera: Any,
        t_ns: int,
        *,
        frame_id: str = "",
        stamp_ns: int | None = None,
        R: Any = None,
        P: Any = None,
    ) -> None:
        """``sensor_msgs/CameraInfo`` from a perception.camera model (R: identity, P: [K | 0] by default)."""
        t, s = self._stamp(t_ns, stamp_ns)
        self._ensure(topic, codec.CAMERA_INFO)
        ros = codec.encode_camera_info(self.typestore, camera, stamp_ns=s, frame_id=frame_id, R=R, P=P)
        self._write_ros(topic, ros, t)

    def write_imu(
        self,
        topic: str,
        gyro: Any,
        accel: Any,
        t_ns: int,
        *,
        orientation: Any = None,
        frame_id: str = "",
        stamp_ns: int | None = None,
        orientation_covariance: Any = None,
        gyro_covariance: Any = None,
        accel_covariance: Any = None,
    ) -> None:
        """``sensor_msgs/Imu``: gyro (rad/s), accel (m/s^2), orientation (qx, qy, qz, qw) or None (unknown)."""
        t, s = self._stamp(t_ns, stamp_ns)
        self._ensure(topic, codec.IMU)
        ros = codec.encode_imu(
            self.typestore, gyro, accel, stamp_ns=s, frame_id=frame_id, orientation=orientation,
            orientation_covariance=orientation_covariance, gyro_covariance=gyro_covariance,
            accel_covariance=accel_covariance,
        )  # fmt: skip
        self._write_ros(topic, ros, t)

    def write_pointcloud(
        self,
        topic: str,
        xyz: Any,
        t_ns: int,
        *,
        intensity: Any = None,
        fields: dict[str, Any] | None = None,
        frame_id: str = "",
        stamp_ns: int | None = None,
        is_dense: bool | None = None,
    ) -> None:
        """``sensor_msgs/PointCloud2`` from xyz (N,3) or organised (H,W,3), optional intensity and fields."""
        t, s = self._stamp(t_ns, stamp_ns)
        self._ensure(topic, codec.POINTCLOUD2)
        ros = codec.encode_pointcloud(
            self.typestore, xyz, stamp_ns=s, frame_id=frame_id, intensity=intensity, fields=fields,
            is_dense=is_dense,
        )  # fmt: skip
        self._write_ros(topic, ros, t)

    def write_odometry(
        self,
        topic: str,
        T_parent_child: Any,
        t_ns: int,
        *,
        twist: Any = None,
        frame_id: str = "",
        child_frame_id: str = "",
        stamp_ns: int | None = None,
        covariance: Any = None,
        twist_covariance: Any = None,
    ) -> None:
        """``nav_msgs/Odometry``; twist (6,) and covariances in (omega, v) order."""
        t, s = self._stamp(t_ns, stamp_ns)
        self._ensure(topic, codec.ODOMETRY)
        ros = codec.encode_odometry(
            self.typestore, T_parent_child, stamp_ns=s, frame_id=frame_id, child_frame_id=child_frame_id,
            twist=twist, covariance=covariance, twist_covariance=twist_covariance,
        )  # fmt: skip
        self._write_ros(topic, ros, t)

    def write_pose(self, topic: str, T: Any, t_ns: int, *, frame_id: str = "", stamp_ns: int | None = None) -> None:
        """``geometry_msgs/PoseStamped`` from an SE3 (or 4x4 matrix)."""
        t, s = self._stamp(t_ns, stamp_ns)
        self._ensure(topic, codec.POSE_STAMPED)
        self._write_ros(topic, codec.encode_pose(self.typestore, T, stamp_ns=s, frame_id=frame_id), t)
