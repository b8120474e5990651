"""Entry point of one node process: ``python -m apps.nodes.run`` with the node's spec (JSON) in
``SPARSEPIPE_NODE_SPEC``; the supervisor starts one per launch entry.

``pkg: sparsepipe`` names a built-in node (:data:`NODES`); any other ``pkg`` is an importable Python module and
``exec`` a :class:`~apps.nodes.runtime.Node` subclass in it, so users add nodes without touching sparsepipe.
Exit status: 0 after a clean stop (signal, or the node finished); 2 when the node refuses its configuration at
start-up (a missing map, a wrong parameter: one line on stderr; the supervisor does not respawn it); 1 for a crash
or bad input met while running (one line on stderr; respawned when ``respawn`` is set).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys

from apps.nodes.launch import NodeSpec
from apps.nodes.runtime import ENV_SPEC, Node
from perception.errors import InputError

NODES: dict[str, str] = {
    "bag_player": "apps.nodes.bag_io:BagPlayer",
    "recorder": "apps.nodes.bag_io:Recorder",
    "uav_frontend": "apps.nodes.airground:UavFrontend",
    "ugv_frontend": "apps.nodes.airground:UgvFrontend",
    "relative_localizer": "apps.nodes.airground:RelativeLocalizer",
    "favor_relocalizer": "apps.nodes.reloc:FavorRelocalizer",
    "rerun_viz": "apps.nodes.viz:RerunViz",
}


def node_class(spec: NodeSpec) -> type[Node]:
    if spec.pkg == "sparsepipe":
        if spec.exec not in NODES:
            raise InputError(f"{spec.source}: sparsepipe has no node '{spec.exec}' (nodes: {', '.join(sorted(NODES))})")
        module, name = NODES[spec.exec].split(":")
    else:
        module, name = spec.pkg, spec.exec
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise InputError(f"{spec.source}: cannot load node {module}:{name} ({e})") from None
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise InputError(f"{spec.source}: {module}:{name} is not a Node subclass")
    return cls


def main() -> int:
    logging.basicConfig(level=os.environ.get("SPARSEPIPE_LOG_LEVEL", "INFO"), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
    raw = os.environ.get(ENV_SPEC)
    if not raw:
        print(f"apps.nodes.run: {ENV_SPEC} is not set; nodes are started by `sparsepipe launch`", file=sys.stderr)
        return 2
    try:
        spec = NodeSpec.from_dict(json.loads(raw))
        node = node_class(spec)(spec)
    except (InputError, FileNotFoundError) as e:  # its configuration: a restart would fail the same way
        _error(spec.fqn if "spec" in locals() else "node", e)
        return 2
    try:
        node.spin()
    except (InputError, FileNotFoundError) as e:  # something it received while running: a restart may recover
        _error(spec.fqn, e)
        return 1
    return 0


def _error(fqn: str, e: Exception) -> None:
    """``FQN: error: MESSAGE`` (first line; the node's name once, even when the message starts with it)."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    print(f"{fqn}: error: {msg.removeprefix(f'{fqn}: ')}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
