"""The node runtime: ROS-like nodes over eclipse-zenoh, without a ROS install.

A :class:`Node` has parameters (from its launch entry), publishers, subscriptions and timers, and spins in its
process's main thread until SIGINT / SIGTERM or :meth:`Node.shutdown`. Transport: a zenoh session in peer mode,
connected to the launch supervisor's hub peer (``SPARSEPIPE_ZENOH_CONNECT``, loopback by default; the hub's
``listen`` / ``connect`` endpoints join two machines), multicast scouting off. Topics map to key expressions by
dropping the leading ``/`` (``/uav/keyframes`` -> ``uav/keyframes``).

Names resolve as in ROS 2: absolute ``/a/b`` stays; relative ``b`` goes under the node's namespace; ``~/b`` under
the node's fully qualified name; then the node's remaps apply (matched on the name as written or as resolved).

Payloads: ROS 2 types are CDR-serialised through rosbags' typestore (ROS 2 Humble definitions), converted from /
to the project's message dataclasses (:mod:`perception.datasets.ros.messages`) by the same codec the bag reader and
writer use; :data:`RAW` topics carry bytes as they are (the air-ground keyframe message has its own compact
binary form). A payload that does not decode is dropped with one warning per topic (then counted), never a crash.
Subscription callbacks run in the spinning thread, one at a time, in arrival order.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apps.nodes.launch import NodeSpec, join_ns
from perception.errors import InputError

log = logging.getLogger(__name__)

RAW = "sparsepipe/raw"
"""Message type of topics whose payload is opaque bytes (e.g. the compact air-ground keyframe message)."""
ENV_CONNECT = "SPARSEPIPE_ZENOH_CONNECT"
ENV_SPEC = "SPARSEPIPE_NODE_SPEC"
_NAME = re.compile(r"~?(/?[A-Za-z_][A-Za-z0-9_]*)*/?")


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def zenoh_config(connect: list[str] | None = None, listen: list[str] | None = None):
    import zenoh

    conf = zenoh.Config()
    conf.insert_json5("mode", '"peer"')
    conf.insert_json5("scouting/multicast/enabled", "false")
    if connect:
        conf.insert_json5("connect/endpoints", json.dumps(list(connect)))
    if listen:
        conf.insert_json5("listen/endpoints", json.dumps(list(listen)))
    return conf


def open_session(connect: list[str] | None = None, listen: list[str] | None = None):
    import zenoh

    try:
        return zenoh.open(zenoh_config(connect, listen))
    except Exception as e:  # noqa: BLE001 - zenoh raises its own error types
        raise InputError(f"zenoh: cannot open a session (listen {listen}, connect {connect}): {e}") from None


def topic_key(topic: str) -> str:
    return topic.strip("/")


class Codec:
    """Serialise / deserialise one message type."""

    def __init__(self, msgtype: str, topic: str) -> None:
        self.msgtype, self.topic = msgtype, topic
        if msgtype != RAW:
            from perception.datasets.ros import codec

            self._codec = codec
            self._ts = _typestore()
            self.msgtype = codec.normalize_msgtype(msgtype)
            if self.msgtype not in self._ts.types:
                raise InputError(f"{topic}: unknown message type {msgtype!r} (ROS 2 Humble types, or {RAW!r})")

    def encode(self, msg: Any, stamp_ns: int = 0) -> bytes:
        if self.msgtype == RAW:
            if not isinstance(msg, bytes | bytearray | memoryview):
                raise InputError(f"{self.topic}: a {RAW} topic publishes bytes, got {type(msg).__name__}")
            return bytes(msg)
        ros = self._codec.to_ros(self._ts, self.msgtype, msg, stamp_ns, self.topic)
        return bytes(self._ts.serialize_cdr(ros, self.msgtype))

    def decode(self, data: bytes) -> Any:
        if self.msgtype == RAW:
            return data
        ros = self._ts.deserialize_cdr(data, self.msgtype)
        if self.msgtype in self._codec.DECODERS:
            return self._codec.decode_message(self.msgtype, ros, self.topic)
        return ros


class Publisher:
    def __init__(self, node: Node, topic: str, msgtype: str) -> None:
        self.topic, self.codec = topic, Codec(msgtype, topic)
        import zenoh

        # reliable delivery: block rather than drop when the link is congested (ROS's "reliable" QoS)
        self._pub = node.session.declare_publisher(topic_key(topic), congestion_control=zenoh.CongestionControl.BLOCK)
        self.messages = 0
        self.bytes = 0

    def publish(self, msg: Any, stamp_ns: int = 0) -> int:
        """Send one message; returns its payload size in bytes."""
        data = self.codec.encode(msg, stamp_ns)
        self._pub.put(data)
        self.messages += 1
        self.bytes += len(data)
        return len(data)


@dataclass
class _Timer:
    period_s: float
    callback: Callable[[], None]
    next_t: float


class Node:
    """Base class of every node; subclasses set up publishers / subscriptions / timers in ``__init__``."""

    def __init__(self, spec: NodeSpec, session: Any = None) -> None:
        self.spec = spec
        self.logger = logging.getLogger(f"node{spec.fqn.replace('/', '.')}")
        self.session = session if session is not None else open_session(_env_list(ENV_CONNECT))
        self._own_session = session is None
        self._queue: queue.Queue = queue.Queue()
        self._timers: list[_Timer] = []
        self._subs: list[Any] = []
        self._stop = threading.Event()
        self.dropped: dict[str, int] = {}
        self.publishers: dict[str, Publisher] = {}

    # -- names and parameters ------------------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        if not name or not _NAME.fullmatch(name):
            raise InputError(f"{self.spec.fqn}: invalid topic name {name!r}")
        remaps = dict(self.spec.remaps)
        if name in remaps:
            return join_ns(self.spec.namespace, remaps[name])
        if name.startswith("~"):
            full = join_ns(self.spec.fqn, name[1:].lstrip("/"))
        else:
            full = join_ns(self.spec.namespace, name)
        return join_ns(self.spec.namespace, remaps[full]) if full in remaps else full

    def param(self, name: str, default: Any = None, kind: type | None = None) -> Any:
        """A parameter from the launch file, converted to ``kind`` (or to the default's type)."""
        if name not in self.spec.params:
            return default
        v = self.spec.params[name]
        kind = kind or (type(default) if default is not None else None)
        if kind is None or isinstance(v, kind) and kind is not bool:
            return v
        try:
            if kind is bool:
                s = str(v).strip().lower()
                if s not in ("true", "false", "1", "0"):
                    raise ValueError
                return s in ("true", "1")
            return kind(v)
        except (TypeError, ValueError):
            raise InputError(f"{self.spec.source or self.spec.fqn}: parameter {name}={v!r} is not a "
                             f"{kind.__name__}") from None  # fmt: skip

    # -- communication ---------------------------------------------------------------------------------------
    def topic_types(self, name: str = "topics") -> list[tuple[str, str]]:
        """Parameter ``name`` as comma-separated ``topic:msgtype`` pairs (at least one)."""
        pairs = [p for p in str(self.param(name, "", str)).split(",") if p]
        if not pairs or any(":" not in p for p in pairs):
            raise InputError(f"{self.spec.fqn}: parameter '{name}' must list topic:msgtype pairs, got {pairs}")
        return [tuple(p.split(":", 1)) for p in pairs]

    def create_publisher(self, topic: str, msgtype: str) -> Publisher:
        full = self.resolve(topic)
        pub = Publisher(self, full, msgtype)
        self.publishers[full] = pub
        return pub

    def create_subscription(self, topic: str, msgtype: str, callback: Callable[[Any], None]) -> None:
        full = self.resolve(topic)
        codec = Codec(msgtype, full)

        def on_sample(sample: Any) -> None:  # zenoh's thread: only queue it
            self._queue.put((full, codec, bytes(sample.payload.to_bytes()), callback))

        self._subs.append(self.session.declare_subscriber(topic_key(full), on_sample))

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> None:
        if not period_s > 0:
            raise InputError(f"{self.spec.fqn}: timer period must be > 0, got {period_s}")
        self._timers.append(_Timer(float(period_s), callback, time.monotonic() + float(period_s)))

    # -- spinning --------------------------------------------------------------------------------------------
    def _dispatch(self, item) -> None:
        topic, codec, data, callback = item
        try:
            msg = codec.decode(data)
        except Exception as e:  # noqa: BLE001 - a malformed payload must never kill the node
            n = self.dropped.get(topic, 0)
            self.dropped[topic] = n + 1
            if n == 0:
                why = str(e).splitlines()[0] if str(e) else ""
                self.logger.warning("dropped a malformed %s message on %s (%s: %s); further ones are counted",
                                    codec.msgtype, topic, type(e).__name__, why)  # fmt: skip
            return
        callback(msg)

    def spin_once(self, timeout_s: float = 0.05) -> None:
        now = time.monotonic()
        due = min((t.next_t for t in self._timers), default=now + timeout_s)
        try:
            item = self._queue.get(timeout=max(0.0, min(timeout_s, due - now)))
            self._dispatch(item)
        except queue.Empty:
            pass
        now = time.monotonic()
        for t in self._timers:
            if now >= t.next_t:
                t.next_t += t.period_s * max(1, int((now - t.next_t) / t.period_s) + 1)
                t.callback()

    def spin(self) -> None:
        """Run until SIGINT / SIGTERM or :meth:`shutdown`."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self._stop.set())
        try:
            while not self._stop.is_set():
                self.spin_once()
        finally:
            self.close()

    def shutdown(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        for s in self._subs:
            try:
                s.undeclare()
            except Exception:  # noqa: BLE001, S110 - closing anyway
                pass
        self._subs.clear()
        if self._own_session:
            self.session.close()
            self._own_session = False


def _env_list(name: str) -> list[str]:
    v = os.environ.get(name, "")
    return [s for s in v.split(",") if s]
