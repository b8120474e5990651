"""`sparsepipe launch FILE [name:=value ...]`: run a ROS 2 YAML launch file's nodes under the supervisor.

Every node is its own process, connected through a zenoh hub peer that listens on ``--listen`` (a free loopback
port by default; ``tcp/0.0.0.0:7447`` to accept the other robot's machine) and joins ``--connect`` endpoints (the
other machine's hub). ``--print`` resolves the file and prints the node list without starting anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from apps.config import CommonConfig, save_resolved_config


@dataclass
class LaunchConfig(CommonConfig):
    file: Annotated[Path, tyro.conf.Positional] = Path("launch/airground.yaml")
    """The launch file (ROS 2 YAML launch format)."""
    args: Annotated[tuple[str, ...], tyro.conf.Positional] = ()
    """Launch arguments as name:=value."""
    print: bool = False
    """Print the resolved nodes (namespace, name, executable, parameters, remaps) and exit."""
    listen: tuple[str, ...] = ()
    """zenoh endpoints the hub listens on (default: a free tcp/127.0.0.1 port)."""
    connect: tuple[str, ...] = ()
    """zenoh endpoints of other machines' hubs to join."""
    grace_s: float = 4.0
    """On SIGINT / SIGTERM, seconds the nodes get before they are killed."""
    out: Path = Path("out/launch")


def run(cfg: LaunchConfig) -> int:
    from apps.nodes.launch import load_launch, parse_overrides
    from apps.nodes.supervisor import Supervisor

    nodes = load_launch(cfg.file, parse_overrides(list(cfg.args)))
    if cfg.print:
        for n in nodes:
            extra = []
            if n.params:
                extra.append("params " + ", ".join(f"{k}={v}" for k, v in n.params.items()))
            if n.remaps:
                extra.append("remaps " + ", ".join(f"{a}->{b}" for a, b in n.remaps))
            flags = [f for f, on in (("respawn", n.respawn), ("required", n.required)) if on]
            print(f"{n.fqn:32s} {n.pkg}/{n.exec}" + (f" [{', '.join(flags)}]" if flags else "")
                  + ("".join(f"\n    {e}" for e in extra)))  # fmt: skip
        return 0
    save_resolved_config(cfg, "launch")
    return Supervisor(nodes, listen=list(cfg.listen) or None, connect=list(cfg.connect), grace_s=cfg.grace_s,
                      log_level=cfg.log_level).run()  # fmt: skip
