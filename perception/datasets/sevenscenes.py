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

Rendered depth: hloc's 7-Scenes pipeline (``--use_dense_depth``) reads depth rendered from the scenes' meshes at the
colour camera, so registered to it: ``<depth>/7scenes_<scene>/train/depth/seqXX_frame-NNNNNN.pose.depth.tiff``,
single-channel millimetres, 0 and values above 1000 m invalid. ``SevenScenes(..., rendered_depth=folder)`` (the
``.../train/depth`` folder) makes :meth:`SevenScenes.load_depth_m` read those instead of the ``depth.png`` files;
:func:`rendered_depth_name` gives a frame's file name and :func:`write_rendered_depth` writes one.

Pseudo ground truth: the ``pose.txt`` files are the dataset's own D-SLAM (KinectFusion) poses. Brachmann et al.
(ICCV 2021, ``tsattler/visloc_pseudo_gt_limitations``) published an alternative SfM pGT, one file per scene and
split, ``<folder>/<scene>_{train,test}.txt``, lines ``rgb_file qw qx qy qz tx ty tz f``: the world-to-camera pose
(COLMAP's convention, ``p_cam = R(q) p_world + t``) and the colour focal re-estimated by COLMAP. FaVoR trains and
evaluates on it; that paper asks for results under both. ``SevenScenes(..., pgt=folder)`` takes the poses of every
split from there (frames the file does not list are left out); :func:`read_pgt` / :func:`write_pgt` read and write
one file. hloc-style results files (``slam.reloc.results``) are the same lines without ``f``, named by
:attr:`SevenScenesFrame.image_name`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
from perception.fileio import atomic_write_bytes, atomic_write_text
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
    "parse_frame_name",
    "read_pgt",
    "read_rendered_depth",
    "rendered_depth_name",
    "read_pose",
    "read_split",
    "write_frame",
    "write_pgt",
    "write_rendered_depth",
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
_IMAGE_NAME = re.compile(r"^(?:(?:.*/)?([^/]+)/)?seq-(\d+)/frame-(\d+)(?:\.color\.png)?$")


def _seq_dir_name(seq: int) -> str:
    return f"seq-{seq:02d}"


def _frame_stem(index: int) -> str:
    return f"frame-{index:06d}"


def parse_frame_name(name: str) -> tuple[str | None, int, int] | None:
    """``(scene, seq, index)`` of ``seq-XX/frame-NNNNNN`` or ``seq-XX/frame-NNNNNN.color.png``, optionally behind
    the scene's folder (``chess/seq-01/...``: ``scene`` is the folder right before ``seq-XX``, else None); None
    for other names."""
    m = _IMAGE_NAME.match(name.replace("\\", "/"))
    return None if m is None else (m.group(1), int(m.group(2)), int(m.group(3)))


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


def read_pgt(path: str | os.PathLike, allow_empty: bool = False) -> dict[str, tuple[SE3, float | None]]:
    """A pseudo-ground-truth (or hloc results) file: ``{rgb_file: (T_world_cam, f)}`` from lines
    ``rgb_file qw qx qy qz tx ty tz [f]`` (world-to-camera, COLMAP's convention; ``f`` None when absent; ``#``
    comments). An empty file is an error unless ``allow_empty`` (a results file whose queries all failed)."""
    path = require_file(path, DATASET, "lines 'rgb_file qw qx qy qz tx ty tz f' (visloc_pseudo_gt_limitations)")
    out: dict[str, tuple[SE3, float | None]] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        try:
            if len(parts) not in (8, 9):
                raise ValueError(f"{len(parts)} fields")
            v = np.array([float(x) for x in parts[1:]])
            if not np.all(np.isfinite(v)):
                raise ValueError("non-finite values")
            if abs(np.linalg.norm(v[:4]) - 1.0) > 1e-3:
                raise ValueError(f"quaternion norm {np.linalg.norm(v[:4]):.4f}, not 1")
            if len(v) == 8 and v[7] <= 0:
                raise ValueError(f"focal {v[7]} <= 0")
        except ValueError as e:
            raise InputError(f"{DATASET}: {path} line {lineno}: expected 'rgb_file qw qx qy qz tx ty tz [f]' ({e})"
                             ) from None  # fmt: skip
        if parts[0] in out:
            raise InputError(f"{DATASET}: {path} line {lineno}: {parts[0]} is listed twice")
        q = np.r_[v[1:4], v[0]]
        T_cam_world = SE3.from_quat_t(q / np.linalg.norm(q), v[4:7])
        out[parts[0]] = (T_cam_world.inverse(), float(v[7]) if len(v) == 8 else None)
    if not out and not allow_empty:
        raise InputError(f"{DATASET}: {path} lists no poses; expected lines 'rgb_file qw qx qy qz tx ty tz f'")
    return out


def write_pgt(path: str | os.PathLike, poses: dict[str, SE3], focal: float | dict[str, float] | None = None) -> Path:
    """Write ``{rgb_file: T_world_cam}`` as pseudo-ground-truth lines ``rgb_file qw qx qy qz tx ty tz f``
    (world-to-camera; without ``f`` when ``focal`` is None: an hloc results file). Atomic."""
    lines = []
    for name, T in poses.items():
        if not name or any(c.isspace() for c in name):
            raise InputError(f"{DATASET} write_pgt({path}): image name {name!r} is empty or has whitespace")
        T = _as_se3(T, f"{DATASET} write_pgt({path}): {name}")
        q, t = T.inverse().as_quat_t()  # (x, y, z, w)
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))):
            raise InputError(f"{DATASET} write_pgt({path}): the pose of {name} has NaN/inf entries")
        line = f"{name} {q[3]:.9f} {q[0]:.9f} {q[1]:.9f} {q[2]:.9f} {t[0]:.9f} {t[1]:.9f} {t[2]:.9f}"
        if focal is not None:
            f = focal.get(name) if isinstance(focal, dict) else focal
            if f is None or not (np.isfinite(f) and f > 0):
                raise InputError(f"{DATASET} write_pgt({path}): the focal of {name} is {f!r}; need a number > 0")
            line += f" {f:.6f}"
        lines.append(line)
    return atomic_write_text(path, "".join(f"{x}\n" for x in lines))


@dataclass(frozen=True)
class SevenScenesFrame:
    """One frame: file paths and the lazily read camera-to-world pose (or the pseudo ground truth's)."""

    seq: int
    index: int
    color_path: Path
    depth_path: Path
    pose_path: Path
    pgt_pose: SE3 | None = field(default=None, compare=False, repr=False)
    """The pose from a pseudo-ground-truth file, which replaces ``pose_path``'s (see ``SevenScenes(pgt=)``)."""

    @functools.cached_property
    def T_world_cam(self) -> SE3:
        """Camera-to-world pose: the pseudo ground truth's when given, else read from ``pose_path`` on first access
        (then cached)."""
        return self.pgt_pose if self.pgt_pose is not None else read_pose(self.pose_path)

    @property
    def name(self) -> str:
        """``seq-XX/frame-NNNNNN``: the frame's id inside sparsepipe (maps, JSON records)."""
        return f"{_seq_dir_name(self.seq)}/{_frame_stem(self.index)}"

    @property
    def image_name(self) -> str:
        """``seq-XX/frame-NNNNNN.color.png``: the name hloc's results and the pseudo-ground-truth files use."""
        return f"{self.name}.color.png"


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
    pgt
        Folder of pseudo-ground-truth files ``<scene>_train.txt`` / ``<scene>_test.txt`` (e.g.
        ``visloc_pseudo_gt_limitations/pgt/sfm/7scenes``): their poses replace the ``pose.txt`` files', and frames
        they do not list are left out of :meth:`frames`.
    rendered_depth
        Folder of hloc's rendered depth maps of this scene (``depth/7scenes_<scene>/train/depth``): read by
        :meth:`load_depth_m` instead of the ``depth.png`` files (registered to the colour camera).
    """

    def __init__(self, root: str | os.PathLike, scene: str, camera: PinholeCamera | None = None,
                 pgt: str | os.PathLike | None = None,
                 rendered_depth: str | os.PathLike | None = None) -> None:  # fmt: skip
        self.root = Path(root)
        self.scene = scene
        self.scene_dir = require_dir(self.root / scene, DATASET, f"scene '{scene}' with seq-XX folders")
        self.camera = DEFAULT_CAMERA if camera is None else camera
        self.pgt = None if pgt is None else require_dir(pgt, DATASET, f"pseudo ground truth with {scene}_train.txt")
        self.rendered_depth = None if rendered_depth is None else require_dir(
            rendered_depth, DATASET, f"rendered depth maps of {scene}, e.g. depth/7scenes_{scene}/train/depth")
        self._pgt_cache: dict[str, dict[str, tuple[SE3, float | None]]] = {}
        self._pgt_warned: set[str] = set()

    def pgt_poses(self, split: Literal["train", "test"]) -> dict[str, tuple[SE3, float | None]]:
        """The pseudo ground truth of a split, ``{image_name: (T_world_cam, f)}`` (requires ``pgt``)."""
        if self.pgt is None:
            raise InputError(f"{DATASET}: {self.scene} has no pseudo ground truth folder (pass pgt=)")
        if split not in self._pgt_cache:
            path = self.pgt / f"{self.scene}_{split}.txt"
            if not path.is_file():
                raise InputError(f"{DATASET}: missing {path}; the pseudo ground truth folder needs "
                                 f"{self.scene}_train.txt and {self.scene}_test.txt")  # fmt: skip
            self._pgt_cache[split] = read_pgt(path)
        return self._pgt_cache[split]

    def pgt_focal(self) -> float | None:
        """The colour focal of the pseudo ground truth (mean over the training split's lines), None without one."""
        if self.pgt is None:
            return None
        f = [v[1] for v in self.pgt_poses("train").values() if v[1] is not None]
        return float(np.mean(f)) if f else None

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
        """All frames of a split, ordered by sequence then index (with ``pgt``: those it lists, at its poses)."""
        if self.pgt is not None and split == "all":
            return sorted(self.frames("train") + self.frames("test"), key=lambda f: (f.seq, f.index))
        frames = [f for seq in self.sequences(split) for f in self.sequence_frames(seq)]
        if self.pgt is None:
            return frames
        pgt = self.pgt_poses(split)
        by_name = {f.image_name: f for f in frames}
        unknown = [n for n in pgt if n not in by_name]
        if unknown:
            raise InputError(f"{DATASET}: {self.pgt / f'{self.scene}_{split}.txt'} lists {unknown[0]}, which is not "
                             f"a {split} frame of {self.scene_dir} ({len(unknown)} such); is it this scene's file?"
                             )  # fmt: skip
        out = [dataclasses.replace(f, pgt_pose=pgt[f.image_name][0]) for f in frames if f.image_name in pgt]
        if len(out) < len(frames) and split not in self._pgt_warned:
            self._pgt_warned.add(split)
            logger.warning("7-Scenes: %d of %d %s frames of %s have no pseudo ground truth; left out",
                           len(frames) - len(out), len(frames), split, self.scene)  # fmt: skip
        return out

    def poses(self, split: Split = "train") -> SE3:
        """Camera-to-world poses of :meth:`frames` (same order), as one batched SE3 of shape (N,)."""
        return SE3.stack([f.T_world_cam for f in self.frames(split)])

    def load_pose(self, frame: SevenScenesFrame) -> SE3:
        """Camera-to-world pose ``T_world_cam`` of ``frame`` (the pseudo ground truth's, else read from its
        ``pose.txt``; cached on the frame)."""
        return frame.T_world_cam

    def load_color(self, frame: SevenScenesFrame) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        return read_rgb(frame.color_path, DATASET)

    def load_depth_m(self, frame: SevenScenesFrame, invalid: float = 0.0) -> np.ndarray:
        """(H, W) float32 depth in metres; raw 65535 (and 0) become ``invalid`` (0.0 by default, or NaN). With
        ``rendered_depth``, the frame's rendered depth map instead (its invalid pixels likewise)."""
        if self.rendered_depth is not None:
            return read_rendered_depth(self.depth_file(frame), invalid)
        return depth_mm_to_m(read_png16(frame.depth_path, DATASET), invalid)

    def depth_file(self, frame: SevenScenesFrame) -> Path:
        """The file :meth:`load_depth_m` reads for ``frame``: its rendered depth map, or its ``depth.png``."""
        return frame.depth_path if self.rendered_depth is None else self.rendered_depth / rendered_depth_name(frame)


def rendered_depth_name(frame: SevenScenesFrame) -> str:
    """hloc's file name of a frame's rendered depth: ``seq-01/frame-000000.color.png`` ->
    ``seq01_frame-000000.pose.depth.tiff``."""
    return f"seq{frame.seq:02d}_{_frame_stem(frame.index)}.pose.depth.tiff"


def read_rendered_depth(path: str | os.PathLike, invalid: float = 0.0) -> np.ndarray:
    """A rendered depth map (single-channel TIFF, millimetres; 0 and > 1000 m invalid) as float32 metres."""
    import cv2

    path = require_file(path, DATASET, "a rendered depth map seqXX_frame-NNNNNN.pose.depth.tiff (hloc's layout)")
    data = np.fromfile(path, dtype=np.uint8)
    raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    # integer millimetres of 16 bits or more (PIL's mode "I" TIFFs are int32) or float; 8 bits cannot hold depth
    if raw is None or raw.ndim != 2 or raw.dtype.kind not in "iuf" or raw.dtype.itemsize < 2:
        what = "unreadable" if raw is None else f"{raw.dtype} with shape {raw.shape}"
        raise InputError(f"{DATASET}: {path} is {what}; expected a single-channel 16/32-bit integer or float TIFF "
                         "in mm")
    mm = raw.astype(np.float64)
    depth = (mm / 1000.0).astype(np.float32)
    depth[~np.isfinite(mm) | (mm <= 0) | (mm > 1e6)] = invalid
    return depth


def write_rendered_depth(folder: str | os.PathLike, frame: SevenScenesFrame, depth_m: np.ndarray) -> Path:
    """Write a frame's depth (metres; non-finite or <= 0 -> 0 = invalid) as hloc's float32 millimetre TIFF."""
    import cv2

    d = np.asarray(depth_m, np.float64)
    if d.ndim != 2:
        raise InputError(f"{DATASET} write_rendered_depth: expected (H, W) depth, got shape {d.shape}")
    mm = np.where(np.isfinite(d) & (d > 0), d * 1000.0, 0.0).astype(np.float32)
    path = Path(folder) / rendered_depth_name(frame)
    ok, buf = cv2.imencode(".tiff", mm)
    if not ok:
        raise InputError(f"{DATASET} write_rendered_depth: could not encode {path}")
    return atomic_write_bytes(path, buf.tobytes())


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
