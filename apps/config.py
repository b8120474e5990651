"""Dataclass configs shared by every ``sparsepipe`` subcommand.

Each subcommand has one dataclass (subclass of :class:`CommonConfig`, or :class:`PipelineConfig` when it
visualises). Values come from, in increasing priority: the dataclass defaults, a ``--config FILE`` (YAML or JSON
mapping of field names to values, e.g. a ``config.yaml`` saved by an earlier run), and command-line flags.
The resolved config is saved as ``OUT/config.yaml``, which ``--config`` reads back unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import logging
import os
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from perception.errors import InputError
from perception.fileio import atomic_write_text

C = TypeVar("C")


@dataclass
class CommonConfig:
    out: Path = Path("out")
    """Output folder; the resolved config is saved there as config.yaml."""
    seed: int = 0
    """Random seed: the same seed gives the same outputs."""
    config: Path | None = None
    """YAML/JSON file of option values (e.g. an earlier run's config.yaml); command-line flags override it."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Logging verbosity."""


@dataclass
class PipelineConfig(CommonConfig):
    rerun: str = "save"
    """Rerun sink: 'save' (OUT/run.rrd), 'save:PATH', 'spawn', 'serve' (gRPC + web viewer on 127.0.0.1),
    'connect' / 'connect:URL', or 'off'."""


def _scan_config_flag(argv: list[str]) -> Path | None:
    for i, a in enumerate(argv):
        if a == "--config" and i + 1 < len(argv):
            return None if argv[i + 1] == "None" else Path(argv[i + 1])
        if a.startswith("--config="):
            v = a.split("=", 1)[1]
            return None if v == "None" else Path(v)
    return None


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML/JSON value to the annotated field type (Paths, tuples, nested dataclasses, optionals)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except (TypeError, ValueError) as e:
                errors.append(str(e))
        raise InputError(f"{where}: cannot read {value!r} as {tp}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise InputError(f"{where}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise InputError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise InputError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
        inner = args[0] if args else Any
        out = [_coerce(v, inner, where) for v in value]
        return tuple(out) if origin is tuple else out
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return _from_dict(tp, value, where)
    if tp is Path:
        return Path(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp[value] if isinstance(value, str) and value in tp.__members__ else tp(value)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    if tp is Any:
        return value
    raise InputError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _from_dict(cls: type[C], data: dict, where: str, base: C | None = None) -> C:
    """Values in ``data`` replace those of ``base`` (default ``cls()``); nested dataclasses merge field by field."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"{where}: unknown option(s) {unknown} for {cls.__name__}; valid: {sorted(names)}")
    base = cls() if base is None else base
    kwargs = {}
    for k, v in data.items():
        current = getattr(base, k)
        if dataclasses.is_dataclass(current) and isinstance(v, dict):
            kwargs[k] = _from_dict(type(current), v, f"{where}: {k}", base=current)
        else:
            kwargs[k] = _coerce(v, hints[k], f"{where}: {k}")
    return dataclasses.replace(base, **kwargs)


def load_config_file(cls: type[C], path: Path) -> C:
    """Read a YAML/JSON mapping of option values into ``cls`` (unknown keys are an error naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist; pass an existing YAML/JSON file to --config")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise InputError(f"{path}: not valid YAML/JSON{at}; fix the syntax or regenerate it") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of option names to values, got {type(data).__name__}")
    data.pop("config", None)
    return _from_dict(cls, data, str(path))


def parse_config(cls: type[C], argv: list[str], prog: str, description: str) -> C:
    """Defaults < ``--config FILE`` < flags; ``--help`` shows every option with its default."""
    import tyro

    default = cls()
    cfg_path = _scan_config_flag(argv)
    if cfg_path is not None and not any(a in ("-h", "--help") for a in argv):
        default = load_config_file(cls, cfg_path)
    return tyro.cli(cls, args=argv, default=default, prog=prog, description=description)


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, tuple | list):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


def config_to_dict(cfg: Any) -> dict:
    return _to_plain(cfg)


def save_resolved_config(cfg: Any, command: str, out_dir: Path | None = None) -> Path:
    """Write ``OUT/config.yaml`` (atomically): the resolved options, readable again with ``--config``."""
    out_dir = Path(out_dir if out_dir is not None else cfg.out)
    data = config_to_dict(cfg)
    data.pop("config", None)
    from importlib import metadata

    try:
        version = metadata.version("sparsepipe")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = "unknown"
    header = (
        f"# sparsepipe {command} — resolved configuration\n"
        f"# sparsepipe {version}, written {_dt.datetime.now(_dt.UTC).isoformat(timespec='seconds')}\n"
        f"# command line: {' '.join(sys.argv)}\n"
        f"# re-run with: sparsepipe {command} --config {out_dir / 'config.yaml'}\n"
    )
    path = out_dir / "config.yaml"
    atomic_write_text(path, header + yaml.safe_dump(data, sort_keys=False))
    return path


def setup_logging(level: str) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=getattr(logging, level),
        format="%(name)s: %(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("numexpr", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def dump_json(obj: Any) -> str:
    return json.dumps(_to_plain(obj), indent=2)
