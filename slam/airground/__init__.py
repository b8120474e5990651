"""Air-ground relative localization (UGV with LIO + camera, UAV with camera + its own SLAM).

UGV side: :func:`interpolate_camera_poses` (LIO -> camera poses), :func:`select_keyframes`, :func:`build_tracks` /
:func:`triangulate_tracks` / :class:`LandmarkMap`, :func:`run_stage1` (window BA in GTSAM). Cross-view:
:func:`estimate_relative_pose` (stage 2, ``T_ugvworld_uavworld``). The names are imported lazily so that light
submodules (messages, bandwidth) do not pull in GTSAM.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "interpolate_camera_poses": "interpolate",
    "images_covered": "interpolate",
    "KeyframePolicy": "keyframes",
    "select_keyframes": "keyframes",
    "LandmarkMap": "landmarks",
    "Tracks": "landmarks",
    "build_tracks": "landmarks",
    "triangulate_tracks": "landmarks",
    "build_landmark_map": "landmarks",
    "Stage1Problem": "stage1",
    "Stage1Options": "stage1",
    "Stage1Result": "stage1",
    "run_stage1": "stage1",
    "UavKeyframeMatches": "stage2",
    "Stage2Options": "stage2",
    "Stage2Result": "stage2",
    "estimate_relative_pose": "stage2",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
