"""Timestamped trajectories: interpolation with extrinsics and time offsets, TUM/KITTI/EuRoC files, evo."""

from slam.trajectory.io import (
    from_evo,
    read_euroc,
    read_kitti,
    read_tum,
    to_evo,
    write_euroc,
    write_kitti,
    write_tum,
)
from slam.trajectory.trajectory import (
    DEFAULT_MAX_GAP_NS,
    Trajectory,
    format_ns,
    ns_to_seconds,
    seconds_to_ns,
)

__all__ = [
    "DEFAULT_MAX_GAP_NS",
    "Trajectory",
    "format_ns",
    "from_evo",
    "ns_to_seconds",
    "read_euroc",
    "read_kitti",
    "read_tum",
    "seconds_to_ns",
    "to_evo",
    "write_euroc",
    "write_kitti",
    "write_tum",
]
