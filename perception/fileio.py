"""Atomic output helpers: a crash never leaves a half-written result that looks complete.

Files are written to a temporary sibling (``.name.partial-XXXX``), flushed and fsynced, then moved into place with
:func:`os.replace`, which is atomic on POSIX file systems. Directories (e.g. COLMAP models) are built in a temporary
sibling directory and swapped in the same way.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (best effort: not every file system supports it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it replaces ``path``, on error it is removed.

    The parent directory is created when missing. The file gets the usual permissions (0666 minus the umask).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` (same extension, for writers that pick the format from it, e.g. open3d or
    ezc3d); when the block ends without error the file written there replaces ``path``, otherwise it is removed."""
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{path.stem}.partial-{uuid.uuid4().hex[:12]}{path.suffix}"
    try:
        yield tmp
        if not tmp.is_file():
            raise OSError(f"atomic_path: nothing was written to {tmp} for {path}")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def json_text(obj: Any, indent: int | None = 2) -> str:
    """Standard JSON text: numpy scalars and arrays become numbers and lists, paths strings, and non-finite numbers
    (a failed run's median error, the AP of a class without ground truth) ``null``, since JSON has no NaN or
    Infinity and strict readers refuse them. What metrics files hold and what benchmarks print."""
    return json.dumps(_finite_or_none(obj), indent=indent, sort_keys=False, default=_json_default, allow_nan=False)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """:func:`json_text` of ``obj``, written atomically."""
    return atomic_write_text(path, json_text(obj, indent) + "\n")


def _finite_or_none(o: Any) -> Any:
    import numpy as np

    if isinstance(o, dict):
        return {k: _finite_or_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite_or_none(v) for v in o]
    if isinstance(o, np.ndarray):
        return _finite_or_none(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; on success it replaces ``path`` (an old one is removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        yield tmp
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp creates 0700; outputs get the usual permissions
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_yaml(path: str | os.PathLike, missing: str, label: str | None = None) -> Any:
    """Parse a YAML file; ``FileNotFoundError(missing)`` when it is absent, and a one-line ``InputError`` naming
    ``label`` (default: the path) and the line when it is not valid YAML."""
    import yaml

    from perception.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(missing)
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{label or path}: not valid YAML{at}") from None
