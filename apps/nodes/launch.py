"""ROS 2 YAML launch files (a subset) resolved into a list of node specs, without a ROS install.

Supported, as in ROS 2's YAML front end (``launch_yaml``)::

    launch:
    - arg: {name: robot, default: ugv1}             # overridable as `robot:=ugv2` on the command line
    - include:
        file: "$(dirname)/uav.yaml"
        arg: [{name: rate, value: "2.0"}]          # sets the included file's args
    - group:
      - push_ros_namespace: {namespace: "$(var robot)"}   # `push-ros-namespace` is accepted too
      - node:
          pkg: sparsepipe
          exec: relative_localizer
          name: localizer
          namespace: front                          # stacks under the pushed namespace
          respawn: "true"
          respawn_delay: 1.0
          required: "false"
          param: [{name: window, value: 10}]
          remap: [{from: keyframes, to: /uav/keyframes}]

Substitutions: ``$(var NAME)``, ``$(env NAME)`` / ``$(env NAME DEFAULT)``, ``$(dirname)`` (the launch file's
folder). A value that is exactly one substitution keeps the substituted string; params keep their YAML types
(``"true"`` / numbers written as strings stay strings, as in ROS 2, and nodes convert them). Groups scope the
namespace; args are global to a file and its includes receive only what ``arg`` passes (plus their defaults).
Every error is one :class:`InputError` line naming the file and the entry.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from perception.errors import InputError
from perception.fileio import read_yaml

SUBST = re.compile(r"\$\(([a-z_-]+)((?:\s+[^)\s]+)*)\s*\)")


@dataclass
class NodeSpec:
    pkg: str
    exec: str
    name: str
    namespace: str = "/"
    params: dict[str, Any] = field(default_factory=dict)
    remaps: list[tuple[str, str]] = field(default_factory=list)
    respawn: bool = False
    respawn_delay: float = 1.0
    required: bool = False
    source: str = ""
    """``file:index`` of the node entry, for messages."""

    @property
    def fqn(self) -> str:
        """Fully qualified node name, e.g. ``/uav/frontend``."""
        return join_ns(self.namespace, self.name)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["remaps"] = [list(r) for r in self.remaps]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NodeSpec:
        return cls(**{**d, "remaps": [tuple(r) for r in d.get("remaps", [])]})


def join_ns(*parts: str) -> str:
    """``join_ns("/uav", "front", "cam")`` -> ``/uav/front/cam``; an absolute part restarts the path."""
    out = ""
    for p in parts:
        p = str(p).strip()
        if not p:
            continue
        out = p if p.startswith("/") else f"{out.rstrip('/')}/{p}"
    out = "/" + "/".join(s for s in out.split("/") if s)
    return out


def _bool(v: Any, where: str) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no"):
        return False
    raise InputError(f"{where}: expected true/false, got {v!r}")


class _Ctx:
    def __init__(self, path: Path, args: dict[str, str], depth: int) -> None:
        self.path, self.args, self.depth = path, args, depth

    def subst(self, value: Any, where: str) -> Any:
        if not isinstance(value, str):
            return value

        def one(m: re.Match) -> str:
            kind, rest = m.group(1), m.group(2).split()
            if kind == "var":
                if len(rest) != 1:
                    raise InputError(f"{where}: $(var NAME) takes one name, got {m.group(0)!r}")
                if rest[0] not in self.args:
                    raise InputError(f"{where}: $(var {rest[0]}) is not a declared arg (declare it with "
                                     f"`- arg: {{name: {rest[0]}}}` or pass {rest[0]}:=VALUE)")  # fmt: skip
                return self.args[rest[0]]
            if kind == "env":
                if not rest or len(rest) > 2:
                    raise InputError(f"{where}: $(env NAME [DEFAULT]) expected, got {m.group(0)!r}")
                if rest[0] in os.environ:
                    return os.environ[rest[0]]
                if len(rest) == 2:
                    return rest[1]
                raise InputError(f"{where}: environment variable {rest[0]} is not set (and no default given)")
            if kind == "dirname":
                return str(self.path.parent)
            raise InputError(f"{where}: unsupported substitution $({kind} ...); use var, env or dirname")

        return SUBST.sub(one, value)


def _items(body: Any, where: str) -> list:
    if not isinstance(body, list):
        raise InputError(f"{where}: expected a list of entries, got {type(body).__name__}")
    return body


def _mapping(v: Any, where: str) -> dict:
    if not isinstance(v, dict):
        raise InputError(f"{where}: expected a mapping, got {type(v).__name__}")
    return v


def _node(ctx: _Ctx, body: dict, ns: str, where: str) -> NodeSpec:
    known = {"pkg", "exec", "name", "namespace", "param", "remap", "respawn", "respawn_delay", "required", "output"}
    unknown = set(body) - known
    if unknown:
        raise InputError(f"{where}: unknown node key(s) {sorted(unknown)} (known: {sorted(known)})")
    for k in ("pkg", "exec"):
        if k not in body:
            raise InputError(f"{where}: node needs '{k}'")
    s = lambda v, w=where: ctx.subst(v, w)  # noqa: E731
    params: dict[str, Any] = {}
    for i, p in enumerate(_items(body.get("param", []), f"{where}.param")):
        p = _mapping(p, f"{where}.param[{i}]")
        if "name" not in p or "value" not in p:
            raise InputError(f"{where}.param[{i}]: needs 'name' and 'value'")
        params[str(s(p["name"]))] = s(p["value"])
    remaps = []
    for i, r in enumerate(_items(body.get("remap", []), f"{where}.remap")):
        r = _mapping(r, f"{where}.remap[{i}]")
        if "from" not in r or "to" not in r:
            raise InputError(f"{where}.remap[{i}]: needs 'from' and 'to'")
        remaps.append((str(s(r["from"])), str(s(r["to"]))))
    name = str(s(body.get("name", body["exec"])))
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise InputError(f"{where}: node name {name!r} must be letters, digits and underscores")
    try:
        delay = float(s(body.get("respawn_delay", 1.0)))
    except (TypeError, ValueError):
        raise InputError(f"{where}: respawn_delay must be a number of seconds") from None
    return NodeSpec(
        pkg=str(s(body["pkg"])), exec=str(s(body["exec"])), name=name,
        namespace=join_ns(ns, str(s(body.get("namespace", "")))), params=params, remaps=remaps,
        respawn=_bool(s(body.get("respawn", False)), f"{where}.respawn"), respawn_delay=delay,
        required=_bool(s(body.get("required", False)), f"{where}.required"),
    )  # fmt: skip


def _walk(ctx: _Ctx, entries: list, ns: str, where: str, out: list[NodeSpec]) -> str:
    """Process a list of entries; returns the namespace in force at its end (push_ros_namespace is scoped by the
    enclosing group)."""
    for i, entry in enumerate(entries):
        w = f"{where}[{i}]"
        entry = _mapping(entry, w)
        if len(entry) != 1:
            raise InputError(f"{w}: each entry has exactly one key (arg, node, group, include, "
                             f"push_ros_namespace), got {sorted(entry)}")  # fmt: skip
        (kind, body), = entry.items()
        if kind == "arg":
            body = _mapping(body, w)
            if "name" not in body:
                raise InputError(f"{w}: arg needs a 'name'")
            name = str(body["name"])
            if name not in ctx.args:
                if "default" not in body:
                    raise InputError(f"{w}: arg '{name}' has no default; pass {name}:=VALUE")
                ctx.args[name] = str(ctx.subst(body["default"], w))
        elif kind == "node":
            node = _node(ctx, _mapping(body, w), ns, w)
            node.source = f"{ctx.path.name}:{w}"
            out.append(node)
        elif kind in ("push_ros_namespace", "push-ros-namespace"):
            body = _mapping(body, w)
            if "namespace" not in body:
                raise InputError(f"{w}: {kind} needs a 'namespace'")
            ns = join_ns(ns, str(ctx.subst(body["namespace"], w)))
        elif kind == "group":
            _walk(ctx, _items(body, w), ns, f"{w}.group", out)
        elif kind == "include":
            body = _mapping(body, w)
            if "file" not in body:
                raise InputError(f"{w}: include needs a 'file'")
            f = Path(str(ctx.subst(body["file"], w)))
            if not f.is_absolute():
                f = ctx.path.parent / f
            passed = {}
            for j, a in enumerate(_items(body.get("arg", []), f"{w}.arg")):
                a = _mapping(a, f"{w}.arg[{j}]")
                if "name" not in a or "value" not in a:
                    raise InputError(f"{w}.arg[{j}]: needs 'name' and 'value'")
                passed[str(a["name"])] = str(ctx.subst(a["value"], w))
            if ctx.depth >= 16:
                raise InputError(f"{w}: includes nested more than 16 deep (an include cycle?)")
            _load(f, passed, ns, ctx.depth + 1, out)
        else:
            raise InputError(f"{w}: unknown entry '{kind}' (supported: arg, node, group, include, "
                             "push_ros_namespace)")  # fmt: skip
    return ns


def _load(path: Path, args: dict[str, str], ns: str, depth: int, out: list[NodeSpec]) -> None:
    doc = read_yaml(path, f"launch file {path} does not exist")
    if not isinstance(doc, dict) or "launch" not in doc:
        raise InputError(f"{path}: expected a top-level 'launch:' list (ROS 2 YAML launch format)")
    ctx = _Ctx(path.resolve(), dict(args), depth)
    try:
        _walk(ctx, _items(doc["launch"], "launch"), ns, "launch", out)
    except _FileError:
        raise
    except InputError as e:  # name the file once, innermost include first
        raise _FileError(f"{path}: {e}") from None


class _FileError(InputError):
    """An error already prefixed with the launch file it happened in."""


def load_launch(path: str | os.PathLike, overrides: dict[str, str] | None = None) -> list[NodeSpec]:
    """Resolve a launch file (and its includes) into node specs; ``overrides`` are ``name:=value`` args."""
    out: list[NodeSpec] = []
    _load(Path(path), dict(overrides or {}), "/", 0, out)
    seen: dict[str, str] = {}
    for n in out:
        if n.fqn in seen:
            raise InputError(f"{path}: two nodes named {n.fqn} ({seen[n.fqn]} and {n.source}); give one a "
                             "different name or namespace")  # fmt: skip
        seen[n.fqn] = n.source
    return out


def parse_overrides(tokens: list[str]) -> dict[str, str]:
    """``["robot:=ugv2", "rate:=2"]`` -> ``{"robot": "ugv2", "rate": "2"}``."""
    out = {}
    for t in tokens:
        if ":=" not in t:
            raise InputError(f"launch argument {t!r}: expected NAME:=VALUE")
        k, v = t.split(":=", 1)
        if not k:
            raise InputError(f"launch argument {t!r}: empty name")
        out[k] = v
    return out
