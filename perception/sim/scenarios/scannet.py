"""The ``scannet`` scenario: procedural furnished rooms sampled to labelled, coloured point clouds in the ScanNet v2
layout.

A room (4-7 x 3.5-5.5 x 2.5-3 m, no ceiling, as ScanNet's scans mostly are) has a floor, four walls, a door, one or
two windows and a few pictures (slabs standing 4-6 cm off the wall, so they differ from the wall in geometry as well
as colour), and furniture whose *shape* tells its class, as in real scans: tables (top on four legs) with chairs
(seat, back, legs) around them, desks (top, two legs and a drawer block), beds (mattress, headboard), sofas (seat,
back, arm rests), cabinets (closed low boxes), bookshelves (open frames with shelves) and other furniture (round
bins / stools). Backed furniture stands against a wall, tables in the free middle; footprints do not overlap.
Every part carries its NYU40 id. Colours follow the research note's generator: a base colour per class, shifted
per instance (sigma 25) and per point (``color_noise``, sigma 12), so colour alone does not separate the classes.

Points are drawn uniformly over the surfaces (``density`` per square metre), jittered by a few millimetres and
labelled with their part's NYU40 id. Rooms are written with :func:`perception.datasets.scannet.write_scene`
(vertex-only "meshes": no faces) together with the label map and the train/val split files, and read back by
:class:`perception.datasets.scannet.ScanNet`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception.datasets.scannet import write_label_map, write_scene, write_split
from perception.errors import InputError
from perception.pointnets.boxes import convex_polygons_overlap
from perception.sim.primitives import box_mesh, cylinder_mesh
from perception.sim.world import World

log = logging.getLogger(__name__)

__all__ = ["CLASS_COLORS", "NYU40_ROOM", "ScanNetSimConfig", "build_furnished_room", "make_scannet", "sample_world"]

# NYU40 ids of the classes the rooms contain (13 of ScanNet's 20 benchmark classes)
NYU40_ROOM = {"wall": 1, "floor": 2, "cabinet": 3, "bed": 4, "chair": 5, "sofa": 6, "table": 7, "door": 8,
              "window": 9, "bookshelf": 10, "picture": 11, "desk": 14, "otherfurniture": 39}  # fmt: skip
# Base colour per class (RGB); instances shift it, points add noise
CLASS_COLORS = {"wall": (200, 196, 186), "floor": (150, 118, 84), "cabinet": (170, 150, 120), "bed": (190, 180, 200),
                "chair": (120, 90, 70), "sofa": (110, 120, 150), "table": (160, 120, 80), "door": (175, 140, 100),
                "window": (170, 200, 220), "bookshelf": (140, 100, 70), "picture": (150, 140, 120),
                "desk": (150, 130, 100), "otherfurniture": (130, 140, 120)}  # fmt: skip


@dataclass
class ScanNetSimConfig:
    rooms: int = 32
    val_fraction: float = 0.25
    """Share of the rooms listed in scannetv2_val.txt (the rest: train)."""
    density: float = 300.0
    """Points per square metre of surface."""
    jitter_m: float = 0.005
    color_noise: float = 12.0
    instance_color_std: float = 25.0
    """Per-instance shift of the class base colour."""
    furniture: tuple[int, int] = (5, 10)
    """Pieces of furniture per room (inclusive range; chairs around a table count one each)."""

    def validate(self) -> None:
        if self.rooms < 1 or self.density <= 0 or not 0.0 <= self.val_fraction < 1.0:
            raise InputError("sim scannet: rooms >= 1, density > 0 and val_fraction in [0, 1) are required")
        if not 1 <= self.furniture[0] <= self.furniture[1]:
            raise InputError(f"sim scannet: furniture must be a range 1 <= lo <= hi, got {self.furniture}")


def _rot(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class _Room:
    """Adds labelled parts (boxes / cylinders in a piece's local frame) to a world, one colour per instance."""

    def __init__(self, size: tuple[float, float, float], rng: np.random.Generator, color_std: float) -> None:
        self.size = np.asarray(size, dtype=np.float64)
        self.rng = rng
        self.color_std = color_std
        self.world = World()
        self.footprints: list[np.ndarray] = []  # (4, 2) BEV corners of placed furniture

    def color(self, kind: str) -> tuple[int, int, int]:
        c = np.asarray(CLASS_COLORS[kind], dtype=np.float64) + self.rng.normal(0.0, self.color_std, 3)
        return tuple(int(v) for v in np.clip(c, 0, 255))

    def parts(self, kind: str, pose: tuple[np.ndarray, float], boxes: list[tuple], cylinders: list[tuple] = ()) -> None:
        """``boxes``: (local centre, size); ``cylinders``: (local centre, radius, height); one instance colour."""
        origin, yaw = pose
        R = _rot(yaw)
        col = self.color(kind)
        name = f"{kind}{len(self.world.meshes)}"
        for c, sz in boxes:
            self.world.add(box_mesh(origin + R @ np.asarray(c, float), sz, R, semantic_id=NYU40_ROOM[kind],
                                    color=col, name=name))  # fmt: skip
        for c, r, h in cylinders:
            self.world.add(cylinder_mesh(origin + R @ np.asarray(c, float), r, h, R, semantic_id=NYU40_ROOM[kind],
                                         color=col, name=name, segments=16))  # fmt: skip

    def free(self, centre: np.ndarray, yaw: float, extent: tuple[float, float], margin: float = 0.05,
             commit: bool = True) -> bool:  # fmt: skip
        """Whether a footprint (length x depth) lies inside the room and clear of the others (separating axes);
        ``commit``: then also reserve it."""
        R = _rot(yaw)[:2, :2]
        hx, hy = 0.5 * extent[0] + margin, 0.5 * extent[1] + margin
        corners = centre[:2] + np.array([[hx, hy], [-hx, hy], [-hx, -hy], [hx, -hy]]) @ R.T
        half = 0.5 * self.size[:2]
        if (np.abs(corners) > half + 1e-9).any():
            return False
        if any(convex_polygons_overlap(corners, other) for other in self.footprints):
            return False
        if commit:
            self.footprints.append(corners)
        return True

    def against_wall(self, extent: tuple[float, float]) -> tuple[np.ndarray, float] | None:
        """A pose with the piece's back (local -y) against a random wall, or None when there is no room."""
        for _ in range(30):
            wall = int(self.rng.integers(4))
            yaw = wall * np.pi / 2 + self.rng.normal(0.0, 0.03)
            inward = _rot(yaw)[:2, 1]  # the piece's +y (its front) faces into the room
            along = np.array([inward[1], -inward[0]])
            depth_half = 0.5 * np.abs(np.array([self.size[0], self.size[1]]) @ np.abs(inward))
            span = 0.5 * np.abs(np.array([self.size[0], self.size[1]]) @ np.abs(along)) - 0.5 * extent[0] - 0.1
            if span <= 0:
                continue
            c = -inward * (depth_half - 0.5 * extent[1] - 0.08) + along * self.rng.uniform(-span, span)
            if self.free(c, yaw, extent):
                return np.array([c[0], c[1], 0.0]), yaw
        return None

    def in_middle(self, extent: tuple[float, float]) -> tuple[np.ndarray, float] | None:
        for _ in range(30):
            yaw = self.rng.integers(2) * np.pi / 2 + self.rng.normal(0.0, 0.15)
            c = self.rng.uniform(-0.5, 0.5, 2) * np.maximum(self.size[:2] - 1.5, 0.1)
            if self.free(c, yaw, extent):
                return np.array([c[0], c[1], 0.0]), yaw
        return None


def _legs(lx: float, ly: float, h: float, t: float = 0.05) -> list[tuple]:
    return [((sx * (0.5 * lx - t), sy * (0.5 * ly - t), 0.5 * h), (t, t, h)) for sx in (-1, 1) for sy in (-1, 1)]


def _chair(room: _Room, pose) -> None:
    w, d, hs, hb = room.rng.uniform(0.42, 0.5), room.rng.uniform(0.42, 0.5), room.rng.uniform(0.43, 0.48), 0.42
    room.parts("chair", pose, [((0, 0, hs), (w, d, 0.05)), ((0, -0.5 * d + 0.025, hs + 0.5 * hb), (w, 0.05, hb))]
               + _legs(w, d, hs - 0.025, 0.04))  # fmt: skip


def _table_with_chairs(room: _Room) -> None:
    lx, ly, h = room.rng.uniform(1.1, 1.8), room.rng.uniform(0.7, 1.0), room.rng.uniform(0.72, 0.77)
    pose = room.in_middle((lx + 1.0, ly + 1.0))  # leave space for the chairs
    if pose is None:
        return
    room.parts("table", pose, [((0, 0, h - 0.02), (lx, ly, 0.04))] + _legs(lx, ly, h - 0.04))
    origin, yaw = pose
    R = _rot(yaw)
    for k in range(int(room.rng.integers(2, 5))):
        side = 1 if k % 2 else -1
        x = (k // 2 - 0.5) * 0.5 * lx if k < 4 else 0.0
        c = origin + R @ np.array([x, side * (0.5 * ly + 0.3), 0.0])
        _chair(room, (c, yaw + (np.pi if side > 0 else 0.0) + room.rng.normal(0.0, 0.2)))


def _desk(room: _Room) -> None:
    lx, ly, h = room.rng.uniform(1.0, 1.4), room.rng.uniform(0.55, 0.7), 0.75
    pose = room.against_wall((lx, ly + 0.7))
    if pose is None:
        return
    origin, yaw = pose
    shift = _rot(yaw) @ np.array([0.0, -0.35, 0.0])  # the chair space is in front of the desk
    pose = (origin + shift, yaw)
    dw = 0.4
    room.parts("desk", pose, [((0, 0, h - 0.02), (lx, ly, 0.04)),
                              ((0.5 * lx - 0.5 * dw, 0, 0.5 * (h - 0.04)), (dw, ly - 0.04, h - 0.04))]
               + [((-0.5 * lx + 0.03, s * (0.5 * ly - 0.03), 0.5 * (h - 0.04)), (0.05, 0.05, h - 0.04))
                  for s in (-1, 1)])  # fmt: skip
    _chair(room, (pose[0] + _rot(yaw) @ np.array([-0.1, 0.5 * ly + 0.3, 0.0]), yaw + np.pi + room.rng.normal(0, 0.2)))


def _bed(room: _Room) -> None:
    w, length = room.rng.uniform(1.0, 1.8), room.rng.uniform(1.95, 2.1)
    pose = room.against_wall((w, length))
    if pose is not None:
        h = room.rng.uniform(0.45, 0.6)
        room.parts("bed", pose, [((0, 0.03, 0.5 * h), (w, length - 0.06, h)),
                                 ((0, -0.5 * length + 0.03, 0.5), (w + 0.06, 0.06, 1.0))])  # fmt: skip


def _sofa(room: _Room) -> None:
    w, d = room.rng.uniform(1.5, 2.2), room.rng.uniform(0.8, 0.95)
    pose = room.against_wall((w, d))
    if pose is not None:
        a, hs, hb = 0.18, 0.42, room.rng.uniform(0.8, 0.9)
        room.parts("sofa", pose, [((0, 0.1, 0.5 * hs), (w - 2 * a, d - 0.2, hs)),
                                  ((0, -0.5 * d + 0.1, 0.5 * hb), (w, 0.2, hb)),
                                  ((-0.5 * w + 0.5 * a, 0.1, 0.3), (a, d - 0.2, 0.6)),
                                  ((0.5 * w - 0.5 * a, 0.1, 0.3), (a, d - 0.2, 0.6))])  # fmt: skip


def _cabinet(room: _Room) -> None:
    w, d, h = room.rng.uniform(0.6, 1.2), room.rng.uniform(0.45, 0.6), room.rng.uniform(0.7, 0.95)
    pose = room.against_wall((w, d))
    if pose is not None:
        room.parts("cabinet", pose, [((0, 0, 0.5 * h), (w, d, h))])


def _bookshelf(room: _Room) -> None:
    w, d, h = room.rng.uniform(0.7, 1.0), room.rng.uniform(0.28, 0.35), room.rng.uniform(1.7, 2.1)
    pose = room.against_wall((w, d))
    if pose is None:
        return
    t = 0.025
    shelves = int(room.rng.integers(4, 6))
    parts = [((s * (0.5 * w - 0.5 * t), 0, 0.5 * h), (t, d, h)) for s in (-1, 1)]
    parts.append(((0, -0.5 * d + 0.5 * t, 0.5 * h), (w - 2 * t, t, h)))
    parts += [((0, 0.5 * t, z), (w - 2 * t, d - t, t)) for z in np.linspace(0.05, h - 0.02, shelves + 1)]
    room.parts("bookshelf", pose, parts)


def _other(room: _Room) -> None:
    r, h = room.rng.uniform(0.15, 0.3), room.rng.uniform(0.4, 0.9)
    pose = room.in_middle((2 * r, 2 * r)) if room.rng.random() < 0.3 else room.against_wall((2 * r, 2 * r))
    if pose is not None:
        room.parts("otherfurniture", pose, [], [((0, 0, 0.5 * h), r, h)])


def _wall_slab(room: _Room, kind: str, width: float, height: float, bottom: float, offset: float) -> None:
    """A thin slab parallel to a wall, ``offset`` in front of it (door / window / picture)."""
    for _ in range(30):
        wall = int(room.rng.integers(4))
        inward = _rot(wall * np.pi / 2)[:2, 1]
        along = np.array([inward[1], -inward[0]])
        depth_half = 0.5 * abs(room.size[:2] @ np.abs(inward))
        span = 0.5 * abs(room.size[:2] @ np.abs(along)) - 0.5 * width - 0.2
        if span <= 0:
            continue
        c = -inward * (depth_half - offset - 0.01) + along * room.rng.uniform(-span, span)
        # a door keeps the floor in front of it free; windows and pictures must not hide behind furniture
        clear = 0.8 if kind == "door" else 0.4
        if not room.free(c + inward * (0.5 * clear + 0.02), wall * np.pi / 2, (width, clear), 0.0, kind != "picture"):
            continue
        room.parts(kind, (np.array([c[0], c[1], 0.0]), wall * np.pi / 2),
                   [((0, 0, bottom + 0.5 * height), (width, 0.02, height))])  # fmt: skip
        return


def build_furnished_room(size: tuple[float, float, float], rng: np.random.Generator,
                         cfg: ScanNetSimConfig | None = None) -> World:  # fmt: skip
    """Floor, walls (no ceiling), door, windows, pictures and class-shaped furniture; room centred at x = y = 0."""
    cfg = cfg or ScanNetSimConfig()
    room = _Room(size, rng, cfg.instance_color_std)
    sx, sy, sz = size
    centre = np.array([0.0, 0.0, sz / 2])
    room.world.add(box_mesh(centre, size, semantic_id=NYU40_ROOM["floor"], inward=True, faces=("-z",),
                            color=room.color("floor"), name="floor"))  # fmt: skip
    wall_col = room.color("wall")
    for face in ("+x", "-x", "+y", "-y"):
        room.world.add(box_mesh(centre, size, semantic_id=NYU40_ROOM["wall"], inward=True, faces=(face,),
                                color=wall_col, name=f"wall{face}"))  # fmt: skip
    _wall_slab(room, "door", rng.uniform(0.8, 0.95), rng.uniform(2.0, 2.1), 0.0, 0.05)
    for _ in range(int(rng.integers(1, 3))):
        _wall_slab(room, "window", rng.uniform(0.9, 1.6), rng.uniform(0.9, 1.3), rng.uniform(0.8, 1.0), 0.06)
    makers = [_table_with_chairs, _desk, _bed, _sofa, _cabinet, _bookshelf, _other]
    weights = np.array([1.0, 1.0, 0.6, 0.8, 1.0, 1.0, 1.0])
    n = int(rng.integers(cfg.furniture[0], cfg.furniture[1] + 1))
    for k in range(n):
        maker = makers[k] if k < len(makers) else makers[rng.choice(len(makers), p=weights / weights.sum())]
        maker(room)
    for _ in range(int(rng.integers(2, 5))):  # pictures last: above the furniture, at eye height
        _wall_slab(room, "picture", rng.uniform(0.5, 1.0), rng.uniform(0.4, 0.7), rng.uniform(1.3, 1.6), 0.04)
    return room.world


def sample_world(world, density: float, rng: np.random.Generator, skip: set[str] = frozenset()):
    """Points ``(xyz (N, 3), rgb (N, 3) uint8, nyu40 (N,), instance (N,))`` drawn uniformly over the world's
    triangles; meshes whose name starts with an entry of ``skip`` are left out."""
    td = world.triangle_data()
    inst = td["instance"].astype(np.int64) - 1  # instance ids are 1-based (0 = no surface)
    area = 0.5 * np.linalg.norm(np.cross(td["e1"], td["e2"]), axis=1)
    keep = np.array([not any(world.meshes[i].name.startswith(s) for s in skip) for i in inst])
    counts = rng.poisson(area * density * keep)
    tri = np.repeat(np.arange(len(area)), counts)
    r1, r2 = rng.random(len(tri)), rng.random(len(tri))
    flip = r1 + r2 > 1
    r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
    xyz = td["p0"][tri] + r1[:, None] * td["e1"][tri] + r2[:, None] * td["e2"][tri]
    uv = td["uv"][tri, 0] + r1[:, None] * (td["uv"][tri, 1] - td["uv"][tri, 0]) + r2[:, None] * (
        td["uv"][tri, 2] - td["uv"][tri, 0])  # fmt: skip
    rgb = np.zeros((len(tri), 3), np.uint8)
    labels = np.zeros(len(tri), np.int64)
    mesh_of = inst[tri]
    for m in np.unique(mesh_of):
        sel = mesh_of == m
        mesh = world.meshes[int(m)]
        labels[sel] = int(mesh.semantic_id)
        if mesh.texture is None:
            rgb[sel] = mesh.color
            continue
        tex = mesh.texture
        h, w = tex.shape[:2]
        col = np.floor(np.mod(uv[sel, 0], 1.0) * w).astype(int).clip(0, w - 1)
        row = np.floor(np.mod(uv[sel, 1], 1.0) * h).astype(int).clip(0, h - 1)
        rgb[sel] = tex[row, col]
    return xyz, rgb, labels, mesh_of


def make_scannet(out: Path, cfg: ScanNetSimConfig | None = None, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, list[str]]:  # fmt: skip
    """Write ``cfg.rooms`` rooms under ``out`` in the ScanNet layout; returns the scene ids per split."""
    cfg = cfg or ScanNetSimConfig()
    cfg.validate()
    rng = np.random.default_rng(seed)
    out = Path(out)
    ids = [f"scene{k:04d}_00" for k in range(cfg.rooms)]
    for k, sid in enumerate(ids):
        size = (rng.uniform(4.0, 7.0), rng.uniform(3.5, 5.5), rng.uniform(2.5, 3.0))
        world = build_furnished_room(size, rng, cfg)
        xyz, rgb, nyu40, _ = sample_world(world, cfg.density, rng)
        xyz = xyz + rng.normal(0.0, cfg.jitter_m, xyz.shape)
        xyz -= xyz.min(axis=0)  # ScanNet scans start near the origin
        rgb = np.clip(rgb + rng.normal(0.0, cfg.color_noise, rgb.shape), 0, 255).astype(np.uint8)
        write_scene(out, sid, xyz.astype(np.float32), rgb, np.zeros((0, 3), np.int64), nyu40.astype(np.int64))
        if progress is not None:
            progress(k + 1, cfg.rooms)
    n_val = int(round(cfg.val_fraction * cfg.rooms))
    split = {"train": ids[: cfg.rooms - n_val], "val": ids[cfg.rooms - n_val :]}
    write_split(out, "train", split["train"])
    write_split(out, "val", split["val"])
    write_label_map(out / "scannetv2-labels.combined.tsv", dict(NYU40_ROOM))
    log.info("sim scannet: %d rooms (%d train / %d val) -> %s", cfg.rooms, len(split["train"]), len(split["val"]), out)
    return split
