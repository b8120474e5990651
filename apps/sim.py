"""Simulate a dataset with exact ground truth, written in a real dataset's on-disk layout.

``sparsepipe sim room`` renders an indoor RGB-D relocalization dataset in the 7-Scenes layout (training loops plus
test sequences from other heights, yaw offsets, distances and lighting); ``sparsepipe sim tum`` renders a hand-held
RGB-D sequence in the TUM RGB-D layout. Both read back with the same readers a user points at the real data.
``sparsepipe sim airground`` records a UGV (LIO, camera) and a UAV (VIO, camera) around an urban block as a ROS 2
MCAP bag, with the rig file the air-ground pipeline reads and the ground truth its evaluation reads.
``sparsepipe sim kitti-lidar`` ray-casts 32-beam LiDAR sweeps of streets with cars, pedestrians and cyclists in the
KITTI object-detection layout (velodyne, calib, label_2, ImageSets), read back by the KITTI object reader.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apps.config import CommonConfig, PipelineConfig, save_resolved_config
from perception.sim.scenarios.airground import AirgroundConfig, make_airground
from perception.sim.scenarios.kitti_lidar import KittiLidarSimConfig, make_kitti_lidar
from perception.sim.scenarios.mocap import MocapSimConfig, make_mocap
from perception.sim.scenarios.room import RoomConfig, make_room
from perception.sim.scenarios.scannet import ScanNetSimConfig, make_scannet
from perception.sim.scenarios.tum import TumConfig, make_tum

log = logging.getLogger(__name__)


@dataclass
class SimRoomConfig(PipelineConfig):
    out: Path = Path("out/sim/room")
    """Dataset root; the scene is written to OUT/<scene> in the 7-Scenes layout."""
    room: RoomConfig = field(default_factory=RoomConfig)
    """The room, its sequences and the camera."""


@dataclass
class SimTumConfig(PipelineConfig):
    out: Path = Path("out/sim/tum")
    """Dataset root; the sequence is written to OUT/<sequence> in the TUM RGB-D layout."""
    tum: TumConfig = field(default_factory=TumConfig)
    """The sequence (timing, path) and the room it moves through."""


@dataclass
class SimAirgroundConfig(PipelineConfig):
    out: Path = Path("out/sim/airground")
    """Output folder: recording.mcap, rig.yaml, gt/, sim_meta.json."""
    scenario: AirgroundConfig = field(default_factory=AirgroundConfig)
    """The block, both robots' paths, sensors and rates."""
    tiny: bool = False
    """Use the tiny preset (a third of a lap, 320x240 images, a few seconds) instead of --scenario.* values."""


def _progress(description: str):
    from apps.progress import progress_bar

    progress = progress_bar()
    task = progress.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return progress, update


def _log_frames(
    spec, out: Path, name: str, sequences: dict[str, tuple[np.ndarray, object, list[Path]]], camera
) -> None:
    """Trajectories of every sequence and each frame's camera with its image."""
    from apps.viz import blueprint_for, recording
    from apps.viz.log import log_camera, log_image, log_trajectory, log_world, set_time
    from perception.datasets.common import read_rgb

    palette = [(230, 120, 40), (80, 170, 230), (120, 200, 80), (220, 80, 160), (200, 200, 60)]
    with recording(f"sparsepipe-sim-{name}", spec, blueprint_for("sim")) as rec:
        log_world(rec, "world", up="+z")
        frame = 0
        for k, (seq, (stamps, poses, images)) in enumerate(sequences.items()):
            log_trajectory(rec, f"world/trajectories/{seq}", None, poses, color=palette[k % len(palette)], static=True)
            for i, path in enumerate(images):
                set_time(rec, frame=frame, stamp_ns=None if stamps is None else int(stamps[i]))
                log_camera(rec, "world/camera", poses[i], camera)
                log_image(rec, "world/camera/image", read_rgb(path), jpeg_quality=80)
                frame += 1


def run_room(cfg: SimRoomConfig) -> int:
    from apps.viz import parse_rerun_spec

    spec = parse_rerun_spec(cfg.rerun, cfg.out)
    progress, update = _progress("rendering room")
    with progress:
        result = make_room(cfg.out, cfg.room, seed=cfg.seed, progress=update)
    save_resolved_config(cfg, "sim room")
    scene = Path(cfg.out) / cfg.room.scene
    seqs = {
        f"seq-{s:02d}": (None, result.poses[s], sorted((scene / f"seq-{s:02d}").glob("frame-*.color.png")))
        for s in result.train_seqs + result.test_seqs
    }
    _log_frames(spec, cfg.out, "room", seqs, result.camera)
    n = sum(len(v[2]) for v in seqs.values())
    print(f"wrote {n} frames to {scene} (train {result.train_seqs}, test {result.test_seqs}) in the 7-Scenes layout")
    return 0


@dataclass
class SimScanNetConfig(CommonConfig):
    out: Path = Path("out/sim/scannet")
    """Dataset root: scans/sceneXXXX_00/, scannetv2-labels.combined.tsv, scannetv2_{train,val}.txt."""
    rooms: int = 32
    scenario: ScanNetSimConfig = field(default_factory=ScanNetSimConfig)
    """Point density, noise and the validation share (--rooms wins)."""


def run_scannet(cfg: SimScanNetConfig) -> int:
    from dataclasses import replace

    sc = replace(cfg.scenario, rooms=cfg.rooms)
    progress, update = _progress("sampling rooms")
    with progress:
        split = make_scannet(cfg.out, sc, seed=cfg.seed, progress=update)
    save_resolved_config(cfg, "sim scannet")
    print(f"wrote {cfg.rooms} rooms ({len(split['train'])} train / {len(split['val'])} val) in the ScanNet layout "
          f"to {cfg.out}")
    return 0


@dataclass
class SimKittiLidarConfig(CommonConfig):
    out: Path = Path("out/sim/kitti")
    """Dataset root: training/{velodyne,calib,label_2}/, ImageSets/{train,val}.txt, gt/ (exact boxes, point ids)."""
    frames: int = 300
    scenario: KittiLidarSimConfig = field(default_factory=KittiLidarSimConfig)
    """The LiDAR, the street, the objects per frame and the validation share (--frames wins)."""


def run_kitti_lidar(cfg: SimKittiLidarConfig) -> int:
    from dataclasses import replace

    sc = replace(cfg.scenario, frames=cfg.frames)
    progress, update = _progress("casting LiDAR sweeps")
    with progress:
        split = make_kitti_lidar(cfg.out, sc, seed=cfg.seed, progress=update)
    save_resolved_config(cfg, "sim kitti-lidar")
    print(f"wrote {cfg.frames} LiDAR frames ({len(split['train'])} train / {len(split['val'])} val) in the KITTI "
          f"object layout to {cfg.out}")
    return 0


@dataclass
class SimEgohumansConfig(CommonConfig):
    out: Path = Path("out/sim/egohumans")
    """Output folder: keypoints2d/camXX.npz, the EgoHumans layout (colmap/workplace, processed_data), gt/."""
    cameras: int = 4
    seconds: float = 20.0
    scenario: MocapSimConfig = field(default_factory=MocapSimConfig)
    """Everything else about the subject, the cameras and the detector noise (--cameras/--seconds win)."""


def run_egohumans(cfg: SimEgohumansConfig) -> int:
    from dataclasses import replace

    sc = replace(cfg.scenario, cameras=cfg.cameras, seconds=cfg.seconds)
    make_mocap(cfg.out, sc, seed=cfg.seed)
    save_resolved_config(cfg, "sim egohumans")
    print(f"wrote {cfg.cameras} cameras x {cfg.seconds:g} s of 2D keypoints to {Path(cfg.out) / 'keypoints2d'} "
          f"(noise {sc.noise}) and the ground truth (EgoHumans layout, gt/mocap_gt.json) to {cfg.out}")
    return 0


def run_tum(cfg: SimTumConfig) -> int:
    from apps.viz import parse_rerun_spec

    spec = parse_rerun_spec(cfg.rerun, cfg.out)
    progress, update = _progress("rendering sequence")
    with progress:
        result = make_tum(cfg.out, cfg.tum, seed=cfg.seed, progress=update)
    save_resolved_config(cfg, "sim tum")
    from perception.datasets.tum_rgbd import camera_for_sequence

    images = sorted((result.root / "rgb").glob("*.png"))
    _log_frames(spec, cfg.out, "tum", {"sequence": (result.stamps_ns, result.poses, images)},
                camera_for_sequence(cfg.tum.sequence))  # fmt: skip
    print(f"wrote {len(images)} frames and {len(result.groundtruth_stamps_ns)} ground-truth poses to {result.root}")
    return 0


def run_airground(cfg: SimAirgroundConfig) -> int:
    from apps.viz import parse_rerun_spec

    spec = parse_rerun_spec(cfg.rerun, cfg.out)
    scenario = AirgroundConfig.tiny() if cfg.tiny else cfg.scenario
    progress, update = _progress("rendering air-ground recording")
    with progress:
        result = make_airground(cfg.out, scenario, seed=cfg.seed, progress=update)
    save_resolved_config(cfg, "sim airground")
    if spec.mode != "off":
        from apps.viz import blueprint_for, recording
        from apps.viz.log import log_trajectory, log_world
        from slam.trajectory import read_tum

        with recording("sparsepipe-sim-airground", spec, blueprint_for("airground")) as rec:
            log_world(rec, "world", up="+z")
            for name, color in (("ugv_cam", (230, 120, 40)), ("uav_cam", (80, 170, 230))):
                gt = read_tum(Path(cfg.out) / "gt" / f"{name}.tum")
                log_trajectory(rec, f"world/gt/{name}", None, gt.poses, color=color, static=True)
    n_overlap = int((result.uav_overlap > 0.2).sum())
    print(f"wrote {len(result.ugv_camera_stamps)} UGV and {len(result.uav_camera_stamps)} UAV images "
          f"({n_overlap} UAV images overlap the UGV's views), {len(result.lio_stamps)} LIO poses to {result.root} "
          f"in {result.timings['total_s']:.1f} s")  # fmt: skip
    return 0
