"""Stage 2 of both front ends: keyframe selection by travelled distance, rotation angle and elapsed time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.errors import InputError
from perception.geometry import SE3, so3_log


@dataclass
class KeyframePolicy:
    min_distance_m: float = 0.5
    """A new keyframe once the camera moved this far from the last keyframe ..."""
    min_angle_deg: float = 10.0
    """... or rotated this much ..."""
    max_interval_s: float = 2.0
    """... or this much time passed."""
    min_interval_s: float = 0.0
    """Never two keyframes closer in time than this."""


def select_keyframes(stamps_ns: np.ndarray, T_world_cam: SE3, policy: KeyframePolicy | None = None) -> np.ndarray:
    """Indices of keyframes (the first frame is always one), greedy in time order."""
    p = policy or KeyframePolicy()
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    if len(stamps) != len(T_world_cam):
        raise InputError(f"keyframes: {len(stamps)} stamps for {len(T_world_cam)} poses")
    if len(stamps) == 0:
        return np.zeros(0, dtype=np.int64)
    if np.any(np.diff(stamps) < 0):
        raise InputError("keyframes: stamps must be in time order")
    keep = [0]
    R, t = T_world_cam.R, T_world_cam.t
    for i in range(1, len(stamps)):
        k = keep[-1]
        dt = (stamps[i] - stamps[k]) / 1e9
        if dt < p.min_interval_s:
            continue
        dist = np.linalg.norm(t[i] - t[k])
        ang = np.degrees(np.linalg.norm(so3_log(R[k].T @ R[i])))
        if dist >= p.min_distance_m or ang >= p.min_angle_deg or dt >= p.max_interval_s:
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)
