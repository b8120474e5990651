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
    k = Keyframer(p)
    return np.asarray([i for i in range(len(stamps)) if k.accept(int(stamps[i]), T_world_cam[i])], dtype=np.int64)


class Keyframer:
    """``accept(stamp_ns, T_world_cam)``: is this frame a keyframe? Frames come one at a time in time order; the
    first is always one (the rule :func:`select_keyframes` applies to a whole sequence)."""

    def __init__(self, policy: KeyframePolicy) -> None:
        self.policy = policy
        self.last: tuple[int, SE3] | None = None

    def accept(self, stamp_ns: int, T_world_cam: SE3) -> bool:
        p = self.policy
        if self.last is not None:
            s0, T0 = self.last
            if stamp_ns < s0:
                raise InputError(f"keyframes: stamp {stamp_ns} comes before the last keyframe's {s0}")
            dt = (stamp_ns - s0) / 1e9
            if dt < p.min_interval_s:
                return False
            dist = float(np.linalg.norm(T_world_cam.t - T0.t))
            ang = float(np.degrees(np.linalg.norm(so3_log(T0.R.T @ T_world_cam.R))))
            if not (dist >= p.min_distance_m or ang >= p.min_angle_deg or dt >= p.max_interval_s):
                return False
        self.last = (int(stamp_ns), T_world_cam)
        return True
