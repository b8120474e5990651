"""hloc-style localization results: one line ``name qw qx qy qz tx ty tz`` per query, the pose world-to-camera.

This is the format hloc writes and its ``evaluate`` (and the 7-Scenes pseudo-ground-truth tools) read; lines
starting with ``#`` are comments. Inside sparsepipe poses stay ``T_world_cam`` (camera-to-world)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from perception.errors import InputError
from perception.fileio import atomic_write_text
from perception.geometry import SE3

__all__ = ["read_results", "write_results"]


def write_results(path: str | os.PathLike, poses: dict[str, SE3], header: str = "") -> Path:
    lines = [f"# {h}" for h in header.splitlines()] if header else []
    for name, T in poses.items():
        q, t = T.inverse().as_quat_t()  # q is (x, y, z, w)
        lines.append(f"{name} {q[3]:.9f} {q[0]:.9f} {q[1]:.9f} {q[2]:.9f} {t[0]:.9f} {t[1]:.9f} {t[2]:.9f}")
    return atomic_write_text(path, "\n".join(lines) + "\n")


def read_results(path: str | os.PathLike) -> dict[str, SE3]:
    """``{name: T_world_cam}`` from a results file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist")
    out: dict[str, SE3] = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        try:
            if len(parts) != 8:
                raise ValueError(f"{len(parts)} fields")
            v = np.array([float(x) for x in parts[1:]])
            if not np.all(np.isfinite(v)) or abs(np.linalg.norm(v[:4]) - 1.0) > 1e-3:
                raise ValueError("non-finite values or a non-unit quaternion")
        except ValueError as e:
            raise InputError(f"{path} line {lineno}: expected 'name qw qx qy qz tx ty tz' ({e})") from None
        q = np.r_[v[1:4], v[0]]
        out[parts[0]] = SE3.from_quat_t(q / np.linalg.norm(q), v[4:]).inverse()
    return out
