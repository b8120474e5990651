"""hloc image-pair lists: one line ``name0 name1`` per pair, whitespace-separated, no header.

hloc writes them for matching (``pairs-db-covis20.txt``) and for retrieval (``pairs-query-netvlad10.txt``), and
the DenseVLAD top-10 lists of 7-Scenes that hloc, PixLoc and FaVoR localise with
(``7scenes_densevlad_retrieval_top_10/{scene}_top10.txt``) have the same form: each query's database images, best
first. Names are paths relative to the image folder, e.g. ``seq-03/frame-000000.color.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

from perception.datasets.common import require_file
from perception.errors import InputError
from perception.fileio import atomic_write_text

__all__ = ["read_pairs", "write_pairs"]

FORMAT = "hloc pairs"


def read_pairs(path: str | os.PathLike) -> dict[str, list[str]]:
    """``{name0: [name1, ...]}`` in file order (a repeated pair is kept once); ``#`` lines are skipped."""
    path = require_file(path, FORMAT, "lines 'query_name db_name', e.g. a DenseVLAD/NetVLAD retrieval list")
    out: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    for lineno, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise InputError(f"{FORMAT}: {path} line {lineno} has {len(parts)} fields; expected 'name0 name1' "
                             "(image names without spaces)")  # fmt: skip
        if (parts[0], parts[1]) not in seen:
            seen.add((parts[0], parts[1]))
            out.setdefault(parts[0], []).append(parts[1])
    if not out:
        raise InputError(f"{FORMAT}: {path} lists no pairs; expected lines 'name0 name1'")
    return out


def write_pairs(path: str | os.PathLike, pairs: dict[str, list[str]]) -> Path:
    """Write ``{name0: [name1, ...]}`` (atomic)."""
    lines = []
    for a, bs in pairs.items():
        for b in bs:
            if not a or not b or any(c.isspace() for c in a + b):
                raise InputError(f"{FORMAT} write_pairs({path}): names must be non-empty without whitespace, got "
                                 f"{a!r} {b!r}")  # fmt: skip
            lines.append(f"{a} {b}\n")
    return atomic_write_text(path, "".join(lines))
