"""The FaVoR map: landmarks with their descriptor voxel grids, the training frames, and the retrieval index.

One ``.npz`` file (written atomically) holds everything a query needs; ``meta`` (JSON inside the file) records the
scene, a fingerprint of its training split, the camera, the descriptor and the build configuration, so a query can
refuse a map built for another scene or camera.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perception.camera import PinholeCamera
from perception.errors import InputError
from perception.fileio import atomic_write_bytes
from perception.geometry import SE3
from slam.reloc.voxels import CELLS, VoxelGrids, grids_from_arrays

__all__ = ["FORMAT", "FavorMap", "split_fingerprint"]

FORMAT = "sparsepipe-favor-map/1"


def split_fingerprint(names: list[str], T_world_cam: SE3) -> str:
    """Hash of the training frames' names and poses (mm / 1e-4 precision): identifies the scene a map came from."""
    h = hashlib.sha1()
    M = np.round(T_world_cam.matrix().reshape(-1, 16), 4)
    for name, row in zip(names, M, strict=True):
        h.update(name.encode())
        h.update(np.ascontiguousarray(row).tobytes())
    return h.hexdigest()[:16]


@dataclass
class FavorMap:
    camera: PinholeCamera
    descriptor: str
    """Dense descriptor the grids render (``xfeat``, ``sift``, ``superpoint``)."""
    grids: VoxelGrids
    mean_desc: np.ndarray
    """(L, C) float32 unit mean of each landmark's observed descriptors (baseline B1's descriptor)."""
    view_dir: np.ndarray
    """(L, 3) unit mean viewing direction (landmark -> camera) over the training observations."""
    view_cone_deg: np.ndarray
    """(L,) largest angle between an observation's viewing direction and ``view_dir``."""
    dist_range: np.ndarray
    """(L, 2) smallest and largest training distance to the landmark (metres)."""
    frame_names: list[str]
    """Training frames, e.g. ``seq-01/frame-000000``."""
    frame_poses: np.ndarray
    """(F, 4, 4) ``T_world_cam`` of the training frames."""
    frame_global: np.ndarray
    """(F, G) float32 unit global descriptors of the training frames."""
    obs_frame: np.ndarray
    """(O,) training frame of each landmark observation."""
    obs_landmark: np.ndarray
    """(O,) landmark of each observation."""
    obs_uv: np.ndarray
    """(O, 2) float32 pixel of each observation (the landmark's reprojection)."""
    obs_desc: np.ndarray
    """(O, C) float16 descriptor observed at ``obs_uv``."""
    vocabulary: np.ndarray | None = None
    """(K, C) VLAD centres when the global descriptor is VLAD over the local descriptors."""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_landmarks(self) -> int:
        return len(self.grids)

    def landmarks(self) -> np.ndarray:
        return self.grids.centre.numpy().astype(np.float64)

    def frame_T_world_cam(self) -> SE3:
        return SE3.from_matrix(self.frame_poses)

    def bytes_per_landmark(self) -> dict[str, float]:
        """Memory per landmark: the rendered model (grids, box) and what the baseline stores (mean descriptor)."""
        C = self.grids.dim
        return {
            "favor_grid_bytes": float(self.grids.bytes_per_landmark()),
            "baseline_descriptor_bytes": float(4 * (C + 3)),
            "grid_values": float(CELLS * (C + 1)),
        }

    # ----------------------------------------------------------------------------------------------- file io
    def save(self, path: str | os.PathLike) -> Path:
        g = self.grids
        arrays = {
            "centre": g.centre.numpy(), "half": g.half.numpy(), "density": g.density.numpy(),
            "k0": g.k0.numpy().astype(np.float32), "mean_desc": self.mean_desc.astype(np.float32),
            "view_dir": self.view_dir.astype(np.float32), "view_cone_deg": self.view_cone_deg.astype(np.float32),
            "dist_range": self.dist_range.astype(np.float32), "frame_poses": self.frame_poses.astype(np.float64),
            "frame_global": self.frame_global.astype(np.float32), "obs_frame": self.obs_frame.astype(np.int32),
            "obs_landmark": self.obs_landmark.astype(np.int32), "obs_uv": self.obs_uv.astype(np.float32),
            "obs_desc": self.obs_desc.astype(np.float16),
            "vocabulary": np.zeros((0, 0), np.float32) if self.vocabulary is None else self.vocabulary,
        }  # fmt: skip
        header = {
            "format": FORMAT,
            "descriptor": self.descriptor,
            "camera": {"width": self.camera.width, "height": self.camera.height, "fx": self.camera.fx,
                       "fy": self.camera.fy, "cx": self.camera.cx, "cy": self.camera.cy},  # fmt: skip
            "alpha_init": g.alpha_init,
            "samples": g.samples,
            "frame_names": self.frame_names,
            "meta": self.meta,
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> FavorMap:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"FaVoR map {path} does not exist; build it with 'sparsepipe reloc build'")
        try:
            z = np.load(path, allow_pickle=False)
            header = json.loads(bytes(z["header"]).decode())
            arrays = {k: z[k] for k in z.files if k != "header"}
        except Exception as e:  # noqa: BLE001 - any decoding failure is a bad file
            raise InputError(f"{path} is not a readable FaVoR map ({type(e).__name__}: {e}); rebuild it") from None
        if header.get("format") != FORMAT:
            raise InputError(f"{path}: format {header.get('format')!r}, expected {FORMAT!r}; rebuild the map")
        cam = header["camera"]
        grids = grids_from_arrays(arrays["centre"], arrays["half"], arrays["density"], arrays["k0"],
                                  header["alpha_init"], header["samples"])  # fmt: skip
        voc = arrays["vocabulary"]
        return cls(
            camera=PinholeCamera(cam["width"], cam["height"], cam["fx"], cam["fy"], cam["cx"], cam["cy"]),
            descriptor=header["descriptor"], grids=grids, mean_desc=arrays["mean_desc"],
            view_dir=arrays["view_dir"].astype(np.float64), view_cone_deg=arrays["view_cone_deg"].astype(np.float64),
            dist_range=arrays["dist_range"].astype(np.float64), frame_names=list(header["frame_names"]),
            frame_poses=arrays["frame_poses"], frame_global=arrays["frame_global"],
            obs_frame=arrays["obs_frame"].astype(np.int64), obs_landmark=arrays["obs_landmark"].astype(np.int64),
            obs_uv=arrays["obs_uv"].astype(np.float64), obs_desc=arrays["obs_desc"],
            vocabulary=None if voc.size == 0 else voc, meta=header.get("meta", {}),
        )  # fmt: skip
