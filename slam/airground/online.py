"""The air-ground stages as incremental building blocks, shared by the offline pipeline and the live nodes.

- :class:`~slam.airground.keyframes.Keyframer`: keyframe decisions one frame at a time.
- :class:`UavSender`: the UAV side -- local features (and NetVLAD when configured) of a keyframe, packed into the
  compact binary message under the rate controller; it meters what it sends.
- :class:`UgvMapBuilder`: the UGV side -- keyframes (LIO pose + features) arrive one by one; :meth:`build` matches
  new keyframes with their neighbours (cached), finds revisits, makes tracks, runs stage 1 and returns a
  :class:`UgvMap`: the refined keyframes, landmarks and a loop detector over them.
- :class:`UgvMap.localize`: a received UAV message -> loop query; :func:`solve_relative_pose` runs stage 2 over the
  verified UAV keyframes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from perception.camera import CameraModel
from perception.errors import InputError
from perception.features import Features, make_extractor, match_mutual_nn, verify_matches
from perception.features.vlad import VladVocabulary
from perception.geometry import SE3
from slam.airground.bandwidth import BandwidthMeter, RateController
from slam.airground.keyframes import Keyframer  # noqa: F401 - re-exported for the nodes
from slam.airground.landmarks import build_landmark_map, build_tracks
from slam.airground.message import KeyframeMessage, encode, message_size
from slam.airground.revisits import Revisit, find_revisits
from slam.airground.stage1 import Stage1Problem, Stage1Result, run_stage1
from slam.airground.stage2 import Stage2Result, UavKeyframeMatches, estimate_relative_pose
from slam.loop import LoopDetector, LoopResult, Place, PlaceIndex

log = logging.getLogger(__name__)


def make_netvlad(opts):
    """The NetVLAD describer the options ask for, or None for VLAD (see ``AirgroundOptions.global_descriptor``)."""
    if opts.global_descriptor == "vlad":
        return None
    if opts.global_descriptor != "netvlad":
        raise InputError(f"global_descriptor must be 'vlad' or 'netvlad', got {opts.global_descriptor!r}")
    if opts.netvlad_weights is None:
        raise InputError("global_descriptor 'netvlad' needs --options.netvlad-weights PATH (a local checkpoint)")
    from perception.features.netvlad import NetVLADDescriptor

    return NetVLADDescriptor(opts.netvlad_weights, max_side=opts.netvlad_max_side, out_dim=opts.netvlad_dim,
                             projection_seed=opts.stage2.seed)  # fmt: skip


def make_features(opts):
    return make_extractor(opts.features, opts.max_keypoints, weights=opts.feature_weights)


class UavSender:
    """Features of a UAV keyframe -> compact message bytes within the bandwidth budget (None when dropped)."""

    def __init__(self, opts, extractor=None, netvlad=None, robot_id: int = 1) -> None:
        self.opts = opts
        self.extractor = extractor or make_features(opts)
        self.netvlad = netvlad
        self.robot_id = robot_id
        self.rate = RateController(opts.budget_bits_per_s, max_keypoints=opts.max_keypoints)
        self.meter = BandwidthMeter()

    def offer(self, keyframe_id: int, stamp_ns: int, image: np.ndarray, T_world_cam: SE3) -> bytes | None:
        f = self.extractor(image)
        g = None if self.netvlad is None else self.netvlad(image)  # computed on the UAV, sent with the keyframe
        gdim = 0 if g is None else len(g)
        kind = self.opts.descriptors
        n = self.rate.allow(stamp_ns, lambda k, d=f.descriptors.shape[1]: message_size(k, d, gdim, kind), len(f))
        if n == 0:
            return None
        data = encode(KeyframeMessage(self.robot_id, keyframe_id, stamp_ns, T_world_cam, f.keypoints[:n],
                                      f.descriptors[:n], g), kind)  # fmt: skip
        self.rate.spend(stamp_ns, len(data))
        self.meter.record(stamp_ns, len(data))
        return data


@dataclass
class UgvMap:
    stamps_ns: np.ndarray
    stage1: Stage1Result
    revisits: list[Revisit]
    detector: LoopDetector
    describe: Callable[[np.ndarray], np.ndarray] | None
    """Global descriptor of received local descriptors (VLAD), or None when the UAV sends its own (NetVLAD)."""

    def localize(self, msg: KeyframeMessage, camera: CameraModel) -> LoopResult:
        """Loop query for one received UAV keyframe (with its odometry pose for joint verification)."""
        if self.describe is not None:
            g = self.describe(msg.descriptors)
        elif msg.global_descriptor is not None:
            g = msg.global_descriptor
        else:
            raise InputError(f"UAV keyframe {msg.keyframe_id}: no global descriptor in the message, but the map "
                             "uses NetVLAD (configure the UAV with the same global_descriptor)")  # fmt: skip
        return self.detector.query(msg.keyframe_id, g, msg.keypoints, msg.descriptors, camera,
                                   T_odom_cam=msg.T_world_cam)  # fmt: skip

    def match_stamp(self, r: LoopResult) -> int | None:
        return None if r.match_id is None else int(self.stamps_ns[r.match_id])


@dataclass
class UgvMapBuilder:
    """UGV keyframes in, a stage-1 map out (rebuilt over all keyframes added so far)."""

    camera: CameraModel
    T_imu_cam: SE3
    opts: object
    stamps: list[int] = field(default_factory=list)
    T_world_imu: list[SE3] = field(default_factory=list)
    features: list[Features] = field(default_factory=list)
    global_desc: list[np.ndarray | None] = field(default_factory=list)
    _pairs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.stamps)

    def add_keyframe(self, stamp_ns: int, T_world_imu: SE3, features: Features, global_desc=None) -> None:
        if self.stamps and stamp_ns <= self.stamps[-1]:
            raise InputError(f"UGV keyframe {stamp_ns}: stamps must increase (last {self.stamps[-1]})")
        if not np.all(np.isfinite(T_world_imu.matrix())):
            raise InputError(f"UGV keyframe {stamp_ns}: pose contains NaN/inf")
        self.stamps.append(int(stamp_ns))
        self.T_world_imu.append(T_world_imu)
        self.features.append(features)
        self.global_desc.append(global_desc)

    def _match_new(self) -> None:
        o, cam, fs = self.opts, self.camera, self.features
        for j in range(len(fs)):
            for i in range(max(0, j - o.match_window), j):
                if (i, j) not in self._pairs:
                    m = match_mutual_nn(fs[i].descriptors, fs[j].descriptors, o.match_ratio)
                    self._pairs[(i, j)] = verify_matches(fs[i].keypoints, fs[j].keypoints, m, cam, cam,
                                                         threshold_px=o.verify_threshold_px)  # fmt: skip

    def build(self) -> UgvMap:
        o = self.opts
        if len(self) < 2:
            raise InputError(f"UGV map: {len(self)} keyframe(s); need at least 2")
        if sum(len(f) for f in self.features) == 0:
            raise InputError("UGV map: no features on any UGV keyframe (blank or corrupt images?)")
        self._match_new()
        fs = self.features
        T_imu = SE3.from_matrix(np.stack([T.matrix() for T in self.T_world_imu]))
        T_cam = T_imu @ self.T_imu_cam
        if any(g is None for g in self.global_desc):
            vocab = VladVocabulary.fit([f.descriptors for f in fs], k=o.vocabulary_size, seed=o.stage2.seed)
            describe = vocab.encode
            G = np.stack([vocab.encode(f.descriptors) for f in fs])
        else:
            describe, G = None, np.stack(self.global_desc)
        revisit_pairs, revisits = find_revisits(fs, G, T_cam, self.camera, o.revisits)
        tracks = build_tracks([f.keypoints for f in fs], {**self._pairs, **revisit_pairs})
        obs = tracks.observations
        s1 = run_stage1(Stage1Problem(T_imu, self.T_imu_cam, self.camera, obs), o.stage1)
        # each keyframe feature -> the stage-1 landmark (track) it observes, -1 where none
        landmark_of = [np.full(len(f), -1, np.int64) for f in fs]
        good = s1.point_ok[obs.point_index]
        for k, fi, j in zip(obs.image_index[good], tracks.feature_index[good], obs.point_index[good], strict=True):
            landmark_of[k][fi] = j
        lmap = build_landmark_map(s1.points, s1.point_ok, tracks, [f.descriptors for f in fs])
        lm_desc = np.zeros((len(s1.points), fs[0].descriptors.shape[1]), np.float32)
        lm_desc[lmap.track_ids] = lmap.descriptors
        detector = LoopDetector(PlaceIndex(G.shape[1]), s1.points, o.loop, landmark_descriptors=lm_desc)
        for k, f in enumerate(fs):
            detector.add(k, G[k], Place(f.keypoints, f.descriptors, landmark_of[k], f.image_size))
        return UgvMap(np.asarray(self.stamps, np.int64), s1, revisits, detector, describe)


def verified_keyframe(msg: KeyframeMessage, r: LoopResult, camera: CameraModel) -> UavKeyframeMatches | None:
    return UavKeyframeMatches(msg.keyframe_id, msg.T_world_cam, camera, r.uv, r.landmark_idx) if r.accepted else None


def solve_relative_pose(verified: list[UavKeyframeMatches], ugv_map: UgvMap, opts) -> Stage2Result | None:
    if not verified:
        return None
    return estimate_relative_pose(verified, np.nan_to_num(ugv_map.stage1.points), opts.stage2)
