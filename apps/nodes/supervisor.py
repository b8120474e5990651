"""The launch supervisor: one process per node, a zenoh hub, log prefixes, respawn, clean shutdown.

Each node runs as ``python -m apps.nodes.run`` in its own process group (so a signal to the group reaches anything
it started), with its spec in the environment and the hub's endpoint to connect to. Output lines are prefixed
with ``[/namespace/name]``. A node that exits is respawned after ``respawn_delay`` when ``respawn`` is set (at most
``max_respawns`` times), unless it exited with status 2: it refused its configuration at start-up (a missing map,
a wrong parameter), which restarting cannot fix; a ``required`` node that dies for good stops everything and the
launch exits non-zero.
SIGINT / SIGTERM: SIGTERM to every node, SIGKILL to what is left after ``grace_s``; nothing is left behind.
The launch ends when every node has ended (exit status 0 unless a required node failed).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from apps.nodes.launch import NodeSpec
from apps.nodes.runtime import ENV_CONNECT, ENV_SPEC, open_session

log = logging.getLogger(__name__)

BAD_INPUT = 2
"""Exit status of a node that refused its configuration at start-up (``apps.nodes.run``): never respawned."""


def free_tcp_endpoint() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp/127.0.0.1:{s.getsockname()[1]}"


@dataclass
class _Proc:
    spec: NodeSpec
    popen: subprocess.Popen | None = None
    starts: int = 0
    restart_at: float | None = None
    done: bool = False
    exit_codes: list[int] = field(default_factory=list)


class Supervisor:
    def __init__(self, nodes: list[NodeSpec], listen: list[str] | None = None, connect: list[str] | None = None,
                 grace_s: float = 4.0, max_respawns: int = 100, out=None, log_level: str = "INFO") -> None:  # fmt: skip
        self.nodes = nodes
        self.listen = list(listen) if listen else [free_tcp_endpoint()]
        self.connect = list(connect or [])
        self.grace_s, self.max_respawns = grace_s, max_respawns
        self.out = out or sys.stdout
        self.log_level = log_level
        self.procs = [_Proc(n) for n in nodes]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.failed: str | None = None
        self.hub = None

    # -- processes -------------------------------------------------------------------------------------------
    def _endpoint_for_nodes(self) -> str:
        ep = self.listen[0]
        return ep.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]")

    def _start(self, p: _Proc) -> None:
        env = dict(os.environ)
        env[ENV_SPEC] = json.dumps(p.spec.to_dict())
        env[ENV_CONNECT] = self._endpoint_for_nodes()
        env["SPARSEPIPE_LOG_LEVEL"] = self.log_level
        env["PYTHONUNBUFFERED"] = "1"
        p.popen = subprocess.Popen([sys.executable, "-m", "apps.nodes.run"], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True, text=True, bufsize=1)  # fmt: skip
        p.starts += 1
        p.restart_at = None
        threading.Thread(target=self._pump, args=(p.spec.fqn, p.popen), daemon=True).start()
        self._say(p.spec.fqn, f"started (pid {p.popen.pid}{', respawn #' + str(p.starts - 1) if p.starts > 1 else ''})")

    def _say(self, fqn: str, line: str) -> None:
        with self._lock:
            print(f"[{fqn}] {line}", file=self.out, flush=True)

    def _pump(self, fqn: str, popen: subprocess.Popen) -> None:
        for line in popen.stdout:
            self._say(fqn, line.rstrip("\n"))

    def _signal_group(self, popen: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill_node(self, fqn: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a running node (for tests and operators)."""
        for p in self.procs:
            if p.spec.fqn == fqn and p.popen is not None and p.popen.poll() is None:
                self._signal_group(p.popen, sig)
                return
        raise KeyError(f"no running node {fqn}")

    def pid_of(self, fqn: str) -> int | None:
        for p in self.procs:
            if p.spec.fqn == fqn and p.popen is not None and p.popen.poll() is None:
                return p.popen.pid
        return None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def _reap(self) -> None:
        now = time.monotonic()
        for p in self.procs:
            if p.done:
                continue
            if p.popen is not None and (code := p.popen.poll()) is not None:
                self._signal_group(p.popen, signal.SIGKILL)  # anything the node left in its group
                p.exit_codes.append(code)
                p.popen = None
                if (p.spec.respawn and code != BAD_INPUT and p.starts <= self.max_respawns
                        and not self._stop.is_set()):  # fmt: skip
                    p.restart_at = now + p.spec.respawn_delay
                    self._say(p.spec.fqn, f"exited with {code}; respawning in {p.spec.respawn_delay:g} s")
                else:
                    p.done = True
                    bad = p.spec.respawn and code == BAD_INPUT
                    why = " (refused its configuration: not respawned; fix it and relaunch)" if bad else ""
                    self._say(p.spec.fqn, f"exited with {code}{why}")
                    if p.spec.required and not self._stop.is_set():
                        self.failed = f"required node {p.spec.fqn} exited with {code}"
                        self._say(p.spec.fqn, "required node ended: stopping the launch")
                        self._stop.set()
            if p.restart_at is not None and now >= p.restart_at and not self._stop.is_set():
                self._start(p)

    def _shutdown_all(self) -> None:
        running = [p for p in self.procs if p.popen is not None and p.popen.poll() is None]
        for p in running:
            self._signal_group(p.popen, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for p in running:
            try:
                p.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._say(p.spec.fqn, f"did not stop within {self.grace_s:g} s: killed")
            self._signal_group(p.popen, signal.SIGKILL)
            p.popen.wait()

    def run(self, install_signal_handlers: bool = True) -> int:
        """Start everything and supervise until all nodes end, a required node dies, or a signal arrives."""
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self._stop.set())
        self.hub = open_session(self.connect, self.listen)
        try:
            for p in self.procs:
                self._start(p)
            while not self._stop.is_set():
                self._reap()
                if all(p.done for p in self.procs):
                    break
                time.sleep(0.05)
        finally:
            self._shutdown_all()
            self.hub.close()
        if self.failed:
            print(f"launch: {self.failed}", file=sys.stderr)
            return 1
        return 0
