"""The launch supervisor: respawn, required nodes, SIGINT with no orphans, and `sparsepipe launch` itself."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from apps.nodes.launch import load_launch
from apps.nodes.supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); read its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _write(tmp: Path, text: str) -> Path:
    f = tmp / "test.yaml"
    f.write_text(text)
    return f


def test_crashing_node_is_respawned_and_others_keep_running(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    log = tmp_path / "ticks.txt"
    f = _write(tmp_path, f"""launch:
- node: {{pkg: tests.nodes.helpers, exec: Ticker, name: ticker, respawn: true, respawn_delay: 0.2,
         param: [{{name: crash_after, value: 8}}, {{name: hz, value: 20}}]}}
- node: {{pkg: tests.nodes.helpers, exec: Counter, name: counter, param: [{{name: log, value: "{log}"}}]}}
""")
    out = io.StringIO()
    sup = Supervisor(load_launch(f), out=out, grace_s=2.0)
    th = threading.Thread(target=sup.run, kwargs={"install_signal_handlers": False}, daemon=True)
    th.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        pids = {line.split()[0] for line in log.read_text().splitlines()} if log.exists() else set()
        if len(pids) >= 2:
            break
        time.sleep(0.2)
    counter_pid = sup.pid_of("/counter")
    sup.stop()
    th.join(10)
    assert not th.is_alive()
    assert len(pids) >= 2, out.getvalue()  # ticks from a second ticker process after the crash
    text = out.getvalue()
    assert "[/ticker] exited with 1; respawning in 0.2 s" in text and "respawn #1" in text
    assert "ticker crashed on purpose" in text  # the node's own output, prefixed
    assert counter_pid is not None and text.count("[/counter] started") == 1  # the counter never restarted
    assert all(not _alive(p.popen.pid) for p in sup.procs if p.popen is not None)


def test_required_node_ending_stops_the_launch_non_zero(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    f = _write(tmp_path, """launch:
- node: {pkg: tests.nodes.helpers, exec: Quitter, name: q, required: true, param: [{name: code, value: 3}]}
- node: {pkg: tests.nodes.helpers, exec: Ticker, name: t}
- node: {pkg: nosuch.module, exec: Node, name: broken}
""")
    out = io.StringIO()
    t0 = time.monotonic()
    assert Supervisor(load_launch(f), out=out, grace_s=2.0).run(install_signal_handlers=False) == 1
    assert time.monotonic() - t0 < 15
    text = out.getvalue()
    assert "[/q] exited with 3" in text and "required node ended: stopping the launch" in text
    assert "[/broken] /broken: error: test.yaml:launch[2]: cannot load node nosuch.module:Node" in text
    assert "[/broken] exited with 2" in text


def test_node_refusing_its_configuration_is_not_respawned(tmp_path: Path, monkeypatch) -> None:
    """Exit status 2 is a node refusing its configuration at start-up (a missing map, a wrong parameter):
    restarting cannot fix it. Bad input met while running exits 1 and is respawned like a crash."""
    monkeypatch.chdir(ROOT)
    f = _write(tmp_path, """launch:
- node: {pkg: tests.nodes.helpers, exec: Refuser, name: q, respawn: true, respawn_delay: 0.1}
- node: {pkg: tests.nodes.helpers, exec: BadMessage, name: b, respawn: true, respawn_delay: 0.1}
""")
    out = io.StringIO()
    sup = Supervisor(load_launch(f), out=out, grace_s=2.0, max_respawns=2)
    assert sup.run(install_signal_handlers=False) == 0
    text = out.getvalue()
    assert "[/q] /q: error: parameter 'map' names no file" in text
    assert "[/q] exited with 2 (refused its configuration: not respawned; fix it and relaunch)" in text
    assert text.count("[/q] started") == 1
    assert "[/b] /b: error: a message it cannot use" in text and "[/b] exited with 1; respawning" in text
    assert text.count("[/b] started") == 3  # the first start and max_respawns restarts


def test_sigint_stops_everything_within_5s_without_orphans(tmp_path: Path) -> None:
    log = tmp_path / "ticks.txt"
    f = _write(tmp_path, f"""launch:
- node: {{pkg: tests.nodes.helpers, exec: Ticker, name: ticker}}
- node: {{pkg: tests.nodes.helpers, exec: Counter, name: stubborn,
         param: [{{name: log, value: "{log}"}}, {{name: stubborn, value: "true"}}]}}
""")
    p = subprocess.Popen([sys.executable, "-m", "apps.cli", "launch", str(f), "--grace-s", "1.5", "--out",
                          str(tmp_path / "out")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)  # fmt: skip
    pids, lines = [], []
    t0 = time.monotonic()
    while len(pids) < 2 and time.monotonic() - t0 < 30:
        line = p.stdout.readline()
        lines.append(line)
        if "started (pid" in line:
            pids.append(int(line.split("pid ")[1].split(")")[0].split(",")[0]))
    while not (log.exists() and log.read_text()) and time.monotonic() - t0 < 30:
        time.sleep(0.1)
    assert log.read_text(), "".join(lines)  # the nodes talk to each other
    t1 = time.monotonic()
    p.send_signal(signal.SIGINT)
    rest, _ = p.communicate(timeout=10)
    assert time.monotonic() - t1 < 5.0
    assert p.returncode == 0, rest
    assert "did not stop within 1.5 s: killed" in rest  # the one ignoring SIGTERM was killed
    assert pids and not any(_alive(pid) for pid in pids)
    assert (tmp_path / "out" / "config.yaml").is_file()


@pytest.mark.parametrize("args, message", [(["nope.yaml"], "launch file nope.yaml does not exist"),
                                           (["launch/x.yaml", "robot=1"], "expected NAME:=VALUE")])  # fmt: skip
def test_launch_cli_errors_are_one_line(tmp_path: Path, capsys, args, message) -> None:
    from apps.cli import main

    assert main(["launch", *args, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
