"""Nodes that bridge recordings and live topics: ``bag_player`` and ``recorder``.

``bag_player`` parameters: ``bag`` (ROS 1 .bag, ROS 2 .db3 / .mcap), ``rate`` (playback speed, 1.0 = real time),
``loop`` (start again at the end), ``topics`` (comma-separated, default all), ``wait_for`` (comma-separated topics
that must have a subscriber before playing starts -- default: the played topics; add downstream topics such as
``/uav/keyframes`` so a slow-starting consumer misses nothing), ``wait_timeout`` (seconds; then it plays anyway,
with a warning) and ``start_delay`` (extra seconds after that). Each message goes out on its recorded topic name
(remaps apply), CDR-serialised.

``recorder`` parameters: ``out`` (the ROS 2 bag to write, ``.mcap`` or ``.db3``) and ``topics``: comma-separated
``topic:msgtype`` pairs (``/uav/pose:geometry_msgs/msg/PoseWithCovarianceStamped``). Messages are written with
their receive time; the bag appears (atomically) when the recorder stops.
"""

from __future__ import annotations

import time
from pathlib import Path

from apps.nodes.runtime import Node
from perception.errors import InputError


class BagPlayer(Node):
    def __init__(self, spec, session=None) -> None:
        super().__init__(spec, session)
        from perception.datasets.ros import BagReader

        bag = self.param("bag", "", str)
        if not bag:
            raise InputError(f"{spec.fqn}: parameter 'bag' (the recording to play) is required")
        self.rate = self.param("rate", 1.0, float)
        if not self.rate > 0:
            raise InputError(f"{spec.fqn}: rate must be > 0, got {self.rate}")
        self.loop = self.param("loop", False, bool)
        self.start_delay = self.param("start_delay", 0.0, float)
        self.wait_timeout = self.param("wait_timeout", 60.0, float)
        self.reader = BagReader(Path(bag)).open()
        wanted = [t for t in str(self.param("topics", "", str)).split(",") if t]
        topics = self.reader.topics
        missing = [t for t in wanted if t not in topics]
        if missing:
            raise InputError(f"{bag}: no topic(s) {', '.join(missing)}; it has {', '.join(sorted(topics))}")
        self.topics = wanted or sorted(topics)
        self.pubs = {t: self.create_publisher(t, topics[t]) for t in self.topics}
        wait = [t for t in str(self.param("wait_for", "", str)).split(",") if t] or self.topics
        self.waits = {self.resolve(t): self.session.declare_publisher(self.resolve(t).strip("/")) for t in wait}
        self.played = 0

    def _wait_for_subscribers(self) -> None:
        t0 = time.monotonic()
        while not self.stopped:
            missing = [t for t, p in self.waits.items() if not p.matching_status.matching]
            if not missing:
                self.logger.info(
                    "subscribers present on %d topic(s) after %.1f s", len(self.waits), time.monotonic() - t0
                )
                return
            if time.monotonic() - t0 > self.wait_timeout:
                self.logger.warning(
                    "no subscriber on %s after %.0f s: playing anyway", ", ".join(missing), self.wait_timeout
                )
                return
            self._stop.wait(0.1)

    def spin(self) -> None:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.shutdown())
        try:
            self._wait_for_subscribers()
            self._stop.wait(self.start_delay)
            while not self.stopped:
                self._play_once()
                if not self.loop:
                    break
            self.logger.info("played %d messages", self.played)
        finally:
            self.reader.close()
            self.close()

    def _play_once(self) -> None:
        reader = self.reader.reader
        conns = [c for c in reader.connections if c.topic in self.pubs]
        t0_bag = wall0 = None
        for conn, t, raw in reader.messages(connections=conns):
            if self.stopped:
                return
            if t0_bag is None:
                t0_bag, wall0 = t, time.monotonic()
            delay = wall0 + (t - t0_bag) / 1e9 / self.rate - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            msg = reader.deserialize(raw, conn.msgtype)
            self.pubs[conn.topic].publish(msg, int(t))
            self.played += 1


class Recorder(Node):
    def __init__(self, spec, session=None) -> None:
        super().__init__(spec, session)
        from perception.datasets.ros import BagWriter

        out = self.param("out", "", str)
        if not out.endswith((".mcap", ".db3")):
            raise InputError(f"{spec.fqn}: parameter 'out' must name a .mcap or .db3 bag, got {out!r}")
        pairs = self.topic_types()
        self.writer = BagWriter(out, format="mcap" if out.endswith(".mcap") else "db3", overwrite=True).open()
        self.count = 0
        for topic, msgtype in pairs:
            full = self.resolve(topic)
            self.create_subscription(topic, msgtype, lambda m, t=full: self._write(t, m))
            self.writer.add_topic(full, msgtype)  # keep the type it was published as

    def _write(self, topic: str, msg) -> None:
        self.writer.write(topic, msg, time.time_ns())
        self.count += 1

    def close(self) -> None:
        if getattr(self, "writer", None) is not None:
            self.writer.close()
            self.writer = None
            self.logger.info("recorded %d messages", self.count)
        super().close()
