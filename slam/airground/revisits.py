"""UGV revisits: keyframe pairs far apart in time that see the same place, found on global descriptors and verified.

Stage 1 matches each keyframe with its next few neighbours; on its own that only smooths the LIO drift locally.
When the UGV comes back to a place, matching the revisit to the first visit makes tracks that span the whole
circuit, and the window BA then closes the loop (the LIO between-factors spread the correction). Candidates:
keyframes at least ``min_separation`` keyframes apart, ranked by global-descriptor cosine similarity (top-k), that
the LIO places within ``max_distance_m`` and ``max_angle_deg`` of each other (the LIO drifts by far less than that
over a lap; this gate rejects look-alike facades elsewhere). Verification: mutual-NN + ratio matches, an essential
matrix RANSAC with at least ``min_inliers`` inliers, and a relative rotation within ``max_rotation_error_deg`` of
the LIO's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from perception.camera import CameraModel
from perception.errors import InputError
from perception.features import Features, Matches, match_mutual_nn
from perception.features.matching import estimate_relative_pose
from perception.geometry import SE3
from perception.metrics.pose import rotation_error_deg

log = logging.getLogger(__name__)


@dataclass
class RevisitOptions:
    enabled: bool = True
    min_separation: int = 10
    """Keyframes closer than this in sequence are left to the sequential matching."""
    top_k: int = 3
    max_distance_m: float = 4.0
    max_angle_deg: float = 30.0
    """Largest angle between the two cameras' viewing directions (by LIO)."""
    ratio: float = 0.9
    min_inliers: int = 40
    threshold_px: float = 2.0
    max_rotation_error_deg: float = 3.0

    def validate(self) -> None:
        if self.min_separation < 1 or self.top_k < 1 or self.min_inliers < 5:
            raise InputError("revisits: min_separation and top_k must be >= 1 and min_inliers >= 5")
        if not (self.max_distance_m > 0 and self.max_angle_deg > 0 and self.max_rotation_error_deg > 0):
            raise InputError("revisits: max_distance_m, max_angle_deg and max_rotation_error_deg must be > 0")


@dataclass
class Revisit:
    i: int
    j: int
    similarity: float
    inliers: int
    rotation_error_deg: float


def find_revisits(
    features: list[Features], global_descriptors: np.ndarray, T_world_cam: SE3, camera: CameraModel,
    options: RevisitOptions | None = None,
) -> tuple[dict[tuple[int, int], Matches], list[Revisit]]:  # fmt: skip
    """Verified revisit pairs ``{(i, j): inlier matches}`` with ``i < j``, and a record of each."""
    o = options or RevisitOptions()
    o.validate()
    n = len(features)
    G = np.asarray(global_descriptors, np.float32).reshape(n, -1)
    if len(T_world_cam) != n:
        raise InputError(f"revisits: {n} keyframes but {len(T_world_cam)} poses")
    pairs: dict[tuple[int, int], Matches] = {}
    found: list[Revisit] = []
    if not o.enabled or n <= o.min_separation:
        return pairs, found
    z = T_world_cam.R[:, :, 2]  # viewing directions
    for j in range(o.min_separation, n):
        i_all = np.arange(j - o.min_separation + 1)
        near = np.linalg.norm(T_world_cam.t[i_all] - T_world_cam.t[j], axis=1) <= o.max_distance_m
        near &= z[i_all] @ z[j] >= np.cos(np.deg2rad(o.max_angle_deg))
        cand = i_all[near]
        if not len(cand):
            continue
        sims = G[cand] @ G[j]
        for k in np.argsort(-sims, kind="stable")[: o.top_k]:
            i = int(cand[k])
            m = match_mutual_nn(features[i].descriptors, features[j].descriptors, o.ratio)
            v, T_ji = estimate_relative_pose(features[i].keypoints, features[j].keypoints, m, camera, camera,
                                             o.threshold_px)  # fmt: skip
            if T_ji is None or len(v) < o.min_inliers:
                continue
            T_lio = T_world_cam[j].inverse() @ T_world_cam[i]
            err = float(rotation_error_deg(T_ji.R, T_lio.R))
            if err > o.max_rotation_error_deg:
                continue
            pairs[(i, j)] = v
            found.append(Revisit(i, j, float(sims[k]), len(v), err))
    log.info("revisits: %d verified keyframe pairs over %d keyframes", len(found), n)
    return pairs, found
