"""TUM RGB-D benchmark: reader and writer for a sequence folder.

Layout (``root`` is one sequence, e.g. ``rgbd_dataset_freiburg1_xyz``)::

    rgb.txt           "timestamp filename" lines (filename relative to root, e.g. rgb/1305031102.175304.png)
    depth.txt         the same for the depth maps (depth/<stamp>.png)
    groundtruth.txt   "timestamp tx ty tz qx qy qz qw": colour-camera pose in the mocap world (T_world_cam)
    rgb/*.png         640x480 8-bit RGB
    depth/*.png       16-bit depth, value = metres * 5000 (0 = no measurement)

Lines starting with ``#`` are comments. Timestamps are decimal seconds in the files and int64 nanoseconds inside:
they are parsed digit by digit (:func:`parse_stamp_ns`), so ``1305031102.175304`` is exactly
``1305031102175304000`` ns, with no float rounding. Digits beyond nanoseconds are rounded half to even.

Association follows TUM's ``associate.py``: all pairs closer than ``max_dt`` (strictly) are sorted by time
difference and taken greedily, each stamp at most once. Ground truth is either associated the same way (nearest,
``pose="nearest"``) or interpolated at the colour stamp (``pose="interpolate"``: rotation slerp + linear
translation between the two bracketing samples, refused across gaps longer than ``max_gap``).

Depth is returned in metres (float32); pixels without a measurement get ``invalid`` (default 0.0; NaN on request).
The depth maps of the real data are registered to the colour camera by the OpenNI driver, so both use the colour
intrinsics.

Intrinsics (:data:`CAMERAS`) are the colour-camera values from the TUM page "File Formats" ->
"Intrinsic Camera Calibration of the Kinect" (https://cvg.cit.tum.de/data/datasets/rgbd-dataset/file_formats):
freiburg1 and freiburg2 with their 5 OpenCV distortion coefficients (k1 k2 p1 p2 k3), freiburg3 without distortion
(those images are already undistorted), and the ROS default 525 / 319.5 / 239.5 that TUM recommends when the
pre-registered depth is used unrectified. :func:`camera_for_sequence` picks one from the folder name. TUM uses the
OpenCV/ROS calibration, so the principal points are in the pixel-centre convention as they are.
"""

from __future__ import annotations

import decimal
import logging
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from perception.camera import CameraModel, OpenCVCamera, PinholeCamera
from perception.datasets.common import read_png16, read_rgb, require_dir, require_file, write_png16, write_rgb
from perception.errors import InputError
from perception.fileio import atomic_write_text
from perception.geometry import SE3, interpolate_decoupled

logger = logging.getLogger(__name__)

__all__ = [
    "CAMERAS",
    "DATASET",
    "DEPTH_SCALE",
    "TumFrame",
    "TumRGBD",
    "TumRGBDWriter",
    "associate",
    "camera_for_sequence",
    "depth_m_to_png",
    "format_stamp_ns",
    "interpolate_poses",
    "parse_stamp_ns",
    "read_file_list",
    "read_groundtruth",
    "write_file_list",
    "write_groundtruth",
]

DATASET = "TUM RGB-D"
DEPTH_SCALE = 5000.0
"""Depth PNG value per metre."""

CAMERAS: dict[str, CameraModel] = {
    "freiburg1": OpenCVCamera(640, 480, 517.3, 516.5, 318.6, 255.3, 0.2624, -0.9531, -0.0054, 0.0026, 1.1633),
    "freiburg2": OpenCVCamera(640, 480, 520.9, 521.0, 325.1, 249.7, 0.2312, -0.7849, -0.0033, -0.0001, 0.9172),
    "freiburg3": PinholeCamera(640, 480, 535.4, 539.2, 320.1, 247.6),
    "ros_default": PinholeCamera(640, 480, 525.0, 525.0, 319.5, 239.5),
}
"""Colour intrinsics from the TUM "File Formats" page (see the module docstring)."""

_NS_PER_S = 10**9
_GT_COLUMNS = "timestamp tx ty tz qx qy qz qw"
_HEADERS = {
    "rgb": "# color images\n# timestamp filename\n",
    "depth": "# depth maps\n# timestamp filename\n",
    "groundtruth": f"# ground truth trajectory\n# {_GT_COLUMNS}\n",
}


def camera_for_sequence(name: str) -> CameraModel:
    """Default colour camera for a sequence folder name (``...freiburgN...``); the ROS default otherwise."""
    m = re.search(r"freiburg([123])", str(name))
    if m is None:
        logger.info("TUM RGB-D: %r names no freiburg1/2/3 sensor; using the ROS default intrinsics", name)
        return CAMERAS["ros_default"]
    return CAMERAS[f"freiburg{m.group(1)}"]


# ----------------------------------------------------------------------------------------------- timestamps
def parse_stamp_ns(text: str) -> int:
    """Decimal seconds (``"1305031102.175304"``) -> int nanoseconds, exactly (no float rounding)."""
    try:
        d = decimal.Decimal(text.strip())
    except decimal.InvalidOperation:
        raise InputError(f"timestamp {text!r} is not a decimal number of seconds") from None
    if not d.is_finite():
        raise InputError(f"timestamp {text!r} is not finite")
    return int((d * _NS_PER_S).to_integral_value(rounding=decimal.ROUND_HALF_EVEN))


def format_stamp_ns(ns: int, min_decimals: int = 6) -> str:
    """int nanoseconds -> decimal seconds with at least ``min_decimals`` digits and no loss (inverse of parse)."""
    ns = int(ns)
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    sec, frac = divmod(ns, _NS_PER_S)
    digits = f"{frac:09d}".rstrip("0").ljust(min_decimals, "0")
    return f"{sign}{sec}.{digits}" if digits else f"{sign}{sec}"


def _seconds_to_ns(s: float, name: str) -> int:
    if not (np.isfinite(s) and s >= 0):
        raise InputError(f"{name} must be a finite number of seconds >= 0, got {s}")
    return int(round(s * _NS_PER_S))


# ----------------------------------------------------------------------------------------------- text files
def _data_lines(path: Path) -> list[tuple[int, list[str]]]:
    out = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append((lineno, line.split()))
    return out


def _stamp(tok: str, path: Path, lineno: int) -> int:
    try:
        return parse_stamp_ns(tok)
    except InputError as e:
        raise InputError(f"{DATASET}: {path} line {lineno}: {e}") from None


def _sorted_unique(stamps: np.ndarray, path: Path) -> np.ndarray:
    """Order that sorts ``stamps``; duplicate stamps are refused."""
    order = np.argsort(stamps, kind="stable")
    s = stamps[order]
    dup = np.flatnonzero(s[1:] == s[:-1])
    if dup.size:
        raise InputError(f"{DATASET}: {path} lists timestamp {format_stamp_ns(s[dup[0]])} twice; stamps must be unique")
    return order


def read_file_list(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """An ``rgb.txt`` / ``depth.txt``: (int64 stamps in ns (N,), filenames), sorted by time."""
    path = require_file(path, DATASET, "lines 'timestamp filename'")
    stamps, names = [], []
    for lineno, tok in _data_lines(path):
        if len(tok) != 2:
            raise InputError(f"{DATASET}: {path} line {lineno} has {len(tok)} columns; expected 2 (timestamp filename)")
        stamps.append(_stamp(tok[0], path, lineno))
        names.append(tok[1])
    t = np.array(stamps, dtype=np.int64)
    order = _sorted_unique(t, path)
    return t[order], [names[i] for i in order]


def read_groundtruth(path: str | os.PathLike) -> tuple[np.ndarray, SE3]:
    """A ``groundtruth.txt`` (TUM trajectory): (int64 stamps in ns (N,), T_world_cam SE3 (N,)), sorted by time."""
    path = require_file(path, DATASET, f"lines '{_GT_COLUMNS}'")
    stamps, vals = [], []
    for lineno, tok in _data_lines(path):
        if len(tok) != 8:
            raise InputError(f"{DATASET}: {path} line {lineno} has {len(tok)} columns; expected 8 ({_GT_COLUMNS})")
        stamps.append(_stamp(tok[0], path, lineno))
        try:
            v = [float(x) for x in tok[1:]]
        except ValueError:
            raise InputError(f"{DATASET}: {path} line {lineno} has a non-numeric value: {' '.join(tok)}") from None
        if not np.all(np.isfinite(v)):
            raise InputError(f"{DATASET}: {path} line {lineno} contains NaN/inf: {' '.join(tok)}")
        if abs(np.linalg.norm(v[3:]) - 1.0) > 1e-2:
            raise InputError(
                f"{DATASET}: {path} line {lineno}: quaternion (qx qy qz qw) has norm {np.linalg.norm(v[3:]):.4g}; "
                "expected a unit quaternion"
            )
        vals.append(v)
    if not vals:
        raise InputError(f"{DATASET}: {path} holds no poses; expected lines '{_GT_COLUMNS}'")
    t = np.array(stamps, dtype=np.int64)
    v = np.array(vals, dtype=np.float64)
    order = _sorted_unique(t, path)
    return t[order], SE3.from_quat_t(v[order, 3:], v[order, :3])


def write_file_list(path: str | os.PathLike, stamps_ns: Any, filenames: list[str], kind: str = "rgb") -> Path:
    """Write an ``rgb.txt`` (``kind="rgb"``) or ``depth.txt`` (``kind="depth"``), atomically."""
    t = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
    if len(filenames) != t.size:
        raise InputError(f"write_file_list({path}): {t.size} stamps but {len(filenames)} filenames")
    if any(not f or any(c.isspace() for c in f) for f in filenames):
        raise InputError(f"write_file_list({path}): filenames must be non-empty and contain no whitespace")
    header = _HEADERS["depth" if kind == "depth" else "rgb"]
    body = "".join(f"{format_stamp_ns(s)} {f}\n" for s, f in zip(t.tolist(), filenames, strict=True))
    return atomic_write_text(path, header + body)


def write_groundtruth(path: str | os.PathLike, stamps_ns: Any, T_world_cam: SE3) -> Path:
    """Write a ``groundtruth.txt`` (``%.17g`` values, exact float64 round trip; qw >= 0), atomically."""
    t = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
    if not isinstance(T_world_cam, SE3) or T_world_cam.shape != (t.size,):
        shape = T_world_cam.shape if isinstance(T_world_cam, SE3) else type(T_world_cam).__name__
        raise InputError(f"write_groundtruth({path}): expected an SE3 of shape ({t.size},), got {shape}")
    q, p = T_world_cam.as_quat_t()
    vals = np.concatenate([p, q], axis=1)
    if not np.all(np.isfinite(vals)):
        raise InputError(f"write_groundtruth({path}): poses contain NaN/inf")
    body = "".join(
        format_stamp_ns(s) + " " + " ".join(f"{x:.17g}" for x in row) + "\n"
        for s, row in zip(t.tolist(), vals, strict=True)
    )
    return atomic_write_text(path, _HEADERS["groundtruth"] + body)


# ----------------------------------------------------------------------------------------------- association
def associate(stamps_a: Any, stamps_b: Any, max_dt: float = 0.02, offset: float = 0.0) -> np.ndarray:
    """Greedy nearest-stamp association as TUM's ``associate.py``; (M, 2) index pairs (i into a, j into b).

    Candidates are pairs with ``|a - (b + offset)| < max_dt`` (seconds); they are taken in order of increasing
    difference (ties: earlier a, then earlier b), each stamp at most once. The result is sorted by ``i``.
    """
    a = np.asarray(stamps_a, dtype=np.int64).reshape(-1)
    b = np.asarray(stamps_b, dtype=np.int64).reshape(-1)
    max_ns = _seconds_to_ns(max_dt, "max_dt")
    off_ns = int(round(float(offset) * _NS_PER_S))
    ob = np.argsort(b, kind="stable")
    bs = b[ob] + off_ns
    lo = np.searchsorted(bs, a - max_ns, side="right")  # bs > a - max
    hi = np.searchsorted(bs, a + max_ns, side="left")  # bs < a + max
    counts = np.maximum(hi - lo, 0)
    ia = np.repeat(np.arange(a.size), counts)
    starts = np.repeat(lo, counts)
    within = np.arange(ia.size) - np.repeat(np.cumsum(counts) - counts, counts)
    jb_sorted = starts + within
    diff = np.abs(a[ia] - bs[jb_sorted])
    order = np.lexsort((bs[jb_sorted], a[ia], diff))
    used_a = np.zeros(a.size, bool)
    used_b = np.zeros(b.size, bool)
    pairs = []
    for k in order.tolist():
        i, j = int(ia[k]), int(ob[jb_sorted[k]])
        if not used_a[i] and not used_b[j]:
            used_a[i] = used_b[j] = True
            pairs.append((i, j))
    pairs.sort()
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def interpolate_poses(
    stamps_ns: Any,
    poses: SE3,
    query_ns: Any,
    max_gap: float = 0.1,
) -> tuple[SE3, np.ndarray]:
    """Poses at ``query_ns`` by rotation slerp + translation lerp between the bracketing samples.

    Returns (SE3 (M,), valid (M,) bool): a query is valid when it equals a sample stamp or lies between two
    samples at most ``max_gap`` seconds apart; invalid queries get the identity. ``stamps_ns`` must be sorted.
    """
    t = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
    q = np.asarray(query_ns, dtype=np.int64).reshape(-1)
    if poses.shape != (t.size,):
        raise InputError(f"interpolate_poses: poses have shape {poses.shape}, stamps ({t.size},)")
    if t.size == 0:
        return SE3.identity(q.size), np.zeros(q.size, bool)
    if np.any(np.diff(t) <= 0):
        raise InputError("interpolate_poses: sample stamps must be strictly increasing")
    gap_ns = _seconds_to_ns(max_gap, "max_gap")
    j = np.searchsorted(t, q, side="right")  # t[j-1] <= q < t[j]
    left = np.clip(j - 1, 0, t.size - 1)
    right = np.clip(j, 0, t.size - 1)
    exact = (j >= 1) & (t[left] == q)
    inside = (j >= 1) & (j < t.size) & (t[right] - t[left] <= gap_ns)
    valid = exact | inside
    span = np.where(inside & ~exact, t[right] - t[left], 1)
    alpha = np.where(inside & ~exact, (q - t[left]) / span, 0.0)
    out = interpolate_decoupled(poses[left], poses[right], alpha)
    ident = SE3.identity(q.size)
    R = np.where(valid[:, None, None], out.R, ident.R)
    tr = np.where(valid[:, None], out.t, ident.t)
    return SE3(R, tr), valid


# ----------------------------------------------------------------------------------------------- reader
@dataclass(frozen=True)
class TumFrame:
    """A colour frame with its associated depth map and pose (None when not asked for)."""

    t_ns: int
    color_path: Path
    depth_t_ns: int | None
    depth_path: Path | None
    T_world_cam: SE3 | None


PoseMode = Literal["nearest", "interpolate"]


class TumRGBD:
    """One TUM RGB-D sequence folder.

    Parameters
    ----------
    root
        The sequence folder (holding ``rgb.txt``).
    camera
        Colour intrinsics; default from the folder name (:func:`camera_for_sequence`).
    """

    def __init__(self, root: str | os.PathLike, camera: CameraModel | None = None) -> None:
        self.root = require_dir(root, DATASET, "a sequence folder with rgb.txt, depth.txt, groundtruth.txt")
        self.camera = camera_for_sequence(self.root.resolve().name) if camera is None else camera

    def __repr__(self) -> str:
        return f"TumRGBD(root={str(self.root)!r})"

    @cached_property
    def color_list(self) -> tuple[np.ndarray, list[str]]:
        """(stamps ns, filenames) of ``rgb.txt``."""
        return read_file_list(self.root / "rgb.txt")

    @cached_property
    def depth_list(self) -> tuple[np.ndarray, list[str]]:
        """(stamps ns, filenames) of ``depth.txt``."""
        return read_file_list(self.root / "depth.txt")

    @cached_property
    def groundtruth(self) -> tuple[np.ndarray, SE3]:
        """(stamps ns, T_world_cam) of ``groundtruth.txt``."""
        return read_groundtruth(self.root / "groundtruth.txt")

    def frames(
        self,
        depth: bool = True,
        pose: PoseMode | None = "nearest",
        max_dt: float = 0.02,
        max_gap: float = 0.1,
    ) -> list[TumFrame]:
        """Colour frames that could be associated with a depth map (``depth=True``) and a pose (``pose``).

        ``max_dt`` (s): association threshold (TUM's default 0.02). ``pose="nearest"`` associates ground-truth
        stamps like depth; ``"interpolate"`` interpolates at the colour stamp across gaps up to ``max_gap`` (s).
        Frames that cannot be associated are left out (as ``associate.py`` does).
        """
        if pose not in (None, "nearest", "interpolate"):
            raise InputError(f"{DATASET}: pose must be None, 'nearest' or 'interpolate', got {pose!r}")
        t_rgb, f_rgb = self.color_list
        keep = np.arange(t_rgb.size)
        d_idx = np.full(t_rgb.size, -1, np.int64)
        if depth:
            t_d, _ = self.depth_list
            pairs = associate(t_rgb, t_d, max_dt)
            d_idx[pairs[:, 0]] = pairs[:, 1]
            keep = pairs[:, 0]
        poses: dict[int, SE3] = {}
        if pose is not None:
            t_gt, T_gt = self.groundtruth
            if pose == "nearest":
                pairs = associate(t_rgb[keep], t_gt, max_dt)
                sel = keep[pairs[:, 0]]
                for i, j in zip(sel.tolist(), pairs[:, 1].tolist(), strict=True):
                    poses[i] = T_gt[j]
            else:
                T, valid = interpolate_poses(t_gt, T_gt, t_rgb[keep], max_gap)
                for k in np.flatnonzero(valid).tolist():
                    poses[int(keep[k])] = T[k]
            keep = np.array(sorted(poses), dtype=np.int64)
        out = []
        for i in keep.tolist():
            has_d = depth and d_idx[i] >= 0
            out.append(
                TumFrame(
                    t_ns=int(t_rgb[i]),
                    color_path=self.root / f_rgb[i],
                    depth_t_ns=int(self.depth_list[0][d_idx[i]]) if has_d else None,
                    depth_path=self.root / self.depth_list[1][d_idx[i]] if has_d else None,
                    T_world_cam=poses.get(i),
                )
            )
        return out

    def load_color(self, frame: TumFrame) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        return read_rgb(frame.color_path, DATASET)

    def load_depth_m(self, frame: TumFrame, invalid: float = 0.0) -> np.ndarray:
        """(H, W) float32 depth in metres (PNG value / 5000); 0 (no measurement) becomes ``invalid``."""
        if frame.depth_path is None:
            raise InputError(f"{DATASET}: frame {format_stamp_ns(frame.t_ns)} has no associated depth map")
        raw = read_png16(frame.depth_path, DATASET)
        depth = raw.astype(np.float32) / np.float32(DEPTH_SCALE)
        depth[raw == 0] = invalid
        return depth


# ----------------------------------------------------------------------------------------------- writer
def depth_m_to_png(depth_m: np.ndarray) -> np.ndarray:
    """float metres -> uint16 (metres * 5000, rounded); NaN, inf, <= 0 and > 13.107 m become 0 (invalid)."""
    d = np.asarray(depth_m, dtype=np.float64)
    if d.ndim != 2:
        raise InputError(f"{DATASET}: depth must be an (H, W) array in metres, got shape {d.shape}")
    with np.errstate(invalid="ignore"):
        v = np.round(d * DEPTH_SCALE)
        ok = np.isfinite(v) & (v > 0) & (v <= 65535)
    return np.where(ok, v, 0).astype(np.uint16)


class TumRGBDWriter:
    """Write a sequence in the TUM RGB-D layout; the list files are written by :meth:`close` (or ``with``).

    >>> with TumRGBDWriter(out) as w:                     # doctest: +SKIP
    ...     w.add_frame(t_ns, rgb, depth_m)
    ...     w.add_pose(t_ns, T_world_cam)
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._rgb: list[tuple[int, str]] = []
        self._depth: list[tuple[int, str]] = []
        self._gt: list[tuple[int, SE3]] = []

    def __enter__(self) -> TumRGBDWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()

    def add_frame(
        self, t_ns: int, rgb: np.ndarray | None, depth_m: np.ndarray | None = None, depth_t_ns: int | None = None
    ) -> None:
        """Write ``rgb/<stamp>.png`` and/or ``depth/<stamp>.png`` (depth stamped ``depth_t_ns``, default t_ns)."""
        if rgb is not None:
            name = f"rgb/{format_stamp_ns(t_ns)}.png"
            write_rgb(self.root / name, np.asarray(rgb))
            self._rgb.append((int(t_ns), name))
        if depth_m is not None:
            td = int(t_ns if depth_t_ns is None else depth_t_ns)
            name = f"depth/{format_stamp_ns(td)}.png"
            write_png16(self.root / name, depth_m_to_png(depth_m))
            self._depth.append((td, name))

    def add_pose(self, t_ns: int, T_world_cam: SE3) -> None:
        if not isinstance(T_world_cam, SE3) or T_world_cam.shape != ():
            raise InputError("TumRGBDWriter.add_pose: T_world_cam must be a single SE3")
        self._gt.append((int(t_ns), T_world_cam))

    def close(self) -> None:
        """Write rgb.txt, depth.txt (when frames were added) and groundtruth.txt (when poses were added)."""
        for kind, entries in (("rgb", self._rgb), ("depth", self._depth)):
            if entries:
                entries.sort(key=lambda e: e[0])
                write_file_list(self.root / f"{kind}.txt", [e[0] for e in entries], [e[1] for e in entries], kind)
        if self._gt:
            self._gt.sort(key=lambda e: e[0])
            write_groundtruth(
                self.root / "groundtruth.txt", [e[0] for e in self._gt], SE3.stack([e[1] for e in self._gt])
            )
