"""The ``airground`` scenario: a UGV and a UAV around an urban block, recorded as a ROS 2 MCAP bag.

World (z up): a building block with photo-mosaic facades on a textured ground, a few kiosks. The UGV drives
counter-clockwise around the block (yaw along travel), its IMU 0.9 m above the ground; its camera sits on a lever
arm ``T_imu_cam`` (0.3 m ahead, 0.6 m up: 1.5 m above the ground) looking left, at the facades. Its LIO runs at
10 Hz, stamped at scan end, in its own odometry frame (the UGV's start pose), with rotational drift; camera frames
are stamped with a constant phase offset to the LIO stamps. The UAV circles higher up, pitched down towards the
block, and reports its pose in its own SLAM frame, related to the UGV's by a known ``T_ugvworld_uavworld``.

Written: ``recording.mcap`` (topics below), ``rig.yaml``, ``gt/*.tum`` (UGV IMU and camera, UAV camera — all in the
UGV world, i.e. the UGV's odometry frame), ``gt/T_ugvworld_uavworld.json`` and ``sim_meta.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from perception.camera import PinholeCamera
from perception.datasets.ros import BagWriter
from perception.errors import InputError
from perception.fileio import atomic_write_json, atomic_write_text
from perception.geometry import SE3, so3_exp
from perception.sim.odometry import OdometryDrift, simulate_odometry
from perception.sim.primitives import box_mesh, ground_plane
from perception.sim.render import render_camera
from perception.sim.textures import mosaic_texture
from perception.sim.trajectories import orbit_trajectory, uniform_stamps
from perception.sim.world import World

log = logging.getLogger(__name__)

# camera looking along the body's +y (left), image down = body -z; camera looking along body +x (forward)
R_LEFT = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
R_FORWARD = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])


@dataclass
class AirgroundTopics:
    ugv_odometry: str = "/ugv/lio/odometry"
    ugv_image: str = "/ugv/camera/image_raw"
    ugv_camera_info: str = "/ugv/camera/camera_info"
    uav_image: str = "/uav/camera/image_raw"
    uav_camera_info: str = "/uav/camera/camera_info"
    uav_odometry: str = "/uav/odometry"


@dataclass
class AirgroundConfig:
    block_size: tuple[float, float, float] = (14.0, 10.0, 8.0)
    ugv_radius: float = 12.0
    """Radius of the UGV's circuit around the block centre (m)."""
    ugv_speed: float = 2.0
    loops: float = 1.3
    """Laps of the UGV (> 1 gives revisits for loop closure)."""
    ugv_camera_hz: float = 4.0
    camera_phase_ms: float = 25.0
    """Phase offset of the UGV camera stamps to the LIO stamps."""
    lio_drift_rot: float = 2e-3
    lio_drift_trans: float = 2e-3
    uav_radius: float = 16.0
    uav_altitude: float = 12.0
    uav_camera_hz: float = 2.0
    uav_yaw_deg: float = 69.0
    """Yaw of T_ugvworld_uavworld."""
    uav_translation: tuple[float, float, float] = (5.0, -3.0, 0.5)
    width: int = 512
    height: int = 384
    focal: float = 400.0
    supersample: int = 1
    jpeg_quality: int = 90
    start_time_s: float = 1_700_000_000.0

    @classmethod
    def tiny(cls) -> AirgroundConfig:
        return cls(loops=0.25, ugv_camera_hz=2.0, uav_camera_hz=1.0, width=256, height=192, focal=200.0)

    def validate(self) -> None:
        if self.ugv_radius <= 0.5 * np.hypot(*self.block_size[:2]) + 1.0:
            raise InputError("airground: ugv_radius must clear the block's corners by more than 1 m")
        if min(self.ugv_speed, self.loops, self.ugv_camera_hz, self.uav_camera_hz) <= 0:
            raise InputError("airground: speeds, loops and rates must be > 0")


@dataclass
class AirgroundResult:
    root: Path
    T_ugvworld_uavworld: SE3
    ugv_camera_stamps: np.ndarray
    uav_camera_stamps: np.ndarray
    lio_stamps: np.ndarray
    files: dict[str, str] = field(default_factory=dict)


def build_block_world(cfg: AirgroundConfig, rng: np.random.Generator) -> World:
    world = World()
    sx, sy, sz = cfg.block_size
    for face, cols in (("+x", 3), ("-x", 3), ("+y", 4), ("-y", 4)):
        world.add(
            box_mesh(
                [0, 0, sz / 2],
                cfg.block_size,
                texture=mosaic_texture(rng, (2, cols), 320),
                tiles=(1, 1),
                faces=(face,),
                semantic_id=1,
                name=f"facade{face}",
            )
        )
    world.add(
        box_mesh(
            [0, 0, sz / 2],
            cfg.block_size,
            texture=mosaic_texture(rng, (3, 3), 256),
            tiles=(1, 1),
            faces=("+z",),
            semantic_id=1,
            name="roof",
        )
    )
    size = 2 * cfg.uav_radius + 20
    world.add(
        ground_plane((size, size), texture=mosaic_texture(rng, (6, 6), 256), tiles=(1, 1), semantic_id=2, name="ground")
    )
    for k in range(6):  # kiosks outside the UGV's circuit
        a = 2 * np.pi * k / 6 + 0.3
        r = cfg.ugv_radius + 4.0
        world.add(
            box_mesh(
                [r * np.cos(a), r * np.sin(a), 1.0],
                [2.0, 2.0, 2.0],
                texture=mosaic_texture(rng, (1, 1), 256),
                tiles=(1, 1),
                semantic_id=39,
                name=f"kiosk{k}",
            )
        )
    return world


def _tum_text(stamps_ns: np.ndarray, poses: SE3) -> str:
    q, t = poses.as_quat_t()
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for s, tt, qq in zip(stamps_ns, t, q, strict=True):
        lines.append(f"{s // 10**9}.{s % 10**9:09d} " + " ".join(repr(float(v)) for v in (*tt, *qq)))
    return "\n".join(lines) + "\n"


def _camera_yaml(cam: PinholeCamera) -> dict:
    return {
        "model": cam.model_name,
        "width": cam.width,
        "height": cam.height,
        "params": [float(v) for v in cam.params],
        "pixel_convention": "opencv-centre",
    }


def make_airground(
    out: Path, cfg: AirgroundConfig | None = None, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> AirgroundResult:
    cfg = cfg or AirgroundConfig()
    cfg.validate()
    rng = np.random.default_rng(seed)
    out = Path(out)
    world = build_block_world(cfg, rng)
    cam = PinholeCamera(cfg.width, cfg.height, cfg.focal, cfg.focal, (cfg.width - 1) / 2, (cfg.height - 1) / 2)
    t0 = int(round(cfg.start_time_s * 1e9))
    duration = cfg.loops * 2 * np.pi * cfg.ugv_radius / cfg.ugv_speed
    w = cfg.ugv_speed / cfg.ugv_radius
    ugv = orbit_trajectory([0, 0, 0.9], cfg.ugv_radius, duration + 0.5, angular_speed=w, face_center=False, start_ns=t0)
    uav = orbit_trajectory(
        [0, 0, 0],
        cfg.uav_radius,
        duration + 0.5,
        height=cfg.uav_altitude,
        angular_speed=-0.6 * w,
        start_angle=1.0,
        face_center=True,
        start_ns=t0,
    )
    T_imu_cam = SE3(R_LEFT, np.array([0.3, 0.0, 0.6]))
    T_body_cam_uav = SE3(R_FORWARD, np.zeros(3))

    # UGV world := the LIO odometry frame (the UGV body at the start)
    T_ugvworld_world = ugv.pose(t0).inverse()
    T_true = SE3(so3_exp(np.array([0, 0, np.deg2rad(cfg.uav_yaw_deg)])), np.asarray(cfg.uav_translation, float))

    lio_stamps, lio_poses = simulate_odometry(
        ugv,
        10.0,
        OdometryDrift(cfg.lio_drift_rot, cfg.lio_drift_trans),
        rng,
        "scan_end",
        start_ns=t0,
        end_ns=t0 + int(duration * 1e9),
        odom_frame=True,
    )
    phase = int(cfg.camera_phase_ms * 1e6)
    ugv_stamps = uniform_stamps(t0 + 100_000_000 + phase, int(lio_stamps[-1]) - 1, cfg.ugv_camera_hz)
    uav_stamps = uniform_stamps(t0 + 100_000_000, t0 + int(duration * 1e9), cfg.uav_camera_hz)
    ugv_imu_true = T_ugvworld_world @ ugv.pose(ugv_stamps)
    ugv_cam_true = ugv_imu_true @ T_imu_cam
    uav_body_true = T_ugvworld_world @ uav.pose(uav_stamps)
    uav_cam_true = uav_body_true @ T_body_cam_uav
    uav_body_slam = T_true.inverse() @ uav_body_true  # what the UAV's own SLAM reports

    total = len(ugv_stamps) + len(uav_stamps)
    T_world_ugvworld = T_ugvworld_world.inverse()
    out.mkdir(parents=True, exist_ok=True)
    with BagWriter(out / "recording.mcap", format="mcap", overwrite=True) as bag:
        topics = AirgroundTopics()
        bag.write_camera_info(topics.ugv_camera_info, cam, t0, frame_id="ugv_camera")
        bag.write_camera_info(topics.uav_camera_info, cam, t0, frame_id="uav_camera")
        for s, T in zip(lio_stamps, lio_poses, strict=True):
            bag.write_odometry(topics.ugv_odometry, T, int(s), frame_id="odom", child_frame_id="imu")
        ugv_frames = [(topics.ugv_image, "ugv_camera", int(s), ugv_cam_true[i], None) for i, s in enumerate(ugv_stamps)]
        uav_frames = [(topics.uav_image, "uav_camera", int(s), uav_cam_true[i], uav_body_slam[i])
                      for i, s in enumerate(uav_stamps)]  # fmt: skip
        for done, (topic, frame_id, s, T_cam, T_slam) in enumerate(ugv_frames + uav_frames, start=1):
            frame = render_camera(world, cam, T_world_ugvworld @ T_cam, supersample=cfg.supersample, noise_std=1.0,
                                  rng=int(rng.integers(2**62)))  # fmt: skip
            bag.write_compressed_image(topic, frame.rgb, s, format="jpeg", quality=cfg.jpeg_quality, frame_id=frame_id)
            if T_slam is not None:  # the UAV reports its own SLAM pose with each frame
                bag.write_odometry(topics.uav_odometry, T_slam, s, frame_id="uav_map", child_frame_id="uav_body")
            if progress:
                progress(done, total)

    rig = {
        "ugv": {"camera": _camera_yaml(cam), "T_imu_cam": T_imu_cam.matrix().tolist(), "time_offset_s": 0.0},
        "uav": {"camera": _camera_yaml(cam), "T_body_cam": T_body_cam_uav.matrix().tolist()},
        "topics": asdict(AirgroundTopics()),
    }
    atomic_write_text(
        out / "rig.yaml",
        "# sparsepipe air-ground rig (poses T_a_b map b to a; t_imu = t_cam + offset)\n"
        + yaml.safe_dump(rig, sort_keys=False),
    )
    atomic_write_text(out / "gt" / "ugv_imu.tum", _tum_text(ugv_stamps, ugv_imu_true))
    atomic_write_text(out / "gt" / "ugv_cam.tum", _tum_text(ugv_stamps, ugv_cam_true))
    atomic_write_text(out / "gt" / "uav_cam.tum", _tum_text(uav_stamps, uav_cam_true))
    atomic_write_json(out / "gt" / "T_ugvworld_uavworld.json", {"T_ugvworld_uavworld": T_true.matrix().tolist()})
    atomic_write_json(
        out / "sim_meta.json",
        {
            "generator": "sparsepipe sim airground",
            "seed": seed,
            "config": asdict(cfg),
            "lio_messages": len(lio_stamps),
            "ugv_images": len(ugv_stamps),
            "uav_images": len(uav_stamps),
        },
    )
    log.info(
        "airground: %d UGV and %d UAV images, %d LIO poses -> %s",
        len(ugv_stamps),
        len(uav_stamps),
        len(lio_stamps),
        out,
    )
    return AirgroundResult(
        out,
        T_true,
        ugv_stamps,
        uav_stamps,
        lio_stamps,
        {"bag": str(out / "recording.mcap"), "rig": str(out / "rig.yaml")},
    )
