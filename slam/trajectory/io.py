"""Trajectory files: TUM, KITTI, EuRoC ground-truth csv, and conversion to/from evo.

Formats
-------
TUM: one pose per line ``t tx ty tz qx qy qz qw`` (t in seconds); blank lines and ``#`` comments are
  skipped. Stamps are parsed from the decimal text exactly to the nanosecond and written with 9 decimals.
KITTI: 12 numbers per line, the 3x4 row-major ``[R | t]`` of T_world_cam. The format has no stamps: they
  come from KITTI's ``times.txt`` (one time in seconds per line) when ``stamps_path`` is given, else they
  are ``index * 0.1 s`` (KITTI's nominal 10 Hz). Rotations are projected to the nearest rotation matrix
  (files usually carry 6-9 digits).
EuRoC: ``#timestamp [ns], p_RS_R_x [m], p_RS_R_y [m], p_RS_R_z [m], q_RS_w [], q_RS_x [], q_RS_y [],
  q_RS_z []`` (note qw FIRST), optionally followed by velocity / bias columns, which are ignored on read.
  Only the 8 pose columns are written.

Writers are atomic: they write a temporary file in the target directory, fsync it and ``os.replace`` it
onto the target. Readers raise FileNotFoundError for a missing file and ValueError
(``"<file>:<line>: ..."``) for malformed lines, non-increasing stamps and files without any pose.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from perception.fileio import atomic_write_text
from perception.geometry import SE3
from slam.trajectory.trajectory import (
    Trajectory,
    first_nonfinite_row,
    format_ns,
    ns_to_seconds,
    project_to_rotations,
    seconds_to_ns,
)

logger = logging.getLogger(__name__)

KITTI_DEFAULT_PERIOD_NS = 100_000_000  # index * 0.1 s when no times.txt is given
EUROC_HEADER = "#timestamp [ns],p_RS_R_x [m],p_RS_R_y [m],p_RS_R_z [m],q_RS_w [],q_RS_x [],q_RS_y [],q_RS_z []"
_QUAT_NORM_WARN = 1e-3


# -------------------------------------------------------------------------------------- helpers
def _data_lines(path: Path, comment: str = "#") -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped line) for every non-blank, non-comment line."""
    if not path.exists():
        raise FileNotFoundError(f"trajectory file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{path}: expected a trajectory file, got a directory")
    with open(path, encoding="utf-8-sig") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if line and not line.startswith(comment):
                yield lineno, line


def _parse_seconds_ns(tok: str, where: str) -> int:
    """Decimal seconds text -> int ns, exact (rounded half-even below 1 ns)."""
    try:
        d = Decimal(tok)
    except InvalidOperation:
        raise ValueError(f"{where}: timestamp {tok!r} is not a number") from None
    if not d.is_finite():
        raise ValueError(f"{where}: timestamp {tok!r} is not finite")
    return int((d * 1_000_000_000).to_integral_value())


def _parse_int_ns(tok: str, where: str) -> int:
    try:
        return int(tok)
    except ValueError:
        pass
    try:
        d = Decimal(tok)
    except InvalidOperation:
        raise ValueError(f"{where}: timestamp {tok!r} is not an integer number of nanoseconds") from None
    if not d.is_finite() or d != d.to_integral_value():
        raise ValueError(f"{where}: timestamp {tok!r} is not an integer number of nanoseconds")
    return int(d)


def _parse_floats(tokens: Iterable[str], where: str, what: str) -> list[float]:
    out = []
    for tok in tokens:
        try:
            v = float(tok)
        except ValueError:
            raise ValueError(f"{where}: {what} value {tok!r} is not a number") from None
        if not np.isfinite(v):
            raise ValueError(f"{where}: {what} value {tok!r} is not finite")
        out.append(v)
    return out


def _check_increasing(stamps: list[int], linenos: list[int], path: Path) -> None:
    for k in range(1, len(stamps)):
        if stamps[k] <= stamps[k - 1]:
            raise ValueError(
                f"{path}:{linenos[k]}: timestamp {format_ns(stamps[k])} s is not after the previous one "
                f"({format_ns(stamps[k - 1])} s at line {linenos[k - 1]}); stamps must be strictly increasing"
            )


def _normalise_quats(q: np.ndarray, linenos: list[int], path: Path) -> np.ndarray:
    n = np.linalg.norm(q, axis=1)
    if (n < 1e-9).any():
        k = int(np.flatnonzero(n < 1e-9)[0])
        raise ValueError(f"{path}:{linenos[k]}: zero-norm quaternion")
    dev = np.abs(n - 1.0)
    if (dev > _QUAT_NORM_WARN).any():
        k = int(np.argmax(dev))
        logger.warning("%s:%d: quaternion norm %.6f differs from 1; normalising", path, linenos[k], n[k])
    return q / n[:, None]


def _fmt(v: float) -> str:
    return repr(float(v))  # shortest text that round-trips exactly


def _check_traj(traj: Trajectory) -> None:
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj: expected a slam.trajectory.Trajectory, got {type(traj).__name__}")


# -------------------------------------------------------------------------------------- TUM
def read_tum(path: str | os.PathLike, frame_id: str | None = None, child_frame_id: str | None = None) -> Trajectory:
    """Read a TUM file ``t tx ty tz qx qy qz qw`` (whitespace separated, ``#`` comments allowed)."""
    path = Path(path)
    stamps, vals, linenos = [], [], []
    for lineno, line in _data_lines(path):
        where = f"{path}:{lineno}"
        tok = line.split()
        if len(tok) != 8:
            raise ValueError(f"{where}: expected 8 values 't tx ty tz qx qy qz qw', got {len(tok)}")
        stamps.append(_parse_seconds_ns(tok[0], where))
        vals.append(_parse_floats(tok[1:], where, "pose"))
        linenos.append(lineno)
    if not stamps:
        raise ValueError(f"{path}: empty trajectory file (no pose lines)")
    _check_increasing(stamps, linenos, path)
    v = np.asarray(vals, dtype=np.float64)
    q = _normalise_quats(v[:, 3:7], linenos, path)
    poses = SE3.from_quat_t(q, v[:, 0:3])
    return Trajectory(np.asarray(stamps, dtype=np.int64), poses, frame_id, child_frame_id)


def write_tum(path: str | os.PathLike, traj: Trajectory) -> None:
    """Write ``t tx ty tz qx qy qz qw`` lines (t with 9 decimals, exact), single-space separated."""
    _check_traj(traj)
    q, t = traj.poses.as_quat_t()
    q, t = np.asarray(q), np.asarray(t)
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for k in range(len(traj)):
        lines.append(" ".join([format_ns(traj.stamps_ns[k]), *map(_fmt, t[k]), *map(_fmt, q[k])]))
    atomic_write_text(path, "\n".join(lines) + "\n")


# -------------------------------------------------------------------------------------- KITTI
def read_kitti(
    path: str | os.PathLike,
    stamps_path: str | os.PathLike | None = None,
    frame_id: str | None = None,
    child_frame_id: str | None = None,
) -> Trajectory:
    """Read a KITTI pose file (12 numbers per line, 3x4 row-major). Stamps from ``stamps_path`` (KITTI
    ``times.txt``, seconds) when given, else ``index * 0.1 s``."""
    path = Path(path)
    rows, linenos = [], []
    for lineno, line in _data_lines(path):
        where = f"{path}:{lineno}"
        tok = line.split()
        if len(tok) != 12:
            raise ValueError(f"{where}: expected 12 values (3x4 row-major pose), got {len(tok)}")
        rows.append(_parse_floats(tok, where, "pose"))
        linenos.append(lineno)
    if not rows:
        raise ValueError(f"{path}: empty trajectory file (no pose lines)")
    M = np.asarray(rows, dtype=np.float64).reshape(-1, 3, 4)
    R = project_to_rotations(M[:, :, :3], where=[f"{path}:{ln}: rotation" for ln in linenos])
    if stamps_path is None:
        stamps = np.arange(len(M), dtype=np.int64) * KITTI_DEFAULT_PERIOD_NS
    else:
        stamps_path = Path(stamps_path)
        st, st_lines = [], []
        for lineno, line in _data_lines(stamps_path):
            tok = line.split()
            where = f"{stamps_path}:{lineno}"
            if len(tok) != 1:
                raise ValueError(f"{where}: expected one time in seconds, got {len(tok)} values")
            st.append(_parse_seconds_ns(tok[0], where))
            st_lines.append(lineno)
        if not st:
            raise ValueError(f"{stamps_path}: empty times file")
        if len(st) != len(M):
            raise ValueError(f"{stamps_path} has {len(st)} stamps but {path} has {len(M)} poses")
        _check_increasing(st, st_lines, stamps_path)
        stamps = np.asarray(st, dtype=np.int64)
    return Trajectory(stamps, SE3(R, M[:, :, 3].copy()), frame_id, child_frame_id)


def write_kitti(path: str | os.PathLike, traj: Trajectory, stamps_path: str | os.PathLike | None = None) -> None:
    """Write the 3x4 row-major poses.

    Stamps go to ``stamps_path`` (seconds, 9 decimals) if given; otherwise they are lost."""
    _check_traj(traj)
    M = np.asarray(traj.poses.matrix())[:, :3, :].reshape(-1, 12)
    atomic_write_text(path, "".join(" ".join(map(_fmt, row)) + "\n" for row in M))
    if stamps_path is not None:
        atomic_write_text(stamps_path, "".join(format_ns(s) + "\n" for s in traj.stamps_ns))


# -------------------------------------------------------------------------------------- EuRoC
def read_euroc(path: str | os.PathLike, frame_id: str | None = None, child_frame_id: str | None = None) -> Trajectory:
    """Read an EuRoC ground-truth csv (``t_ns, px, py, pz, qw, qx, qy, qz[, extra columns ignored]``)."""
    path = Path(path)
    stamps, vals, linenos = [], [], []
    for lineno, line in _data_lines(path):
        where = f"{path}:{lineno}"
        tok = [s.strip() for s in line.split(",")]
        if tok and tok[-1] == "":
            tok = tok[:-1]
        if len(tok) < 8:
            raise ValueError(
                f"{where}: expected at least 8 comma-separated values 't_ns,px,py,pz,qw,qx,qy,qz', got {len(tok)}"
            )
        stamps.append(_parse_int_ns(tok[0], where))
        vals.append(_parse_floats(tok[1:8], where, "pose"))
        linenos.append(lineno)
    if not stamps:
        raise ValueError(f"{path}: empty trajectory file (no pose lines)")
    _check_increasing(stamps, linenos, path)
    v = np.asarray(vals, dtype=np.float64)
    q_wxyz = _normalise_quats(v[:, 3:7], linenos, path)
    poses = SE3.from_quat_t(q_wxyz[:, [1, 2, 3, 0]], v[:, 0:3])
    return Trajectory(np.asarray(stamps, dtype=np.int64), poses, frame_id, child_frame_id)


def write_euroc(path: str | os.PathLike, traj: Trajectory) -> None:
    """Write the EuRoC header and the 8 pose columns (t_ns, p xyz, q wxyz)."""
    _check_traj(traj)
    q, t = traj.poses.as_quat_t()
    q, t = np.asarray(q), np.asarray(t)
    lines = [EUROC_HEADER]
    for k in range(len(traj)):
        qk = q[k]
        lines.append(",".join([str(int(traj.stamps_ns[k])), *map(_fmt, t[k]), *map(_fmt, qk[[3, 0, 1, 2]])]))
    atomic_write_text(path, "\n".join(lines) + "\n")


# -------------------------------------------------------------------------------------- evo
def to_evo(traj: Trajectory):
    """Convert to ``evo.core.trajectory.PoseTrajectory3D`` (stamps in float seconds)."""
    from evo.core.trajectory import PoseTrajectory3D

    _check_traj(traj)
    q, t = traj.poses.as_quat_t()
    q = np.asarray(q)
    return PoseTrajectory3D(
        positions_xyz=np.array(t, dtype=np.float64),
        orientations_quat_wxyz=q[:, [3, 0, 1, 2]],
        timestamps=ns_to_seconds(traj.stamps_ns),
        meta={"frame_id": traj.frame_id, "child_frame_id": traj.child_frame_id},
    )


def from_evo(evo_traj, frame_id: str | None = None, child_frame_id: str | None = None) -> Trajectory:
    """Convert an evo PoseTrajectory3D (or a stamp-less PosePath3D: stamps ``index * 0.1 s``, as for
    KITTI)."""
    from evo.core.trajectory import PosePath3D

    if not isinstance(evo_traj, PosePath3D):
        raise ValueError(f"evo_traj: expected an evo PosePath3D/PoseTrajectory3D, got {type(evo_traj).__name__}")
    M = np.asarray(evo_traj.poses_se3, dtype=np.float64)
    bad = first_nonfinite_row(M)
    if bad is not None:
        raise ValueError(f"evo_traj: non-finite pose at index {bad}")
    R = project_to_rotations(M[:, :3, :3], what="evo_traj rotation")
    ts = getattr(evo_traj, "timestamps", None)
    if ts is None:
        stamps = np.arange(len(M), dtype=np.int64) * KITTI_DEFAULT_PERIOD_NS
    else:
        stamps = seconds_to_ns(np.asarray(ts, dtype=np.float64))
    meta = getattr(evo_traj, "meta", {}) or {}
    return Trajectory(
        stamps,
        SE3(R, M[:, :3, 3].copy()),
        frame_id if frame_id is not None else meta.get("frame_id"),
        child_frame_id if child_frame_id is not None else meta.get("child_frame_id"),
    )
