"""KITTI object detection benchmark (3D boxes): reader, writer and camera <-> LiDAR box conversion.

Layout under ``root`` (``split`` is ``training`` or ``testing``; ``testing`` has no ``label_2``)::

    <split>/velodyne/NNNNNN.bin   float32 little-endian x y z intensity per point (LiDAR frame, metres)
    <split>/label_2/NNNNNN.txt    one object per line, 15 fields (+ score in result files), see below
    <split>/calib/NNNNNN.txt      "KEY: values" lines: P0 P1 P2 P3 (3x4), R0_rect (3x3), Tr_velo_to_cam and
                                  Tr_imu_to_velo (3x4), all row-major
    <split>/image_2/NNNNNN.png    left colour image (optional here)
    ImageSets/<name>.txt          optional frame lists (train/val as used by OpenPCDet and most detectors)

Label fields: ``type truncated occluded alpha left top right bottom h w l x y z rotation_y [score]``. ``(x, y, z)``
is the *bottom centre* of the box in the rectified camera frame of camera 0 (x right, y down, z forward),
``h w l`` are height, width, length in metres, ``rotation_y`` rotates the box about the camera y axis
(``rotation_y = 0``: the box length points along camera +x), ``alpha`` is the observation angle
``rotation_y - atan2(x, z)``. Pixel coordinates follow OpenCV (0-based, as the devkit states).

Frames: ``T_rect_velo = R0_rect @ Tr_velo_to_cam`` (4x4) maps LiDAR points into the rectified camera frame and
``P2 @ [x y z 1]`` projects rectified points into image 2. The matrices are used exactly as in the files
(they are not re-orthonormalised), so conversions agree with the devkit.

LiDAR boxes are ``(x, y, z, l, w, h, yaw)``: the box *centre* in the LiDAR frame, length along the heading,
width, height along LiDAR z, and the heading angle about LiDAR z (counter-clockwise from +x, as OpenPCDet). The
box centre is converted exactly; the heading is the LiDAR-frame direction of the camera-frame heading
``(cos ry, 0, -sin ry)`` projected onto the LiDAR x-y plane, and the way back is its exact inverse, so labels ->
boxes -> labels reproduces ``rotation_y``. With an ideal calibration (LiDAR x forward = camera z, y left =
camera -x, z up = camera -y) this is OpenPCDet's ``yaw = -(ry + pi/2)``; the tilt of a real calibration
(R0_rect and Tr_velo_to_cam are a fraction of a degree off) is dropped, as every LiDAR detector does.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from perception.datasets.common import read_rgb, require_dir, require_file, write_rgb
from perception.errors import InputError
from perception.fileio import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "KITTI_TYPES",
    "KittiCalib",
    "KittiLabel",
    "KittiObject",
    "KittiObjectWriter",
    "box_corners_camera",
    "box_corners_lidar",
    "camera_boxes_to_lidar",
    "labels_to_lidar_boxes",
    "lidar_boxes_to_camera",
    "lidar_boxes_to_labels",
    "observation_angle",
    "read_calib",
    "read_labels",
    "read_velodyne",
    "write_calib",
    "write_labels",
    "write_velodyne",
]

DATASET = "KITTI object"
KITTI_TYPES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc", "DontCare")
_LABEL_FIELDS = "type truncated occluded alpha left top right bottom h w l x y z rotation_y"
# Older / tracking-benchmark spellings of the calibration keys.
_CALIB_ALIASES = {"R_rect": "R0_rect", "Tr_velo_cam": "Tr_velo_to_cam", "Tr_imu_velo": "Tr_imu_to_velo"}
_CALIB_SIZES = {"P0": 12, "P1": 12, "P2": 12, "P3": 12, "R0_rect": 9, "Tr_velo_to_cam": 12, "Tr_imu_to_velo": 12}


# ---------------------------------------------------------------------------------------------------------------
# Records


@dataclass
class KittiLabel:
    """One object of a ``label_2`` file (camera-frame box, see the module docstring)."""

    type: str
    truncated: float
    occluded: int
    alpha: float
    bbox: np.ndarray  # (4,) left top right bottom, pixels
    dimensions: np.ndarray  # (3,) h w l, metres
    location: np.ndarray  # (3,) x y z bottom centre, rectified camera frame
    rotation_y: float
    score: float | None = None


@dataclass
class KittiCalib:
    """Calibration of one frame. ``P`` (4, 3, 4) holds P0..P3; ``Tr_imu_to_velo`` is None when absent."""

    P: np.ndarray
    R0_rect: np.ndarray  # (3, 3)
    Tr_velo_to_cam: np.ndarray  # (3, 4)
    Tr_imu_to_velo: np.ndarray | None = field(default=None)

    @property
    def T_rect_velo(self) -> np.ndarray:
        """4x4 ``R0_rect @ Tr_velo_to_cam``: LiDAR points -> rectified camera-0 frame."""
        R0 = np.eye(4)
        R0[:3, :3] = self.R0_rect
        Tr = np.eye(4)
        Tr[:3, :4] = self.Tr_velo_to_cam
        return R0 @ Tr

    @property
    def T_velo_rect(self) -> np.ndarray:
        return np.linalg.inv(self.T_rect_velo)

    def velo_to_rect(self, p: np.ndarray) -> np.ndarray:
        """(N, 3) LiDAR points -> rectified camera frame."""
        return _apply(self.T_rect_velo, p)

    def rect_to_velo(self, p: np.ndarray) -> np.ndarray:
        """(N, 3) rectified camera points -> LiDAR frame."""
        return _apply(self.T_velo_rect, p)

    def project_rect(self, p: np.ndarray, cam: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """Project (N, 3) rectified points with ``P<cam>``: pixels (N, 2) and depth (N,) (in front: depth > 0)."""
        p = np.asarray(p, dtype=np.float64).reshape(-1, 3)
        h = np.concatenate([p, np.ones((p.shape[0], 1))], axis=1) @ self.P[cam].T
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = h[:, :2] / h[:, 2:3]
        return uv, h[:, 2]


def _apply(T: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return p @ T[:3, :3].T + T[:3, 3]


# ---------------------------------------------------------------------------------------------------------------
# File readers


def read_velodyne(path: str | os.PathLike) -> np.ndarray:
    """A ``velodyne/*.bin`` scan as (N, 4) float32: x y z intensity."""
    path = require_file(path, DATASET, "LiDAR scan: float32 x y z intensity per point")
    size = path.stat().st_size
    if size % 16:
        raise InputError(
            f"{DATASET}: {path} has {size} bytes, not a multiple of 16 (float32 x y z intensity per point); "
            "the file is truncated or not a KITTI scan"
        )
    pts = np.fromfile(path, dtype="<f4").reshape(-1, 4)
    return pts.astype(np.float32, copy=False)


def _floats(tokens: list[str], path: Path, lineno: int, what: str) -> list[float]:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        raise InputError(f"{DATASET}: {path} line {lineno}: {what} must be numbers, got {' '.join(tokens)!r}") from None


def read_labels(path: str | os.PathLike) -> list[KittiLabel]:
    """A ``label_2`` file: one :class:`KittiLabel` per non-empty line (15 fields, or 16 with a score)."""
    path = require_file(path, DATASET, f"object labels: {_LABEL_FIELDS} per line")
    labels = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        tok = line.split()
        if not tok:
            continue
        if len(tok) not in (15, 16):
            raise InputError(
                f"{DATASET}: {path} line {lineno} has {len(tok)} fields; expected 15 ({_LABEL_FIELDS}) "
                "or 16 (with score)"
            )
        v = _floats(tok[1:], path, lineno, "fields 2-15")
        if not all(math.isfinite(x) for x in v):
            raise InputError(f"{DATASET}: {path} line {lineno} contains NaN/inf values")
        if v[1] != int(v[1]):
            raise InputError(f"{DATASET}: {path} line {lineno}: occluded must be an integer (0-3), got {tok[2]}")
        labels.append(
            KittiLabel(
                type=tok[0],
                truncated=v[0],
                occluded=int(v[1]),
                alpha=v[2],
                bbox=np.array(v[3:7]),
                dimensions=np.array(v[7:10]),
                location=np.array(v[10:13]),
                rotation_y=v[13],
                score=v[14] if len(v) == 15 else None,
            )
        )
    return labels


def read_calib(path: str | os.PathLike) -> KittiCalib:
    """A ``calib`` file (P0..P3, R0_rect, Tr_velo_to_cam required; Tr_imu_to_velo optional)."""
    path = require_file(path, DATASET, "calibration: P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo")
    values: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        key = _CALIB_ALIASES.get(key.strip(), key.strip())
        if not sep:
            raise InputError(f"{DATASET}: {path} line {lineno} is not 'KEY: values'")
        if key not in _CALIB_SIZES:
            continue  # other keys (e.g. the raw-data calibration) are ignored
        v = _floats(rest.split(), path, lineno, key)
        if len(v) != _CALIB_SIZES[key]:
            raise InputError(
                f"{DATASET}: {path} line {lineno}: {key} has {len(v)} values; expected {_CALIB_SIZES[key]}"
            )
        if not all(math.isfinite(x) for x in v):
            raise InputError(f"{DATASET}: {path} line {lineno}: {key} contains NaN/inf values")
        values[key] = np.array(v)
    missing = [k for k in ("P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam") if k not in values]
    if missing:
        raise InputError(f"{DATASET}: {path} lacks {', '.join(missing)}; expected P0..P3, R0_rect, Tr_velo_to_cam")
    imu = values.get("Tr_imu_to_velo")
    return KittiCalib(
        P=np.stack([values[f"P{i}"].reshape(3, 4) for i in range(4)]),
        R0_rect=values["R0_rect"].reshape(3, 3),
        Tr_velo_to_cam=values["Tr_velo_to_cam"].reshape(3, 4),
        Tr_imu_to_velo=None if imu is None else imu.reshape(3, 4),
    )


# ---------------------------------------------------------------------------------------------------------------
# File writers


def _fmt(x: float, precision: int | None) -> str:
    """Shortest text that reads back to the same float (``precision=None``) or fixed decimals."""
    x = float(x)
    return repr(x) if precision is None else f"{x:.{precision}f}"


def write_velodyne(path: str | os.PathLike, points: np.ndarray) -> Path:
    """Write (N, 4) x y z intensity (or (N, 3) with intensity 0) as a KITTI ``.bin`` scan."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] not in (3, 4):
        raise InputError(f"write_velodyne({path}): expected (N, 4) x y z intensity, got shape {pts.shape}")
    if pts.shape[1] == 3:
        pts = np.concatenate([pts, np.zeros((pts.shape[0], 1))], axis=1)
    return atomic_write_bytes(path, np.ascontiguousarray(pts, dtype="<f4").tobytes())


def write_labels(path: str | os.PathLike, labels: list[KittiLabel], precision: int | None = None) -> Path:
    """Write a ``label_2`` file. ``precision=None`` writes exact floats; KITTI's own files use 2 decimals."""
    lines = []
    for i, lab in enumerate(labels):
        if not lab.type or any(c.isspace() for c in lab.type):
            raise InputError(f"write_labels({path}): object {i} type {lab.type!r} must be one word (e.g. Car)")
        nums = [lab.alpha, *np.asarray(lab.bbox).reshape(4), *np.asarray(lab.dimensions).reshape(3)]
        nums += [*np.asarray(lab.location).reshape(3), lab.rotation_y]
        fields = [lab.type, _fmt(lab.truncated, precision), str(int(lab.occluded))]
        fields += [_fmt(x, precision) for x in nums]
        if lab.score is not None:
            fields.append(_fmt(lab.score, precision))
        lines.append(" ".join(fields))
    return atomic_write_text(path, "".join(f"{line}\n" for line in lines))


def write_calib(path: str | os.PathLike, calib: KittiCalib, precision: int | None = None) -> Path:
    """Write a ``calib`` file (``precision=None``: exact floats; KITTI's files use ``%.12e``)."""

    def row(key: str, M: np.ndarray) -> str:
        vals = np.asarray(M, dtype=np.float64).reshape(-1)
        text = " ".join(repr(float(v)) if precision is None else f"{v:.{precision}e}" for v in vals)
        return f"{key}: {text}\n"

    P = np.asarray(calib.P)
    if P.shape != (4, 3, 4):
        raise InputError(f"write_calib({path}): P must have shape (4, 3, 4) (P0..P3), got {P.shape}")
    text = "".join(row(f"P{i}", P[i]) for i in range(4))
    text += row("R0_rect", np.asarray(calib.R0_rect).reshape(3, 3))
    text += row("Tr_velo_to_cam", np.asarray(calib.Tr_velo_to_cam).reshape(3, 4))
    if calib.Tr_imu_to_velo is not None:
        text += row("Tr_imu_to_velo", np.asarray(calib.Tr_imu_to_velo).reshape(3, 4))
    return atomic_write_text(path, text)


# ---------------------------------------------------------------------------------------------------------------
# Box conversion


def _wrap(a: np.ndarray) -> np.ndarray:
    """Angles wrapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi


def _heading_axes(calib: KittiCalib) -> tuple[np.ndarray, np.ndarray]:
    """LiDAR-frame images of the rectified camera x and z axes (directions, so only the linear part)."""
    Ainv = np.linalg.inv(calib.T_rect_velo[:3, :3])
    return Ainv[:, 0], Ainv[:, 2]


def camera_boxes_to_lidar(
    location: np.ndarray, dimensions: np.ndarray, rotation_y: np.ndarray, calib: KittiCalib
) -> np.ndarray:
    """KITTI camera boxes (bottom centre (K,3), h w l (K,3), ry (K,)) -> LiDAR boxes (K, 7) x y z l w h yaw."""
    loc = np.asarray(location, dtype=np.float64).reshape(-1, 3)
    dims = np.asarray(dimensions, dtype=np.float64).reshape(-1, 3)
    ry = np.asarray(rotation_y, dtype=np.float64).reshape(-1)
    if not (loc.shape[0] == dims.shape[0] == ry.shape[0]):
        raise InputError(
            f"camera_boxes_to_lidar: {loc.shape[0]} locations, {dims.shape[0]} dimensions, {ry.shape[0]} angles"
        )
    h, w, l = dims[:, 0], dims[:, 1], dims[:, 2]
    centre_rect = loc - np.stack([np.zeros_like(h), h / 2.0, np.zeros_like(h)], axis=1)  # y points down
    centre = calib.rect_to_velo(centre_rect)
    a, b = _heading_axes(calib)
    v = np.cos(ry)[:, None] * a - np.sin(ry)[:, None] * b  # heading (cos ry, 0, -sin ry) in the LiDAR frame
    yaw = np.arctan2(v[:, 1], v[:, 0])
    return np.concatenate([centre, np.stack([l, w, h, yaw], axis=1)], axis=1)


def lidar_boxes_to_camera(boxes: np.ndarray, calib: KittiCalib) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LiDAR boxes (K, 7) -> KITTI (location (K,3) bottom centre, dimensions (K,3) h w l, rotation_y (K,))."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    l, w, h, yaw = boxes[:, 3], boxes[:, 4], boxes[:, 5], boxes[:, 6]
    centre_rect = calib.velo_to_rect(boxes[:, :3])
    loc = centre_rect + np.stack([np.zeros_like(h), h / 2.0, np.zeros_like(h)], axis=1)
    a, b = _heading_axes(calib)
    # Solve cos(ry) (n.a) - sin(ry) (n.b) = 0 with n the LiDAR-plane normal of the heading (exact inverse).
    n = np.stack([-np.sin(yaw), np.cos(yaw), np.zeros_like(yaw)], axis=1)
    m = np.stack([np.cos(yaw), np.sin(yaw), np.zeros_like(yaw)], axis=1)
    ry = np.arctan2(n @ a, n @ b)
    forward = np.cos(ry) * (m @ a) - np.sin(ry) * (m @ b)
    ry = np.where(forward < 0.0, ry + np.pi, ry)
    return loc, np.stack([h, w, l], axis=1), _wrap(ry)


def labels_to_lidar_boxes(
    labels: list[KittiLabel], calib: KittiCalib, skip_dontcare: bool = True
) -> tuple[np.ndarray, list[str]]:
    """LiDAR boxes (K, 7) and their types for ``labels`` (``DontCare`` regions skipped by default)."""
    keep = [lab for lab in labels if not (skip_dontcare and lab.type == "DontCare")]
    if not keep:
        return np.zeros((0, 7)), []
    boxes = camera_boxes_to_lidar(
        np.stack([lab.location for lab in keep]),
        np.stack([lab.dimensions for lab in keep]),
        np.array([lab.rotation_y for lab in keep]),
        calib,
    )
    return boxes, [lab.type for lab in keep]


def observation_angle(location: np.ndarray, rotation_y: np.ndarray) -> np.ndarray:
    """KITTI ``alpha = rotation_y - atan2(x, z)`` wrapped to [-pi, pi)."""
    loc = np.asarray(location, dtype=np.float64).reshape(-1, 3)
    return _wrap(np.asarray(rotation_y, dtype=np.float64).reshape(-1) - np.arctan2(loc[:, 0], loc[:, 2]))


def box_corners_camera(location: np.ndarray, dimensions: np.ndarray, rotation_y: np.ndarray) -> np.ndarray:
    """(K, 8, 3) corners of KITTI camera boxes, in the devkit's order (bottom face first, then the top face)."""
    loc = np.asarray(location, dtype=np.float64).reshape(-1, 3)
    dims = np.asarray(dimensions, dtype=np.float64).reshape(-1, 3)
    ry = np.asarray(rotation_y, dtype=np.float64).reshape(-1)
    h, w, l = dims[:, 0:1], dims[:, 1:2], dims[:, 2:3]
    sx = np.array([1, 1, -1, -1, 1, 1, -1, -1]) / 2.0
    sz = np.array([1, -1, -1, 1, 1, -1, -1, 1]) / 2.0
    x, z = l * sx, w * sz
    y = -h * np.array([0, 0, 0, 0, 1, 1, 1, 1])
    c, s = np.cos(ry)[:, None], np.sin(ry)[:, None]
    # R_y(ry) = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    return np.stack([c * x + s * z, y, -s * x + c * z], axis=-1) + loc[:, None, :]


def box_corners_lidar(boxes: np.ndarray) -> np.ndarray:
    """(K, 8, 3) corners of LiDAR boxes (x y z l w h yaw); same order as :func:`box_corners_camera`."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    l, w, h, yaw = boxes[:, 3:4], boxes[:, 4:5], boxes[:, 5:6], boxes[:, 6:7]
    # The box's own x (length) is the heading, its z (width) the heading turned +90 degrees about up (to the
    # left), its -y is up: the same corner order as the camera-frame box.
    fwd = l * (np.array([1, 1, -1, -1, 1, 1, -1, -1]) / 2.0)
    left = w * (np.array([1, -1, -1, 1, 1, -1, -1, 1]) / 2.0)
    up = h * (np.array([0, 0, 0, 0, 1, 1, 1, 1]) - 0.5)
    c, s = np.cos(yaw), np.sin(yaw)
    x = c * fwd - s * left
    y = s * fwd + c * left
    return np.stack([x, y, up], axis=-1) + boxes[:, None, :3]


def lidar_boxes_to_labels(
    boxes: np.ndarray,
    calib: KittiCalib,
    types: list[str],
    image_size: tuple[int, int] | None = None,
    cam: int = 2,
    occluded: int = 0,
    scores: np.ndarray | None = None,
) -> list[KittiLabel]:
    """KITTI labels for LiDAR boxes (the simulator's writer side).

    ``bbox`` is the extent of the projected 3D corners in image ``cam`` (clipped to ``image_size`` = (width,
    height) when given; corners behind the camera are left out), ``truncated`` the fraction of that extent cut
    off by the image border (1 when no corner lies in front of the camera), ``alpha`` the observation angle.
    Occlusion is not computed: every label gets ``occluded``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    if len(types) != boxes.shape[0]:
        raise InputError(f"lidar_boxes_to_labels: {boxes.shape[0]} boxes but {len(types)} types")
    loc, dims, ry = lidar_boxes_to_camera(boxes, calib)
    alpha = observation_angle(loc, ry)
    corners = box_corners_camera(loc, dims, ry)
    out = []
    for k in range(boxes.shape[0]):
        uv, depth = calib.project_rect(corners[k], cam)
        front = depth > 1e-3
        if not front.any():
            bbox, trunc = np.zeros(4), 1.0
        else:
            lo, hi = uv[front].min(axis=0), uv[front].max(axis=0)
            full = np.concatenate([lo, hi])
            bbox = full.copy()
            if image_size is not None:
                W, H = image_size
                bbox = np.clip(full, [0, 0, 0, 0], [W - 1, H - 1, W - 1, H - 1])
            area_full = (full[2] - full[0]) * (full[3] - full[1])
            area = (bbox[2] - bbox[0]) * (bbox[3] - bbox[1])
            trunc = float(1.0 - area / area_full) if area_full > 0 else 0.0
            if not front.all():
                trunc = max(trunc, float(1.0 - front.mean()))
        out.append(
            KittiLabel(
                type=types[k],
                truncated=trunc,
                occluded=int(occluded),
                alpha=float(alpha[k]),
                bbox=bbox,
                dimensions=dims[k],
                location=loc[k],
                rotation_y=float(ry[k]),
                score=None if scores is None else float(scores[k]),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------------------------
# Dataset


def _frame_name(frame: str | int) -> str:
    if isinstance(frame, (int, np.integer)):
        if frame < 0:
            raise InputError(f"{DATASET}: frame index must be >= 0, got {frame}")
        return f"{int(frame):06d}"
    frame = str(frame)
    if not frame or "/" in frame or "\\" in frame:
        raise InputError(f"{DATASET}: frame id {frame!r} must be a file stem like 000123")
    return frame


class KittiObject:
    """Reader for ``root/<split>``: ``frames()``, ``load_points``, ``load_labels``, ``load_calib``, ``load_image``."""

    def __init__(self, root: str | os.PathLike, split: Literal["training", "testing"] = "training") -> None:
        self.root = require_dir(root, DATASET, "the KITTI object root (holding training/ and testing/)")
        self.split = split
        self.dir = require_dir(self.root / split, DATASET, f"the {split} split: velodyne/, label_2/, calib/")

    def __repr__(self) -> str:
        return f"KittiObject({str(self.root)!r}, split={self.split!r})"

    def path(self, kind: Literal["velodyne", "label_2", "calib", "image_2"], frame: str | int) -> Path:
        ext = {"velodyne": ".bin", "label_2": ".txt", "calib": ".txt", "image_2": ".png"}[kind]
        return self.dir / kind / f"{_frame_name(frame)}{ext}"

    def frames(self, image_set: str | None = None) -> list[str]:
        """Frame ids: the lines of ``ImageSets/<image_set>.txt``, or all scans in ``velodyne/`` (else ``calib/``)."""
        if image_set is not None:
            path = require_file(self.root / "ImageSets" / f"{image_set}.txt", DATASET, "one frame id per line")
            return [line.strip() for line in path.read_text().splitlines() if line.strip()]
        for kind, ext in (("velodyne", "*.bin"), ("calib", "*.txt")):
            d = self.dir / kind
            if d.is_dir():
                return sorted(p.stem for p in d.glob(ext))
        raise FileNotFoundError(f"{DATASET}: missing folder {self.dir / 'velodyne'} (LiDAR scans NNNNNN.bin)")

    def load_points(self, frame: str | int) -> np.ndarray:
        """(N, 4) float32 x y z intensity in the LiDAR frame."""
        return read_velodyne(self.path("velodyne", frame))

    def load_labels(self, frame: str | int) -> list[KittiLabel]:
        return read_labels(self.path("label_2", frame))

    def load_calib(self, frame: str | int) -> KittiCalib:
        return read_calib(self.path("calib", frame))

    def has_image(self, frame: str | int) -> bool:
        return self.path("image_2", frame).is_file()

    def load_image(self, frame: str | int) -> np.ndarray:
        """(H, W, 3) uint8 RGB of ``image_2``."""
        return read_rgb(self.path("image_2", frame), DATASET)

    def load_lidar_boxes(self, frame: str | int) -> tuple[np.ndarray, list[str]]:
        """LiDAR-frame boxes (K, 7) x y z l w h yaw and their types (DontCare skipped)."""
        return labels_to_lidar_boxes(self.load_labels(frame), self.load_calib(frame))


class KittiObjectWriter:
    """Writes frames in the KITTI object layout under ``root/<split>`` (each file atomically)."""

    def __init__(self, root: str | os.PathLike, split: Literal["training", "testing"] = "training") -> None:
        self.root = Path(root)
        self.split = split
        self.dir = self.root / split

    def write_frame(
        self,
        frame: str | int,
        points: np.ndarray,
        calib: KittiCalib,
        labels: list[KittiLabel] | None = None,
        image: np.ndarray | None = None,
        precision: int | None = None,
    ) -> str:
        """Write the scan, calibration, labels (when given) and image (when given) of one frame; returns its id."""
        name = _frame_name(frame)
        write_velodyne(self.dir / "velodyne" / f"{name}.bin", points)
        write_calib(self.dir / "calib" / f"{name}.txt", calib)
        if labels is not None:
            write_labels(self.dir / "label_2" / f"{name}.txt", labels, precision)
        if image is not None:
            write_rgb(self.dir / "image_2" / f"{name}.png", image)
        return name

    def write_image_set(self, name: str, frames: list[str | int]) -> Path:
        return atomic_write_text(
            self.root / "ImageSets" / f"{name}.txt", "".join(f"{_frame_name(f)}\n" for f in frames)
        )
