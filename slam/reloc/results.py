"""hloc-style localization results: one line ``name qw qx qy qz tx ty tz`` per query, the pose world-to-camera.

This is the format hloc writes and its ``evaluate`` (and the 7-Scenes pseudo-ground-truth tools,
``visloc_pseudo_gt_limitations/evaluate_estimates.py``) read: the pseudo-ground-truth lines without the focal,
written and read by :mod:`perception.datasets.sevenscenes` (reading skips ``#`` comment lines; none are
written). Inside sparsepipe poses stay ``T_world_cam`` (camera-to-world)."""

from __future__ import annotations

import os
from pathlib import Path

from perception.datasets.sevenscenes import read_pgt, write_pgt
from perception.geometry import SE3

__all__ = ["read_results", "write_results"]


def write_results(path: str | os.PathLike, poses: dict[str, SE3]) -> Path:
    """``{name: T_world_cam}`` -> results file (atomic; no comment lines, which hloc's reader would not skip)."""
    return write_pgt(path, poses)


def read_results(path: str | os.PathLike) -> dict[str, SE3]:
    """``{name: T_world_cam}`` from a results file (empty when every query failed)."""
    return {name: T for name, (T, _) in read_pgt(path, allow_empty=True).items()}
