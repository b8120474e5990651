"""The project's one thin Rerun layer: sinks (``--rerun``), typed log helpers and default layouts.

Typical use in a CLI::

    from apps.viz import blueprint_for, log_points, parse_rerun_spec, recording, set_time

    spec = parse_rerun_spec(args.rerun, out_dir)          # save[:PATH] | spawn | serve | connect[:URL] | off
    with recording("sparsepipe_demo", spec, blueprint_for("demo")) as rec:
        for i, frame in enumerate(frames):
            set_time(rec, frame=i, stamp_ns=frame.stamp_ns)
            log_points(rec, "world/points", frame.xyz)
"""

from apps.viz.blueprints import PIPELINES, VIEWS_2D, blueprint_for
from apps.viz.log import (
    COCO17_EDGES,
    COCO17_NAMES,
    PIXEL_OFFSET,
    TIMELINE_FRAME,
    TIMELINE_TIME,
    as_pose_matrices,
    default_palette,
    log_boxes3d,
    log_camera,
    log_depth,
    log_image,
    log_keypoints,
    log_matches,
    log_points,
    log_pose,
    log_scalars,
    log_segmentation,
    log_skeleton,
    log_trajectory,
    log_world,
    set_time,
    side_by_side,
)
from apps.viz.sink import (
    DEFAULT_CONNECT_URL,
    RERUN_HELP,
    RerunSpec,
    add_rerun_argument,
    close_recording,
    is_off,
    open_recording,
    parse_rerun_spec,
    recording,
    sink_of,
)

__all__ = [
    "COCO17_EDGES",
    "COCO17_NAMES",
    "DEFAULT_CONNECT_URL",
    "PIPELINES",
    "PIXEL_OFFSET",
    "RERUN_HELP",
    "TIMELINE_FRAME",
    "TIMELINE_TIME",
    "VIEWS_2D",
    "RerunSpec",
    "add_rerun_argument",
    "as_pose_matrices",
    "blueprint_for",
    "close_recording",
    "default_palette",
    "is_off",
    "log_boxes3d",
    "log_camera",
    "log_depth",
    "log_image",
    "log_keypoints",
    "log_matches",
    "log_points",
    "log_pose",
    "log_scalars",
    "log_segmentation",
    "log_skeleton",
    "log_trajectory",
    "log_world",
    "open_recording",
    "parse_rerun_spec",
    "recording",
    "set_time",
    "side_by_side",
    "sink_of",
]
