"""MPI-Sintel camera (``.cam``) and depth (``.dpt``) files, and the training-set folder layout.

Layout (under ``root``, from the depth/camera pack ``MPI-Sintel-depth-training-20150305.zip`` and the images)::

    training/camdata_left/<seq>/frame_NNNN.cam     camera: intrinsics + world-to-camera extrinsics
    training/depth/<seq>/frame_NNNN.dpt            depth (float32, metres along the optical axis)
    training/<pass>/<seq>/frame_NNNN.png           images (pass "final" or "clean"), 1024x436

Byte layout of a ``.cam`` file (little-endian, as the Sintel SDK's ``cam_read``/``cam_write``): a float32 tag
202021.25, then 9 float64 (intrinsic matrix M, 3x3 row-major), then 12 float64 (extrinsic N, 3x4 row-major) --
172 bytes. ``x = M N X`` maps homogeneous world points to pixels, so N is world-to-camera (``T_cam_world``, OpenCV
axes) and ``T_world_cam`` is its inverse. M is used as is (OpenCV pixel-centre convention; Sintel's principal point
is the image centre (W - 1) / 2, (H - 1) / 2).

A ``.dpt`` file: float32 tag 202021.25 (the bytes ``PIEH``), int32 width, int32 height, then width * height float32
depths, row-major.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception.camera import CameraModel, camera_from_K
from perception.datasets.common import read_rgb, require_dir, require_file
from perception.errors import InputError
from perception.fileio import atomic_write_bytes
from perception.geometry import SE3

logger = logging.getLogger(__name__)

__all__ = [
    "CAM_BYTES",
    "DATASET",
    "IMAGE_SIZE",
    "TAG_FLOAT",
    "SintelCam",
    "SintelFrame",
    "SintelSequence",
    "read_cam",
    "read_dpt",
    "write_cam",
    "write_dpt",
]

DATASET = "MPI-Sintel"
TAG_FLOAT = 202021.25
CAM_BYTES = 4 + 9 * 8 + 12 * 8
IMAGE_SIZE = (1024, 436)
"""(width, height) of the Sintel images."""

_LE_F32 = np.dtype("<f4")
_LE_F64 = np.dtype("<f8")
_LE_I32 = np.dtype("<i4")
_FRAME = re.compile(r"^frame_(\d+)\.cam$")


@dataclass(frozen=True)
class SintelCam:
    """Contents of one ``.cam`` file: intrinsic matrix ``K`` (3, 3) and the world-to-camera pose."""

    K: np.ndarray
    T_cam_world: SE3

    @property
    def T_world_cam(self) -> SE3:
        return self.T_cam_world.inverse()

    def camera(self, width: int = IMAGE_SIZE[0], height: int = IMAGE_SIZE[1]) -> CameraModel:
        """Pinhole camera from ``K`` (the file stores no image size; Sintel's is 1024x436)."""
        return camera_from_K(self.K, None, width, height)


def _check_tag(tag: float, path: Path) -> None:
    if tag != np.float32(TAG_FLOAT):
        raise InputError(
            f"{DATASET}: {path} is not a Sintel {path.suffix or 'binary'} file: tag {tag!r}, expected {TAG_FLOAT} "
            "(little-endian float32)"
        )


def read_cam(path: str | os.PathLike) -> SintelCam:
    """Read a Sintel ``.cam`` file (see the module docstring for the byte layout)."""
    path = require_file(path, DATASET, "camera file")
    data = path.read_bytes()
    if len(data) < 4:
        raise InputError(f"{DATASET}: {path} has {len(data)} bytes; expected {CAM_BYTES} (a Sintel .cam file)")
    _check_tag(float(np.frombuffer(data, _LE_F32, 1)[0]), path)
    if len(data) < CAM_BYTES:
        raise InputError(f"{DATASET}: {path} is truncated: {len(data)} bytes, expected {CAM_BYTES}")
    if len(data) > CAM_BYTES:
        logger.debug("%s: %s has %d trailing bytes (ignored)", DATASET, path, len(data) - CAM_BYTES)
    vals = np.frombuffer(data, _LE_F64, 21, offset=4).astype(np.float64)
    if not np.all(np.isfinite(vals)):
        raise InputError(f"{DATASET}: {path} contains NaN/inf values; the file is corrupt")
    K = vals[:9].reshape(3, 3).copy()
    N = vals[9:].reshape(3, 4)
    try:
        T_cam_world = SE3.from_matrix(np.vstack([N, [0.0, 0.0, 0.0, 1.0]]))
    except InputError as e:
        raise InputError(f"{DATASET}: {path}: the extrinsic is not a rigid world-to-camera transform ({e})") from None
    return SintelCam(K, T_cam_world)


def write_cam(path: str | os.PathLike, K: np.ndarray, T_world_cam: SE3) -> Path:
    """Write a Sintel ``.cam`` file: tag, ``K`` and ``N = T_world_cam^-1`` (3x4), atomically."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise InputError(f"write_cam({path}): K must be a finite 3x3 matrix, got shape {K.shape}")
    if not isinstance(T_world_cam, SE3) or T_world_cam.shape != ():
        raise InputError(f"write_cam({path}): T_world_cam must be a single SE3")
    N = T_world_cam.inverse().matrix()[:3]
    if not np.all(np.isfinite(N)):
        raise InputError(f"write_cam({path}): T_world_cam has NaN/inf entries")
    data = np.array([TAG_FLOAT], _LE_F32).tobytes() + K.astype(_LE_F64).tobytes() + N.astype(_LE_F64).tobytes()
    return atomic_write_bytes(path, data)


def read_dpt(path: str | os.PathLike) -> np.ndarray:
    """Read a Sintel ``.dpt`` depth map as (H, W) float32 metres."""
    path = require_file(path, DATASET, "depth file")
    data = path.read_bytes()
    if len(data) < 12:
        raise InputError(f"{DATASET}: {path} has {len(data)} bytes; expected a 12-byte header and float32 depths")
    _check_tag(float(np.frombuffer(data, _LE_F32, 1)[0]), path)
    w, h = (int(v) for v in np.frombuffer(data, _LE_I32, 2, offset=4))
    if w <= 0 or h <= 0 or len(data) != 12 + 4 * w * h:
        raise InputError(
            f"{DATASET}: {path} header says {w}x{h} but holds {len(data) - 12} data bytes; expected 4 * width * height"
        )
    return np.frombuffer(data, _LE_F32, w * h, offset=12).astype(np.float32).reshape(h, w)


def write_dpt(path: str | os.PathLike, depth: np.ndarray) -> Path:
    """Write an (H, W) depth map (metres) as a Sintel ``.dpt`` file, atomically."""
    d = np.asarray(depth)
    if d.ndim != 2 or d.size == 0:
        raise InputError(f"write_dpt({path}): expected a non-empty (H, W) depth array, got shape {d.shape}")
    h, w = d.shape
    data = (
        np.array([TAG_FLOAT], _LE_F32).tobytes()
        + np.array([w, h], _LE_I32).tobytes()
        + np.ascontiguousarray(d, dtype=_LE_F32).tobytes()
    )
    return atomic_write_bytes(path, data)


@dataclass(frozen=True)
class SintelFrame:
    index: int
    cam_path: Path
    image_path: Path
    depth_path: Path


class SintelSequence:
    """One Sintel training sequence (``root/training/...``).

    Parameters
    ----------
    root
        The Sintel root (holding ``training/``).
    seq
        Sequence name, e.g. ``"alley_2"``.
    pass_name
        Image pass: ``"final"`` (default) or ``"clean"``.
    """

    def __init__(self, root: str | os.PathLike, seq: str, pass_name: str = "final", split: str = "training") -> None:
        self.root = Path(root)
        self.seq = seq
        self.pass_name = pass_name
        base = self.root / split
        self.cam_dir = require_dir(base / "camdata_left" / seq, DATASET, "frame_NNNN.cam files from the depth pack")
        self.image_dir = base / pass_name / seq
        self.depth_dir = base / "depth" / seq

    def __repr__(self) -> str:
        return f"SintelSequence(root={str(self.root)!r}, seq={self.seq!r})"

    def frames(self) -> list[SintelFrame]:
        """Frames that have a ``.cam`` file, sorted by number (image/depth paths are checked when loaded)."""
        idx = sorted(int(m.group(1)) for p in self.cam_dir.iterdir() if (m := _FRAME.match(p.name)))
        if not idx:
            raise InputError(f"{DATASET}: {self.cam_dir} holds no frame_NNNN.cam files")
        return [
            SintelFrame(
                i,
                self.cam_dir / f"frame_{i:04d}.cam",
                self.image_dir / f"frame_{i:04d}.png",
                self.depth_dir / f"frame_{i:04d}.dpt",
            )
            for i in idx
        ]

    def cams(self) -> list[SintelCam]:
        return [read_cam(f.cam_path) for f in self.frames()]

    def poses(self) -> SE3:
        """Camera-to-world poses of :meth:`frames`, as one SE3 of shape (N,)."""
        return SE3.stack([c.T_world_cam for c in self.cams()])

    def load_image(self, frame: SintelFrame) -> np.ndarray:
        return read_rgb(frame.image_path, DATASET)

    def load_depth(self, frame: SintelFrame) -> np.ndarray:
        return read_dpt(frame.depth_path)
