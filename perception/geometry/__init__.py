"""Geometry primitives for sparsepipe -- and the single statement of the project's conventions.

Every module of sparsepipe follows the conventions below. When data enters or leaves the project (files, ROS,
COLMAP, OpenGL renderers, other libraries) it is converted at that boundary, never inside.

Frames and transforms
---------------------
* ``T_a_b`` maps points from frame ``b`` to frame ``a``: ``p_a = T_a_b.act(p_b) = R_a_b @ p_b + t_a_b``.
  Read the subscripts right to left; they chain: ``T_a_c = T_a_b @ T_b_c`` and ``T_b_a = T_a_b.inverse()``.
* ``T_world_cam`` is the camera pose (camera-to-world); its translation is the camera centre in world
  coordinates. ``T_cam_world`` is the extrinsic matrix (world-to-camera), i.e. OpenCV's ``rvec/tvec``
  and COLMAP's ``cam_from_world``. The same pattern holds for bodies and sensors: ``T_world_body``,
  ``T_body_imu``, ``T_body_cam``, ``T_lidar_cam``.
* Points are row vectors with shape ``(..., 3)``; batches of transforms are leading dimensions
  (``SE3.R`` has shape ``(*B, 3, 3)``, ``SE3.t`` ``(*B, 3)``, ``B == ()`` is one transform).
* Composition ``a @ b`` applies ``b`` first: ``(a @ b).act(p) == a.act(b.act(p))``.

Camera axes and pixels
----------------------
* Camera frames are OpenCV's: x right, y down, z forward (along the optical axis). A point in front of the
  camera has ``z > 0``; a pinhole projects it to ``u = fx * x / z + cx``, ``v = fy * y / z + cy``. OpenGL /
  Blender / NeRF cameras (x right, y up, z backward) convert by negating y and z:
  ``T_world_cam_opencv = T_world_cam_opengl @ diag(1, -1, -1)``. In ROS these are the ``*_optical_frame``
  frames.
* Pixel coordinates are OpenCV's: ``(0, 0)`` is the *centre* of the top-left pixel, so an image of width W
  spans ``[-0.5, W - 0.5]`` and ``u`` indexes columns, ``v`` rows. COLMAP / pycolmap use the corner convention
  (the centre of the top-left pixel is ``(0.5, 0.5)``): add +0.5 to pixel coordinates -- and to the principal
  point -- when handing them to COLMAP, subtract 0.5 when reading them back.

Rotations and tangent spaces
----------------------------
* Quaternions are ordered ``(qx, qy, qz, qw)`` -- TUM order, the same as scipy's ``Rotation.as_quat()`` and
  pycolmap's ``Rotation3d.quat`` -- normalised, with ``qw >= 0`` on output (q and -q are the same rotation).
  Beware: gtsam's ``Rot3.Quaternion`` and Eigen's constructor take ``(w, x, y, z)``.
* Rotation vectors are axis * angle in radians; ``so3_log`` returns angles in ``[0, pi]``.
* SE(3) tangent vectors (twists) are ordered ``(omega, v)`` = (rotation, translation), as gtsam's
  ``Pose3.Logmap`` / ``Pose3.Expmap``, so values compare directly with gtsam (Sophus and lietorch use
  ``(v, omega)``). Sim(3) tangents are ``(omega, v, log s)`` as gtsam's ``Similarity3.Logmap``.
  Note that gtsam's ``Similarity3`` acts as ``s (R p + t)`` while :class:`Sim3` acts as ``s R p + t``:
  ``t_ours = s * t_gtsam`` (the tangent vectors agree).
* Perturbations: ``T @ SE3.exp(xi)`` is a right (body-frame) perturbation, ``SE3.exp(xi) @ T`` a left
  (world-frame) one; they are related by the adjoint, ``T @ SE3.exp(xi) == SE3.exp(T.adjoint() @ xi) @ T``.

Units and time
--------------
* SI units everywhere: metres, radians, seconds, m/s, rad/s. Degrees and millimetres only at I/O boundaries.
* Timestamps are ``int64`` nanoseconds inside the code; TUM trajectory files store float seconds
  (convert with ``ns = round(s * 1e9)``, ``s = ns * 1e-9``).
* numpy geometry works in float64; the torch functions in :mod:`perception.geometry.torch_lie` keep the
  input dtype and device (use float64 when accuracy matters).

Errors
------
Invalid input raises ``ValueError`` (``perception.errors.InputError``, a subclass) with a one-line message
naming the parameter and what was expected.

Contents
--------
* :mod:`.so3` -- ``hat``, ``vee``, ``so3_exp``, ``so3_log``, ``quat_to_matrix``, ``matrix_to_quat``,
  :class:`SO3`.
* :mod:`.se3` -- :class:`SE3`, :class:`Sim3`.
* :mod:`.interpolation` -- ``interpolate_geodesic`` (screw motion, = gtsam ``Pose3.slerp``),
  ``interpolate_decoupled`` (rotation slerp + translation lerp).
* :mod:`.align` -- ``umeyama``, ``align_se3``, ``align_sim3`` (weighted, closed form).
* :mod:`.triangulation` -- ``triangulate_dlt``, ``refine_triangulation``, ``triangulate``.
* :mod:`.epipolar` -- ``essential_from_pose``, ``sampson_distance`` (normalised coordinates).
* :mod:`.torch_lie` -- differentiable torch versions (imported on first use, not re-exported by name because
  the function names coincide with the numpy ones): ``from perception.geometry import torch_lie``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .align import align_se3, align_sim3, umeyama
from .epipolar import essential_from_pose, sampson_distance
from .interpolation import interpolate_decoupled, interpolate_geodesic
from .se3 import SE3, Sim3
from .so3 import (
    SO3,
    hat,
    matrix_to_quat,
    orthonormalize,
    quat_to_matrix,
    so3_exp,
    so3_left_jacobian,
    so3_left_jacobian_inv,
    so3_log,
    vee,
)
from .triangulation import refine_triangulation, triangulate, triangulate_dlt

__all__ = [
    "SE3",
    "SO3",
    "Sim3",
    "align_se3",
    "align_sim3",
    "essential_from_pose",
    "hat",
    "interpolate_decoupled",
    "interpolate_geodesic",
    "matrix_to_quat",
    "orthonormalize",
    "quat_to_matrix",
    "refine_triangulation",
    "sampson_distance",
    "so3_exp",
    "so3_left_jacobian",
    "so3_left_jacobian_inv",
    "so3_log",
    "triangulate",
    "triangulate_dlt",
    "umeyama",
    "vee",
]


def __getattr__(name: str) -> Any:
    # Lazy import so that `import perception.geometry` does not pull in torch.
    if name == "torch_lie":
        return importlib.import_module(f"{__name__}.torch_lie")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
