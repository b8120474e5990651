"""``rerun_viz``: subscribes to topics and logs them live to Rerun.

Parameters: ``rerun`` (sink, as every CLI's ``--rerun``: ``save[:PATH]`` (default ``save:out/launch/live.rrd``),
``spawn``, ``serve``, ``connect[:URL]``, ``off``) and ``topics``: comma-separated ``topic:msgtype`` pairs. Each
message is logged at its header stamp on the ``time`` timeline under the entity ``/world<topic>`` (images under
``/images<topic>``): Odometry and PoseStamped / PoseWithCovarianceStamped as a pose plus a growing trajectory
(``/world/tracks<topic>``), Image / CompressedImage as an image, PointCloud2 as points. A ``save`` sink gets its
final name when the node stops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from apps.nodes.runtime import Node


class RerunViz(Node):
    def __init__(self, spec, session=None) -> None:
        super().__init__(spec, session)
        from apps.viz import parse_rerun_spec
        from apps.viz.log import log_world
        from apps.viz.sink import open_recording

        pairs = self.topic_types()
        sink = parse_rerun_spec(self.param("rerun", "save:out/launch/live.rrd", str), Path("out/launch"))
        self.rec = open_recording("sparsepipe-live", sink)
        log_world(self.rec, "world", up="+z")
        self.tracks: dict[str, list[np.ndarray]] = {}
        self.count = 0
        for topic, msgtype in pairs:
            full = self.resolve(topic)
            self.create_subscription(topic, msgtype, lambda m, t=full: self._log(t, m))

    def _log(self, topic: str, m) -> None:
        import rerun as rr

        from apps.viz.log import log_image, log_points, log_pose, set_time

        set_time(self.rec, stamp_ns=int(getattr(m, "stamp_ns", 0)))
        T = getattr(m, "T_parent_child", None)
        T = getattr(m, "T", None) if T is None else T
        if T is not None:
            log_pose(self.rec, f"world{topic}", T, axis_length=0.5)
            track = self.tracks.setdefault(topic, [])
            track.append(np.asarray(T.t, float))
            self.rec.log(f"world/tracks{topic}", rr.LineStrips3D([np.stack(track)]))
        elif hasattr(m, "image"):
            log_image(self.rec, f"images{topic}", m.image)
        elif hasattr(m, "fields") and "xyz" in m.fields:
            log_points(self.rec, f"world{topic}", m.xyz[m.finite()])
        self.count += 1

    def close(self) -> None:
        if getattr(self, "rec", None) is not None:
            from apps.viz.sink import close_recording

            close_recording(self.rec)
            self.rec = None
            self.logger.info("logged %d messages", self.count)
        super().close()
