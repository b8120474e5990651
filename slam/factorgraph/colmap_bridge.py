"""Move bundle-adjustment problems between pycolmap reconstructions and :mod:`slam.factorgraph.ba`.

COLMAP's pixel coordinates put (0,0) at the corner of the first pixel; the project's (OpenCV's) at its centre, so
observations lose 0.5 on the way in and the camera conversion shifts the principal point likewise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pycolmap

from perception.camera.convert import from_pycolmap
from perception.errors import InputError
from perception.geometry import SE3
from perception.sim.colmap_noise import set_cam_from_world
from slam.factorgraph.ba import BAProblem, BAResult, Observations


@dataclass
class ColmapIndex:
    """Which pycolmap ids the rows of a :class:`BAProblem` came from."""

    image_ids: list[int]
    point3D_ids: list[int]


def _rigid_to_se3(r: pycolmap.Rigid3d) -> SE3:
    return SE3.from_matrix(np.vstack([r.matrix(), [0.0, 0.0, 0.0, 1.0]]))


def problem_from_reconstruction(rec: pycolmap.Reconstruction, fixed_images: int = 2) -> tuple[BAProblem, ColmapIndex]:
    """All registered images and all 3D points of ``rec`` as a BA problem; the first ``fixed_images`` are held."""
    image_ids = sorted(i for i, im in rec.images.items() if im.has_pose)
    if len(image_ids) < 2:
        raise InputError(f"reconstruction has {len(image_ids)} posed image(s); bundle adjustment needs at least 2")
    point_ids = sorted(rec.points3D.keys())
    row_of_point = {pid: k for k, pid in enumerate(point_ids)}
    cam_models = {cid: from_pycolmap(c) for cid, c in rec.cameras.items()}
    cameras, poses, img_idx, pt_idx, uv = [], [], [], [], []
    for row, iid in enumerate(image_ids):
        im = rec.images[iid]
        cameras.append(cam_models[im.camera_id])
        poses.append(_rigid_to_se3(im.cam_from_world()).inverse())
        for p2d in im.points2D:
            if p2d.has_point3D():
                img_idx.append(row)
                pt_idx.append(row_of_point[p2d.point3D_id])
                uv.append(np.asarray(p2d.xy) - 0.5)
    points = np.array([rec.points3D[pid].xyz for pid in point_ids], dtype=np.float64).reshape(-1, 3)
    problem = BAProblem(
        cameras=cameras,
        T_world_cam=SE3.stack(poses),
        points_world=points,
        observations=Observations(np.array(img_idx), np.array(pt_idx), np.array(uv).reshape(-1, 2)),
        fixed_images=tuple(range(min(fixed_images, len(image_ids)))),
    )
    return problem, ColmapIndex(image_ids, point_ids)


def apply_to_reconstruction(rec: pycolmap.Reconstruction, result: BAResult, index: ColmapIndex) -> None:
    """Write optimised poses and points back into ``rec`` (single-camera rigs only)."""
    T_cam_world = result.T_world_cam.inverse().matrix()
    for row, iid in enumerate(index.image_ids):
        im = rec.images[iid]
        if not im.is_ref_in_frame() or len(rec.frames[im.frame_id].data_ids) != 1:
            raise InputError(
                f"image {im.name}: only frames with a single camera can be updated; got a multi-camera rig"
            )
        set_cam_from_world(rec, iid, T_cam_world[row])
    for row, pid in enumerate(index.point3D_ids):
        rec.points3D[pid].xyz = result.points_world[row]
