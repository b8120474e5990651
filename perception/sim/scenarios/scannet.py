"""The ``scannet`` scenario: procedural rooms sampled to labelled, coloured point clouds in the ScanNet v2 layout.

Each room is the ``room`` scenario's world (walls, floor, pictures and furniture as textured meshes carrying NYU40
ids) with a random size and furniture count; the ceiling is left out, as ScanNet's scans mostly are. Points are
drawn uniformly over the surfaces (``density`` per square metre), coloured by their texture (nearest texel,
wrapped) plus per-point noise, jittered by a few millimetres, and labelled with their mesh's NYU40 id. Rooms are
written with :func:`perception.datasets.scannet.write_scene` (vertex-only "meshes": no faces) together with the label
map and the train/val split files, and read back by :class:`perception.datasets.scannet.ScanNet`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception.datasets.scannet import write_label_map, write_scene, write_split
from perception.errors import InputError
from perception.sim.scenarios.room import NYU40, RoomConfig, build_room_world

log = logging.getLogger(__name__)

__all__ = ["ScanNetSimConfig", "make_scannet", "sample_world"]


@dataclass
class ScanNetSimConfig:
    rooms: int = 32
    val_fraction: float = 0.25
    """Share of the rooms listed in scannetv2_val.txt (the rest: train)."""
    density: float = 300.0
    """Points per square metre of surface."""
    jitter_m: float = 0.005
    color_noise: float = 12.0
    texture_size: int = 128

    def validate(self) -> None:
        if self.rooms < 1 or self.density <= 0 or not 0.0 <= self.val_fraction < 1.0:
            raise InputError("sim scannet: rooms >= 1, density > 0 and val_fraction in [0, 1) are required")


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
        room = RoomConfig(size=size, num_furniture=int(rng.integers(4, 9)), num_pictures=int(rng.integers(2, 6)),
                          texture_size=cfg.texture_size, train_radius=0.5, test_radius=0.1)  # fmt: skip
        world = build_room_world(room, rng)
        xyz, rgb, nyu40, _ = sample_world(world, cfg.density, rng, skip={"ceiling"})
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
    write_label_map(out / "scannetv2-labels.combined.tsv", dict(NYU40))
    log.info("sim scannet: %d rooms (%d train / %d val) -> %s", cfg.rooms, len(split["train"]), len(split["val"]), out)
    return split
