"""Live air-ground nodes: ``uav_frontend``, ``ugv_frontend`` and ``relative_localizer``.

They call the same stage code as ``sparsepipe airground`` (:mod:`slam.airground.online`). Common parameters:
``rig`` (the rig YAML: cameras, extrinsics, time offset) and ``config`` (optional: a YAML of `sparsepipe
airground` options, e.g. an earlier run's config.yaml; its ``options`` section is used). Topics (relative, so
namespaces and remaps place them): ``image`` and ``odometry`` in, ``keyframes`` out for the front ends;
``ugv_keyframes`` and ``uav_keyframes`` in, ``relative_pose`` and ``uav_pose`` (geometry_msgs/
PoseWithCovarianceStamped, frame ``ugv_odom``) out for the localizer.

- ``uav_frontend``: UAV camera poses from its own odometry at each image stamp, keyframes, features (and NetVLAD if
  configured), compact keyframe messages under the rate controller (what crosses the air-ground link).
- ``ugv_frontend``: UGV camera poses interpolated from the LIO (extrinsic and time offset), keyframes, features,
  keyframe messages with fp16 descriptors (a local topic, no budget).
- ``relative_localizer``: rebuilds the UGV map (tracks, revisits, stage 1) every ``rebuild_every`` new UGV
  keyframes or once they have waited ``idle_s``, over the last ``window`` keyframes (0: all; the window's LIO poses
  are moved rigidly so its first keyframe stays where the previous map put it; UAV views of places that left the
  window no longer verify, so keep it longer than the UAV trails the UGV); verifies every received UAV keyframe
  against it (incremental loop closure) and runs stage 2 over the verified ones, publishing the relative transform
  and the UAV's latest pose in the UGV frame. With ``state`` set it checkpoints what it received (atomically) and
  resumes from it when respawned (saved at most once a second; messages sent while it is down are lost, as on a
  real link). A malformed keyframe message is dropped with one warning.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np

from apps.nodes.runtime import RAW, Node
from perception.errors import InputError
from perception.features import Features
from perception.geometry import SE3

ODOMETRY = "nav_msgs/msg/Odometry"
POSE_COV = "geometry_msgs/msg/PoseWithCovarianceStamped"


def _options(node: Node):
    from slam.airground.pipeline import AirgroundOptions

    path = node.param("config", "", str)
    if not path:
        return AirgroundOptions()
    from apps.airground import AirgroundConfig
    from apps.config import load_config_file

    return load_config_file(AirgroundConfig, Path(path)).options


def _rig(node: Node):
    from perception.datasets.rig import load_rig

    path = node.param("rig", "", str)
    if not path:
        raise InputError(f"{node.spec.fqn}: parameter 'rig' (the rig YAML) is required")
    return load_rig(path)


class _Frontend(Node):
    """Images wait until the odometry covers their stamp, then become poses; keyframes go to :meth:`keyframe`."""

    max_buffer = 200

    def __init__(self, spec, session=None) -> None:
        super().__init__(spec, session)
        from slam.airground.keyframes import Keyframer
        from slam.airground.online import make_features

        self.rig = _rig(self)
        self.opts = _options(self)
        self.extractor = make_features(self.opts)
        self.odom_stamps: list[int] = []
        self.odom_poses: list[np.ndarray] = []
        self.images: list = []
        self.keyframer = Keyframer(self.policy())
        self.next_id = 0
        self.pub = self.create_publisher("keyframes", RAW)
        image_type = self.param("image_type", "sensor_msgs/msg/CompressedImage", str)
        self.create_subscription("image", image_type, self.on_image)
        self.create_subscription("odometry", ODOMETRY, self.on_odometry)

    def on_odometry(self, m) -> None:
        if self.odom_stamps and m.stamp_ns <= self.odom_stamps[-1]:
            return  # a repeat or out of order: the trajectory must increase
        self.odom_stamps.append(int(m.stamp_ns))
        self.odom_poses.append(m.T_parent_child.matrix())
        if len(self.odom_stamps) > 4 * self.max_buffer:
            del self.odom_stamps[: self.max_buffer], self.odom_poses[: self.max_buffer]
        self._drain()

    def on_image(self, m) -> None:
        self.images.append((int(m.stamp_ns), m.image))
        del self.images[: -self.max_buffer]
        self._drain()

    def _drain(self) -> None:
        from slam.trajectory import Trajectory

        if len(self.odom_stamps) < 2 or not self.images:
            return
        traj = Trajectory(np.asarray(self.odom_stamps, np.int64), SE3.from_matrix(np.stack(self.odom_poses)))
        keep = []
        for stamp, image in self.images:
            t = stamp + self.time_offset_ns()
            if t > self.odom_stamps[-1]:
                keep.append((stamp, image))  # wait for odometry past it
                continue
            if t < self.odom_stamps[0]:
                continue  # before the odometry starts: cannot be posed
            try:
                T = traj.T_world_body_at(np.array([stamp]), self.T_body_cam(), time_offset_ns=self.time_offset_ns(),
                                         max_gap_ns=int(self.opts.max_gap_ms * 1e6) * 4)[0]  # fmt: skip
            except ValueError as e:
                self.logger.warning("image %d not posed: %s", stamp, str(e).splitlines()[0])
                continue
            if self.keyframer.accept(stamp, T):
                self.keyframe(stamp, image, T)
        self.images = keep


class UavFrontend(_Frontend):
    def policy(self):
        return self.opts.uav_keyframes

    def time_offset_ns(self) -> int:
        return 0

    def T_body_cam(self) -> SE3:
        return self.rig.T_body_cam_uav

    def __init__(self, spec, session=None) -> None:
        super().__init__(spec, session)
        from slam.airground.online import UavSender, make_netvlad

        self.sender = UavSender(self.opts, self.extractor, make_netvlad(self.opts))

    def keyframe(self, stamp: int, image, T_world_cam: SE3) -> None:
        data = self.sender.offer(self.next_id, stamp, image, T_world_cam)
        self.next_id += 1
        if data is not None:
            self.pub.publish(data)


class UgvFrontend(_Frontend):
    def policy(self):
        return self.opts.ugv_keyframes

    def time_offset_ns(self) -> int:
        return int(self.rig.time_offset_ns)

    def T_body_cam(self) -> SE3:
        return self.rig.T_imu_cam

    def __init__(self, spec, session=None) -> None:
        super().__init__(spec, session)
        from slam.airground.online import make_netvlad

        self.netvlad = make_netvlad(self.opts)

    def keyframe(self, stamp: int, image, T_world_cam: SE3) -> None:
        from slam.airground.message import KeyframeMessage, encode

        f = self.extractor(image)
        g = None if self.netvlad is None else self.netvlad(image)
        self.pub.publish(encode(KeyframeMessage(0, self.next_id, stamp, T_world_cam, f.keypoints, f.descriptors, g,
                                                scores=f.scores), "fp16"))  # fmt: skip
        self.next_id += 1


class RelativeLocalizer(Node):
    def __init__(self, spec, session=None) -> None:
        super().__init__(spec, session)
        self.rig = _rig(self)
        self.opts = _options(self)
        self.rebuild_every = self.param("rebuild_every", 10, int)
        self.window = self.param("window", 0, int)
        if self.window < 0 or 0 < self.window < 3:
            raise InputError(f"{spec.fqn}: window must be 0 (all keyframes) or >= 3, got {self.window}")
        self.idle_s = self.param("idle_s", 2.0, float)
        self.state_path = self.param("state", "", str)
        self.ugv_msgs: list[bytes] = []
        self.uav_msgs: list[bytes] = []
        self.built_with = 0
        self.dirty = False
        self.last_save = time.monotonic()
        self.last_ugv = time.monotonic()
        self.map = None
        self.results: dict[int, object] = {}
        self.pub_rel = self.create_publisher("relative_pose", POSE_COV)
        self.pub_uav = self.create_publisher("uav_pose", POSE_COV)
        self._load_state()
        from slam.airground.message import decode

        self.ugv_stamps = [decode(d).stamp_ns for d in self.ugv_msgs]
        self.uav_stamps = {decode(d).stamp_ns for d in self.uav_msgs}
        self.create_subscription("ugv_keyframes", RAW, self.on_ugv)
        self.create_subscription("uav_keyframes", RAW, self.on_uav)
        self.create_timer(0.5, self.on_timer)

    # -- state across respawns --------------------------------------------------------------------------
    def _load_state(self) -> None:
        if self.state_path and Path(self.state_path).is_file():
            try:
                self.ugv_msgs, self.uav_msgs = pickle.loads(Path(self.state_path).read_bytes())
                self.logger.info("resumed from %s: %d UGV and %d UAV keyframes", self.state_path, len(self.ugv_msgs),
                                 len(self.uav_msgs))  # fmt: skip
            except Exception as e:  # noqa: BLE001 - a bad checkpoint only costs the history
                self.logger.warning("ignoring unreadable state %s (%s)", self.state_path, type(e).__name__)

    def _save_state(self) -> None:
        if self.state_path:
            from perception.fileio import atomic_write_bytes

            atomic_write_bytes(self.state_path, pickle.dumps((self.ugv_msgs, self.uav_msgs)))
        self.dirty = False
        self.last_save = time.monotonic()

    # -- messages -------------------------------------------------------------------------------------------
    def _decode(self, data: bytes, what: str):
        from slam.airground.message import decode

        try:
            return decode(data)
        except InputError as e:
            n = self.dropped.get(what, 0)
            self.dropped[what] = n + 1
            if n == 0:
                self.logger.warning("dropped a malformed %s keyframe message (%s); further ones are counted", what,
                                    str(e).splitlines()[0])  # fmt: skip
            return None

    def on_ugv(self, data: bytes) -> None:
        msg = self._decode(data, "UGV")
        if msg is not None:
            if self.ugv_stamps and msg.stamp_ns <= self.ugv_stamps[-1]:
                self.logger.debug("UGV keyframe %d repeats or precedes the last one: ignored", msg.stamp_ns)
                return
            self.ugv_stamps.append(msg.stamp_ns)
            self.ugv_msgs.append(bytes(data))
            self.dirty = True
            self.last_ugv = time.monotonic()
            if len(self.ugv_msgs) - self.built_with >= self.rebuild_every:
                self.rebuild()

    def on_uav(self, data: bytes) -> None:
        msg = self._decode(data, "UAV")
        if msg is None or msg.stamp_ns in self.uav_stamps:
            return
        self.uav_stamps.add(msg.stamp_ns)
        self.uav_msgs.append(bytes(data))
        self.dirty = True
        if self.map is not None:
            self.localize([msg])
            self.publish(msg)

    def on_timer(self) -> None:
        if self.dirty and time.monotonic() - self.last_save >= 1.0:
            self._save_state()  # at most once a second: a respawn loses little
        pending = len(self.ugv_msgs) - self.built_with
        if pending and (self.map is None and len(self.ugv_msgs) >= 2 or time.monotonic() - self.last_ugv > self.idle_s):
            self.rebuild()

    # -- estimation -----------------------------------------------------------------------------------------
    def rebuild(self) -> None:
        from slam.airground.message import decode
        from slam.airground.online import UgvMapBuilder

        cam = self.rig.ugv_camera
        builder = UgvMapBuilder(cam, self.rig.T_imu_cam, self.opts)
        T_cam_imu = self.rig.T_imu_cam.inverse()
        msgs = [decode(d) for d in self.ugv_msgs[-self.window:]] if self.window else [decode(d) for d in self.ugv_msgs]
        # sliding window: the LIO poses of the window are moved rigidly so that its first keyframe sits where the
        # previous map optimised it (the window's gauge), keeping successive maps consistent at a bounded cost
        T_fix = SE3.identity()
        if self.map is not None and self.window and msgs[0].stamp_ns in set(self.map.stamps_ns.tolist()):
            k = int(np.flatnonzero(self.map.stamps_ns == msgs[0].stamp_ns)[0])
            T_fix = self.map.stage1.T_world_imu[k] @ (msgs[0].T_world_cam @ T_cam_imu).inverse()
        for m in msgs:
            f = Features(m.keypoints.astype(np.float32), np.ones(len(m.keypoints), np.float32), m.descriptors,
                         (cam.width, cam.height), "received")  # fmt: skip
            builder.add_keyframe(m.stamp_ns, T_fix @ m.T_world_cam @ T_cam_imu, f, m.global_descriptor)
        try:
            t0 = time.perf_counter()
            self.map = builder.build()
        except InputError as e:
            self.logger.warning("UGV map not built yet: %s", str(e).splitlines()[0])
            return
        self.built_with = len(self.ugv_msgs)
        self.logger.info("UGV map over %d keyframes in %.1f s", len(builder), time.perf_counter() - t0)
        self.results.clear()
        msgs = [decode(d) for d in self.uav_msgs]
        self.localize(msgs)
        if msgs:
            self.publish(msgs[-1])
        self._save_state()

    def localize(self, msgs) -> None:
        from slam.airground.online import verified_keyframe

        for m in msgs:
            r = self.map.localize(m, self.rig.uav_camera)
            self.results[m.keyframe_id] = verified_keyframe(m, r, self.rig.uav_camera)

    def publish(self, latest) -> None:
        from perception.datasets.ros.messages import PoseCovMsg
        from slam.airground.online import solve_relative_pose

        verified = [v for v in self.results.values() if v is not None]
        s2 = solve_relative_pose(verified, self.map, self.opts)
        if s2 is None:
            return
        T = s2.T_ugvworld_uavworld
        cov = np.asarray(s2.covariance, np.float64)
        self.pub_rel.publish(PoseCovMsg(latest.stamp_ns, "ugv_odom", T, cov))
        self.pub_uav.publish(PoseCovMsg(latest.stamp_ns, "ugv_odom", T @ latest.T_world_cam, cov))
        self.logger.info("relative pose from %d verified UAV keyframes: t = %s", len(verified),
                         np.round(T.t, 3).tolist())  # fmt: skip
