"""The project's own 2D-keypoint file: one NPZ archive per camera with the detector output of a whole video.

Why NPZ and not JSON Lines: the payload is a dense (F, 17, 3) float array, which NPZ stores exactly (bit for bit),
compactly (zip-deflated) and loads in one call without a parser, while JSON would print every float as text and
need a schema check per line. The archive holds only plain arrays, so it is read with ``allow_pickle=False``.

Arrays in ``<camera>.npz`` (see also ``data/README.md``, section "2D keypoint files"):

==================== ============= ===========================================================================
key                  dtype / shape meaning
==================== ============= ===========================================================================
format_version       int64 ()      1
camera               str ()        camera name (the file is usually named ``<camera>.npz``)
image_size           int64 (2,)    width, height in pixels
keypoint_convention  str ()        ``"coco17"`` (joint order :data:`COCO17_KEYPOINTS`)
pixel_convention     str ()        ``"opencv-centre"``: pixel (0, 0) is the centre of the top-left pixel
joint_names          str (17,)     :data:`COCO17_KEYPOINTS`, for readers outside this project
frame_index          int64 (F,)    index of the frame in the camera's video, strictly increasing
timestamp_ns         int64 (F,)    capture time of the frame in the camera's clock (ns), strictly increasing
keypoints            float32 (F,17,3) x, y, confidence per joint
==================== ============= ===========================================================================

Rules (checked by :func:`validate_keypoints2d` on write and on read): confidence lies in [0, 1]; a joint the
detector did not find has x = y = NaN and confidence 0 -- any NaN in a joint turns the whole joint into that
(x = y = NaN, confidence 0); infinite values are refused; frame indices and timestamps strictly increase.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception.datasets.common import require_dir, require_file
from perception.errors import InputError
from perception.fileio import atomic_write_bytes

logger = logging.getLogger(__name__)

__all__ = [
    "COCO17_KEYPOINTS",
    "FORMAT_VERSION",
    "KEYPOINT_CONVENTION",
    "PIXEL_CONVENTION",
    "Keypoints2D",
    "read_keypoints2d",
    "read_keypoints2d_dir",
    "validate_keypoints2d",
    "write_keypoints2d",
]

DATASET = "2D keypoints"
FORMAT_VERSION = 1
KEYPOINT_CONVENTION = "coco17"
PIXEL_CONVENTION = "opencv-centre"

#: COCO-17 joint order (the MS-COCO person keypoints, as used by MMPose/ViTPose/RTMPose and EgoHumans).
COCO17_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_JOINTS = len(COCO17_KEYPOINTS)

_REQUIRED_KEYS = (
    "format_version",
    "camera",
    "image_size",
    "keypoint_convention",
    "pixel_convention",
    "frame_index",
    "timestamp_ns",
    "keypoints",
)


@dataclass
class Keypoints2D:
    """2D keypoints of one camera: ``keypoints`` (F, 17, 3) float32 = x, y, confidence (OpenCV pixel centres)."""

    camera: str
    image_size: tuple[int, int]  # (width, height)
    frame_index: np.ndarray  # (F,) int64
    timestamp_ns: np.ndarray  # (F,) int64
    keypoints: np.ndarray  # (F, 17, 3) float32

    def __len__(self) -> int:
        return int(self.frame_index.shape[0])

    @property
    def xy(self) -> np.ndarray:
        """(F, 17, 2) pixel coordinates (NaN where the joint was not detected)."""
        return self.keypoints[..., :2]

    @property
    def confidence(self) -> np.ndarray:
        """(F, 17) confidences in [0, 1]."""
        return self.keypoints[..., 2]


def _strictly_increasing_int(a: object, name: str, n: int | None, where: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        want = f"({n},)" if n is not None else "(F,)"
        raise InputError(f"{where}: {name} has shape {arr.shape}; expected {want}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{where}: {name} has dtype {arr.dtype}; expected integers (int64)")
    arr = arr.astype(np.int64)
    if arr.size > 1:
        bad = np.flatnonzero(np.diff(arr) <= 0)
        if bad.size:
            i = int(bad[0])
            raise InputError(
                f"{where}: {name} must strictly increase, but entry {i + 1} ({arr[i + 1]}) follows {arr[i]}"
            )
    return arr


def validate_keypoints2d(kp: Keypoints2D, where: str = DATASET) -> Keypoints2D:
    """Check ``kp`` and return a normalised copy (int64 indices, float32 keypoints, NaN joints -> confidence 0).

    ``where`` names the file or the caller in error messages.
    """
    if not isinstance(kp.camera, str) or not kp.camera.strip():
        raise InputError(f"{where}: camera name must be a non-empty string, got {kp.camera!r}")
    size = np.asarray(kp.image_size)
    if size.shape != (2,) or not np.issubdtype(size.dtype, np.integer) or np.any(size <= 0):
        raise InputError(f"{where}: image_size must be two positive integers (width, height), got {kp.image_size!r}")
    frames = _strictly_increasing_int(kp.frame_index, "frame_index", None, where)
    if frames.size and frames[0] < 0:
        raise InputError(f"{where}: frame_index must be >= 0, got {frames[0]}")
    stamps = _strictly_increasing_int(kp.timestamp_ns, "timestamp_ns", frames.shape[0], where)
    k = np.asarray(kp.keypoints)
    if k.shape != (frames.shape[0], NUM_JOINTS, 3):
        raise InputError(
            f"{where}: keypoints has shape {k.shape}; expected ({frames.shape[0]}, {NUM_JOINTS}, 3) "
            "= (frames, COCO-17 joints, x y confidence)"
        )
    if not np.issubdtype(k.dtype, np.floating):
        raise InputError(f"{where}: keypoints has dtype {k.dtype}; expected float32")
    k = k.astype(np.float32, copy=True)
    if np.isinf(k).any():
        f, j, c = (int(i) for i in np.argwhere(np.isinf(k))[0])
        raise InputError(
            f"{where}: keypoints[{f}, {j}, {c}] is infinite; use NaN with confidence 0 for a missing joint"
        )
    missing = np.isnan(k).any(axis=-1)
    k[missing, 0:2] = np.nan
    k[missing, 2] = 0.0
    conf = k[..., 2]
    bad = (conf < 0.0) | (conf > 1.0)
    if bad.any():
        f, j = (int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{where}: confidence {conf[f, j]:g} of joint {COCO17_KEYPOINTS[j]} at frame_index {frames[f]} is outside "
            "[0, 1]"
        )
    return Keypoints2D(kp.camera, (int(size[0]), int(size[1])), frames, stamps, k)


def write_keypoints2d(path: str | os.PathLike, kp: Keypoints2D) -> Path:
    """Validate ``kp`` and write it as an NPZ archive (atomically). Returns the path."""
    path = Path(path)
    kp = validate_keypoints2d(kp, f"write_keypoints2d({path})")
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        format_version=np.int64(FORMAT_VERSION),
        camera=np.str_(kp.camera),
        image_size=np.asarray(kp.image_size, dtype=np.int64),
        keypoint_convention=np.str_(KEYPOINT_CONVENTION),
        pixel_convention=np.str_(PIXEL_CONVENTION),
        joint_names=np.asarray(COCO17_KEYPOINTS),
        frame_index=kp.frame_index,
        timestamp_ns=kp.timestamp_ns,
        keypoints=kp.keypoints,
    )
    return atomic_write_bytes(path, buf.getvalue())


def _scalar_str(data: dict[str, np.ndarray], key: str, path: Path) -> str:
    a = data[key]
    if a.shape != () or a.dtype.kind != "U":
        raise InputError(f"{DATASET}: {path} entry '{key}' must be a string, got {a.dtype} {a.shape}")
    return str(a)


def read_keypoints2d(path: str | os.PathLike) -> Keypoints2D:
    """Read and validate one camera's keypoint file."""
    path = require_file(path, DATASET, "an NPZ archive written by write_keypoints2d")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{DATASET}: {path} is not a readable NPZ archive (not a zip file); expected <camera>.npz")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise InputError(f"{DATASET}: {path} is not a readable NPZ archive ({e})") from None
    except ValueError as e:  # object arrays (pickles) are refused by allow_pickle=False
        raise InputError(f"{DATASET}: {path} holds an entry that is not a plain array ({e})") from None
    missing = [k for k in _REQUIRED_KEYS if k not in data]
    if missing:
        raise InputError(
            f"{DATASET}: {path} lacks the entries {', '.join(missing)}; expected {', '.join(_REQUIRED_KEYS)}"
        )
    version = data["format_version"]
    if version.shape != () or not np.issubdtype(version.dtype, np.integer) or int(version) != FORMAT_VERSION:
        raise InputError(f"{DATASET}: {path} has format_version {version!r}; this reader supports {FORMAT_VERSION}")
    for key, want in (("keypoint_convention", KEYPOINT_CONVENTION), ("pixel_convention", PIXEL_CONVENTION)):
        got = _scalar_str(data, key, path)
        if got != want:
            raise InputError(f"{DATASET}: {path} has {key} '{got}'; expected '{want}'")
    kp = Keypoints2D(
        camera=_scalar_str(data, "camera", path),
        image_size=tuple(data["image_size"].tolist()) if data["image_size"].shape == (2,) else data["image_size"],
        frame_index=data["frame_index"],
        timestamp_ns=data["timestamp_ns"],
        keypoints=data["keypoints"],
    )
    return validate_keypoints2d(kp, f"{DATASET}: {path}")


def read_keypoints2d_dir(folder: str | os.PathLike) -> dict[str, Keypoints2D]:
    """All ``*.npz`` files of ``folder``, keyed by the camera name stored inside (names must be unique)."""
    folder = require_dir(folder, DATASET, "a folder of <camera>.npz keypoint files")
    out: dict[str, Keypoints2D] = {}
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise FileNotFoundError(f"{DATASET}: no *.npz keypoint files in {folder}")
    for f in files:
        kp = read_keypoints2d(f)
        if kp.camera in out:
            raise InputError(f"{DATASET}: {f} repeats camera '{kp.camera}' of another file in {folder}")
        out[kp.camera] = kp
    return out
