"""EgoHumans (multi-person ego-exo capture): exocentric cameras, their COLMAP calibration and 3D COCO-17 joints.

``root`` is one sequence folder, e.g. ``<data>/01_tagging/001_tagging``. The parts read here (the layout of the
released tarballs, the EgoHumans code ``lib/datasets/ego_exo_scene.py`` / ``exo_camera.py`` and Kineo's
``egohumans_preprocess.py``)::

    exo/camXX/images/NNNNN.jpg              exocentric GoPro frames, 5-digit numbers starting at 00001, 20 fps
    colmap/workplace/cameras.txt            COLMAP text cameras, OPENCV_FISHEYE (fx fy cx cy k1 k2 k3 k4), one
                                            COLMAP camera per exo camera (and per Aria camera, 1408x1408)
    colmap/workplace/images.txt             COLMAP text images named ``camXX/NNNNN.jpg``: the pose of camera
                                            camXX at a few frames (the cameras are static)
    colmap/workplace/colmap_from_aria_transforms.pkl   pickled dict {ariaNN: 4x4 similarity [[c R, t], [0, 1]]}
                                            from that Aria's world frame into the COLMAP frame
    colmap/workplace/camXX.npy              (some sequences) hand-calibrated 3x4 / 4x4 [R|t] of camXX, COLMAP frame
    processed_data/fit_poses3d/NNNNN.npy    pickled dict {ariaNN: (17, 4) float64} per frame: COCO-17 joints of
                                            each subject, x y z + a 4th column (a confidence according to third-party
                                            descriptions; Kineo ignores it), in the anchor Aria's world frame

World frame: the joints live in the metric world frame of the anchor Aria (``aria01`` unless the sequence's YAML
says otherwise), while COLMAP's frame is that frame scaled by ``c`` (the similarity's scale). Camera poses are
therefore mapped like Kineo does: ``cam_from_world = (R_cc R', (R_cc t' + t_cc) / c)`` for a COLMAP pose
``(R_cc, t_cc)`` and similarity ``(c, R', t')``. ``world="colmap"`` returns cameras and joints in COLMAP's frame
instead (joints then need the similarity pickle; the cameras do not).

Not on disk and so not handled: the per-sequence YAMLs of the EgoHumans code (``INVALID_EXOS``, the anchor, which
cameras copy their intrinsics from another -- pass ``intrinsics_from`` for those, which cameras use ``camXX.npy``
-- used here only when the camera has no pose in ``images.txt``). *Guesses*: the meaning of the 4th joint column
(see above) and the frame rate (20 fps, from Kineo's preprocessing; no file states it).

Pickles are read with a restricted unpickler that only rebuilds numpy arrays, dicts and lists (no arbitrary code).
Intrinsics convert through :func:`perception.camera.from_pycolmap` (principal point - 0.5, OpenCV pixel centres).
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from perception.camera import CameraModel, from_pycolmap, to_pycolmap
from perception.datasets.common import read_rgb, require_dir, require_file, write_rgb
from perception.datasets.keypoints2d import COCO17_KEYPOINTS
from perception.errors import InputError
from perception.fileio import atomic_write_bytes, atomic_write_text
from perception.geometry import SE3, Sim3, matrix_to_quat, quat_to_matrix

logger = logging.getLogger(__name__)

__all__ = ["FPS", "EgoHumans", "EgoHumansWriter", "load_numpy_pickle", "read_poses3d", "write_poses3d"]

DATASET = "EgoHumans"
FPS = 20
NUM_JOINTS = len(COCO17_KEYPOINTS)
_FRAME_NS = 1_000_000_000 // FPS


# ---------------------------------------------------------------------------------------------------------------
# Restricted pickles


def _multiarray() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # pragma: no cover - numpy < 2
        return importlib.import_module("numpy.core.multiarray")


_SAFE_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): lambda: _multiarray()._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): lambda: _multiarray()._reconstruct,
    ("numpy.core.multiarray", "scalar"): lambda: _multiarray().scalar,
    ("numpy._core.multiarray", "scalar"): lambda: _multiarray().scalar,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("collections", "OrderedDict"): lambda: __import__("collections").OrderedDict,
    ("_codecs", "encode"): lambda: __import__("codecs").encode,  # bytes in protocol-2 pickles
}


class _NumpyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        make = _SAFE_GLOBALS.get((module, name))
        if make is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays and dicts are allowed)")
        return make()


def load_numpy_pickle(path: str | os.PathLike, expected: str) -> Any:
    """Load a pickle (``.pkl``) or a pickled ``.npy`` holding only numpy arrays / dicts / lists, safely.

    A ``.npy`` of an object array (what ``np.save(dict)`` writes) is returned as the object it holds.
    """
    path = require_file(path, DATASET, expected)
    with path.open("rb") as f:
        npy = f.read(6) == b"\x93NUMPY"
        f.seek(0)
        try:
            if npy:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
                if not dtype.hasobject:
                    raise InputError(
                        f"{DATASET}: {path} holds a plain {dtype} array of shape {shape}; expected {expected}"
                    )
            obj = _NumpyUnpickler(f).load()
        except InputError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
            raise InputError(f"{DATASET}: {path} is not a readable pickle ({e}); expected {expected}") from None
    if npy and isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    return obj


def _dumps_npy_object(obj: Any) -> bytes:
    buf = io.BytesIO()
    arr = np.empty((), dtype=object)
    arr[()] = obj
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# 3D joints


def read_poses3d(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """One ``fit_poses3d`` frame: ``{subject: (17, 4) float64 x y z confidence}`` ((17, 3) files get confidence 1)."""
    expected = "a pickled dict {ariaNN: (17, 4) COCO-17 joints}"
    obj = load_numpy_pickle(path, expected)
    if not isinstance(obj, dict):
        raise InputError(f"{DATASET}: {path} holds a {type(obj).__name__}; expected {expected}")
    out = {}
    for subject, joints in obj.items():
        j = np.asarray(joints)
        if not isinstance(subject, str) or j.ndim != 2 or j.shape[0] != NUM_JOINTS or j.shape[1] not in (3, 4):
            raise InputError(
                f"{DATASET}: {path} entry {subject!r} has shape {j.shape}; expected ({NUM_JOINTS}, 4) COCO-17 joints"
            )
        if not np.issubdtype(j.dtype, np.number):
            raise InputError(f"{DATASET}: {path} entry {subject!r} is {j.dtype}; expected numbers")
        j = j.astype(np.float64)
        if j.shape[1] == 3:
            j = np.concatenate([j, np.ones((NUM_JOINTS, 1))], axis=1)
        out[subject] = j
    return out


def write_poses3d(path: str | os.PathLike, poses: dict[str, np.ndarray]) -> Path:
    """Write one frame of joints as EgoHumans does (``np.save`` of a dict of (17, 4) float64 arrays)."""
    out = {}
    for subject, joints in poses.items():
        j = np.asarray(joints, dtype=np.float64)
        if j.shape == (NUM_JOINTS, 3):
            j = np.concatenate([j, np.ones((NUM_JOINTS, 1))], axis=1)
        if j.shape != (NUM_JOINTS, 4):
            raise InputError(f"write_poses3d({path}): {subject!r} has shape {j.shape}; expected ({NUM_JOINTS}, 4)")
        out[str(subject)] = j
    return atomic_write_bytes(path, _dumps_npy_object(out))


# ---------------------------------------------------------------------------------------------------------------
# COLMAP text files (streamed: real images.txt files are hundreds of MB of 2D points)


@dataclass
class _ColmapImage:
    image_id: int
    name: str
    camera_id: int
    R_cam_colmap: np.ndarray
    t_cam_colmap: np.ndarray


def _read_cameras_txt(path: Path) -> dict[int, CameraModel]:
    import pycolmap

    path = require_file(path, DATASET, "COLMAP cameras: CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]")
    cams: dict[int, CameraModel] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        tok = line.split()
        if not tok or tok[0].startswith("#"):
            continue
        try:
            if len(tok) < 5:
                raise ValueError(f"{len(tok)} fields")
            cam_id, model, w, h = int(tok[0]), tok[1], int(tok[2]), int(tok[3])
            params = [float(t) for t in tok[4:]]
        except ValueError as e:
            raise InputError(
                f"{DATASET}: {path} line {lineno} is not 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]' ({e})"
            ) from None
        try:
            pc = pycolmap.Camera(model=model, width=w, height=h, params=params)
        except Exception as e:  # pycolmap raises various types for unknown models / wrong param counts
            raise InputError(f"{DATASET}: {path} line {lineno}: COLMAP rejects camera model {model} ({e})") from None
        try:
            cams[cam_id] = from_pycolmap(pc)
        except ValueError as e:
            raise InputError(f"{DATASET}: {path} line {lineno}: {e}") from None
    return cams


def _read_images_txt(path: Path) -> list[_ColmapImage]:
    path = require_file(path, DATASET, "COLMAP images: IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME + a points line")
    images = []
    with path.open() as f:
        lineno = 0
        for line in f:
            lineno += 1
            tok = line.split()
            if not tok or tok[0].startswith("#"):
                continue
            try:
                if len(tok) < 10:
                    raise ValueError(f"{len(tok)} fields")
                vals = [float(t) for t in tok[1:8]]
                image_id, camera_id = int(tok[0]), int(tok[8])
            except ValueError as e:
                raise InputError(
                    f"{DATASET}: {path} line {lineno} is not 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME' ({e})"
                ) from None
            q_wxyz = np.array(vals[:4])
            norm = np.linalg.norm(q_wxyz)
            if not np.isfinite(norm) or abs(norm - 1.0) > 1e-3 or not np.all(np.isfinite(vals)):
                raise InputError(f"{DATASET}: {path} line {lineno}: quaternion {vals[:4]} is not a unit quaternion")
            R = quat_to_matrix(np.r_[q_wxyz[1:], q_wxyz[0]] / norm)
            images.append(_ColmapImage(image_id, " ".join(tok[9:]), camera_id, R, np.array(vals[4:7])))
            next(f, None)  # the POINTS2D line (possibly empty) belongs to this image
            lineno += 1
    return images


def _split_name(name: str) -> tuple[str, int | None]:
    """``camXX/NNNNN.jpg`` -> (``camXX``, NNNNN); frame None when the file stem is not a number."""
    camera, _, rest = name.partition("/")
    stem = Path(rest).stem
    return camera, int(stem) if stem.isdigit() else None


# ---------------------------------------------------------------------------------------------------------------
# Reader


class EgoHumans:
    """Reader for one EgoHumans sequence folder (see the module docstring).

    ``anchor``: the Aria whose frame is the world frame of the joints; ``world="colmap"`` uses COLMAP's frame;
    ``intrinsics_from``: cameras that copy another camera's intrinsics (``{"cam05": "cam04"}``).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        anchor: str = "aria01",
        world: Literal["aria", "colmap"] = "aria",
        intrinsics_from: dict[str, str] | None = None,
    ) -> None:
        self.root = require_dir(root, DATASET, "one sequence folder holding exo/, colmap/workplace/, processed_data/")
        if world not in ("aria", "colmap"):
            raise InputError(f"{DATASET}: world must be 'aria' or 'colmap', got {world!r}")
        self.anchor = anchor
        self.world = world
        self.intrinsics_from = dict(intrinsics_from or {})
        self.exo_dir = self.root / "exo"
        self.colmap_dir = self.root / "colmap" / "workplace"
        self.poses3d_dir = self.root / "processed_data" / "fit_poses3d"

    def __repr__(self) -> str:
        return f"EgoHumans({str(self.root)!r}, anchor={self.anchor!r}, world={self.world!r})"

    # -- images ---------------------------------------------------------------------------------------------
    @cached_property
    def cameras(self) -> list[str]:
        """Exocentric camera names (``exo/cam*`` folders), sorted."""
        exo = require_dir(self.exo_dir, DATASET, "exocentric cameras: camXX/images/NNNNN.jpg")
        cams = sorted(p.name for p in exo.iterdir() if p.is_dir() and p.name.startswith("cam"))
        if not cams:
            raise FileNotFoundError(f"{DATASET}: no camXX folders in {exo}")
        return cams

    def _check_camera(self, camera: str) -> str:
        if camera not in self.cameras:
            raise InputError(f"{DATASET}: unknown camera {camera!r}; {self.exo_dir} has {', '.join(self.cameras)}")
        return camera

    def image_path(self, camera: str, frame: int) -> Path:
        return self.exo_dir / self._check_camera(camera) / "images" / f"{int(frame):05d}.jpg"

    def frames(self, camera: str) -> list[int]:
        """Frame numbers of ``exo/<camera>/images/NNNNN.jpg``, sorted (they start at 1)."""
        d = require_dir(self.exo_dir / self._check_camera(camera) / "images", DATASET, "frames NNNNN.jpg")
        return sorted(int(p.stem) for p in d.glob("*.jpg") if p.stem.isdigit())

    def load_image(self, camera: str, frame: int) -> np.ndarray:
        return read_rgb(self.image_path(camera, frame), DATASET)

    @staticmethod
    def timestamp_ns(frame: int | np.ndarray) -> np.ndarray:
        """Time of frame number ``frame`` (1-based) at the nominal 20 fps: ``(frame - 1) * 50 ms``."""
        return (np.asarray(frame, dtype=np.int64) - 1) * _FRAME_NS

    # -- calibration ----------------------------------------------------------------------------------------
    @cached_property
    def _colmap_cameras(self) -> dict[int, CameraModel]:
        return _read_cameras_txt(self.colmap_dir / "cameras.txt")

    @cached_property
    def _colmap_images(self) -> list[_ColmapImage]:
        return _read_images_txt(self.colmap_dir / "images.txt")

    @cached_property
    def colmap_from_world(self) -> Sim3:
        """Similarity from the world frame into COLMAP's frame (identity for ``world="colmap"``)."""
        return Sim3.identity() if self.world == "colmap" else self.colmap_from_aria

    @cached_property
    def colmap_from_aria(self) -> Sim3:
        """Similarity from the anchor Aria's frame (that of the joint files) into COLMAP's frame."""
        path = self.colmap_dir / "colmap_from_aria_transforms.pkl"
        expected = "a pickled dict {ariaNN: 4x4 similarity aria -> COLMAP}"
        obj = load_numpy_pickle(path, expected)
        if not isinstance(obj, dict) or self.anchor not in obj:
            keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise InputError(
                f"{DATASET}: {path} has no entry for anchor {self.anchor!r} (has {keys}); expected {expected}"
            )
        M = np.asarray(obj[self.anchor], dtype=np.float64)
        if M.shape != (4, 4):
            raise InputError(f"{DATASET}: {path} entry {self.anchor!r} has shape {M.shape}; expected 4x4")
        try:
            return Sim3.from_matrix(M)
        except ValueError as e:
            raise InputError(f"{DATASET}: {path} entry {self.anchor!r} is not a similarity ({e})") from None

    def _colmap_camera_id(self, camera: str) -> int:
        for im in self._colmap_images:
            if _split_name(im.name)[0] == camera:
                return im.camera_id
        raise InputError(
            f"{DATASET}: camera {camera} has no image in {self.colmap_dir / 'images.txt'}, so its COLMAP camera "
            f"is unknown; pass intrinsics_from={{'{camera}': '<calibrated camera>'}}"
        )

    def intrinsics(self, camera: str) -> CameraModel:
        """The camera's intrinsics (a :class:`~perception.camera.FisheyeCamera` for OPENCV_FISHEYE)."""
        self._check_camera(camera)
        source = self.intrinsics_from.get(camera, camera)
        cam_id = self._colmap_camera_id(source)
        if cam_id not in self._colmap_cameras:
            raise InputError(
                f"{DATASET}: {self.colmap_dir / 'images.txt'} refers to camera id {cam_id} for {source}, which "
                f"{self.colmap_dir / 'cameras.txt'} lacks"
            )
        return self._colmap_cameras[cam_id]

    def _to_world(self, R_cc: np.ndarray, t_cc: np.ndarray) -> SE3:
        M = self.colmap_from_world
        T_cam_world = SE3(R_cc @ M.R, (R_cc @ M.t + t_cc) / M.s)
        return T_cam_world.inverse()

    def camera_poses(self, camera: str) -> dict[int, SE3]:
        """``{frame: T_world_cam}`` for every frame of ``camera`` in ``images.txt`` (or ``{1: pose}`` from
        ``colmap/workplace/<camera>.npy`` when images.txt has none)."""
        self._check_camera(camera)
        out = {}
        for im in self._colmap_images:
            name, frame = _split_name(im.name)
            if name == camera and frame is not None:
                out[frame] = self._to_world(im.R_cam_colmap, im.t_cam_colmap)
        if not out:
            npy = self.colmap_dir / f"{camera}.npy"
            if not npy.is_file():
                raise InputError(
                    f"{DATASET}: camera {camera} has no pose in {self.colmap_dir / 'images.txt'} and there is no "
                    f"{npy}; expected images named {camera}/NNNNN.jpg"
                )
            try:
                E = np.load(npy, allow_pickle=False)
            except ValueError as e:
                raise InputError(f"{DATASET}: {npy} is not a plain .npy matrix ({e})") from None
            if E.shape not in ((3, 4), (4, 4)) or not np.all(np.isfinite(E)):
                raise InputError(f"{DATASET}: {npy} has shape {E.shape}; expected a finite 3x4 or 4x4 [R|t]")
            out[1] = self._to_world(E[:3, :3].astype(np.float64), E[:3, 3].astype(np.float64))
        return dict(sorted(out.items()))

    def T_world_cam(self, camera: str, frame: int | None = None) -> SE3:
        """Camera-to-world pose: of the calibrated frame nearest ``frame`` (ties: the earlier), or the first."""
        poses = self.camera_poses(camera)
        keys = np.array(list(poses))
        k = keys[0] if frame is None else keys[np.argmin(np.abs(keys - int(frame)))]
        return poses[int(k)]

    # -- 3D joints ------------------------------------------------------------------------------------------
    def pose_frames(self) -> list[int]:
        """Frame numbers of ``processed_data/fit_poses3d/NNNNN.npy``, sorted."""
        d = require_dir(self.poses3d_dir, DATASET, "3D joints, one NNNNN.npy per frame")
        return sorted(int(p.stem) for p in d.glob("*.npy") if p.stem.isdigit())

    def load_poses3d(self, frame: int) -> dict[str, np.ndarray]:
        """``{subject: (17, 4)}`` COCO-17 joints x y z confidence of frame ``frame``, in the world frame."""
        poses = read_poses3d(self.poses3d_dir / f"{int(frame):05d}.npy")
        if self.world == "colmap":
            M = self.colmap_from_aria
            poses = {k: np.concatenate([M.act(v[:, :3]), v[:, 3:]], axis=1) for k, v in poses.items()}
        return poses

    def load_poses3d_sequence(self, frames: list[int] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Frame numbers (F,) and ``{subject: (F, 17, 4)}`` (NaN joints, confidence 0 where a subject is absent)."""
        frames = self.pose_frames() if frames is None else list(frames)
        per_frame = [self.load_poses3d(f) for f in frames]
        subjects = sorted({s for p in per_frame for s in p})
        out = {}
        for s in subjects:
            arr = np.full((len(frames), NUM_JOINTS, 4), np.nan)
            arr[..., 3] = 0.0
            for i, p in enumerate(per_frame):
                if s in p:
                    arr[i] = p[s]
            out[s] = arr
        return np.asarray(frames, dtype=np.int64), out


# ---------------------------------------------------------------------------------------------------------------
# Writer


def _r(x: float) -> str:
    return repr(float(x))


class EgoHumansWriter:
    """Writes a sequence folder in the layout read by :class:`EgoHumans` (each file atomically)."""

    def __init__(self, root: str | os.PathLike, anchor: str = "aria01") -> None:
        self.root = Path(root)
        self.anchor = anchor
        self.colmap_dir = self.root / "colmap" / "workplace"

    def write_calibration(
        self,
        cameras: dict[str, CameraModel],
        T_world_cam: dict[str, SE3],
        colmap_from_world: Sim3 | None = None,
        frame: int = 1,
    ) -> Path:
        """Write cameras.txt, images.txt (one image ``camXX/<frame>.jpg`` per camera, no 2D points), an empty
        points3D.txt and the aria <-> COLMAP similarity pickles. Camera ids follow the sorted camera names."""
        if set(cameras) != set(T_world_cam):
            raise InputError(f"write_calibration: cameras {sorted(cameras)} and poses {sorted(T_world_cam)} differ")
        M = colmap_from_world if colmap_from_world is not None else Sim3.identity()
        cam_lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
        img_lines = [
            "# Image list with two lines of data per image:",
            "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
            "#   POINTS2D[] as (X, Y, POINT3D_ID)",
        ]
        for i, name in enumerate(sorted(cameras), start=1):
            if not name.startswith("cam") or "/" in name or " " in name:
                raise InputError(f"write_calibration: camera name {name!r} must look like cam01")
            pc = to_pycolmap(cameras[name])
            params = " ".join(_r(p) for p in np.asarray(pc.params))
            cam_lines.append(f"{i} {pc.model_name} {pc.width} {pc.height} {params}")
            T_cw = T_world_cam[name].inverse()
            # inverse of EgoHumans._to_world: R_cc = R_cw R'^T, t_cc = s t_cw - R_cc t'
            R_cc = T_cw.R @ M.R.T
            t_cc = M.s * T_cw.t - R_cc @ M.t
            qx, qy, qz, qw = matrix_to_quat(R_cc)
            vals = " ".join(_r(v) for v in (qw, qx, qy, qz, *t_cc))
            img_lines += [f"{i} {vals} {i} {name}/{int(frame):05d}.jpg", ""]
        atomic_write_text(self.colmap_dir / "cameras.txt", "\n".join(cam_lines) + "\n")
        atomic_write_text(self.colmap_dir / "images.txt", "\n".join(img_lines) + "\n")
        atomic_write_text(
            self.colmap_dir / "points3D.txt",
            "# 3D point list with one line of data per point:\n"
            "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n",
        )
        Mm = M.matrix()
        atomic_write_bytes(self.colmap_dir / "colmap_from_aria_transforms.pkl", pickle.dumps({self.anchor: Mm}))
        atomic_write_bytes(
            self.colmap_dir / "aria_from_colmap_transforms.pkl", pickle.dumps({self.anchor: np.linalg.inv(Mm)})
        )
        return self.colmap_dir

    def write_image(self, camera: str, frame: int, rgb: np.ndarray) -> Path:
        return write_rgb(self.root / "exo" / camera / "images" / f"{int(frame):05d}.jpg", rgb)

    def write_poses3d(self, frame: int, poses: dict[str, np.ndarray]) -> Path:
        """Joints of one frame (``{ariaNN: (17, 3 or 4)}``, world frame) as ``fit_poses3d/NNNNN.npy``."""
        return write_poses3d(self.root / "processed_data" / "fit_poses3d" / f"{int(frame):05d}.npy", poses)
