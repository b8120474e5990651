"""Small nodes for the runtime / supervisor tests (loaded by module path, as users' own nodes are)."""

from __future__ import annotations

import os
import sys
import time

from apps.nodes.runtime import RAW, Node
from perception.errors import InputError


class Ticker(Node):
    """Publishes its pid and a counter as raw bytes at ``hz``; after ``crash_after`` ticks it crashes."""

    def __init__(self, spec, session=None) -> None:
        super().__init__(spec, session)
        self.pub = self.create_publisher("ticks", RAW)
        self.n = 0
        self.crash_after = self.param("crash_after", 0, int)
        self.create_timer(1.0 / self.param("hz", 20.0, float), self.tick)

    def tick(self) -> None:
        self.n += 1
        self.pub.publish(f"{os.getpid()} {self.n}".encode())
        if self.crash_after and self.n >= self.crash_after:
            raise RuntimeError("ticker crashed on purpose")


class Counter(Node):
    """Counts ``ticks`` and appends ``pid count`` lines to the file ``log``; ignores SIGTERM when ``stubborn``."""

    def __init__(self, spec, session=None) -> None:
        super().__init__(spec, session)
        self.path = self.param("log", "", str)
        self.create_subscription("ticks", RAW, self.on_tick)
        if self.param("stubborn", False, bool):
            import signal

            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def on_tick(self, data: bytes) -> None:
        with open(self.path, "a") as f:
            f.write(data.decode() + "\n")

    def spin(self) -> None:
        if self.param("stubborn", False, bool):
            while True:  # only SIGKILL ends it
                self.spin_once()
        super().spin()


class Quitter(Node):
    """Exits with ``code`` after ``after_s`` seconds."""

    def spin(self) -> None:
        time.sleep(self.param("after_s", 0.5, float))
        sys.exit(self.param("code", 3, int))


class Refuser(Node):
    """Refuses its configuration at start-up (as a node given a missing map does)."""

    def __init__(self, spec, session=None) -> None:
        raise InputError(f"{spec.fqn}: parameter 'map' names no file")


class BadMessage(Node):
    """Meets bad input while running (an undecodable message it cannot skip) after ``after_s`` seconds."""

    def spin(self) -> None:
        time.sleep(self.param("after_s", 0.1, float))
        raise InputError("a message it cannot use")
