"""ScanNet v2 semantic segmentation data: reader and writer (meshes, NYU40 labels, 20-class benchmark mapping).

Layout under ``root``::

    scans/sceneXXXX_XX/sceneXXXX_XX_vh_clean_2.ply         decimated mesh: binary little-endian PLY, vertex
                                                            x y z (float) red green blue alpha (uchar), faces
                                                            (list uchar int vertex_indices, triangles)
    scans/sceneXXXX_XX/sceneXXXX_XX_vh_clean_2.labels.ply  the same vertices with ``label`` (ushort) = NYU40 id
    scans_test/sceneXXXX_XX/...                             test scenes (no labels)
    scannetv2-labels.combined.tsv                           raw category -> nyu40id (tab separated, header row)
    scannetv2_train.txt / scannetv2_val.txt / scannetv2_test.txt   one scene id per line

The points are the mesh vertices (about 150k per scene), in metres in ScanNet's scan frame. The 20 benchmark
classes are the NYU40 ids :data:`VALID_CLASS_IDS` mapped to train ids 0..19 in that order; every other id (0 =
unannotated, other NYU40 classes, out-of-range ids) maps to :data:`IGNORE_LABEL` = 255. NYU40 ids are returned
as in the file; ids outside 0..40 (ScanNet issue #20: 50 in scene0270_00/_02, 149 in scene0384_00) are logged and
end up as 255 in ``labels20``.

PLY files are read and written with ``plyfile`` (open3d's PLY reader drops ``ushort`` properties).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from perception.datasets.common import require_dir, require_file
from perception.errors import InputError
from perception.fileio import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "CLASS_NAMES_20",
    "IGNORE_LABEL",
    "VALID_CLASS_IDS",
    "ScanNet",
    "ScanNetScene",
    "nyu40_to_labels20",
    "read_label_map",
    "read_mesh_ply",
    "write_label_map",
    "write_ply",
    "write_scene",
    "write_split",
]

DATASET = "ScanNet"
VALID_CLASS_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
CLASS_NAMES_20 = (
    "wall",
    "floor",
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "desk",
    "curtain",
    "refrigerator",
    "shower curtain",
    "toilet",
    "sink",
    "bathtub",
    "otherfurniture",
)
IGNORE_LABEL = 255
NUM_NYU40 = 40
_LUT = np.full(NUM_NYU40 + 1, IGNORE_LABEL, dtype=np.int64)
_LUT[list(VALID_CLASS_IDS)] = np.arange(len(VALID_CLASS_IDS))
_SCENE_RE = re.compile(r"^scene\d{4}_\d{2}$")
_SPLITS = ("train", "val", "test")
# The full column set of ScanNet's scannetv2-labels.combined.tsv.
_TSV_COLUMNS = (
    "id", "raw_category", "category", "count", "nyu40id", "eigen13id", "nyuClass", "nyu40class", "eigen13class",
    "ModelNet40", "ModelNet10", "ShapeNetCore55", "synsetoffset", "wnsynsetid", "wnsynsetkey", "mpcat40",
    "mpcat40index",
)  # fmt: skip


@dataclass
class ScanNetScene:
    """One scene: per-vertex xyz (N,3) float32, rgb (N,3) uint8, NYU40 ids and 20-class train ids (N,) int64
    (None for unlabelled test scenes) and triangle faces (M,3) int64."""

    scene_id: str
    xyz: np.ndarray
    rgb: np.ndarray
    nyu40: np.ndarray | None
    labels20: np.ndarray | None
    faces: np.ndarray

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


def nyu40_to_labels20(nyu40: np.ndarray) -> np.ndarray:
    """NYU40 ids -> benchmark train ids 0..19, everything else -> 255 (int64)."""
    nyu40 = np.asarray(nyu40)
    if not np.issubdtype(nyu40.dtype, np.integer):
        raise InputError(f"nyu40_to_labels20: expected integer NYU40 ids, got dtype {nyu40.dtype}")
    ids = nyu40.astype(np.int64)
    inside = (ids >= 0) & (ids <= NUM_NYU40)
    return np.where(inside, _LUT[np.clip(ids, 0, NUM_NYU40)], IGNORE_LABEL)


def _check_scene_id(scene_id: str) -> str:
    if not isinstance(scene_id, str) or not _SCENE_RE.match(scene_id):
        raise InputError(f"{DATASET}: scene id {scene_id!r} is not of the form sceneXXXX_XX (e.g. scene0000_00)")
    return scene_id


# ---------------------------------------------------------------------------------------------------------------
# PLY


def read_mesh_ply(path: str | os.PathLike, what: str = "mesh") -> tuple[np.ndarray, np.ndarray]:
    """Vertex records (structured array with the file's vertex properties) and triangle faces (M, 3) int64."""
    from plyfile import PlyData, PlyParseError

    path = require_file(path, DATASET, what)
    try:
        # known_list_len reads the triangle lists as one (M, 3) block (only on the memory-mapped path, so the data
        # are copied out below and the mapping dropped with ``ply``).
        ply = PlyData.read(str(path), mmap="c", known_list_len={"face": {"vertex_indices": 3}})
    except PlyParseError as e:
        msg = str(e)
        if "unexpected list length" in msg:
            raise InputError(f"{DATASET}: {path} has non-triangular faces ({msg}); expected a triangle mesh") from None
        raise InputError(f"{DATASET}: {path} is not a readable PLY mesh ({msg}); expected {what}") from None
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{DATASET}: {path} is not a readable PLY mesh ({e}); expected {what}") from None
    names = [el.name for el in ply.elements]
    if "vertex" not in names:
        raise InputError(f"{DATASET}: {path} has no 'vertex' element; expected {what}")
    vertex = np.array(ply["vertex"].data)
    props = vertex.dtype.names or ()
    missing = [p for p in ("x", "y", "z") if p not in props]
    if missing:
        raise InputError(f"{DATASET}: {path} vertex lacks properties {', '.join(missing)}; expected x y z")
    if "face" in names and len(ply["face"].data):
        fdata = ply["face"].data
        if "vertex_indices" not in (fdata.dtype.names or ()):
            raise InputError(f"{DATASET}: {path} faces lack the 'vertex_indices' list property")
        lists = fdata["vertex_indices"]
        if lists.dtype == object:  # ASCII files: one array per face
            if any(len(f) != 3 for f in lists):
                raise InputError(f"{DATASET}: {path} has non-triangular faces; expected a triangle mesh")
            lists = np.stack(list(lists))
        faces = np.array(lists, dtype=np.int64).reshape(-1, 3)
        if faces.size and (faces.min() < 0 or faces.max() >= len(vertex)):
            raise InputError(f"{DATASET}: {path} has face indices outside [0, {len(vertex) - 1}]; the file is corrupt")
    else:
        faces = np.zeros((0, 3), dtype=np.int64)
    return vertex, faces


def write_ply(path: str | os.PathLike, vertex: np.ndarray, faces: np.ndarray) -> Path:
    """A binary little-endian PLY (atomically) of a structured vertex array and triangles (F, 3) (may be empty)."""
    from plyfile import PlyData, PlyElement

    fs = np.zeros(faces.shape[0], dtype=[("vertex_indices", "<i4", (3,))])
    fs["vertex_indices"] = faces
    elements = [
        PlyElement.describe(vertex, "vertex"),
        PlyElement.describe(fs, "face", len_types={"vertex_indices": "u1"}, val_types={"vertex_indices": "i4"}),
    ]
    buf = io.BytesIO()
    PlyData(elements, text=False, byte_order="<").write(buf)
    return atomic_write_bytes(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------------------------
# Label map and splits


def read_label_map(path: str | os.PathLike, value: str = "nyu40id") -> dict[str, int]:
    """``scannetv2-labels.combined.tsv`` as ``{raw_category: <value> column}`` (default the NYU40 id)."""
    path = require_file(path, DATASET, "tab-separated label map with columns raw_category and nyu40id")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        cols = reader.fieldnames or []
        if "raw_category" not in cols or value not in cols:
            raise InputError(
                f"{DATASET}: {path} header {cols[:6]}... lacks 'raw_category' or '{value}'; expected the "
                "scannetv2-labels.combined.tsv columns"
            )
        out: dict[str, int] = {}
        for lineno, row in enumerate(reader, start=2):
            text = (row.get(value) or "").strip()
            if not text:
                continue  # some categories have no id in some columns
            try:
                out[row["raw_category"]] = int(text)
            except ValueError:
                raise InputError(f"{DATASET}: {path} line {lineno}: {value} {text!r} is not an integer") from None
    return out


def write_label_map(path: str | os.PathLike, mapping: dict[str, int]) -> Path:
    """Write a label map with ScanNet's full header; only id, raw_category, category, count and nyu40id are filled."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(_TSV_COLUMNS)
    for i, (raw, nyu) in enumerate(mapping.items(), start=1):
        if "\t" in raw or "\n" in raw:
            raise InputError(f"write_label_map({path}): category {raw!r} contains a tab or newline")
        w.writerow([i, raw, raw, 1, int(nyu)] + [""] * (len(_TSV_COLUMNS) - 5))
    return atomic_write_text(path, buf.getvalue())


def write_split(root: str | os.PathLike, split: Literal["train", "val", "test"], scene_ids: list[str]) -> Path:
    if split not in _SPLITS:
        raise InputError(f"write_split: split must be one of {', '.join(_SPLITS)}, got {split!r}")
    text = "".join(f"{_check_scene_id(s)}\n" for s in scene_ids)
    return atomic_write_text(Path(root) / f"scannetv2_{split}.txt", text)


# ---------------------------------------------------------------------------------------------------------------
# Scenes


def write_scene(
    root: str | os.PathLike,
    scene_id: str,
    xyz: np.ndarray,
    rgb: np.ndarray,
    faces: np.ndarray,
    nyu40: np.ndarray | None = None,
    test: bool = False,
) -> Path:
    """Write ``<scene>_vh_clean_2.ply`` (and ``.labels.ply`` when ``nyu40`` is given) under ``scans/`` (or
    ``scans_test/``) with ScanNet's property layout (alpha = 255). Returns the scene folder."""
    _check_scene_id(scene_id)
    xyz = np.asarray(xyz)
    rgb = np.asarray(rgb)
    faces = np.asarray(faces)
    n = xyz.shape[0] if xyz.ndim == 2 else -1
    if xyz.shape != (n, 3) or not np.all(np.isfinite(xyz)):
        raise InputError(f"write_scene({scene_id}): xyz must be finite (N, 3), got shape {xyz.shape}")
    if rgb.shape != (n, 3) or rgb.dtype != np.uint8:
        raise InputError(f"write_scene({scene_id}): rgb must be ({n}, 3) uint8, got {rgb.dtype} {rgb.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise InputError(
            f"write_scene({scene_id}): faces must be (M, 3) integer triangles, got {faces.dtype} {faces.shape}"
        )
    if faces.size and (faces.min() < 0 or faces.max() >= n):
        raise InputError(f"write_scene({scene_id}): face indices must lie in [0, {n - 1}]")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
    v = np.zeros(n, dtype=fields)
    v["x"], v["y"], v["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    v["red"], v["green"], v["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    v["alpha"] = 255
    folder = Path(root) / ("scans_test" if test else "scans") / scene_id
    write_ply(folder / f"{scene_id}_vh_clean_2.ply", v, faces)
    if nyu40 is not None:
        nyu40 = np.asarray(nyu40)
        if (
            nyu40.shape != (n,)
            or not np.issubdtype(nyu40.dtype, np.integer)
            or nyu40.min(initial=0) < 0
            or (nyu40.max(initial=0) > 65535)
        ):
            raise InputError(
                f"write_scene({scene_id}): nyu40 must be ({n},) integers in 0..65535, got {nyu40.dtype} {nyu40.shape}"
            )
        lv = np.zeros(n, dtype=fields + [("label", "<u2")])
        for name, _ in fields:
            lv[name] = v[name]
        lv["label"] = nyu40
        write_ply(folder / f"{scene_id}_vh_clean_2.labels.ply", lv, faces)
    return folder


class ScanNet:
    """Reader for a ScanNet v2 root: ``scenes(split)``, ``load_scene(scene_id)``, ``label_map``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = require_dir(root, DATASET, "the ScanNet v2 root holding scans/ and the split files")

    def __repr__(self) -> str:
        return f"ScanNet({str(self.root)!r})"

    def scenes(self, split: Literal["train", "val", "test", "all"] = "train") -> list[str]:
        """Scene ids of ``scannetv2_<split>.txt`` in file order; ``"all"``: every folder of ``scans/``, sorted."""
        if split == "all":
            scans = require_dir(self.root / "scans", DATASET, "one folder per scene")
            return sorted(p.name for p in scans.iterdir() if p.is_dir() and _SCENE_RE.match(p.name))
        if split not in _SPLITS:
            raise InputError(f"{DATASET}: split must be train, val, test or all, got {split!r}")
        path = require_file(self.root / f"scannetv2_{split}.txt", DATASET, "split file, one scene id per line")
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        for lineno, s in enumerate(ids, start=1):
            if not _SCENE_RE.match(s):
                raise InputError(f"{DATASET}: {path} entry {lineno} {s!r} is not a scene id like scene0000_00")
        return ids

    def scene_dir(self, scene_id: str) -> Path:
        _check_scene_id(scene_id)
        for sub in ("scans", "scans_test"):
            d = self.root / sub / scene_id
            if d.is_dir():
                return d
        raise FileNotFoundError(f"{DATASET}: missing folder {self.root / 'scans' / scene_id} (scene {scene_id})")

    @cached_property
    def label_map(self) -> dict[str, int]:
        """raw category -> NYU40 id from ``scannetv2-labels.combined.tsv``."""
        return read_label_map(self.root / "scannetv2-labels.combined.tsv")

    def load_scene(self, scene_id: str, labels: bool = True) -> ScanNetScene:
        """Vertices, colours, faces and (``labels=True``, scenes under ``scans/``) NYU40 and 20-class labels."""
        d = self.scene_dir(scene_id)
        mesh_path = d / f"{scene_id}_vh_clean_2.ply"
        v, faces = read_mesh_ply(mesh_path, "mesh: vertex x y z float, red green blue (alpha) uchar, faces")
        missing = [p for p in ("red", "green", "blue") if p not in v.dtype.names]
        if missing:
            raise InputError(f"{DATASET}: {mesh_path} vertex lacks {', '.join(missing)}; expected red green blue uchar")
        xyz = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float32)
        rgb = np.stack([v["red"], v["green"], v["blue"]], axis=1)
        if rgb.dtype != np.uint8:
            raise InputError(f"{DATASET}: {mesh_path} colours are {rgb.dtype}; expected uchar red green blue")
        if not np.all(np.isfinite(xyz)):
            raise InputError(f"{DATASET}: {mesh_path} contains NaN/inf vertex coordinates")
        nyu40 = labels20 = None
        if labels and d.parent.name == "scans":
            lpath = d / f"{scene_id}_vh_clean_2.labels.ply"
            lv, _ = read_mesh_ply(lpath, "labelled mesh: the same vertices with a 'label' (NYU40 id) property")
            if "label" not in lv.dtype.names:
                raise InputError(f"{DATASET}: {lpath} vertex has no 'label' property; expected the NYU40 id (ushort)")
            if len(lv) != len(v):
                raise InputError(f"{DATASET}: {lpath} has {len(lv)} vertices but {mesh_path.name} has {len(v)}")
            lxyz = np.stack([lv["x"], lv["y"], lv["z"]], axis=1)
            if not np.allclose(lxyz, xyz, atol=1e-5):
                raise InputError(f"{DATASET}: {lpath} vertices differ from those of {mesh_path.name}; files mismatch")
            if not np.issubdtype(lv["label"].dtype, np.integer):
                raise InputError(f"{DATASET}: {lpath} 'label' is {lv['label'].dtype}; expected an integer NYU40 id")
            nyu40 = lv["label"].astype(np.int64)
            bad = np.unique(nyu40[(nyu40 < 0) | (nyu40 > NUM_NYU40)])
            if bad.size:
                logger.warning("%s: %s has labels %s outside the NYU40 ids 0..40; they map to %d", DATASET, lpath,
                               bad.tolist(), IGNORE_LABEL)  # fmt: skip
            labels20 = nyu40_to_labels20(nyu40)
        return ScanNetScene(scene_id, xyz, rgb, nyu40, labels20, faces)
