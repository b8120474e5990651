"""Where a run's Rerun data goes: the ``--rerun SPEC`` option every CLI takes.

Spec strings (parsed by :func:`parse_rerun_spec`):

``save`` / ``save:PATH.rrd``
    Write an ``.rrd`` file (default ``OUT/run.rrd``; a relative PATH is relative to the working directory).
    The file is written atomically: data goes to ``PATH.partial`` in the same directory, which is renamed to
    ``PATH`` only when the recording is closed without error. After a crash or an exception inside
    :func:`recording` the ``.partial`` file is *kept* for inspection (``rerun PATH.partial`` opens it) and
    ``PATH`` is not touched, so a complete-looking ``.rrd`` always holds a complete run.
``spawn``
    Start the native viewer (the ``rerun`` binary installed with rerun-sdk) and stream to it.
``serve``
    Start a ``rerun --serve-web`` server process bound to 127.0.0.1 (gRPC proxy + web viewer, no browser
    opened) and stream to it. The in-process ``rr.serve_grpc`` / ``rr.serve_web_viewer`` of rerun-sdk 0.41
    have no bind-address option and listen on 0.0.0.0, hence the separate process, which the CLI's
    ``--bind 127.0.0.1`` supports. The server outlives the run so the data stays viewable; its URL and pid
    are logged (stop it with ``kill PID``, or ``close_recording(rec, stop_server=True)``).
``connect`` / ``connect:URL``
    Stream to a running viewer or server (default URL ``rerun+http://127.0.0.1:9876/proxy``).
``off``
    Log nowhere. :func:`open_recording` still returns a :class:`rerun.RecordingStream` (enabled, with no sink,
    so data is dropped at once and never buffered); the ``apps.viz.log`` functions see :func:`is_off` and
    skip their work. The log functions never accept ``None`` in place of a recording.

Nothing here blocks on a missing viewer: ``connect`` first checks that the port accepts a TCP connection,
``spawn`` checks for a display and the viewer binary; when the check fails one warning is logged and the run
falls back to saving ``OUT/run.rrd`` (:attr:`RerunSpec.path`). :func:`sink_of` tells what was used.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

import rerun as rr

from perception.errors import InputError

logger = logging.getLogger(__name__)

Mode = Literal["save", "spawn", "serve", "connect", "off"]
MODES: tuple[str, ...] = ("save", "spawn", "serve", "connect", "off")
DEFAULT_FILENAME = "run.rrd"
DEFAULT_CONNECT_URL = "rerun+http://127.0.0.1:9876/proxy"
DEFAULT_GRPC_PORT = 9876
DEFAULT_WEB_PORT = 9090
PARTIAL_SUFFIX = ".partial"
RERUN_HELP = (
    "where the Rerun visualisation goes: save[:PATH.rrd] (default OUT/run.rrd), spawn (native viewer), "
    "serve (web viewer on 127.0.0.1), connect[:URL] (default " + DEFAULT_CONNECT_URL + "), or off"
)

_URL_SCHEMES = {"rerun": 443, "rerun+https": 443, "rerun+http": 80}
_PORT_CHECK_TIMEOUT_S = 0.5
_SERVER_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RerunSpec:
    """A parsed ``--rerun`` spec.

    ``path`` is the ``.rrd`` file for ``save`` and the fallback file for ``spawn``/``serve``/``connect``
    (None for ``off``); ``url`` is the gRPC URL for ``connect`` (and, on an opened recording, the server's
    URL for ``spawn``/``serve``).
    """

    mode: Mode
    path: Path | None = None
    url: str | None = None


def parse_rerun_spec(spec: str, out_dir: Path) -> RerunSpec:
    """Parse a ``--rerun`` spec string (see the module docstring); bad specs raise ``ValueError``."""
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"--rerun: empty spec; expected one of {_forms()}")
    text = spec.strip()
    mode, sep, arg = text.partition(":")
    mode = mode.strip().lower()
    arg = arg.strip()
    out_dir = Path(out_dir)
    fallback = out_dir / DEFAULT_FILENAME
    if mode not in MODES:
        raise InputError(f"--rerun {spec!r}: unknown mode {mode!r}; expected one of {_forms()}")
    if mode == "save":
        if not sep:
            return RerunSpec("save", fallback)
        if not arg:
            raise InputError(f"--rerun {spec!r}: empty path after 'save:'; expected save:PATH.rrd")
        path = Path(arg).expanduser()
        if path.suffix != ".rrd":
            raise InputError(f"--rerun {spec!r}: the file must end in .rrd, got {path.name!r}")
        if path.is_dir():
            raise InputError(f"--rerun {spec!r}: {path} is a directory; expected save:PATH.rrd")
        return RerunSpec("save", path)
    if mode == "connect":
        if not sep:
            return RerunSpec("connect", fallback, DEFAULT_CONNECT_URL)
        if not arg:
            raise InputError(f"--rerun {spec!r}: empty URL after 'connect:'; e.g. connect:{DEFAULT_CONNECT_URL}")
        _split_url(arg, spec)  # validates
        return RerunSpec("connect", fallback, arg)
    if sep:
        raise InputError(f"--rerun {spec!r}: mode {mode!r} takes no argument; expected one of {_forms()}")
    if mode == "off":
        return RerunSpec("off")
    return RerunSpec(mode, fallback)  # spawn, serve


def _forms() -> str:
    return "save, save:PATH.rrd, spawn, serve, connect, connect:URL, off"


def _split_url(url: str, spec: str) -> tuple[str, int]:
    """Host and port of a Rerun gRPC URL (``rerun+http://HOST:PORT/proxy``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(f"--rerun {spec!r}: bad URL {url!r} ({exc})") from None
    if parts.scheme not in _URL_SCHEMES or not parts.hostname:
        raise InputError(
            f"--rerun {spec!r}: bad URL {url!r}; expected rerun+http://HOST:PORT/proxy "
            f"(scheme one of {sorted(_URL_SCHEMES)})"
        )
    if parts.path.rstrip("/") != "/proxy":
        raise InputError(f"--rerun {spec!r}: the URL path must be /proxy, got {parts.path or '(none)'!r}")
    return parts.hostname, port if port is not None else _URL_SCHEMES[parts.scheme]


def add_rerun_argument(parser: argparse.ArgumentParser, default: str = "save") -> None:
    """Add the standard ``--rerun SPEC`` option to an argparse parser (syntax checked at parse time)."""

    def check(value: str) -> str:
        try:
            parse_rerun_spec(value, Path("."))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    parser.add_argument("--rerun", default=default, metavar="SPEC", type=check, help=RERUN_HELP)


# ----------------------------------------------------------------------------------------------------
# Opening and closing recordings


@dataclass
class _SinkState:
    spec: RerunSpec  # what is actually used (after any fallback)
    partial: Path | None = None  # temporary file of a save sink
    server: subprocess.Popen | None = None  # `serve` server process
    web_url: str | None = None


_STATES: weakref.WeakKeyDictionary[rr.RecordingStream, _SinkState] = weakref.WeakKeyDictionary()
_OFF: weakref.WeakSet[rr.RecordingStream] = weakref.WeakSet()


def open_recording(
    app_id: str,
    spec: RerunSpec | str,
    blueprint: rr.blueprint.BlueprintLike | None = None,
    recording_id: str | None = None,
    *,
    out_dir: Path | str = ".",
) -> rr.RecordingStream:
    """Create an explicit (never the global) RecordingStream with the sink that ``spec`` asks for.

    ``spec`` may be a string, parsed with ``out_dir`` as OUT. Close it with :func:`close_recording` (or use
    :func:`recording`): a ``save`` sink only gets its final name on close.
    """
    if isinstance(spec, str):
        spec = parse_rerun_spec(spec, Path(out_dir))
    if not app_id:
        raise InputError("open_recording: app_id must be a non-empty string")
    rec = rr.RecordingStream(app_id, recording_id=recording_id, make_default=False, make_thread_default=False)
    if spec.mode == "off":
        rec.set_sinks()  # enabled but sink-less: data is dropped immediately, nothing buffered
        _OFF.add(rec)
        _STATES[rec] = _SinkState(spec)
        return rec
    state = None
    if spec.mode == "connect":
        state = _open_connect(rec, spec, blueprint)
    elif spec.mode == "spawn":
        state = _open_spawn(rec, spec, blueprint)
    elif spec.mode == "serve":
        state = _open_serve(rec, spec, blueprint)
    if state is None:  # save, or a fallback
        state = _open_save(rec, spec, blueprint)
    _STATES[rec] = state
    return rec


def _open_save(rec: rr.RecordingStream, spec: RerunSpec, blueprint) -> _SinkState:
    assert spec.path is not None
    path = Path(spec.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    rec.save(partial, default_blueprint=blueprint)
    return _SinkState(RerunSpec("save", path), partial=partial)


def _fallback(spec: RerunSpec, reason: str) -> None:
    logger.warning("--rerun %s: %s; saving to %s instead", spec.mode, reason, spec.path)


def _open_connect(rec: rr.RecordingStream, spec: RerunSpec, blueprint) -> _SinkState | None:
    url = spec.url or DEFAULT_CONNECT_URL
    host, port = _split_url(url, f"connect:{url}")
    if not port_open(host, port):
        _fallback(spec, f"no Rerun viewer/server accepts connections at {host}:{port}")
        return None
    rec.connect_grpc(url, default_blueprint=blueprint)
    logger.info("Rerun: streaming to %s", url)
    return _SinkState(replace(spec, url=url))


def _open_spawn(rec: rr.RecordingStream, spec: RerunSpec, blueprint) -> _SinkState | None:
    if not has_display():
        _fallback(spec, "no display (DISPLAY / WAYLAND_DISPLAY unset) for the native viewer")
        return None
    exe = viewer_executable()
    if exe is None:
        _fallback(spec, "the 'rerun' viewer binary was not found")
        return None
    port = DEFAULT_GRPC_PORT
    try:  # returns once the viewer listens (or gives up after a few seconds)
        rr.spawn(port=port, connect=False, executable_path=exe, recording=rec)
    except Exception as exc:  # noqa: BLE001 - any failure to start a viewer means: fall back
        _fallback(spec, f"starting the viewer failed ({exc})")
        return None
    url = f"rerun+http://127.0.0.1:{port}/proxy"
    if not port_open("127.0.0.1", port):
        _fallback(spec, "the spawned viewer does not accept connections")
        return None
    rec.connect_grpc(url, default_blueprint=blueprint)
    logger.info("Rerun: streaming to the native viewer at %s", url)
    return _SinkState(replace(spec, url=url))


def _open_serve(rec: rr.RecordingStream, spec: RerunSpec, blueprint) -> _SinkState | None:
    exe = viewer_executable()
    if exe is None:
        _fallback(spec, "the 'rerun' binary (needed to serve on 127.0.0.1) was not found")
        return None
    grpc_port = DEFAULT_GRPC_PORT if port_free(DEFAULT_GRPC_PORT) else free_port()
    web_port = DEFAULT_WEB_PORT if port_free(DEFAULT_WEB_PORT) else free_port()
    cmd = [exe, "--serve-web", "--bind", "127.0.0.1", "--port", str(grpc_port),
           "--web-viewer-port", str(web_port)]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # survives Ctrl-C and the end of the run, so the data stays viewable
        env={**os.environ, "RERUN_APP_ONLY": "true"},
    )
    deadline = time.monotonic() + _SERVER_START_TIMEOUT_S
    while not port_open("127.0.0.1", grpc_port, timeout=0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_process(proc)
            _fallback(spec, f"the Rerun server did not start (exit code {proc.returncode})")
            return None
        time.sleep(0.05)
    url = f"rerun+http://127.0.0.1:{grpc_port}/proxy"
    web_url = f"http://127.0.0.1:{web_port}/?url={quote(url, safe='')}"
    rec.connect_grpc(url, default_blueprint=blueprint)
    logger.info("Rerun: web viewer at %s (server pid %d)", web_url, proc.pid)
    return _SinkState(replace(spec, url=url), server=proc, web_url=web_url)


def close_recording(
    rec: rr.RecordingStream, *, ok: bool = True, stop_server: bool = False, flush_timeout_s: float = 10.0
) -> None:
    """Flush and disconnect ``rec``; a ``save`` sink's ``.partial`` file becomes ``PATH`` only when ``ok``.

    With ``ok=False`` the ``.partial`` file is kept (and ``PATH`` untouched). A ``serve`` server keeps
    running unless ``stop_server``. Closing twice is harmless.
    """
    state = _STATES.pop(rec, None)
    if rec in _OFF:
        _OFF.discard(rec)
        return
    if state is None:  # not opened here, or already closed
        return
    try:
        rec.flush(timeout_sec=flush_timeout_s)
    finally:
        rec.disconnect()
    if state.partial is not None and state.spec.path is not None:
        if ok:
            os.replace(state.partial, state.spec.path)
            logger.info("Rerun recording saved to %s", state.spec.path)
        else:
            logger.warning("Run failed: incomplete Rerun recording kept at %s", state.partial)
    if state.server is not None:
        if stop_server:
            _stop_process(state.server)
        elif state.server.poll() is None:
            logger.info(
                "Rerun server still running (pid %d): %s  -- stop it with `kill %d`",
                state.server.pid, state.web_url, state.server.pid,
            )  # fmt: skip


@contextmanager
def recording(
    app_id: str,
    spec: RerunSpec | str,
    blueprint: rr.blueprint.BlueprintLike | None = None,
    recording_id: str | None = None,
    *,
    out_dir: Path | str = ".",
    stop_server: bool = False,
) -> Iterator[rr.RecordingStream]:
    """``with recording(app_id, spec, blueprint) as rec:`` -- opens, and on exit flushes and closes.

    On an exception (including KeyboardInterrupt) a ``save`` sink keeps only ``PATH.partial``.
    """
    rec = open_recording(app_id, spec, blueprint, recording_id, out_dir=out_dir)
    try:
        yield rec
    except BaseException:
        close_recording(rec, ok=False, stop_server=stop_server)
        raise
    close_recording(rec, ok=True, stop_server=stop_server)


def sink_of(rec: rr.RecordingStream) -> RerunSpec | None:
    """The sink an open recording really uses (after any fallback); None once closed or if not opened here."""
    state = _STATES.get(rec)
    return None if state is None else state.spec


def server_of(rec: rr.RecordingStream) -> subprocess.Popen | None:
    """The ``serve`` server process of an open recording, if any."""
    state = _STATES.get(rec)
    return None if state is None else state.server


def is_off(rec: rr.RecordingStream) -> bool:
    """True for a recording opened with ``off`` (the log functions then do nothing)."""
    return rec in _OFF


# ----------------------------------------------------------------------------------------------------
# Small system helpers


def port_open(host: str, port: int, timeout: float = _PORT_CHECK_TIMEOUT_S) -> bool:
    """Whether ``host:port`` accepts a TCP connection within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP server could listen on ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def has_display() -> bool:
    """Whether a native window can be opened (on Linux/BSD: DISPLAY or WAYLAND_DISPLAY set)."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def viewer_executable() -> str | None:
    """Path of the ``rerun`` binary.

    The native binary shipped in the ``rerun_cli`` package comes first: the ``rerun`` script in the venv's
    bin is a Python wrapper that runs it as a child, so stopping the wrapper would orphan the server. Then
    ``rerun`` next to this Python, then on PATH.
    """
    suffix = ".exe" if sys.platform == "win32" else ""
    try:
        import rerun_cli

        pkg = Path(rerun_cli.__file__).parent
        for cand in (pkg / "Rerun.app" / "Contents" / "MacOS" / "Rerun", pkg / f"rerun{suffix}"):
            if cand.is_file() and os.access(cand, os.X_OK):
                return str(cand)
    except ImportError:
        pass
    beside = Path(sys.executable).parent / f"rerun{suffix}"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("rerun")


def _stop_process(proc: subprocess.Popen) -> None:
    """Stop a server started with ``start_new_session=True``: its whole process group (wrapper + binary)."""

    def signal_group(sig: int) -> None:
        try:
            if hasattr(os, "killpg"):
                os.killpg(proc.pid, sig)  # the pgid is the leader's pid (new session)
            else:
                proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass

    if proc.poll() is None:
        signal_group(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            signal_group(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
            proc.wait(timeout=5)
