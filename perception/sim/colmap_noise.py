"""Corrupt a COLMAP reconstruction with known noise: pixel noise, outlier observations, perturbed poses and points.

Used to make bundle-adjustment problems whose ground truth is the uncorrupted reconstruction.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from perception.geometry import SE3


@dataclass
class ColmapNoise:
    pixel_noise: float = 0.5
    """Gaussian pixel noise (px) on every observation of a 3D point."""
    outlier_ratio: float = 0.0
    """Fraction of those observations replaced by uniformly random pixels."""
    pose_noise_deg: float = 1.0
    """Rotation perturbation (deg, per-axis std) of the initial poses (left-multiplied on cam_from_world)."""
    pose_noise_m: float = 0.1
    """Translation perturbation (per-axis std) of the initial poses."""
    point_noise_m: float = 0.05
    """Per-axis std added to every 3D point."""
    fixed_images: int = 2
    """The first images (by id) keep their exact pose (they fix the gauge)."""


def set_cam_from_world(rec, image_id: int, T_cam_world: np.ndarray) -> None:
    """Set an image pose of a single-camera-rig reconstruction from a 4x4 (or 3x4) matrix."""
    import pycolmap

    im = rec.images[image_id]
    T = np.asarray(T_cam_world, dtype=np.float64)
    rec.frames[im.frame_id].rig_from_world = pycolmap.Rigid3d(pycolmap.Rotation3d(T[:3, :3]), T[:3, 3])


def perturb_reconstruction(rec, noise: ColmapNoise, rng: np.random.Generator):
    """A corrupted deep copy of ``rec`` and a dict ``(image_id, point2D_idx) -> True`` marking outliers."""
    out = copy.deepcopy(rec)
    outliers: dict[tuple[int, int], bool] = {}
    for iid in sorted(out.images):
        im = out.images[iid]
        cam = out.cameras[im.camera_id]
        for k, p in enumerate(im.points2D):  # Point2D objects are references into the image
            if not p.has_point3D():
                continue
            if rng.random() < noise.outlier_ratio:
                p.xy = rng.uniform([0, 0], [cam.width, cam.height])
                outliers[(iid, k)] = True
            else:
                p.xy = np.asarray(p.xy) + rng.normal(0, noise.pixel_noise, 2)
    for k, iid in enumerate(sorted(out.images)):
        if k < noise.fixed_images:
            continue
        T = SE3.from_matrix(np.vstack([out.images[iid].cam_from_world().matrix(), [0, 0, 0, 1]]))
        xi = np.concatenate([np.deg2rad(rng.normal(0, noise.pose_noise_deg, 3)), rng.normal(0, noise.pose_noise_m, 3)])
        set_cam_from_world(out, iid, (SE3.exp(xi) @ T).matrix())
    for p in out.points3D.values():
        p.xyz = np.asarray(p.xyz) + rng.normal(0, noise.point_noise_m, 3)
    return out, outliers
