"""Live FaVoR relocalization node ``favor_relocalizer``: camera images in, camera poses in the map's frame out.

It calls the same stage code as ``sparsepipe reloc query`` (:class:`slam.reloc.Relocalizer`: retrieval prior,
then render -> match -> PnP), per image, against a map from ``sparsepipe reloc build``.

Parameters: ``map`` (the ``.favor.npz`` map, required); ``config`` (optional: a YAML of ``reloc query`` options,
e.g. an earlier run's config.yaml: its ``query`` section, ``weights`` and ``netvlad_weights`` are used);
``method`` (``favor`` or ``baseline``; default the config's, else favor); ``weights`` / ``netvlad_weights`` (as
for ``reloc query``: the descriptor network's and the NetVLAD checkpoint the map was built with, if any; default
the config's); ``image_type``
(``sensor_msgs/msg/CompressedImage``, the default, or ``sensor_msgs/msg/Image``); ``frame_id`` of the published
poses (default ``map``); ``latest_only`` (default true: when images arrive faster than they are localised, the
waiting ones are skipped for the newest -- a robot wants its current pose, not a growing delay; false localises
every image, e.g. to evaluate on a replayed recording); ``track_s`` (default 1.0: an image at most this many
seconds after the last localised one starts FaVoR's render -> match -> PnP iterations from that pose instead of
retrieval -- tracking, as a moving camera allows; when they fail, or end with fewer than the query option
``track_min_inliers`` inliers, it is relocalised from retrieval; 0: every image from retrieval); ``threads``
(torch threads, default 2).

Topics (relative, so namespaces and remaps place them): ``image`` in; ``pose`` out
(``geometry_msgs/msg/PoseStamped``: the camera-to-map pose ``T_map_cam``, OpenCV camera axes, with the image's
stamp), published only for images whose PnP succeeded. Images are localised in a worker thread, so the node keeps
receiving while it works. An image the map cannot take (another size than the map's camera, depth / 16-bit) is
dropped with one error line per kind, then counted; the counts are logged when the node stops.
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

import numpy as np

from apps.nodes.runtime import Node
from perception.datasets.ros.messages import PoseMsg
from perception.errors import InputError

POSE = "geometry_msgs/msg/PoseStamped"
IMAGE_TYPES = ("sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/Image")


def rgb_for_query(image: np.ndarray, what: str) -> np.ndarray:
    """A decoded ROS image as the (H, W, 3) uint8 RGB the relocalizer takes: mono is repeated, alpha dropped."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise InputError(f"{what}: {img.dtype} pixels (depth or 16-bit?); the relocalizer takes 8-bit colour or "
                         "mono images -- remap 'image' to the colour camera")  # fmt: skip
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return np.ascontiguousarray(img[:, :, :3])
    raise InputError(f"{what}: image of shape {img.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")


class FavorRelocalizer(Node):
    def __init__(self, spec, session=None) -> None:
        super().__init__(spec, session)
        from slam.reloc import FavorMap, QueryConfig, Relocalizer

        map_path = self.param("map", "", str)
        if not map_path:
            raise InputError(f"{spec.fqn}: parameter 'map' (a map from 'sparsepipe reloc build') is required")
        cfg = QueryConfig()
        weights = self.param("weights", "", str) or None
        netvlad_weights = self.param("netvlad_weights", "", str) or None
        config = self.param("config", "", str)
        if config:
            from apps.config import load_config_file
            from apps.reloc import RelocQueryConfig

            run = load_config_file(RelocQueryConfig, Path(config))
            cfg, weights, netvlad_weights = run.query, weights or run.weights, netvlad_weights or run.netvlad_weights
        method = self.param("method", "", str) or cfg.method
        if method not in ("favor", "baseline"):
            raise InputError(f"{spec.fqn}: method must be favor or baseline, got {method!r} (the depth baseline "
                             "needs the training images and runs only in 'sparsepipe reloc query')")  # fmt: skip
        cfg.method = method
        track_s = self.param("track_s", 1.0, float)
        if not (np.isfinite(track_s) and track_s >= 0):
            raise InputError(f"{spec.fqn}: track_s must be a finite number of seconds >= 0, got {track_s}")
        self.track_ns = int(track_s * 1e9)
        image_type = self.param("image_type", IMAGE_TYPES[0], str)
        if image_type not in IMAGE_TYPES:
            raise InputError(f"{spec.fqn}: image_type must be one of {', '.join(IMAGE_TYPES)}, got {image_type!r}")
        import torch

        torch.set_num_threads(max(1, self.param("threads", 2, int)))
        fmap = FavorMap.load(map_path)
        if fmap.vocabulary is None and netvlad_weights is None:
            raise InputError(f"{spec.fqn}: map {map_path} retrieves with NetVLAD; set the parameter "
                             "netvlad_weights (launch arg netvlad_weights:=CHECKPOINT) to the checkpoint it was built "
                             "with")  # fmt: skip
        self.reloc = Relocalizer(fmap, cfg, netvlad_weights=netvlad_weights, weights=weights)
        self.frame_id = self.param("frame_id", "map", str)
        self.latest_only = self.param("latest_only", True, bool)
        self._last: tuple[int, object] | None = None  # (stamp, T_map_cam) of the last localised image (worker only)
        self.pub = self.create_publisher("pose", POSE)
        self.image_topic = self.resolve("image")
        self.counts = {"received": 0, "localised": 0, "failed": 0, "skipped": 0, "rejected": 0, "tracked": 0,
                       "relocalised": 0, "lost": 0}  # fmt: skip
        self._reported: set[str] = set()
        self._pending: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._busy = False
        self._worker = threading.Thread(target=self._work, name=f"{spec.fqn}-localize", daemon=True)
        self._worker.start()
        self.create_subscription("image", image_type, self.on_image)
        self.logger.info("map %s: %d landmarks (%s), method %s", map_path, fmap.num_landmarks, fmap.descriptor,
                         method)  # fmt: skip

    # -- receiving (the spinning thread) -------------------------------------------------------------------
    def on_image(self, m) -> None:
        with self._cv:
            self.counts["received"] += 1
            if self.latest_only and self._pending:
                self.counts["skipped"] += len(self._pending)
                self._pending.clear()
            self._pending.append(m)
            self._cv.notify()

    @property
    def idle(self) -> bool:
        """No image waiting here or being localised (images still in the runtime's receive queue are not counted)."""
        with self._cv:
            return not self._pending and not self._busy

    # -- localising (the worker thread) --------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self.stopped:
                    self._cv.wait(0.1)
                if self.stopped:
                    return
                m = self._pending.popleft()
                self._busy = True
            try:
                self._localise(m)
            except Exception as e:  # noqa: BLE001 - e.g. publishing failed: stop, so a respawn starts afresh
                self.logger.error("localisation thread stopped: %s: %s", type(e).__name__,
                                  str(e).splitlines()[0] if str(e) else "")  # fmt: skip
                self.shutdown()
                return
            finally:
                with self._cv:
                    self._busy = False

    def _localise(self, m) -> None:
        what = f"image {m.stamp_ns} on {self.image_topic}"
        stamp = int(m.stamp_ns)
        prior = None
        if self.track_ns and self._last is not None and 0 <= stamp - self._last[0] <= self.track_ns:
            prior = self._last[1]
        try:
            res = self.reloc.localize(rgb_for_query(m.image, what), what, prior=prior)
        except InputError as e:
            line = str(e).splitlines()[0]
            self._reject(line.replace(what, "<image>"), line)
            return
        except Exception as e:  # noqa: BLE001 - one bad image must not stop a live node
            line = str(e).splitlines()[0] if str(e) else ""
            self._reject(type(e).__name__, f"{what}: localisation failed ({type(e).__name__}: {line})")
            return
        self.counts["lost"] += int(res.lost)  # tracking from the previous pose failed (whatever retrieval gave)
        if not res.success or res.T_world_cam is None:
            self.counts["failed"] += 1
            self.logger.debug("%s: not localised (inliers per iteration %s)", what, res.inliers)
            return
        self.pub.publish(PoseMsg(stamp, self.frame_id, res.T_world_cam), stamp)
        self._last = (stamp, res.T_world_cam)
        self.counts["localised"] += 1
        self.counts["tracked"] += int(res.tracked)
        self.counts["relocalised"] += int(res.lost)  # lost the previous pose, found again from retrieval
        self.logger.debug("%s: localised in %.2f s, inliers %s", what, res.seconds, res.inliers)

    def _reject(self, kind: str, message: str) -> None:
        self.counts["rejected"] += 1
        if kind not in self._reported:
            self._reported.add(kind)
            self.logger.error("dropped %s; further such images are counted", message)

    def close(self) -> None:
        worker = getattr(self, "_worker", None)
        if worker is not None:
            self._stop.set()
            with self._cv:
                self._cv.notify_all()
            t0 = time.monotonic()
            worker.join(timeout=3.0)  # within the supervisor's grace period; one localisation takes < 1 s
            if worker.is_alive():
                self.logger.warning("the localisation thread did not finish within %.0f s", time.monotonic() - t0)
            self._worker = None
            c = self.counts
            with self._cv:
                waiting = len(self._pending)
            undecoded = self.dropped.get(self.image_topic, 0)
            self.logger.info("%d images: %d localised (%d tracked from the previous pose, %d relocalised from "
                             "retrieval after losing it; %d lost it in all), %d not localised, %d skipped (a newer "
                             "one was waiting), %d rejected, %d still waiting at shutdown; %d messages on %s did not "
                             "decode", c["received"], c["localised"], c["tracked"], c["relocalised"], c["lost"],
                             c["failed"], c["skipped"], c["rejected"], waiting, undecoded,
                             self.image_topic)  # fmt: skip
        super().close()
