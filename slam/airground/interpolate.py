"""Stage 1a: UGV camera poses at image stamps from LiDAR-inertial odometry.

The LIO trajectory gives ``T_odom_imu`` at scan-end stamps. For an image stamped ``t_cam`` (camera clock) the IMU
time is ``t_imu = t_cam + time_offset`` (the rig's camera-to-IMU offset); the IMU poses are interpolated on the
SE(3) geodesic (exact for constant-twist motion) *before* composing the fixed extrinsic ``T_imu_cam`` — never the
other way round. Queries outside the trajectory or inside a gap longer than ``max_gap_ns`` are refused.
"""

from __future__ import annotations

import numpy as np

from perception.errors import InputError
from perception.geometry import SE3
from slam.trajectory import Trajectory


def interpolate_camera_poses(
    lio: Trajectory,
    image_stamps_ns: np.ndarray,
    T_imu_cam: SE3,
    time_offset_ns: int = 0,
    max_gap_ns: int | None = 250_000_000,
    method: str = "geodesic",
) -> SE3:
    """``T_odom_cam`` at each image stamp (batched SE3 of shape (M,)).

    ``time_offset_ns``: ``t_imu = t_cam + time_offset_ns``; ``max_gap_ns``: refuse stamps inside a longer gap
    between LIO samples (None: no limit); ``method``: "geodesic" (``Pose3.slerp``-equivalent screw motion) or
    "decoupled" (rotation slerp + translation lerp, for comparison). Raises :class:`InputError` naming the stamp.
    """
    raw = np.asarray(image_stamps_ns)
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        raise InputError(f"image_stamps_ns: expected integer nanoseconds, got dtype {raw.dtype}")
    stamps = raw.astype(np.int64).reshape(-1)
    if not isinstance(T_imu_cam, SE3) or T_imu_cam.shape != ():
        raise InputError("T_imu_cam: expected a single SE3 (the camera-to-IMU extrinsic)")
    try:
        return lio.T_world_body_at(stamps, T_imu_cam, time_offset_ns=int(time_offset_ns), max_gap_ns=max_gap_ns,
                                   method=method)  # fmt: skip
    except ValueError as e:
        raise InputError(f"UGV pose interpolation: {str(e).splitlines()[0]}") from None


def images_covered(lio: Trajectory, image_stamps_ns: np.ndarray, time_offset_ns: int = 0) -> np.ndarray:
    """Mask of images whose (offset) stamps fall inside the LIO trajectory's span (the rest cannot be posed)."""
    t = np.asarray(image_stamps_ns, dtype=np.int64) + int(time_offset_ns)
    return (t >= lio.stamps_ns[0]) & (t <= lio.stamps_ns[-1])
