"""Default Rerun layouts, one per pipeline: ``blueprint_for(name)``.

Entity-path conventions the pipelines log to (and these layouts show):

- ``/world``: the 3D scene (``log_world`` sets its up axis); cameras are pinhole entities under it, e.g.
  ``/world/camera`` with its image at ``/world/camera/image``.
- ``/metrics``: scalar time series (losses, errors, timings), e.g. ``/metrics/ate_m``.
- per pipeline (``VIEWS_2D`` below): the 2D views' origins, e.g. ``/world/ugv/camera`` for airground
  or ``/eval/render`` and ``/eval/gt`` for splat; ``pointseg`` shows ``/world/pred`` and ``/world/gt``
  side by side.

Every layout: 3D view(s) on the left, 2D views over a time-series view on ``/metrics`` on the right.
"""

from __future__ import annotations

from collections.abc import Sequence

import rerun.blueprint as rrb

from perception.errors import InputError

PIPELINES: tuple[str, ...] = (
    "demo",
    "airground",
    "reloc",
    "mocap",
    "pointseg",
    "detect3d",
    "camopt",
    "splat",
    "sim",
)

VIEWS_2D: dict[str, tuple[str, ...]] = {
    "demo": ("/world/camera",),
    "airground": ("/world/ugv/camera", "/world/uav/camera"),
    "reloc": ("/world/query/camera",),
    "mocap": ("/world/cam0", "/world/cam1", "/world/cam2", "/world/cam3"),
    "pointseg": (),
    "detect3d": ("/world/camera",),
    "camopt": ("/world/camera",),
    "splat": ("/eval/render", "/eval/gt"),
    "sim": ("/world/camera",),
}
"""Default origins of each pipeline's 2D views (override with ``blueprint_for(name, cameras=...)``)."""

_TITLES_3D = {
    "demo": "scene",
    "airground": "air-ground map",
    "reloc": "map and query",
    "mocap": "skeletons",
    "detect3d": "detections",
    "camopt": "cameras",
    "splat": "gaussians",
    "sim": "simulated world",
}


def _views_3d(name: str) -> list[rrb.View]:
    if name == "pointseg":  # prediction and ground truth side by side, both in world coordinates
        return [
            rrb.Spatial3DView(origin="/world", contents=["+ /world/**", "- /world/gt/**"], name="prediction"),
            rrb.Spatial3DView(origin="/world", contents=["+ /world/**", "- /world/pred/**"], name="ground truth"),
        ]
    return [rrb.Spatial3DView(origin="/world", name=_TITLES_3D[name])]


def blueprint_for(name: str, *, cameras: Sequence[str] | None = None) -> rrb.Blueprint:
    """The default layout for pipeline ``name`` (one of :data:`PIPELINES`).

    ``cameras`` replaces the default 2D view origins (e.g. one per camera of a multi-view rig).
    """
    if name not in PIPELINES:
        raise InputError(f"blueprint_for: unknown pipeline {name!r}; valid: {', '.join(PIPELINES)}")
    origins = VIEWS_2D[name] if cameras is None else tuple(str(c) for c in cameras)
    for o in origins:
        if not o.startswith("/"):
            raise InputError(f"blueprint_for: camera view origins must be absolute entity paths, got {o!r}")
    views_3d = _views_3d(name)
    left = views_3d[0] if len(views_3d) == 1 else rrb.Horizontal(*views_3d)
    views_2d = [rrb.Spatial2DView(origin=o, name=o.rstrip("/").rsplit("/", 1)[-1] or o) for o in origins]
    if len(views_2d) > 2:
        images: rrb.Container | rrb.View | None = rrb.Grid(*views_2d)
    elif len(views_2d) == 2:
        images = rrb.Horizontal(*views_2d) if name == "splat" else rrb.Vertical(*views_2d)
    else:
        images = views_2d[0] if views_2d else None
    metrics = rrb.TimeSeriesView(origin="/metrics", name="metrics")
    right = rrb.Vertical(images, metrics, row_shares=[2, 1]) if images is not None else metrics
    root = rrb.Horizontal(left, right, column_shares=[3, 2])
    return rrb.Blueprint(root, rrb.SelectionPanel(state="collapsed"), rrb.TimePanel(state="expanded"))
