"""The ``airground`` scenario: a UGV and a UAV around an urban block, recorded as a ROS 2 MCAP bag.

World (z up, ground at z = 0): a block of buildings side by side (boxes with photo-mosaic facades and roofs)
on a textured ground, small props on the pavement, kiosks and trees further out. The UGV drives
counter-clockwise around the block on a rounded rectangle (unicycle: constant speed, smooth 90 degree turns)
``loops`` times (> 1: it revisits the start); its IMU is 0.9 m above the ground and its camera sits on a lever
arm ``T_imu_cam`` (0.3 m ahead, 0.6 m up: 1.5 m above the ground) looking left-forward and slightly up, at the
facades. Its LIO runs at 10 Hz, stamped at scan end, in its own odometry frame (the IMU at the start), with
random-walk drift; camera frames are stamped with a constant phase offset to the LIO stamps. The UAV circles
the block higher up (level body, camera pitched down towards the block), trailing the UGV, and turns to look
away from the block for its last seconds (views the UGV never saw: negatives for loop closure). Its VIO
(10 Hz, small drift) reports poses in its own SLAM frame, related to the UGV's by a known
``T_ugvworld_uavworld``; its camera frames are a subset of the VIO stamps.

The *UGV world* is the LIO's odometry frame (``odom``); all ground truth is written in it.

Written under ``out``:

- ``recording.mcap``: ``/ugv/lio/odometry`` (nav_msgs/Odometry, odom -> imu), ``/ugv/camera/image_raw`` and
  ``/ugv/camera/camera_info``, ``/uav/camera/image_raw`` and ``/uav/camera/camera_info``, ``/uav/odometry``
  (uav_map -> uav_body), all in time order; images JPEG-compressed by default (``image_format``).
- ``rig.yaml``: both cameras, ``T_imu_cam``, the UGV camera's ``time_offset_s``, the UAV's ``T_body_cam``,
  the topics.
- ``gt/ugv_imu.tum``, ``gt/ugv_cam.tum`` (at the UGV image stamps), ``gt/uav_cam.tum`` (at the UAV image
  stamps), all in the UGV world; ``gt/T_ugvworld_uavworld.json``; ``gt/uav_overlap.json`` (per UAV frame: the
  fraction of its visible surface that some UGV frame sees, and those UGV frames: see :func:`covisibility`).
- ``sim_meta.json``: generator, seed, config, counts, the buildings and the timings.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from perception.camera import PinholeCamera
from perception.datasets.rig import Rig, save_rig
from perception.datasets.ros import BagWriter
from perception.errors import InputError
from perception.fileio import atomic_write_json, atomic_write_text
from perception.geometry import SE3, so3_exp
from perception.sim.odometry import OdometryDrift, simulate_odometry
from perception.sim.primitives import box_mesh, cylinder_mesh, ground_plane
from perception.sim.render import render_camera
from perception.sim.textures import mosaic_texture, random_texture
from perception.sim.trajectories import SplineTrajectory, unicycle_trajectory, uniform_stamps
from perception.sim.world import World

log = logging.getLogger(__name__)

_NS = 1_000_000_000
SKY = (170, 195, 225)
"""sRGB colour of rays that hit nothing."""


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
    # -- the block
    buildings: tuple[tuple[float, float], ...] = ((4.5, 8.0), (3.5, 6.0), (4.0, 9.5))
    """(width along x, height) of each building, side by side along x (m)."""
    block_depth: float = 8.0
    """Depth of the block along y (m)."""
    facade_tile_m: float = 2.0
    """Size of one photograph of the facade mosaics (m); smaller = finer texture."""
    num_props: int = 6
    """Small textured boxes on the pavement between the UGV's path and the facades."""
    # -- UGV
    ugv_offset: float = 4.5
    """Distance of the UGV's path from the facades (m); also the radius of its turns."""
    ugv_speed: float = 1.25
    """UGV speed (m/s)."""
    loops: float = 1.3
    """Laps of the UGV around the block (> 1 gives revisits for loop closure)."""
    imu_height: float = 0.9
    """Height of the UGV's IMU (its LIO body frame) above the ground (m)."""
    lever_arm: tuple[float, float, float] = (0.3, 0.0, 0.6)
    """Camera position in the IMU frame (x forward, y left, z up), metres."""
    ugv_camera_yaw_deg: float = 75.0
    """UGV camera heading, degrees left of forward (90: straight left)."""
    ugv_camera_pitch_deg: float = 8.0
    """UGV camera tilt upwards (degrees)."""
    ugv_camera_hz: float = 2.0
    """UGV camera rate; a divisor of lio_hz keeps the camera-LIO phase constant. Rendering costs ~0.3-0.4 s
    per 512x384 frame on one core: a real camera's 10 Hz is 5x slower to simulate than the default."""
    camera_phase_ms: float = 25.0
    """Phase offset of the UGV camera stamps to the LIO stamps."""
    camera_time_offset_ms: float = 0.0
    """Clock offset of the UGV camera: an image stamped t was exposed at t + offset (rig time_offset_s)."""
    lio_hz: float = 10.0
    """LIO rate (one pose per LiDAR sweep, stamped at the sweep's end)."""
    lio_drift_rot: float = 3e-4
    """LIO random-walk drift per scan and axis: rotation (rad)."""
    lio_drift_trans: float = 5e-3
    """LIO random-walk drift per scan and axis: translation (m)."""
    # -- UAV
    uav_radius: float = 14.0
    """Radius of the UAV's circle around the block centre (m)."""
    uav_altitude: float = 11.0
    """UAV height above the ground (m)."""
    uav_camera_pitch_deg: float = 40.0
    """UAV camera tilt downwards (degrees); the body stays level."""
    uav_lag_deg: float = 40.0
    """How far (degrees around the block) the UAV trails the UGV."""
    uav_outward_s: float = 8.0
    """For its last seconds the UAV turns to look away from the block (0: never)."""
    uav_camera_hz: float = 1.0
    """Rate of the recorded UAV images (its keyframe-rate stream; its VIO runs at uav_odometry_hz)."""
    uav_odometry_hz: float = 10.0
    """Rate of the UAV's VIO poses (/uav/odometry)."""
    uav_drift_rot: float = 1e-4
    """UAV VIO random-walk drift per step and axis: rotation (rad)."""
    uav_drift_trans: float = 2e-3
    """UAV VIO random-walk drift per step and axis: translation (m)."""
    uav_yaw_deg: float = 69.0
    """Yaw of T_ugvworld_uavworld."""
    uav_translation: tuple[float, float, float] = (4.0, -3.0, 0.5)
    """Translation of T_ugvworld_uavworld (m)."""
    # -- cameras and images
    width: int = 512
    height: int = 384
    ugv_focal: float = 360.0
    """UGV camera focal length (px; principal point at the image centre): 70 degrees wide at 512 px."""
    uav_focal: float = 520.0
    """UAV camera focal length (px): 52 degrees wide at 512 px."""
    supersample: int = 1
    """Colour samples per pixel along each axis (1: aliased edges, fastest)."""
    image_noise_std: float = 1.0
    """Gaussian pixel noise (8-bit digital numbers)."""
    image_format: str = "jpeg"
    """'jpeg' or 'png' (sensor_msgs/CompressedImage) or 'raw' (sensor_msgs/Image)."""
    jpeg_quality: int = 90
    start_time_s: float = 1_700_000_000.0
    """Stamp of the first LIO sweep's start (seconds since the epoch)."""

    @classmethod
    def tiny(cls) -> AirgroundConfig:
        """A quick recording for tests (a third of a lap, small images, low rates): a few seconds."""
        return cls(
            loops=0.3,
            ugv_camera_hz=1.0,
            uav_camera_hz=1.0,
            uav_outward_s=4.0,
            width=320,
            height=240,
            ugv_focal=225.0,
            uav_focal=325.0,
        )

    @property
    def block_size(self) -> tuple[float, float]:
        return float(sum(w for w, _ in self.buildings)), float(self.block_depth)

    @property
    def loop_length(self) -> float:
        """Length of one lap of the UGV's path (m)."""
        bx, by = self.block_size
        return 2 * (bx + by) + 2 * math.pi * self.ugv_offset

    def validate(self) -> None:
        if not self.buildings or any(len(b) != 2 or min(b) <= 0 for b in self.buildings):
            raise InputError("airground: buildings must be (width, height) pairs > 0")
        positive = (
            "block_depth",
            "facade_tile_m",
            "ugv_offset",
            "ugv_speed",
            "loops",
            "imu_height",
            "ugv_camera_hz",
            "lio_hz",
            "uav_radius",
            "uav_altitude",
            "uav_camera_hz",
            "uav_odometry_hz",
            "ugv_focal",
            "uav_focal",
        )
        for name in positive:
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise InputError(f"airground: {name} must be > 0, got {v}")
        for name in (
            "lio_drift_rot",
            "lio_drift_trans",
            "uav_drift_rot",
            "uav_drift_trans",
            "image_noise_std",
            "uav_outward_s",
            "num_props",
        ):
            if not getattr(self, name) >= 0:
                raise InputError(f"airground: {name} must be >= 0, got {getattr(self, name)}")
        if self.ugv_offset < 2.5:
            raise InputError("airground: ugv_offset must be >= 2.5 m (the props stand on the pavement)")
        bx, by = self.block_size
        if self.uav_radius <= 0.5 * math.hypot(bx, by) + 1.0:
            raise InputError("airground: uav_radius must clear the block's corners by more than 1 m")
        if self.uav_altitude <= max(h for _, h in self.buildings) + 1.0:
            raise InputError("airground: uav_altitude must be more than 1 m above the tallest building")
        if not 0 <= self.camera_phase_ms < 1000.0 / self.lio_hz:
            raise InputError(
                f"airground: camera_phase_ms must lie in [0, {1000.0 / self.lio_hz}) (one LIO period)"
            )
        if not 0 < self.uav_camera_pitch_deg < 85 or abs(self.ugv_camera_pitch_deg) >= 85:
            raise InputError("airground: camera pitches must lie within (-85, 85) degrees (UAV: > 0, down)")
        if self.image_format not in ("jpeg", "png", "raw"):
            raise InputError(
                f"airground: image_format must be 'jpeg', 'png' or 'raw', got {self.image_format!r}"
            )
        if not (8 <= self.width <= 4096 and 8 <= self.height <= 4096):
            raise InputError(f"airground: image size {self.width}x{self.height} is out of range")
        if self.uav_outward_s >= self.duration_s:
            raise InputError("airground: uav_outward_s must be shorter than the UGV's drive")

    @property
    def duration_s(self) -> float:
        """Duration of the UGV's drive (s)."""
        return self.loops * self.loop_length / self.ugv_speed


@dataclass
class AirgroundResult:
    root: Path
    T_ugvworld_uavworld: SE3
    ugv_camera_stamps: np.ndarray
    uav_camera_stamps: np.ndarray
    lio_stamps: np.ndarray
    uav_overlap: np.ndarray
    """Per UAV frame: fraction of its visible surface seen by some UGV frame."""
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- world
def _face_texture(rng: np.random.Generator, w: float, h: float, tile_m: float) -> np.ndarray:
    """A mosaic of distinct photographs about ``tile_m`` metres each, for a w x h face."""
    grid = (max(1, round(h / tile_m)), max(1, round(w / tile_m)))
    return mosaic_texture(rng, grid, 256)


def building_boxes(cfg: AirgroundConfig) -> list[dict]:
    """The buildings as ``{"name", "center", "size"}`` (world frame, ground at z = 0), west to east."""
    bx, by = cfg.block_size
    x = -0.5 * bx
    out = []
    for k, (w, h) in enumerate(cfg.buildings):
        out.append({"name": f"building{k}", "center": [x + 0.5 * w, 0.0, 0.5 * h], "size": [w, by, h]})
        x += w
    return out


def build_block_world(cfg: AirgroundConfig, rng: np.random.Generator) -> World:
    """The block, its pavement props, kiosks and trees further out, and the ground."""
    world = World()
    boxes = building_boxes(cfg)
    heights = [b["size"][2] for b in boxes]
    for k, b in enumerate(boxes):
        w, d, h = b["size"]
        faces = ["+y", "-y", "+z"]
        # the side walls: where they are outside or rise above the neighbour
        if k == 0 or heights[k - 1] < h:
            faces.append("-x")
        if k == len(boxes) - 1 or heights[k + 1] < h:
            faces.append("+x")
        for face in faces:
            fw, fh = {"x": (d, h), "y": (w, h), "z": (w, d)}[face[1]]
            world.add(
                box_mesh(
                    b["center"],
                    b["size"],
                    texture=_face_texture(rng, fw, fh, cfg.facade_tile_m),
                    tiles=(1, 1),
                    faces=(face,),
                    semantic_id=1,
                    name=f"{b['name']}{face}",
                )
            )
    bx, by = cfg.block_size
    # props on the pavement, 1.0-1.6 m in front of a facade
    for k in range(int(cfg.num_props)):
        side = k % 4
        u = rng.uniform(-0.35, 0.35)
        gap = rng.uniform(1.0, 1.6)
        size = rng.uniform([0.6, 0.6, 0.6], [1.2, 1.2, 1.3])
        if side in (0, 2):
            c = [u * bx, (1 if side == 0 else -1) * (0.5 * by + gap + 0.5 * size[1]), 0.5 * size[2]]
        else:
            c = [(1 if side == 1 else -1) * (0.5 * bx + gap + 0.5 * size[0]), u * by, 0.5 * size[2]]
        world.add(
            box_mesh(
                c,
                size,
                texture=random_texture(rng, 256),
                tiles=(1, 1),
                faces=("+x", "-x", "+y", "-y", "+z"),
                semantic_id=39,
                name=f"prop{k}",
            )
        )
    # kiosks and trees outside the UGV's path (seen by the UAV only)
    r_out = 0.5 * math.hypot(bx, by) + cfg.ugv_offset + 5.0
    for k in range(6):
        a = 2 * math.pi * k / 6 + 0.4
        world.add(
            box_mesh(
                [r_out * math.cos(a), r_out * math.sin(a), 1.2],
                [2.4, 2.0, 2.4],
                texture=mosaic_texture(rng, (1, 2), 256),
                tiles=(1, 1),
                faces=("+x", "-x", "+y", "-y", "+z"),
                semantic_id=39,
                name=f"kiosk{k}",
            )
        )
        b = a + math.pi / 6
        world.add(
            cylinder_mesh(
                [(r_out + 3) * math.cos(b), (r_out + 3) * math.sin(b), 2.5],
                0.8,
                5.0,
                texture=random_texture(rng, 256),
                tiles=(2, 1),
                semantic_id=40,
                segments=12,
                name=f"tree{k}",
            )
        )
    # ground: big enough for the UAV's views when it looks outwards
    extent = 2 * (cfg.uav_radius + 3.0 * cfg.uav_altitude)
    n = int(np.clip(round(extent / 12.0), 4, 12))
    world.add(
        ground_plane(
            (extent, extent),
            texture=mosaic_texture(rng, (n, n), 256),
            tiles=(1, 1),
            semantic_id=2,
            name="ground",
        )
    )
    return world


# ---------------------------------------------------------------------------------------------------- motion
def body_camera_rotation(yaw_deg: float, pitch_up_deg: float) -> np.ndarray:
    """``R_body_cam`` of a camera looking ``yaw_deg`` left of the body's x axis, tilted ``pitch_up_deg`` up
    (body: x forward, y left, z up; camera: OpenCV, image x to the right of the viewing direction)."""
    psi, a = math.radians(yaw_deg), math.radians(pitch_up_deg)
    z = np.array([math.cos(psi) * math.cos(a), math.sin(psi) * math.cos(a), math.sin(a)])
    x = np.array([math.sin(psi), -math.cos(psi), 0.0])
    return np.column_stack([x, np.cross(z, x), z])


def _smootherstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (6 * x - 15) + 10)


def ugv_trajectory(
    cfg: AirgroundConfig, start_ns: int, duration_s: float, ramp_s: float = 1.0
) -> SplineTrajectory:
    """The UGV's drive: counter-clockwise around the block at ``ugv_offset`` from the facades, starting in the
    middle of the south side heading east (+x). Each corner is a 90 degree turn at ``speed / offset`` rad/s
    whose rate ramps in and out over ``ramp_s`` (the four corners are identical, so every lap closes)."""
    bx, by = cfg.block_size
    v, d = cfg.ugv_speed, cfg.ugv_offset
    w = v / d
    tc = 0.5 * math.pi / w  # nominal corner duration
    sides = [bx, by, bx, by]
    n_corners = int(math.ceil(duration_s * v / cfg.loop_length * 4)) + 2
    centres, t = [], -0.5 * bx / v  # the south side starts before t = 0
    for j in range(n_corners):
        t += sides[j % 4] / v
        centres.append(t + 0.5 * tc)
        t += tc
    c = np.asarray(centres)[:, None]

    def yaw_rate(s: np.ndarray) -> np.ndarray:
        rise = _smootherstep((s[None] - (c - 0.5 * tc)) / ramp_s + 0.5)
        fall = _smootherstep((s[None] - (c + 0.5 * tc)) / ramp_s + 0.5)
        return w * (rise - fall).sum(axis=0)

    return unicycle_trajectory(
        duration_s,
        v,
        yaw_rate,
        start_ns=start_ns,
        start_position=(0.0, -(0.5 * by + d), cfg.imu_height),
        start_yaw=0.0,
    )


def uav_trajectory(
    cfg: AirgroundConfig, start_ns: int, duration_s: float, knot_s: float = 0.2
) -> SplineTrajectory:
    """The UAV: a level circle of ``uav_radius`` at ``uav_altitude`` around the block, as fast as the UGV
    goes around on average and ``uav_lag_deg`` behind it, facing the block centre; over its last
    ``uav_outward_s`` it turns (smoothly, over 3 s) to face away from the block."""
    n = max(int(math.ceil(duration_s / knot_s)), 6)
    tau = np.linspace(0.0, duration_s, n + 1)
    omega = 2 * math.pi * cfg.ugv_speed / cfg.loop_length
    th = -0.5 * math.pi - math.radians(cfg.uav_lag_deg) + omega * tau
    pos = np.column_stack(
        [cfg.uav_radius * np.cos(th), cfg.uav_radius * np.sin(th), np.full(len(tau), cfg.uav_altitude)]
    )
    turn = (
        _smootherstep((tau - (duration_s - cfg.uav_outward_s)) / 3.0) if cfg.uav_outward_s > 0 else 0.0 * tau
    )
    ypr = np.zeros((len(tau), 3))
    ypr[:, 0] = th + math.pi * (1.0 - turn)
    return SplineTrajectory(((tau * _NS).round().astype(np.int64) + start_ns), pos, ypr)


# ---------------------------------------------------------------------------------------------------- output
def _tum_text(stamps_ns: np.ndarray, poses: SE3) -> str:
    q, t = poses.as_quat_t()
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for s, tt, qq in zip(np.asarray(stamps_ns, dtype=np.int64), t, q, strict=True):
        s = int(s)
        lines.append(f"{s // _NS}.{s % _NS:09d} " + " ".join(repr(float(v)) for v in (*tt, *qq)))
    return "\n".join(lines) + "\n"


def covisibility(
    world: World,
    T_sim_ugvworld: SE3,
    uav_cam: PinholeCamera,
    uav_poses: SE3,
    ugv_cam: PinholeCamera,
    ugv_views: list[tuple[np.ndarray, SE3]],
    *,
    stride: int = 8,
    max_scale: float = 3.0,
    max_incidence_deg: float = 72.0,
    min_share: float = 0.05,
) -> tuple[np.ndarray, list[list[int]]]:
    """Which UGV frames see what each UAV frame sees.

    The UAV's pixels on a grid (every ``stride`` px) are ray-cast into the world; a surface point counts as
    seen by a UGV frame when it projects into its image, agrees with its depth map (``ugv_views``: depth
    decimated by an integer factor, ``T_ugvworld_cam``), faces it within ``max_incidence_deg`` and is imaged
    at a pixel footprint within ``max_scale`` of the UAV's (grazing or far-away views cannot be matched).
    Returns per UAV frame the fraction of its surface samples seen by some UGV frame, and the indices of the
    UGV frames that see at least ``min_share`` of them."""
    H, W = uav_cam.height, uav_cam.width
    ys, xs = np.mgrid[stride // 2 : H : stride, stride // 2 : W : stride]
    rays = uav_cam.unproject(np.column_stack([xs.ravel(), ys.ravel()]).astype(float))
    cos_max = math.cos(math.radians(max_incidence_deg))
    overlap = np.zeros(len(uav_poses))
    partners: list[list[int]] = []
    for i in range(len(uav_poses)):
        T_sim_cam = T_sim_ugvworld @ uav_poses[i]
        hits = world.raycast(T_sim_cam.t, rays @ T_sim_cam.R.T)
        n_samples = len(rays)
        pts = T_sim_ugvworld.inverse().act(hits.point[hits.hit])
        normals = hits.normal[hits.hit] @ T_sim_ugvworld.R  # to the UGV world
        z_uav = hits.t[hits.hit]  # rays have z = 1: t is the depth
        seen = np.zeros(len(pts), bool)
        mine = []
        for j, (depth, T_w_g) in enumerate(ugv_views):
            p = T_w_g.inverse().act(pts)
            uv, ok = ugv_cam.project(p)
            view = T_w_g.t - pts
            cos_inc = np.abs(np.einsum("ij,ij->i", view, normals)) / np.linalg.norm(view, axis=1)
            scale = (p[:, 2] / ugv_cam.fx) / (z_uav / uav_cam.fx)  # pixel footprints, UGV / UAV
            ok &= ugv_cam.in_image(uv) & (cos_inc > cos_max) & (scale < max_scale) & (scale > 1.0 / max_scale)
            if not ok.any():
                continue
            k = np.flatnonzero(ok)
            step = ugv_cam.height // depth.shape[0]
            r = np.clip(np.rint(uv[k, 1] / step).astype(int), 0, depth.shape[0] - 1)
            c = np.clip(np.rint(uv[k, 0] / step).astype(int), 0, depth.shape[1] - 1)
            dz = depth[r, c]
            vis = (dz > 0) & (np.abs(dz - p[k, 2]) < 0.03 * p[k, 2] + 0.05)
            seen[k[vis]] = True
            if vis.sum() >= min_share * n_samples:
                mine.append(j)
        overlap[i] = seen.sum() / n_samples
        partners.append(mine)
    return overlap, partners


def make_airground(
    out: Path,
    cfg: AirgroundConfig | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> AirgroundResult:
    """Render the recording, rig and ground truth into ``out`` (see the module docstring)."""
    cfg = cfg or AirgroundConfig()
    cfg.validate()
    t_start = time.perf_counter()
    rng = np.random.default_rng(seed)
    out = Path(out)
    world = build_block_world(cfg, rng)
    W, H = cfg.width, cfg.height
    ugv_cam = PinholeCamera(W, H, cfg.ugv_focal, cfg.ugv_focal, (W - 1) / 2, (H - 1) / 2)
    uav_cam = PinholeCamera(W, H, cfg.uav_focal, cfg.uav_focal, (W - 1) / 2, (H - 1) / 2)
    t0 = int(round(cfg.start_time_s * 1e9))
    duration = cfg.duration_s
    end = t0 + int(duration * 1e9)
    ugv = ugv_trajectory(cfg, t0, duration + 1.0)
    uav = uav_trajectory(cfg, t0, duration + 1.0)
    T_imu_cam = SE3(
        body_camera_rotation(cfg.ugv_camera_yaw_deg, cfg.ugv_camera_pitch_deg),
        np.asarray(cfg.lever_arm, float),
    )
    T_body_cam_uav = SE3(body_camera_rotation(0.0, -cfg.uav_camera_pitch_deg), np.zeros(3))

    # the UGV world := the LIO odometry frame (the UGV's IMU at t0)
    T_ugvworld_sim = ugv.pose(t0).inverse()
    T_true = SE3(
        so3_exp(np.array([0, 0, math.radians(cfg.uav_yaw_deg)])), np.asarray(cfg.uav_translation, float)
    )

    lio_stamps, lio_poses = simulate_odometry(
        ugv,
        cfg.lio_hz,
        OdometryDrift(cfg.lio_drift_rot, cfg.lio_drift_trans),
        rng,
        "scan_end",
        start_ns=t0,
        end_ns=end,
        odom_frame=True,
    )
    lio_period = round(_NS / cfg.lio_hz)
    offset_ns = int(round(cfg.camera_time_offset_ms * 1e6))
    first = t0 + lio_period + int(round(cfg.camera_phase_ms * 1e6))
    ugv_stamps = uniform_stamps(first, int(lio_stamps[-1]) - lio_period, cfg.ugv_camera_hz)
    ugv_imu_true = T_ugvworld_sim @ ugv.pose(ugv_stamps + offset_ns)  # exposed at stamp + offset
    ugv_cam_true = ugv_imu_true @ T_imu_cam

    vio_stamps, vio_sim = simulate_odometry(
        uav,
        cfg.uav_odometry_hz,
        OdometryDrift(cfg.uav_drift_rot, cfg.uav_drift_trans),
        rng,
        "scan_start",
        start_ns=t0,
        end_ns=end,
    )
    vio_slam = T_true.inverse() @ T_ugvworld_sim @ vio_sim  # what the UAV's SLAM reports, in its own frame
    uav_stamps = uniform_stamps(t0 + lio_period, int(vio_stamps[-1]), cfg.uav_camera_hz)
    uav_cam_true = T_ugvworld_sim @ uav.pose(uav_stamps) @ T_body_cam_uav
    t_setup = time.perf_counter() - t_start

    T_sim_ugvworld = T_ugvworld_sim.inverse()
    topics = AirgroundTopics()
    # every message as (stamp, order, kind, index), written in time order
    events = [(int(s), 0, "lio", i) for i, s in enumerate(lio_stamps)]
    events += [(int(s), 1, "vio", i) for i, s in enumerate(vio_stamps)]
    events += [(int(s), 2, "ugv", i) for i, s in enumerate(ugv_stamps)]
    events += [(int(s), 3, "uav", i) for i, s in enumerate(uav_stamps)]
    events.sort()
    n_frames = len(ugv_stamps) + len(uav_stamps)
    seeds = rng.integers(2**62, size=n_frames)
    ugv_views: list[tuple[np.ndarray, SE3]] = []
    t_render, done = 0.0, 0
    out.mkdir(parents=True, exist_ok=True)
    with BagWriter(out / "recording.mcap", format="mcap", overwrite=True) as bag:
        bag.write_camera_info(topics.ugv_camera_info, ugv_cam, t0, frame_id="ugv_camera")
        bag.write_camera_info(topics.uav_camera_info, uav_cam, t0, frame_id="uav_camera")
        for s, _, kind, i in events:
            if kind == "lio":
                bag.write_odometry(
                    topics.ugv_odometry, lio_poses[i], s, frame_id="odom", child_frame_id="imu"
                )
                continue
            if kind == "vio":
                bag.write_odometry(
                    topics.uav_odometry, vio_slam[i], s, frame_id="uav_map", child_frame_id="uav_body"
                )
                continue
            topic, frame_id, cam, T_cam = (
                (topics.ugv_image, "ugv_camera", ugv_cam, ugv_cam_true[i])
                if kind == "ugv"
                else (topics.uav_image, "uav_camera", uav_cam, uav_cam_true[i])
            )
            tr = time.perf_counter()
            frame = render_camera(
                world,
                cam,
                T_sim_ugvworld @ T_cam,
                supersample=cfg.supersample,
                noise_std=cfg.image_noise_std,
                rng=int(seeds[done]),
                background=SKY,
            )
            t_render += time.perf_counter() - tr
            if cfg.image_format == "raw":
                bag.write_image(topic, frame.rgb, s, frame_id=frame_id)
            else:
                bag.write_compressed_image(
                    topic, frame.rgb, s, format=cfg.image_format, quality=cfg.jpeg_quality, frame_id=frame_id
                )
            if kind == "ugv":
                ugv_views.append((frame.depth[::2, ::2].copy(), T_cam))
            done += 1
            if progress:
                progress(done, n_frames)
    t_cov = time.perf_counter()
    overlap, partners = covisibility(world, T_sim_ugvworld, uav_cam, uav_cam_true, ugv_cam, ugv_views)
    t_cov = time.perf_counter() - t_cov

    save_rig(out / "rig.yaml", Rig(ugv_cam, T_imu_cam, offset_ns, uav_cam, T_body_cam_uav, asdict(topics)))
    atomic_write_text(out / "gt" / "ugv_imu.tum", _tum_text(ugv_stamps, ugv_imu_true))
    atomic_write_text(out / "gt" / "ugv_cam.tum", _tum_text(ugv_stamps, ugv_cam_true))
    atomic_write_text(out / "gt" / "uav_cam.tum", _tum_text(uav_stamps, uav_cam_true))
    q, t = T_true.as_quat_t()
    atomic_write_json(
        out / "gt" / "T_ugvworld_uavworld.json",
        {
            "T_ugvworld_uavworld": T_true.matrix().tolist(),
            "translation": t.tolist(),
            "rotation_xyzw": q.tolist(),
            "yaw_deg": cfg.uav_yaw_deg,
        },
    )
    atomic_write_json(
        out / "gt" / "uav_overlap.json",
        {
            "description": "per UAV image: fraction of its visible surface (rays every 8 px) that some UGV "
            "image sees (in view, depth-consistent, incidence < 72 deg, pixel footprint within 3x of the "
            "UAV's), and the UGV image stamps that see >= 5 % of it",
            "uav_stamps_ns": [int(s) for s in uav_stamps],
            "overlap_fraction": [round(float(v), 4) for v in overlap],
            "ugv_stamps_ns": [[int(ugv_stamps[j]) for j in p] for p in partners],
        },
    )
    timings = {
        "setup_s": t_setup,
        "render_s": t_render,
        "render_per_frame_s": t_render / max(n_frames, 1),
        "covisibility_s": t_cov,
        "total_s": time.perf_counter() - t_start,
    }
    atomic_write_json(
        out / "sim_meta.json",
        {
            "generator": "sparsepipe sim airground",
            "seed": seed,
            "config": asdict(cfg),
            "ugv_world": "the LIO odometry frame (UGV IMU at the first stamp); ground at z = -imu_height",
            "T_ugvworld_simworld": T_ugvworld_sim.matrix().tolist(),
            "buildings_simworld": building_boxes(cfg),
            "duration_s": duration,
            "loop_length_m": cfg.loop_length,
            "lio_messages": len(lio_stamps),
            "uav_odometry_messages": len(vio_stamps),
            "ugv_images": len(ugv_stamps),
            "uav_images": len(uav_stamps),
            "uav_images_overlapping": int((overlap > 0.2).sum()),
            "timings": timings,
        },
    )
    timings["total_s"] = time.perf_counter() - t_start
    log.info(
        "airground: %d UGV and %d UAV images (%.2f s/frame), %d LIO poses -> %s in %.1f s",
        len(ugv_stamps),
        len(uav_stamps),
        timings["render_per_frame_s"],
        len(lio_stamps),
        out,
        timings["total_s"],
    )
    return AirgroundResult(
        out,
        T_true,
        ugv_stamps,
        uav_stamps,
        lio_stamps,
        overlap,
        timings,
        {
            "bag": str(out / "recording.mcap"),
            "rig": str(out / "rig.yaml"),
            "gt": str(out / "gt"),
            "meta": str(out / "sim_meta.json"),
        },
    )
