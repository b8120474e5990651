"""The ``room`` scenario: an indoor RGB-D relocalization dataset written in the 7-Scenes layout.

A box-shaped room (z up) whose walls, floor, pictures and furniture carry photographic textures; one wall is
repetitive (tiled bricks) and the ceiling and one piece of furniture are weakly textured, so plain feature matching
is not trivially perfect. Training sequences walk a loop near the middle of the room looking outwards at the walls.
Test sequences see the same places from other viewpoints -- other heights, yaw offsets of about +-30 degrees and a
larger distance to the walls -- under different exposure, white balance and light direction.

Everything written is exact ground truth: colour, depth registered to colour (unlike the real 7-Scenes, whose depth
camera is neither calibrated nor registered to colour), camera-to-world poses, and ``sim_meta.json`` describing the
conditions of each sequence and the meshes of the world.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from perception.camera import PinholeCamera
from perception.datasets.sevenscenes import write_frame, write_splits
from perception.errors import InputError
from perception.fileio import atomic_write_json
from perception.geometry import SE3
from perception.sim.poses import yaw_pitch_camera
from perception.sim.primitives import box_mesh, quad_mesh
from perception.sim.render import Light, render_camera
from perception.sim.textures import mosaic_texture, random_texture, repetitive_texture, weak_texture
from perception.sim.world import World

log = logging.getLogger(__name__)

# NYU40 class ids (ScanNet's label set) for the room's surfaces
NYU40 = {"wall": 1, "floor": 2, "cabinet": 3, "chair": 5, "sofa": 6, "table": 7, "bookshelf": 10, "picture": 11,
         "desk": 14, "ceiling": 22, "otherfurniture": 39}  # fmt: skip


@dataclass
class RoomConfig:
    scene: str = "room"
    """Scene folder name under the output root."""
    size: tuple[float, float, float] = (7.0, 6.0, 2.8)
    """Room extent x, y, z (metres)."""
    num_furniture: int = 8
    """Textured boxes standing along the walls."""
    num_pictures: int = 8
    """Photographs hanging on the walls."""
    train_sequences: int = 2
    """Training sequences (seq-01 ...), loops at slightly different heights."""
    test_sequences: int = 2
    """Test sequences (after the training ones), seen from other viewpoints and lighting."""
    frames_per_sequence: int = 12
    """Frames per sequence, spread over one loop."""
    width: int = 640
    height: int = 480
    focal: float = 525.0
    """Colour focal length (7-Scenes' default 525; principal point at the image centre, 320, 240 for 640x480)."""
    train_height: float = 1.45
    """Camera height of the training loops (metres)."""
    train_radius: float = 1.2
    """Radius of the training loops around the room centre (closer to the walls)."""
    train_height_offsets: tuple[float, ...] | None = None
    """Height change of each training sequence relative to ``train_height`` (cycled; default 0.1 m per sequence)."""
    train_yaw_offsets_deg: tuple[float, ...] = (0.0,)
    """Yaw offset of each training sequence relative to the outward direction (cycled); several offsets make each
    wall point seen from several directions, as a hand-held training walk does."""
    test_frames_per_sequence: int | None = None
    """Frames per test sequence (default: ``frames_per_sequence``)."""
    test_radius: float = 0.35
    """Radius of the test loops: the cameras stand further from the walls they look at."""
    test_height_offsets: tuple[float, ...] = (0.4, -0.4)
    """Height change of each test sequence relative to training (cycled)."""
    test_yaw_offsets_deg: tuple[float, ...] = (30.0, -30.0)
    """Yaw offset of each test sequence relative to the outward direction (cycled)."""
    test_exposures: tuple[float, ...] = (0.7, 1.35)
    """Exposure gain of each test sequence (training: 1.0) (cycled)."""
    pitch_deg: float = 8.0
    """Downward tilt of the cameras."""
    specular: float = 0.0
    """Glossiness: white Blinn-Phong highlight of each sequence's light (0 = Lambertian surfaces)."""
    headlight_specular: float = 0.0
    """Highlight of a light on the camera (a robot's lamp): it follows the camera, so how a surface point looks
    depends on the direction it is seen from (view-dependent appearance, the effect FaVoR's rendering models)."""
    shininess: float = 30.0
    """Blinn-Phong exponent of both highlights (larger = smaller, sharper highlights)."""
    supersample: int = 2
    """Sub-rays per pixel along each axis (anti-aliasing)."""
    noise_std: float = 1.0
    """Sensor noise (8-bit digital numbers)."""
    texture_size: int = 512

    def validate(self) -> None:
        if min(self.size) <= 0 or self.size[2] < 2.0:
            raise InputError(f"room: size must be positive with a height >= 2 m, got {self.size}")
        if self.test_frames_per_sequence is not None and self.test_frames_per_sequence < 1:
            raise InputError(f"room: test_frames_per_sequence must be >= 1, got {self.test_frames_per_sequence}")
        for name in ("train_sequences", "frames_per_sequence", "width", "height", "supersample"):
            if getattr(self, name) < 1:
                raise InputError(f"room: {name} must be >= 1, got {getattr(self, name)}")
        if self.test_sequences < 1:
            raise InputError(f"room: test_sequences must be >= 1 (the 7-Scenes layout has a test split), got "
                             f"{self.test_sequences}")  # fmt: skip
        if self.num_furniture < 0 or self.num_pictures < 0:
            raise InputError("room: counts must be >= 0")
        if self.train_height_offsets is not None and len(self.train_height_offsets) == 0:
            raise InputError("room: train_height_offsets needs at least one value (or leave it unset)")
        for name in ("specular", "headlight_specular"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise InputError(f"room: {name} must be a finite number >= 0, got {getattr(self, name)}")
        if not (np.isfinite(self.shininess) and self.shininess > 0):
            raise InputError(f"room: shininess must be a finite number > 0, got {self.shininess}")
        for dh in self.train_height_offsets or ():
            if not (np.isfinite(dh) and 0.3 <= self.train_height + dh <= self.size[2] - 0.3):
                raise InputError(f"room: train_height_offsets {dh} puts a training loop at {self.train_height + dh} m; "
                                 f"keep it 0.3 m from floor and ceiling (0.3 .. {self.size[2] - 0.3:.1f} m)")
        half = 0.5 * min(self.size[0], self.size[1])
        if not 0 <= self.test_radius < half - 0.8 or not 0 < self.train_radius < half - 0.8:
            raise InputError(f"room: loop radii must leave >= 0.8 m to the walls (half width {half} m)")


@dataclass
class SequenceSpec:
    seq: int
    split: str
    height: float
    radius: float
    yaw_offset_deg: float
    exposure: float
    white_balance: tuple[float, float, float]
    light_direction: tuple[float, float, float]
    phase: float
    """Start angle of the loop (rad)."""
    frames: int = 12


@dataclass
class RoomResult:
    root: Path
    scene: str
    camera: PinholeCamera
    sequences: list[SequenceSpec] = field(default_factory=list)
    poses: dict[int, SE3] = field(default_factory=dict)

    @property
    def train_seqs(self) -> list[int]:
        return [s.seq for s in self.sequences if s.split == "train"]

    @property
    def test_seqs(self) -> list[int]:
        return [s.seq for s in self.sequences if s.split == "test"]


def build_room_world(cfg: RoomConfig, rng: np.random.Generator) -> World:
    """The room: walls, floor, ceiling, pictures and furniture with photographic textures."""
    sx, sy, sz = cfg.size
    world = World()
    ts = cfg.texture_size
    centre = np.array([0.0, 0.0, sz / 2])
    # Big surfaces are covered once by a mosaic of distinct photographs (tiling one photograph would repeat
    # content and make matches ambiguous everywhere); one wall is deliberately repetitive and the ceiling weak.
    tile = 384
    cols_x, cols_y = max(1, round(sy / sz * 2)), max(1, round(sx / sz * 2))
    wall_tex = {
        "+x": (mosaic_texture(rng, (2, cols_x), tile), (1, 1)),
        "-x": (mosaic_texture(rng, (2, cols_x), tile), (1, 1)),
        "+y": (repetitive_texture(rng, ts, period=96), None),
        "-y": (mosaic_texture(rng, (2, cols_y), tile), (1, 1)),
    }
    for face, (tex, tiles) in wall_tex.items():
        world.add(box_mesh(centre, cfg.size, texture=tex, tiles=tiles, semantic_id=NYU40["wall"], inward=True,
                           faces=(face,), tile_size=1.6, name=f"wall{face}"))  # fmt: skip
    floor = mosaic_texture(rng, (max(1, round(sy / 1.75)), max(1, round(sx / 1.75))), tile)
    world.add(box_mesh(centre, cfg.size, texture=floor, tiles=(1, 1), semantic_id=NYU40["floor"], inward=True,
                       faces=("-z",), name="floor", reflectivity=0.3))  # fmt: skip
    world.add(box_mesh(centre, cfg.size, texture=weak_texture(rng, ts), semantic_id=NYU40["ceiling"], inward=True,
                       faces=("+z",), tile_size=2.0, name="ceiling"))  # fmt: skip

    # pictures: quads 2 cm in front of the walls, at eye height
    walls = [("+x", np.array([sx / 2, 0, 0]), sy), ("-x", np.array([-sx / 2, 0, 0]), sy),
             ("+y", np.array([0, sy / 2, 0]), sx), ("-y", np.array([0, -sy / 2, 0]), sx)]  # fmt: skip
    for k in range(cfg.num_pictures):
        face, wall_c, length = walls[k % 4]
        normal_in = -wall_c / np.linalg.norm(wall_c)  # points into the room
        along = np.cross([0.0, 0.0, 1.0], normal_in)  # right, as seen from inside looking at the wall
        w, h = rng.uniform(0.6, 1.2), rng.uniform(0.45, 0.9)
        slot = (k // 4 + 0.5) / max(1, (cfg.num_pictures + 3) // 4) - 0.5
        c = wall_c + normal_in * 0.02 + along * slot * (length - 1.6) + np.array([0, 0, rng.uniform(1.3, 1.9)])
        # corners: top-left, top-right, bottom-right, bottom-left as seen from the front (inside)
        up = np.array([0.0, 0.0, 1.0])
        corners = np.stack([c - along * w / 2 + up * h / 2, c + along * w / 2 + up * h / 2,
                            c + along * w / 2 - up * h / 2, c - along * w / 2 - up * h / 2])  # fmt: skip
        world.add(quad_mesh(corners, random_texture(rng, (int(ts * h / w), ts)), tiles=(1, 1),
                            semantic_id=NYU40["picture"], name=f"picture{k}"))  # fmt: skip

    # furniture along the walls, leaving the middle free for the cameras
    kinds = ["cabinet", "table", "bookshelf", "sofa", "desk", "chair", "otherfurniture"]
    for k in range(cfg.num_furniture):
        face, wall_c, length = walls[(k + 2) % 4]
        normal_in = -wall_c / np.linalg.norm(wall_c)
        along = np.cross([0.0, 0.0, 1.0], normal_in)
        size = np.array([rng.uniform(0.5, 1.3), rng.uniform(0.4, 0.8), rng.uniform(0.4, 1.6)])
        depth_dir = 0.5 * size[1] + 0.05
        pos = wall_c + normal_in * depth_dir + along * rng.uniform(-0.4, 0.4) * (length - 1.5)
        pos[2] = size[2] / 2
        yaw = np.arctan2(normal_in[1], normal_in[0]) + np.pi / 2 + rng.normal(0, 0.1)
        R = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
        kind = kinds[k % len(kinds)]
        tex = weak_texture(rng, ts // 2) if k == 1 else random_texture(rng, ts // 2)
        world.add(box_mesh(pos, size, R, texture=tex, semantic_id=NYU40[kind], tile_size=0.8, rng=rng,
                           name=f"{kind}{k}"))  # fmt: skip
    return world


def sequence_specs(cfg: RoomConfig, rng: np.random.Generator) -> list[SequenceSpec]:
    specs = []
    dh = [0.1 * i for i in range(cfg.train_sequences)] if cfg.train_height_offsets is None else cfg.train_height_offsets
    for i in range(cfg.train_sequences):
        specs.append(SequenceSpec(
            seq=i + 1, split="train", height=cfg.train_height + dh[i % len(dh)], radius=cfg.train_radius,
            yaw_offset_deg=cfg.train_yaw_offsets_deg[i % len(cfg.train_yaw_offsets_deg)],
            frames=cfg.frames_per_sequence,
            exposure=1.0, white_balance=(1.0, 1.0, 1.0), light_direction=(0.35, -0.25, 1.0),
            phase=2 * np.pi * i / (cfg.train_sequences * cfg.frames_per_sequence)))  # fmt: skip
    for j in range(cfg.test_sequences):
        wb = tuple(float(v) for v in np.clip(1 + rng.normal(0, 0.08, 3), 0.8, 1.2))
        specs.append(SequenceSpec(
            seq=cfg.train_sequences + j + 1, split="test",
            height=cfg.train_height + cfg.test_height_offsets[j % len(cfg.test_height_offsets)],
            radius=cfg.test_radius,
            yaw_offset_deg=cfg.test_yaw_offsets_deg[j % len(cfg.test_yaw_offsets_deg)],
            exposure=cfg.test_exposures[j % len(cfg.test_exposures)], white_balance=wb,
            light_direction=(-0.4 + 0.3 * j, 0.3, 1.0), phase=float(rng.uniform(0, 2 * np.pi)),
            frames=cfg.test_frames_per_sequence or cfg.frames_per_sequence))  # fmt: skip
    return specs


def sequence_poses(cfg: RoomConfig, spec: SequenceSpec) -> SE3:
    """Camera-to-world poses of one loop: ``spec.frames`` frames spread evenly over the circle."""
    n = spec.frames
    return loop_poses(cfg, spec, spec.phase + 2 * np.pi * np.arange(n) / n)


def loop_poses(cfg: RoomConfig, spec: SequenceSpec, a: np.ndarray) -> SE3:
    """Cameras at angles ``a`` (rad) on the loop's circle, looking outwards (plus the yaw offset)."""
    a = np.asarray(a, dtype=np.float64)
    n = len(a)
    eye = np.stack([spec.radius * np.cos(a), spec.radius * np.sin(a), np.full(n, spec.height)], axis=-1)
    yaw = a + np.deg2rad(spec.yaw_offset_deg)
    return yaw_pitch_camera(eye, yaw, np.deg2rad(cfg.pitch_deg))


def make_room(
    out: Path,
    cfg: RoomConfig | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> RoomResult:
    """Build the room, render every sequence and write ``out/<scene>`` in the 7-Scenes layout."""
    cfg = cfg or RoomConfig()
    cfg.validate()
    rng = np.random.default_rng(seed)
    world = build_room_world(cfg, rng)
    specs = sequence_specs(cfg, rng)
    camera = PinholeCamera(cfg.width, cfg.height, cfg.focal, cfg.focal, cfg.width / 2, cfg.height / 2)
    result = RoomResult(Path(out), cfg.scene, camera, specs)
    total, done = sum(s.frames for s in specs), 0
    for spec in specs:
        poses = sequence_poses(cfg, spec)
        result.poses[spec.seq] = poses
        light = Light(direction=spec.light_direction, specular=cfg.specular, headlight_specular=cfg.headlight_specular,
                      shininess=cfg.shininess)  # fmt: skip
        for i in range(len(poses)):
            frame = render_camera(
                world, camera, poses[i], light=light, exposure=spec.exposure, white_balance=spec.white_balance,
                supersample=cfg.supersample, noise_std=cfg.noise_std, rng=rng.integers(2**63),
            )  # fmt: skip
            depth = np.where(frame.valid, frame.depth, np.nan)
            write_frame(out, cfg.scene, spec.seq, i, frame.rgb, depth, poses[i])
            done += 1
            if progress is not None:
                progress(done, total)
    write_splits(out, cfg.scene, result.train_seqs, result.test_seqs)
    meta = {
        "generator": "sparsepipe sim room",
        "seed": seed,
        "config": asdict(cfg),
        "camera": {
            "model": "PINHOLE",
            "width": cfg.width,
            "height": cfg.height,
            "fx": cfg.focal,
            "fy": cfg.focal,
            "cx": camera.cx,
            "cy": camera.cy,
            "pixel_convention": "opencv-centre",
        },  # fmt: skip
        "depth": "registered to colour, uint16 mm, 65535 = no surface",
        "sequences": [asdict(s) for s in specs],
        "meshes": [
            {"instance_id": i + 1, "name": m.name, "semantic_id": int(m.semantic_id)}
            for i, m in enumerate(world.meshes)
        ],  # fmt: skip
    }
    atomic_write_json(Path(out) / cfg.scene / "sim_meta.json", meta)
    log.info("room: wrote %d frames (%d train / %d test sequences) to %s", total, len(result.train_seqs),
             len(result.test_seqs), Path(out) / cfg.scene)  # fmt: skip
    return result
