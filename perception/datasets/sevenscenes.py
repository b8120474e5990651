"""Microsoft 7-Scenes: reader and writer for the on-disk layout.

Layout (under ``root``)::

    <scene>/TrainSplit.txt, TestSplit.txt     lines "sequence1", "sequence2", ... -> seq-01, seq-02, ...
    <scene>/seq-XX/frame-NNNNNN.color.png     640x480 24-bit RGB
    <scene>/seq-XX/frame-NNNNNN.depth.png     16-bit depth in millimetres, 65535 = invalid
    <scene>/seq-XX/frame-NNNNNN.pose.txt      4x4 camera-to-world matrix (T_world_cam), whitespace separated

Depth: :meth:`SevenScenes.load_depth_m` returns float32 metres with invalid pixels (raw 65535, and raw 0, which is
not a measurable depth) set to ``invalid`` (default 0.0, so ``depth > 0`` is the validity mask; pass
``invalid=np.nan`` to get NaN). :func:`write_frame` writes non-finite or non-positive depths, and depths that do
not fit in 16-bit millimetres (>= 65.535 m), as 65535.

Intrinsics: the dataset ships none. The colour camera defaults to fx = fy = 525, (cx, cy) = (320, 240), 640x480
(DSAC*, hloc and most relocalisation code); 585 (:data:`DEPTH_FOCAL`) is the focal of the *depth* camera used by
KinectFusion. The principal point (320, 240) is used as is in the OpenCV pixel-centre convention, as DSAC* and hloc
do with OpenCV (no -0.5): the difference is below the calibration's own uncertainty. Depth and colour are *not*
registered in the real data (the depth camera is a different sensor, offset by a few pixels); depth written by
:func:`write_frame` (the simulator) is registered to the colour camera. Pass ``camera=`` to override.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from perception.camera import PinholeCamera
from perception.datasets.common import (
    read_matrix_txt,
    read_png16,
    read_rgb,
    require_dir,
    require_file,
    write_png16,
    write_rgb,
)
from perception.errors import InputError
from perception.fileio import atomic_write_text
from perception.geometry import SE3

logger = logging.getLogger(__name__)

__all__ = [
    "DATASET",
    "DEFAULT_CAMERA",
    "DEPTH_FOCAL",
    "DEPTH_INVALID",
    "SevenScenes",
    "SevenScenesFrame",
    "depth_m_to_mm",
    "depth_mm_to_m",
    "read_pose",
    "read_split",
    "write_frame",
    "write_splits",
]

DATASET = "7-Scenes"
DEFAULT_CAMERA = PinholeCamera(640, 480, 525.0, 525.0, 320.0, 240.0)
"""Colour camera used by DSAC* / hloc (the dataset ships no calibration)."""
DEPTH_FOCAL = 585.0
"""Focal length (px) of the depth camera (KinectFusion's value, principal point (320, 240))."""
DEPTH_INVALID = 65535
"""Raw depth value marking a pixel without a measurement."""

Split = Literal["train", "test", "all"]
_SPLIT_FILES = {"train": "TrainSplit.txt", "test": "TestSplit.txt"}
_SPLIT_LINE = re.compile(r"^sequence(\d+)$", re.IGNORECASE)
_FRAME_NAME = re.compile(r"^frame-(\d+)\.color\.png$")


def _seq_dir_name(seq: int) -> str:
    return f"seq-{seq:02d}"


def _frame_stem(index: int) -> str:
    return f"frame-{index:06d}"


def read_pose(path: str | os.PathLike) -> SE3:
    """A 7-Scenes ``frame-*.pose.txt``: 4x4 camera-to-world, checked to be a finite rigid transform."""
    M = read_matrix_txt(path, (4, 4), DATASET)
    try:
        return SE3.from_matrix(M)
    except InputError as e:
        raise InputError(f"{DATASET}: {path} is not a rigid 4x4 camera-to-world pose ({e})") from None


def read_split(path: str | os.PathLike) -> list[int]:
    """Sequence numbers listed in a ``TrainSplit.txt`` / ``TestSplit.txt`` (``sequence1`` -> 1)."""
    path = require_file(path, DATASET, "lines 'sequenceN' naming the seq-0N folders")
    seqs: list[int] = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        m = _SPLIT_LINE.match(line)
        if m is None:
            raise InputError(f"{DATASET}: {path} line {lineno} is {line!r}; expected 'sequenceN' (e.g. sequence1)")
        seqs.append(int(m.group(1)))
    if not seqs:
        raise InputError(f"{DATASET}: {path} lists no sequences; expected lines 'sequenceN'")
    return seqs


@dataclass(frozen=True)
class SevenScenesFrame:
    """One frame: file paths and the lazily read camera-to-world pose."""

    seq: int
    index: int
    color_path: Path
    depth_path: Path
    pose_path: Path

    @functools.cached_property
    def T_world_cam(self) -> SE3:
        """Camera-to-world pose, read from ``pose_path`` on first access (then cached)."""
        return read_pose(self.pose_path)

    @property
    def name(self) -> str:
        """``seq-XX/frame-NNNNNN`` (the name used by hloc / DSAC* result files, without the suffix)."""
        return f"{_seq_dir_name(self.seq)}/{_frame_stem(self.index)}"


class SevenScenes:
    """One 7-Scenes scene under ``root``: splits, frames, images, depth and poses.

    Parameters
    ----------
    root
        Folder holding the scene folders (``root/<scene>/seq-01/...``).
    scene
        Scene name, e.g. ``"chess"``.
    camera
        Colour intrinsics; default :data:`DEFAULT_CAMERA` (fx = fy = 525, c = (320, 240), 640x480).
    """

    def __init__(self, root: str | os.PathLike, scene: str, camera: PinholeCamera | None = None) -> None:
        self.root = Path(root)
        self.scene = scene
        self.scene_dir = require_dir(self.root / scene, DATASET, f"scene '{scene}' with seq-XX folders")
        self.camera = DEFAULT_CAMERA if camera is None else camera

    def __repr__(self) -> str:
        return f"SevenScenes(root={str(self.root)!r}, scene={self.scene!r})"

    def sequences(self, split: Split = "train") -> list[int]:
        """Sequence numbers of a split (from TrainSplit.txt / TestSplit.txt); ``"all"`` = train + test, sorted."""
        if split == "all":
            return sorted(set(self.sequences("train")) | set(self.sequences("test")))
        if split not in _SPLIT_FILES:
            raise InputError(f"{DATASET}: split must be 'train', 'test' or 'all', got {split!r}")
        return read_split(self.scene_dir / _SPLIT_FILES[split])

    def sequence_frames(self, seq: int) -> list[SevenScenesFrame]:
        """Frames of one sequence, sorted by index; every frame must have its colour, depth and pose files."""
        seq_dir = require_dir(
            self.scene_dir / _seq_dir_name(seq), DATASET, f"sequence {seq}; unzip {_seq_dir_name(seq)}.zip here"
        )
        indices = sorted(int(m.group(1)) for p in seq_dir.iterdir() if (m := _FRAME_NAME.match(p.name)))
        if not indices:
            raise InputError(f"{DATASET}: {seq_dir} holds no frame-NNNNNN.color.png files")
        frames = []
        for i in indices:
            stem = seq_dir / _frame_stem(i)
            frames.append(
                SevenScenesFrame(
                    seq=seq,
                    index=i,
                    color_path=seq_dir / f"{_frame_stem(i)}.color.png",
                    depth_path=require_file(f"{stem}.depth.png", DATASET, "16-bit depth in mm"),
                    pose_path=require_file(f"{stem}.pose.txt", DATASET, "4x4 camera-to-world pose"),
                )
            )
        return frames

    def frames(self, split: Split = "train") -> list[SevenScenesFrame]:
        """All frames of a split, ordered by sequence then index."""
        return [f for seq in self.sequences(split) for f in self.sequence_frames(seq)]

    def poses(self, split: Split = "train") -> SE3:
        """Camera-to-world poses of :meth:`frames` (same order), as one batched SE3 of shape (N,)."""
        return SE3.stack([f.T_world_cam for f in self.frames(split)])

    def load_pose(self, frame: SevenScenesFrame) -> SE3:
        """Camera-to-world pose ``T_world_cam`` of ``frame`` (read from its ``pose.txt``, cached on the frame)."""
        return frame.T_world_cam

    def load_color(self, frame: SevenScenesFrame) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        return read_rgb(frame.color_path, DATASET)

    def load_depth_m(self, frame: SevenScenesFrame, invalid: float = 0.0) -> np.ndarray:
        """(H, W) float32 depth in metres; raw 65535 (and 0) become ``invalid`` (0.0 by default, or NaN)."""
        return depth_mm_to_m(read_png16(frame.depth_path, DATASET), invalid)


def depth_mm_to_m(raw: np.ndarray, invalid: float = 0.0) -> np.ndarray:
    """uint16 millimetres -> float32 metres, with 65535 and 0 set to ``invalid``."""
    depth = raw.astype(np.float32) / np.float32(1000.0)  # IEEE division: correctly rounded
    depth[(raw == DEPTH_INVALID) | (raw == 0)] = invalid
    return depth


def depth_m_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """float metres -> uint16 millimetres (rounded); NaN, inf, <= 0 and >= 65.535 m become 65535."""
    d = np.asarray(depth_m, dtype=np.float64)
    if d.ndim != 2:
        raise InputError(f"{DATASET}: depth must be an (H, W) array in metres, got shape {d.shape}")
    with np.errstate(invalid="ignore"):
        mm = np.round(d * 1000.0)
        ok = np.isfinite(mm) & (mm > 0) & (mm < DEPTH_INVALID)
    n_far = int(np.count_nonzero(np.isfinite(mm) & (mm >= DEPTH_INVALID)))
    if n_far:
        logger.debug("7-Scenes: %d depth pixels beyond 65.534 m written as invalid", n_far)
    return np.where(ok, mm, DEPTH_INVALID).astype(np.uint16)


def _as_se3(T: Any, what: str) -> SE3:
    if isinstance(T, SE3):
        if T.shape != ():
            raise InputError(f"{what}: expected a single pose, got a batch of shape {T.shape}")
        return T
    M = np.asarray(T, dtype=np.float64)
    if M.shape != (4, 4):
        raise InputError(f"{what}: expected an SE3 or a 4x4 matrix, got shape {M.shape}")
    return SE3.from_matrix(M)


def _format_pose(T: SE3) -> str:
    # %.17g round-trips float64 exactly; tab separated like the original files.
    return "".join("\t".join(f"{v:.17g}" for v in row) + "\n" for row in T.matrix())


def write_frame(
    root: str | os.PathLike,
    scene: str,
    seq: int,
    index: int,
    rgb: np.ndarray,
    depth_m: np.ndarray | None,
    T_world_cam: SE3 | np.ndarray,
) -> Path:
    """Write ``frame-NNNNNN.{color.png, depth.png, pose.txt}`` into ``root/scene/seq-XX`` (atomic per file).

    ``depth_m`` is metres (registered to the colour image); None skips the depth file. Returns the frame's path
    prefix (``.../frame-NNNNNN``).
    """
    if int(seq) < 0 or int(index) < 0:
        raise InputError(f"{DATASET}: seq and index must be >= 0, got seq={seq}, index={index}")
    stem = Path(root) / scene / _seq_dir_name(int(seq)) / _frame_stem(int(index))
    T = _as_se3(T_world_cam, f"{DATASET} write_frame({stem}): T_world_cam")
    if not (np.all(np.isfinite(T.R)) and np.all(np.isfinite(T.t))):
        raise InputError(f"{DATASET} write_frame({stem}): T_world_cam has NaN/inf entries")
    rgb = np.asarray(rgb)
    if depth_m is not None and np.shape(depth_m) != rgb.shape[:2]:
        raise InputError(
            f"{DATASET} write_frame({stem}): depth shape {np.shape(depth_m)} differs from the image's {rgb.shape[:2]}"
        )
    write_rgb(f"{stem}.color.png", rgb)
    if depth_m is not None:
        write_png16(f"{stem}.depth.png", depth_m_to_mm(depth_m))
    atomic_write_text(f"{stem}.pose.txt", _format_pose(T))
    return stem


def write_splits(
    root: str | os.PathLike, scene: str, train_seqs: Iterable[int], test_seqs: Iterable[int]
) -> tuple[Path, Path]:
    """Write ``TrainSplit.txt`` and ``TestSplit.txt`` (``sequenceN`` lines) for ``root/scene``."""
    out = []
    for name, seqs in (("TrainSplit.txt", train_seqs), ("TestSplit.txt", test_seqs)):
        s: Sequence[int] = [int(x) for x in seqs]
        if not s or any(x < 0 for x in s):
            raise InputError(f"{DATASET} write_splits: {name} needs a non-empty list of sequence numbers >= 0")
        out.append(atomic_write_text(Path(root) / scene / name, "".join(f"sequence{x}\n" for x in s)))
    return out[0], out[1]
