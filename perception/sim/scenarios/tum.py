"""The ``tum`` scenario: a hand-held RGB-D sequence through the simulated room, written in the TUM RGB-D layout.

The camera moves continuously along a loop (with a gentle bob and sway) at ``speed`` rad/s; colour and registered
depth frames are rendered at ``rate_hz`` and ground truth is sampled at 100 Hz with its own phase, as the motion
capture system of the real benchmark does, so readers must associate by timestamp. The sequence is named
``rgbd_dataset_freiburg1_<name>`` by default and rendered through freiburg1's calibrated Brown-Conrady camera, so
the TUM reader picks the intrinsics the images were made with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perception.datasets.tum_rgbd import TumRGBDWriter, camera_for_sequence
from perception.errors import InputError
from perception.geometry import SE3
from perception.sim.poses import yaw_pitch_camera
from perception.sim.render import render_camera
from perception.sim.scenarios.room import RoomConfig, build_room_world

log = logging.getLogger(__name__)


@dataclass
class TumConfig:
    sequence: str = "rgbd_dataset_freiburg1_simroom"
    """Sequence folder; a 'freiburgN' in the name selects that sensor's intrinsics (else the ROS default)."""
    duration_s: float = 1.5
    rate_hz: float = 15.0
    """Camera frame rate (the real sensor runs at 30 Hz)."""
    groundtruth_hz: float = 100.0
    start_time_s: float = 1305031102.175304
    """First camera stamp (seconds since the epoch, like the real recordings)."""
    radius: float = 1.0
    height: float = 1.45
    speed: float = 0.5
    """Angular speed along the loop (rad/s)."""
    room: RoomConfig = field(default_factory=RoomConfig)
    """The room the camera moves through (only its world settings are used)."""

    def validate(self) -> None:
        if self.duration_s <= 0 or self.rate_hz <= 0 or self.groundtruth_hz <= 0:
            raise InputError("tum: duration_s, rate_hz and groundtruth_hz must be > 0")
        if self.groundtruth_hz < 2 * self.rate_hz:
            raise InputError("tum: groundtruth_hz must be at least twice rate_hz")


def handheld_poses(cfg: TumConfig, t_s: np.ndarray) -> SE3:
    """The continuous camera path at times ``t_s`` (seconds from the start)."""
    t = np.asarray(t_s, dtype=np.float64)
    a = cfg.speed * t
    r = cfg.radius + 0.1 * np.sin(1.3 * t)
    eye = np.stack([r * np.cos(a), r * np.sin(a), cfg.height + 0.05 * np.sin(2.1 * t)], axis=-1)
    yaw = a + 0.15 * np.sin(0.9 * t)
    pitch = np.deg2rad(8.0) + 0.05 * np.sin(1.7 * t)
    return yaw_pitch_camera(eye, yaw, pitch)


@dataclass
class TumResult:
    root: Path
    stamps_ns: np.ndarray
    poses: SE3
    groundtruth_stamps_ns: np.ndarray
    groundtruth: SE3


def make_tum(
    out: Path, cfg: TumConfig | None = None, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> TumResult:
    cfg = cfg or TumConfig()
    cfg.validate()
    cfg.room.validate()
    rng = np.random.default_rng(seed)
    world = build_room_world(cfg.room, rng)
    camera = camera_for_sequence(cfg.sequence)
    t0_ns = int(round(cfg.start_time_s * 1e6)) * 1000
    n = int(np.floor(cfg.duration_s * cfg.rate_hz)) + 1
    stamps = t0_ns + np.round(np.arange(n) / cfg.rate_hz * 1e9).astype(np.int64)
    # ground truth at its own rate and phase, covering the frames
    gt_phase = float(rng.uniform(0.0, 1.0 / cfg.groundtruth_hz))
    m = int(np.floor((cfg.duration_s + 0.1) * cfg.groundtruth_hz)) + 2
    gt_t = -0.05 + gt_phase + np.arange(m) / cfg.groundtruth_hz
    gt_stamps = t0_ns + np.round(gt_t * 1e9).astype(np.int64)
    gt_poses = handheld_poses(cfg, gt_t)
    poses = handheld_poses(cfg, (stamps - t0_ns) / 1e9)
    root = Path(out) / cfg.sequence
    with TumRGBDWriter(root) as w:
        for i in range(n):
            frame = render_camera(world, camera, poses[i], supersample=cfg.room.supersample,
                                  noise_std=cfg.room.noise_std, rng=rng.integers(2**63))  # fmt: skip
            w.add_frame(int(stamps[i]), frame.rgb, np.where(frame.valid, frame.depth, np.nan))
            if progress is not None:
                progress(i + 1, n)
        for k in range(m):
            w.add_pose(int(gt_stamps[k]), gt_poses[k])
    log.info("tum: wrote %d frames and %d ground-truth poses to %s", n, m, root)
    return TumResult(root, stamps, poses, gt_stamps, gt_poses)
