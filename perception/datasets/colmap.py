"""COLMAP sparse models (through pycolmap) and the PhotoTourism layout with NeRF-W split files.

A COLMAP model folder holds ``cameras``, ``images`` and ``points3D`` as ``.bin`` or ``.txt`` (COLMAP >= 3.12 adds
``rigs`` and ``frames``; older models without them are read too). :func:`read_colmap_model` returns plain project
types:

* cameras as :mod:`perception.camera` models -- COLMAP's pixel-corner principal point loses 0.5 on the way in
  (:func:`perception.camera.from_pycolmap`); keypoints likewise lose 0.5 (OpenCV pixel centres);
* images with ``T_world_cam`` (the inverse of COLMAP's ``cam_from_world``), keypoints and their 3D point ids;
* points as arrays (ids, xyz, rgb, reprojection error).

:func:`write_colmap_model` writes such a model back (single-camera rigs, binary or text), converting the other way.

PhotoTourism (IMC-PT / NeRF-W) layout under ``root``::

    <scene>/dense/images/*.jpg
    <scene>/dense/sparse/{cameras,images,points3D}.bin
    <scene>/<name>.tsv        NeRF-W split: header "filename id split dataset", tab separated

The split file of NeRF-W is named after the landmark (``brandenburg.tsv`` for ``brandenburg_gate``), so the reader
takes ``<scene>/<scene>.tsv`` if present, else the only ``*.tsv`` in the scene folder, or an explicit path. Rows with
an empty ``id`` are dropped, as NeRF-W does.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from perception.camera import CameraModel, from_pycolmap, to_pycolmap
from perception.camera.convert import COLMAP_PIXEL_SHIFT
from perception.datasets.common import read_rgb, require_dir, require_file
from perception.errors import InputError
from perception.fileio import atomic_dir, atomic_write_text
from perception.geometry import SE3

logger = logging.getLogger(__name__)

__all__ = [
    "ColmapImage",
    "ColmapModel",
    "ColmapPoints",
    "NerfWEntry",
    "PhotoTourism",
    "read_colmap_model",
    "read_nerfw_tsv",
    "write_colmap_model",
    "write_nerfw_tsv",
]

_DATASET = "COLMAP"
_PT = "PhotoTourism"
_MODEL_FILES = ("cameras", "images", "points3D")
_TSV_COLUMNS = ("filename", "id", "split", "dataset")


@dataclass
class ColmapImage:
    """One image of a model. ``keypoints`` (N, 2) use OpenCV pixel centres; ``point3D_ids`` (N,) is -1 if none."""

    image_id: int
    name: str
    camera_id: int
    T_world_cam: SE3 | None
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    point3D_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class ColmapPoints:
    """3D points as arrays: ids (M,), xyz (M, 3) float64, rgb (M, 3) uint8, error (M,) px."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    xyz: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    rgb: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))
    error: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return int(self.ids.size)


@dataclass
class ColmapModel:
    """Cameras, images and points of a COLMAP sparse model, in project conventions."""

    cameras: dict[int, CameraModel]
    images: dict[int, ColmapImage]
    points: ColmapPoints = field(default_factory=ColmapPoints)

    def image_by_name(self, name: str) -> ColmapImage:
        for im in self.images.values():
            if im.name == name:
                return im
        raise KeyError(name)

    def tracks(self) -> dict[int, list[tuple[int, int]]]:
        """point3D id -> [(image_id, keypoint index), ...], from the images' ``point3D_ids``."""
        out: dict[int, list[tuple[int, int]]] = {int(p): [] for p in self.points.ids}
        for iid in sorted(self.images):
            im = self.images[iid]
            for k in np.flatnonzero(im.point3D_ids >= 0).tolist():
                out.setdefault(int(im.point3D_ids[k]), []).append((iid, k))
        return out


# ----------------------------------------------------------------------------------------------- reading
def _model_format(path: Path) -> str:
    for ext in ("bin", "txt"):
        if all((path / f"{n}.{ext}").is_file() for n in _MODEL_FILES):
            return ext
    present = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    for ext in ("bin", "txt"):
        missing = [f"{n}.{ext}" for n in _MODEL_FILES if not (path / f"{n}.{ext}").is_file()]
        if len(missing) < len(_MODEL_FILES):
            raise FileNotFoundError(f"{_DATASET}: model folder {path} lacks {', '.join(missing)}")
    raise FileNotFoundError(
        f"{_DATASET}: {path} holds no COLMAP model (expected cameras, images, points3D as .bin or .txt; "
        f"found {', '.join(present[:6]) or 'nothing'})"
    )


def _rigid_to_se3(rigid) -> SE3:  # rigid: pycolmap.Rigid3d
    return SE3.from_matrix(np.vstack([np.asarray(rigid.matrix(), dtype=np.float64), [0.0, 0.0, 0.0, 1.0]]))


def read_colmap_model(path: str | os.PathLike) -> ColmapModel:
    """Read a COLMAP model folder (binary or text) into project types (see the module docstring)."""
    import pycolmap

    path = require_dir(path, _DATASET, "a sparse model folder with cameras, images, points3D")
    ext = _model_format(path)
    rec = pycolmap.Reconstruction()
    try:
        (rec.read_binary if ext == "bin" else rec.read_text)(str(path))
    except Exception as e:  # pycolmap raises ValueError / IndexError / RuntimeError on corrupt files
        msg = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise InputError(f"{_DATASET}: cannot read the {ext} model in {path} ({msg}); the files are corrupt") from None
    cameras: dict[int, CameraModel] = {}
    for cid, cam in sorted(rec.cameras.items()):
        try:
            cameras[int(cid)] = from_pycolmap(cam)
        except ValueError as e:
            raise InputError(f"{_DATASET}: {path / f'cameras.{ext}'} camera {cid}: {e}") from None
    images: dict[int, ColmapImage] = {}
    for iid, im in sorted(rec.images.items()):
        pts = im.points2D
        kp = np.array([p.xy for p in pts], dtype=np.float64).reshape(-1, 2) - COLMAP_PIXEL_SHIFT
        ids = np.array([p.point3D_id if p.has_point3D() else -1 for p in pts], dtype=np.int64).reshape(-1)
        T = _rigid_to_se3(im.cam_from_world()).inverse() if im.has_pose else None
        images[int(iid)] = ColmapImage(int(iid), str(im.name), int(im.camera_id), T, kp, ids)
    pids = sorted(int(p) for p in rec.points3D)
    pts3 = [rec.points3D[p] for p in pids]
    points = ColmapPoints(
        ids=np.array(pids, dtype=np.int64),
        xyz=np.array([p.xyz for p in pts3], dtype=np.float64).reshape(-1, 3),
        rgb=np.array([p.color for p in pts3], dtype=np.uint8).reshape(-1, 3),
        error=np.array([p.error for p in pts3], dtype=np.float64).reshape(-1),
    )
    logger.debug(
        "%s: read %d cameras, %d images, %d points from %s", _DATASET, len(cameras), len(images), len(pids), path
    )
    return ColmapModel(cameras, images, points)


# ----------------------------------------------------------------------------------------------- writing
def model_to_reconstruction(model: ColmapModel):  # -> pycolmap.Reconstruction
    """A pycolmap.Reconstruction of a model (keypoints shifted to COLMAP's pixel-corner convention)."""
    import pycolmap

    rec = pycolmap.Reconstruction()
    for cid in sorted(model.cameras):
        rec.add_camera_with_trivial_rig(to_pycolmap(model.cameras[cid], camera_id=cid))
    for iid in sorted(model.images):
        im = model.images[iid]
        if im.camera_id not in model.cameras:
            raise InputError(
                f"write_colmap_model: image {im.name!r} uses camera {im.camera_id}, which is not in cameras"
            )
        if im.T_world_cam is None:
            raise InputError(f"write_colmap_model: image {im.name!r} has no pose; COLMAP models hold posed images only")
        if not im.name or any(c in im.name for c in "\n\r"):
            raise InputError(f"write_colmap_model: image {iid} has an invalid name {im.name!r}")
        kp = np.asarray(im.keypoints, dtype=np.float64).reshape(-1, 2)
        if np.asarray(im.point3D_ids).shape != (kp.shape[0],):
            raise InputError(f"write_colmap_model: image {im.name!r} needs one point3D id per keypoint")
        T = im.T_world_cam.inverse()
        if not (np.all(np.isfinite(T.R)) and np.all(np.isfinite(T.t)) and np.all(np.isfinite(kp))):
            raise InputError(f"write_colmap_model: image {im.name!r} has NaN/inf pose or keypoints")
        pim = pycolmap.Image(name=im.name, keypoints=kp + COLMAP_PIXEL_SHIFT, camera_id=im.camera_id, image_id=iid)
        rec.add_image_with_trivial_frame(pim, pycolmap.Rigid3d(pycolmap.Rotation3d(T.R), T.t))
    tracks = model.tracks()
    pts = model.points
    for k, pid in enumerate(pts.ids.tolist()):
        track = pycolmap.Track()
        for iid, idx in tracks.get(pid, []):
            if idx >= len(model.images[iid].keypoints):
                raise InputError(f"write_colmap_model: point {pid} refers to keypoint {idx} of image {iid}")
            track.add_element(iid, idx)
        p = pycolmap.Point3D(
            xyz=pts.xyz[k], color=np.asarray(pts.rgb[k], np.uint8), error=float(pts.error[k]), track=track
        )
        rec.add_point3D_with_id(int(pid), p)
    unknown = set(tracks) - set(pts.ids.tolist())
    if unknown:
        raise InputError(f"write_colmap_model: images refer to point3D ids {sorted(unknown)[:5]} missing from points")
    return rec


def write_colmap_model(path: str | os.PathLike, model: ColmapModel, text: bool = False) -> Path:
    """Write ``model`` as a COLMAP model folder (binary, or text with ``text=True``); ``path`` is replaced whole.

    Every image must have a pose; each camera gets a trivial single-camera rig.
    """
    rec = model_to_reconstruction(model)
    path = Path(path)
    with atomic_dir(path) as tmp:
        (rec.write_text if text else rec.write_binary)(str(tmp))
    return path


# ----------------------------------------------------------------------------------------------- NeRF-W tsv
@dataclass(frozen=True)
class NerfWEntry:
    filename: str
    id: int
    split: str
    dataset: str


def read_nerfw_tsv(path: str | os.PathLike) -> list[NerfWEntry]:
    """Rows of a NeRF-W split file (tab separated, header ``filename id split dataset``); rows without id dropped."""
    path = require_file(path, _PT, "NeRF-W split file with columns filename, id, split, dataset")
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8", errors="replace")), delimiter="\t"))
    rows = [(n, r) for n, r in enumerate(rows, start=1) if any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"{_PT}: {path} is empty; expected a header 'filename id split dataset' and rows")
    header = [c.strip() for c in rows[0][1]]
    if sorted(header) != sorted(_TSV_COLUMNS):
        raise InputError(
            f"{_PT}: {path} has header {header}; expected the tab-separated columns {' '.join(_TSV_COLUMNS)}"
        )
    col = {name: header.index(name) for name in _TSV_COLUMNS}
    out = []
    for lineno, r in rows[1:]:
        if len(r) != len(header):
            raise InputError(
                f"{_PT}: {path} line {lineno} has {len(r)} tab-separated columns; expected {len(header)} "
                f"({' '.join(header)})"
            )
        f, i, s, d = (r[col[c]].strip() for c in _TSV_COLUMNS)
        if not i or i.lower() == "nan":
            continue
        try:
            ident = int(float(i))
        except ValueError:
            raise InputError(f"{_PT}: {path} line {lineno}: id {i!r} is not an integer") from None
        if s not in ("train", "test"):
            raise InputError(f"{_PT}: {path} line {lineno}: split {s!r}; expected 'train' or 'test'")
        if not f:
            raise InputError(f"{_PT}: {path} line {lineno} has an empty filename")
        out.append(NerfWEntry(f, ident, s, d))
    return out


def write_nerfw_tsv(path: str | os.PathLike, train: list[str], test: list[str], dataset: str) -> Path:
    """Write a NeRF-W split file; ids number the rows (train first, then test), atomically."""
    names = list(train) + list(test)
    if len(set(names)) != len(names):
        raise InputError(f"write_nerfw_tsv({path}): a filename appears twice in train/test")
    for n in [*names, dataset]:
        if not n or any(c in n for c in "\t\n\r"):
            raise InputError(f"write_nerfw_tsv({path}): {n!r} is empty or contains a tab or newline")
    lines = ["\t".join(_TSV_COLUMNS)]
    lines += [f"{n}\t{k}\t{'train' if k < len(train) else 'test'}\t{dataset}" for k, n in enumerate(names)]
    return atomic_write_text(path, "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------------- PhotoTourism
class PhotoTourism:
    """One PhotoTourism scene (``root/<scene>/dense/{images,sparse}`` and a NeRF-W ``.tsv``).

    Parameters
    ----------
    root, scene
        ``root/scene`` is the scene folder (e.g. ``brandenburg_gate``).
    tsv
        The NeRF-W split file; default ``<scene>/<scene>.tsv``, else the only ``*.tsv`` in the scene folder.
    """

    def __init__(self, root: str | os.PathLike, scene: str, tsv: str | os.PathLike | None = None) -> None:
        self.root = Path(root)
        self.scene = scene
        self.scene_dir = require_dir(self.root / scene, _PT, "scene folder with dense/images and dense/sparse")
        self.images_dir = require_dir(self.scene_dir / "dense" / "images", _PT, "the scene's images")
        self.sparse_dir = require_dir(self.scene_dir / "dense" / "sparse", _PT, "the COLMAP model")
        self._tsv = Path(tsv) if tsv is not None else None

    def __repr__(self) -> str:
        return f"PhotoTourism(root={str(self.root)!r}, scene={self.scene!r})"

    @property
    def tsv_path(self) -> Path:
        if self._tsv is not None:
            return require_file(self._tsv, _PT, "NeRF-W split file")
        own = self.scene_dir / f"{self.scene}.tsv"
        if own.is_file():
            return own
        found = sorted(self.scene_dir.glob("*.tsv"))
        if len(found) == 1:
            return found[0]
        if not found:
            raise FileNotFoundError(
                f"{_PT}: missing file {own} (NeRF-W split, e.g. brandenburg.tsv from nerf-w.github.io; any one *.tsv "
                "in the scene folder is used)"
            )
        raise InputError(
            f"{_PT}: {self.scene_dir} holds several .tsv files ({', '.join(p.name for p in found)}); pass tsv="
        )

    @cached_property
    def model(self) -> ColmapModel:
        return read_colmap_model(self.sparse_dir)

    @cached_property
    def entries(self) -> list[NerfWEntry]:
        return read_nerfw_tsv(self.tsv_path)

    def split(self, split: Literal["train", "test"] = "train") -> list[str]:
        """Image filenames of a NeRF-W split, in file order."""
        if split not in ("train", "test"):
            raise InputError(f"{_PT}: split must be 'train' or 'test', got {split!r}")
        return [e.filename for e in self.entries if e.split == split]

    def images(self, split: Literal["train", "test"] = "train") -> list[ColmapImage]:
        """The model's images of a split (each listed file must be in the model)."""
        by_name = {im.name: im for im in self.model.images.values()}
        out = []
        for name in self.split(split):
            if name not in by_name:
                raise InputError(f"{_PT}: {self.tsv_path} lists {name!r}, which is not in the model {self.sparse_dir}")
            out.append(by_name[name])
        return out

    def image_path(self, name: str) -> Path:
        return self.images_dir / name

    def load_image(self, name: str) -> np.ndarray:
        return read_rgb(self.image_path(name), _PT)
