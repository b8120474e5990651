"""The ``kitti-lidar`` scenario: LiDAR sweeps of streets with cars, pedestrians and cyclists in the KITTI object
detection layout, for training and evaluating 3D detectors.

Sensor: a 32-beam spinning LiDAR (elevations evenly spread over -25..+3 degrees, ``columns`` azimuth steps per
turn, 1800 = 0.2 degree by default) 1.73 m above the ground, as KITTI's Velodyne. Every ray is intersected
*exactly* (float64, no meshes) with the scene: the ground plane ``z = -sensor_height`` (LiDAR frame: x forward, y
left, z up), oriented boxes (slab test: facades, cars, cyclists), vertical cylinders with caps (pedestrians, poles,
tree trunks) and spheres (tree crowns). Each primitive is only tested against the rays of the azimuth columns and
beams its bounding cylinder can reach, so a full 57,600-ray sweep takes a few tens of milliseconds. The measured
range gets Gaussian noise (``range_noise_m``), a ``dropout`` share of the returns is lost, returns outside
``[min_range_m, max_range_m]`` are dropped; intensity is the hit surface's reflectivity (per class, varied per
instance) times ``|cos(incidence)|`` plus noise, clipped to [0, 1]. Points are float32 ``x y z intensity`` of
the whole 360 degree sweep, as KITTI's ``velodyne/*.bin``.

Scene (built in a *street frame*: x along the street, ground at z = 0, then turned by a small random street
yaw and shifted so the sensor drives in the right-hand lane): a road 7-14 m wide, sidewalks up to the
facades, which are boxes (8-35 m long, 5-25 m high) whose fronts stand 8-20 m from the street's centre line on
either side, with gaps (side streets); poles and trees (trunk + spherical crown) along the kerbs. Objects
(counts per frame drawn from the configured ranges) do not overlap each other, the ego car or the static
scene in bird's-eye view:

- cars: boxes of 4.5 x 1.9 x 1.6 m, each dimension scaled by ``1 +- size_jitter``; driving in a lane or parked
  at the kerb, heading along the street (either direction) +- a few degrees, or (``random_yaw_fraction``)
  anywhere on the road with a random heading;
- pedestrians: vertical cylinders 0.6 m across and 1.75 m tall (jittered), mostly on the sidewalks, some
  crossing the road; their box is the cylinder's bounding box with a random heading;
- cyclists: boxes of 1.8 x 0.6 x 1.7 m near the kerb, along the street, or (``random_yaw_fraction``) anywhere
  with a random heading.

A ``front_fraction`` of the objects is placed in the field of view of camera 2 (centre projecting into the
1242 x 375 image, within ``label_range_m - 2``), because KITTI annotates only there; the others anywhere within
60 m. LiDAR boxes are ``(x, y, z, l, w, h, yaw)`` with the box *centre* (OpenPCDet); every object stands on
the ground.

Labels (``training/label_2``, via :func:`perception.datasets.kitti_object.lidar_boxes_to_labels` with an ideal
KITTI calibration): every object whose centre lies in front of camera 2, whose projected box reaches into the
image (truncated < 1) and whose centre is within ``label_range_m`` gets a line: its class (``Car``,
``Pedestrian``, ``Cyclist``) when it has at least ``min_points`` returns in the written scan, else ``DontCare``
(only its 2D box, as KITTI writes them). Objects no ray reaches (hidden behind others; they leave no trace in
the scan) get no line, as annotators do not label what they cannot see. ``truncated`` is the share of the
projected box outside the image; ``occluded`` compares the rays that reach the object in the scene with those
that would hit it alone (> 0.8: 0, > 0.4: 1, else 2). Objects outside the camera's view are in the scan but not
labelled (as KITTI).

Written under ``out``: ``training/{velodyne,calib,label_2}/NNNNNN.*``, ``ImageSets/{train,val}.txt`` (the last
``val_fraction`` of the frames, at least one, are val), ``gt/objects.json`` (per frame: the exact boxes, shapes,
point counts, occlusion ratios, which label each object got, and the street) and ``gt/instance/NNNNNN.bin`` (int16 per
written point, in the scan's order: the index of the object in ``gt/objects.json``, or -1 ground, -2 facade,
-3 pole, -4 tree). Frame ``k`` is drawn from its own generator seeded by ``(seed, k)``: the same seed gives the
same bytes, and a longer run starts with the frames of a shorter one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from perception.datasets.kitti_object import KittiCalib, KittiLabel, KittiObjectWriter, lidar_boxes_to_labels
from perception.errors import InputError
from perception.fileio import atomic_write_bytes, atomic_write_json
from perception.pointnets.boxes import bev_corners, convex_polygons_overlap

log = logging.getLogger(__name__)

__all__ = [
    "CLASSES",
    "IMAGE_SIZE",
    "STATIC_IDS",
    "KittiLidarSimConfig",
    "LidarCaster",
    "Primitive",
    "kitti_calib",
    "make_kitti_lidar",
    "simulate_frame",
]

CLASSES = ("Car", "Pedestrian", "Cyclist")
IMAGE_SIZE = (1242, 375)
"""(width, height) of KITTI's image 2."""
STATIC_IDS = {"ground": -1, "facade": -2, "pole": -3, "tree": -4}
"""Values of ``gt/instance/*.bin`` for points of the static scene (objects: their index, >= 0)."""

# Nominal sizes (l, w, h) and reflectivity (mean, spread) per class
_SIZES = {"Car": (4.5, 1.9, 1.6), "Pedestrian": (0.6, 0.6, 1.75), "Cyclist": (1.8, 0.6, 1.7)}
_REFLECTIVITY = {"Car": (0.2, 0.8), "Pedestrian": (0.25, 0.45), "Cyclist": (0.3, 0.55), "ground": (0.12, 0.25),
                 "facade": (0.3, 0.6), "pole": (0.45, 0.7), "trunk": (0.25, 0.35), "crown": (0.1, 0.2)}  # fmt: skip
_EGO = (7.0, 3.0)
"""BEV keep-out rectangle (length, width) around the sensor: the ego car and a margin."""


@dataclass
class KittiLidarSimConfig:
    frames: int = 300
    val_fraction: float = 0.25
    """Share of the frames (the last ones) listed in ImageSets/val.txt; the rest in train.txt."""
    beams: int = 32
    vertical_fov_deg: tuple[float, float] = (-25.0, 3.0)
    """Elevation of the lowest and highest beam (beams evenly spread in between)."""
    columns: int = 1800
    """Azimuth steps per turn (1800: 0.2 degree)."""
    sensor_height_m: float = 1.73
    """LiDAR height above the ground (KITTI: 1.73 m)."""
    range_noise_m: float = 0.02
    """Gaussian noise (sigma) on each measured range."""
    dropout: float = 0.05
    """Share of the returns lost at random."""
    intensity_noise: float = 0.03
    min_range_m: float = 1.0
    max_range_m: float = 80.0
    cars: tuple[int, int] = (6, 14)
    """Cars per frame (inclusive range; fewer when the street has no free space left)."""
    pedestrians: tuple[int, int] = (3, 10)
    cyclists: tuple[int, int] = (2, 5)
    size_jitter: float = 0.1
    """Each object dimension is the class's nominal size times 1 +- this (uniform)."""
    random_yaw_fraction: float = 0.15
    """Share of cars and cyclists with a random heading (the rest follow the street +- a few degrees)."""
    front_fraction: float = 0.85
    """Share of the objects placed in the field of view of camera 2 (KITTI labels only there)."""
    label_range_m: float = 70.0
    """Objects in the camera's view up to this distance (bird's-eye view) get a label line."""
    min_points: int = 5
    """Returns an object needs for a class label; with fewer it is written as DontCare."""

    def validate(self) -> None:
        p = "sim kitti-lidar:"
        if self.frames < 1 or self.beams < 1 or self.columns < 8:
            raise InputError(f"{p} frames >= 1, beams >= 1 and columns >= 8 are required")
        if not 0.0 <= self.val_fraction < 1.0:
            raise InputError(f"{p} val_fraction must lie in [0, 1), got {self.val_fraction}")
        lo, hi = self.vertical_fov_deg
        if not -90.0 < lo <= hi < 90.0:
            raise InputError(f"{p} vertical_fov_deg must be (low, high) within (-90, 90), got {self.vertical_fov_deg}")
        if not (self.sensor_height_m > 0 and 0.0 <= self.min_range_m < self.max_range_m):
            raise InputError(f"{p} sensor_height_m > 0 and 0 <= min_range_m < max_range_m are required")
        if self.range_noise_m < 0 or self.intensity_noise < 0 or not 0.0 <= self.dropout < 1.0:
            raise InputError(f"{p} range_noise_m >= 0, intensity_noise >= 0 and dropout in [0, 1) are required")
        for name in ("cars", "pedestrians", "cyclists"):
            r = getattr(self, name)
            if len(r) != 2 or not 0 <= r[0] <= r[1]:
                raise InputError(f"{p} {name} must be a range 0 <= lo <= hi, got {r}")
        if not 0.0 <= self.size_jitter < 0.5:
            raise InputError(f"{p} size_jitter must lie in [0, 0.5), got {self.size_jitter}")
        if not (0.0 <= self.random_yaw_fraction <= 1.0 and 0.0 <= self.front_fraction <= 1.0):
            raise InputError(f"{p} random_yaw_fraction and front_fraction must lie in [0, 1]")
        if self.label_range_m <= 5.0 or self.min_points < 1:
            raise InputError(f"{p} label_range_m > 5 and min_points >= 1 are required")


def kitti_calib() -> KittiCalib:
    """An ideal KITTI calibration: KITTI's camera matrices (2011_09_26), R0_rect = I, and Tr_velo_to_cam mapping
    LiDAR x forward / y left / z up to camera z forward / -x / -y with KITTI's usual lever arm."""
    f, cx, cy = 721.5377, 609.5593, 172.854
    K = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    P = np.stack([np.concatenate([K, np.asarray(t, dtype=np.float64)[:, None]], axis=1) for t in (
        (0.0, 0.0, 0.0), (-387.5744, 0.0, 0.0), (44.85728, 0.2163791, 0.002745884),
        (-339.5242, 2.199936, 0.002729905))])  # fmt: skip
    Tr = np.array([[0.0, -1.0, 0.0, -0.00406977], [0.0, 0.0, -1.0, -0.07631618], [1.0, 0.0, 0.0, -0.2717806]])
    imu = np.array([[1.0, 0.0, 0.0, -0.8086759], [0.0, 1.0, 0.0, 0.3195559], [0.0, 0.0, 1.0, -0.7997231]])
    return KittiCalib(P=P, R0_rect=np.eye(3), Tr_velo_to_cam=Tr, Tr_imu_to_velo=imu)


# ---------------------------------------------------------------------------------------------------------------
# Exact ray caster (rays from the sensor origin)


@dataclass
class Primitive:
    """A solid in the LiDAR frame. ``box``: centre, size (l, w, h), yaw about z; ``cylinder``: vertical, centre,
    ``size = (2r, 2r, h)``; ``sphere``: centre, ``size = (2r, 2r, 2r)``."""

    shape: str
    centre: np.ndarray
    size: np.ndarray
    yaw: float
    reflectivity: float
    instance: int
    """Object index (>= 0) or a :data:`STATIC_IDS` value."""


class LidarCaster:
    """Casts the rays of a spinning LiDAR (origin 0, column-major: ray ``j * B + b`` is column j, beam b) exactly
    against a ground plane and a list of :class:`Primitive`."""

    def __init__(self, beams: int, vertical_fov_deg: tuple[float, float], columns: int) -> None:
        lo, hi = vertical_fov_deg
        self.elev = np.deg2rad(np.linspace(lo, hi, beams) if beams > 1 else np.array([0.5 * (lo + hi)]))
        self.B, self.C = len(self.elev), int(columns)
        self.az = 2.0 * np.pi * np.arange(self.C) / self.C
        ce, se = np.cos(self.elev), np.sin(self.elev)
        ca, sa = np.cos(self.az)[:, None], np.sin(self.az)[:, None]
        self.dirs = np.stack(np.broadcast_arrays(ce[None] * ca, ce[None] * sa, se[None]), axis=-1).reshape(-1, 3)

    def candidates(self, prim: Primitive) -> np.ndarray:
        """Indices of the rays that can hit ``prim`` (its bounding vertical cylinder's azimuth and elevation span)."""
        c = prim.centre
        r = 0.5 * math.hypot(prim.size[0], prim.size[1])
        z0, z1 = c[2] - 0.5 * prim.size[2], c[2] + 0.5 * prim.size[2]
        d = math.hypot(c[0], c[1])
        if d <= r + 1e-6:
            cols, beams = np.arange(self.C), np.arange(self.B)
        else:
            half, ac = math.asin(r / d), math.atan2(c[1], c[0])
            step = 2.0 * np.pi / self.C
            cols = np.arange(math.ceil((ac - half) / step - 1e-9), math.floor((ac + half) / step + 1e-9) + 1) % self.C
            els = [math.atan2(z, dd) for z in (z0, z1) for dd in (d - r, d + r)]
            beams = np.flatnonzero((self.elev >= min(els) - 1e-9) & (self.elev <= max(els) + 1e-9))
        return (cols[:, None] * self.B + beams[None, :]).reshape(-1)

    @staticmethod
    def intersect(prim: Primitive, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First hit distance (inf: miss) and outward unit normal of rays ``d`` (N, 3) from the origin."""
        if prim.shape == "box":
            return _hit_box(d, prim.centre, 0.5 * np.asarray(prim.size), prim.yaw)
        if prim.shape == "cylinder":
            return _hit_cylinder(d, prim.centre, 0.5 * prim.size[0], prim.size[2])
        if prim.shape == "sphere":
            return _hit_sphere(d, prim.centre, 0.5 * prim.size[0])
        raise InputError(f"LidarCaster: unknown primitive shape {prim.shape!r} (box, cylinder, sphere)")

    def cast(self, prims: list[Primitive], ground_z: float, max_t: float, min_t: float = 0.0):
        """Nearest hit of every ray: ``(t (N,), owner (N,) primitive index or -1 for the ground, normal (N, 3),
        alone (P,) rays within [min_t, max_t] that would hit each primitive with nothing else in the scene)``."""
        d = self.dirs
        with np.errstate(divide="ignore"):
            t = np.where(d[:, 2] < 0.0, ground_z / np.minimum(d[:, 2], -1e-300), np.inf)
        owner = np.full(len(d), -1, dtype=np.int64)
        normal = np.zeros_like(d)
        normal[:, 2] = 1.0
        alone = np.zeros(len(prims), dtype=np.int64)
        for k, prim in enumerate(prims):
            idx = self.candidates(prim)
            if not len(idx):
                continue
            tk, nk = self.intersect(prim, d[idx])
            alone[k] = int(np.count_nonzero((tk >= min_t) & (tk <= max_t)))
            closer = tk < t[idx]
            sel = idx[closer]
            t[sel], owner[sel], normal[sel] = tk[closer], k, nk[closer]
        return t, owner, normal, alone


def _hit_box(d: np.ndarray, c: np.ndarray, half: np.ndarray, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    cy, sy = math.cos(yaw), math.sin(yaw)
    o = -np.array([cy * c[0] + sy * c[1], -sy * c[0] + cy * c[1], c[2]])  # origin in the box frame
    dl = np.stack([cy * d[:, 0] + sy * d[:, 1], -sy * d[:, 0] + cy * d[:, 1], d[:, 2]], axis=1)
    safe = np.where(np.abs(dl) < 1e-15, np.where(dl < 0, -1e-15, 1e-15), dl)
    t1, t2 = (-half - o) / safe, (half - o) / safe
    tn, tf = np.minimum(t1, t2), np.maximum(t1, t2)
    axis = tn.argmax(axis=1)
    near, far = tn.max(axis=1), tf.min(axis=1)
    t = np.where((near <= far) & (near > 0.0), near, np.inf)
    nl = np.zeros_like(dl)
    rows = np.arange(len(dl))
    nl[rows, axis] = -np.sign(safe[rows, axis])
    n = np.stack([cy * nl[:, 0] - sy * nl[:, 1], sy * nl[:, 0] + cy * nl[:, 1], nl[:, 2]], axis=1)
    return t, n


def _hit_cylinder(d: np.ndarray, c: np.ndarray, r: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    z0, z1 = c[2] - 0.5 * h, c[2] + 0.5 * h
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = -2.0 * (c[0] * d[:, 0] + c[1] * d[:, 1])
    cc = c[0] ** 2 + c[1] ** 2 - r * r
    disc = b * b - 4.0 * a * cc
    ok = (disc >= 0.0) & (a > 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = np.where(ok, (-b - np.sqrt(np.where(ok, disc, 0.0))) / (2.0 * np.where(ok, a, 1.0)), np.inf)
    zs = ts * d[:, 2]
    ts = np.where((ts > 0.0) & (zs >= z0) & (zs <= z1), ts, np.inf)
    t, cap = ts, np.zeros(len(d))
    for zc, sign in ((z0, -1.0), (z1, 1.0)):
        with np.errstate(divide="ignore", invalid="ignore"):
            tc = np.where(np.abs(d[:, 2]) > 1e-15, zc / np.where(np.abs(d[:, 2]) > 1e-15, d[:, 2], 1.0), np.inf)
        inside = (tc * d[:, 0] - c[0]) ** 2 + (tc * d[:, 1] - c[1]) ** 2 <= r * r
        tc = np.where((tc > 0.0) & inside, tc, np.inf)
        better = tc < t
        t, cap = np.where(better, tc, t), np.where(better, sign, cap)
    p = np.where(np.isfinite(t), t, 0.0)[:, None] * d
    radial = np.stack([p[:, 0] - c[0], p[:, 1] - c[1], np.zeros(len(d))], axis=1) / r
    n = np.where((cap == 0.0)[:, None], radial, np.stack([np.zeros(len(d)), np.zeros(len(d)), cap], axis=1))
    return t, np.where(np.isfinite(t)[:, None], n, 0.0)


def _hit_sphere(d: np.ndarray, c: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    b = -2.0 * (d @ c)
    disc = b * b - 4.0 * (c @ c - r * r)
    ok = disc >= 0.0
    t = np.where(ok, 0.5 * (-b - np.sqrt(np.where(ok, disc, 0.0))), np.inf)
    t = np.where(t > 0.0, t, np.inf)
    n = np.where(np.isfinite(t)[:, None], (np.where(np.isfinite(t), t, 0.0)[:, None] * d - c) / r, 0.0)
    return t, n


# ---------------------------------------------------------------------------------------------------------------
# Scene


def _rect(cx: float, cy: float, length: float, width: float, yaw: float) -> np.ndarray:
    """(4, 2) corners of a BEV rectangle."""
    return bev_corners([cx, cy, 0.0, length, width, 0.0, yaw])[0]


class _Street:
    """One frame's street, built in the street frame and turned into the LiDAR frame."""

    def __init__(self, cfg: KittiLidarSimConfig, rng: np.random.Generator, calib: KittiCalib) -> None:
        self.cfg, self.rng, self.calib = cfg, rng, calib
        self.road_half = float(rng.uniform(3.5, 7.0))
        self.ego_y = -0.5 * self.road_half + float(rng.normal(0.0, 0.3))
        self.street_yaw = float(rng.normal(0.0, np.deg2rad(3.0)))
        self.front = {s: float(rng.uniform(max(8.0, self.road_half + 2.5), 20.0)) for s in (1, -1)}
        self.prims: list[Primitive] = []
        self.footprints: list[np.ndarray] = [_rect(0.0, 0.0, *_EGO, 0.0)]  # BEV, LiDAR frame; first: the ego car
        self.objects: list[dict] = []
        self._facades()
        self._kerb_furniture()

    # frames: street (x along the street, ground z = 0) -> LiDAR
    def to_lidar(self, x: float, y: float, z: float) -> np.ndarray:
        c, s = math.cos(self.street_yaw), math.sin(self.street_yaw)
        dx, dy = x, y - self.ego_y
        return np.array([c * dx + s * dy, -s * dx + c * dy, z - self.cfg.sensor_height_m])

    def _add(self, shape: str, street_xyz: tuple[float, float, float], size, yaw: float, refl: float,
             instance: int) -> Primitive:  # fmt: skip
        prim = Primitive(shape, self.to_lidar(*street_xyz), np.asarray(size, dtype=np.float64),
                         float(yaw - self.street_yaw), float(refl), instance)  # fmt: skip
        self.prims.append(prim)
        return prim

    def _bev(self, prim: Primitive) -> np.ndarray:
        return _rect(prim.centre[0], prim.centre[1], prim.size[0], prim.size[1], prim.yaw)

    def _refl(self, kind: str) -> float:
        return float(self.rng.uniform(*_REFLECTIVITY[kind]))

    def _facades(self) -> None:
        rng = self.rng
        for side in (1, -1):
            x = -95.0 + float(rng.uniform(0.0, 10.0))
            while x < 95.0:
                length = float(rng.uniform(8.0, 35.0))
                if rng.random() < 0.2:  # a side street or a gap between buildings
                    x += float(rng.uniform(5.0, 15.0))
                    continue
                front = max(self.front[side] + float(rng.uniform(-0.5, 0.5)), self.road_half + 2.0)
                depth, height = float(rng.uniform(8.0, 16.0)), float(rng.uniform(5.0, 25.0))
                p = self._add("box", (x + 0.5 * length, side * (front + 0.5 * depth), 0.5 * height),
                              (length, depth, height), 0.0, self._refl("facade"), STATIC_IDS["facade"])  # fmt: skip
                self.footprints.append(self._bev(p))
                x += length

    def _free(self, poly: np.ndarray, margin: float = 0.25) -> bool:
        return not any(convex_polygons_overlap(poly, f, margin) for f in self.footprints)

    def _kerb_furniture(self) -> None:
        rng = self.rng
        for side in (1, -1):
            x = -90.0 + float(rng.uniform(0.0, 20.0))
            while x < 90.0:
                if rng.random() < 0.5:  # pole
                    r, h = float(rng.uniform(0.06, 0.15)), float(rng.uniform(4.0, 9.0))
                    y = side * (self.road_half + float(rng.uniform(0.3, 0.8)))
                    c = self.to_lidar(x, y, 0.0)
                    if self._free(_rect(c[0], c[1], 2 * r, 2 * r, 0.0), 0.1):
                        p = self._add("cylinder", (x, y, 0.5 * h), (2 * r, 2 * r, h), 0.0, self._refl("pole"),
                                      STATIC_IDS["pole"])  # fmt: skip
                        self.footprints.append(self._bev(p))
                else:  # tree: trunk and crown, both kept clear of the facades
                    y = side * (self.road_half + float(rng.uniform(1.2, 2.5)))
                    crown = min(float(rng.uniform(1.0, 2.5)), self.front[side] - 0.5 - abs(y) - 0.3)
                    r, h = float(rng.uniform(0.12, 0.3)), float(rng.uniform(2.2, 3.5))
                    c = self.to_lidar(x, y, 0.0)
                    if crown > 0.8 and self._free(_rect(c[0], c[1], 2 * crown, 2 * crown, 0.0), 0.1):
                        self._add("cylinder", (x, y, 0.5 * h), (2 * r, 2 * r, h), 0.0, self._refl("trunk"),
                                  STATIC_IDS["tree"])  # fmt: skip
                        self._add("sphere", (x, y, h + 0.6 * crown), (2 * crown,) * 3, 0.0, self._refl("crown"),
                                  STATIC_IDS["tree"])  # fmt: skip
                        self.footprints.append(_rect(c[0], c[1], 2 * crown, 2 * crown, 0.0))
                x += float(rng.uniform(10.0, 30.0))

    # objects
    def _size(self, cls: str) -> np.ndarray:
        j = self.cfg.size_jitter
        size = np.asarray(_SIZES[cls]) * (1.0 + self.rng.uniform(-j, j, 3))
        if cls == "Pedestrian":
            size[1] = size[0]  # a round cylinder
        return size

    def _pose(self, cls: str, size: np.ndarray, front: bool) -> tuple[float, float, float]:
        """Street-frame (x, y, yaw) for an object of ``cls``: lane, kerb, sidewalk or anywhere, per class."""
        rng, rh = self.rng, self.road_half
        x = float(rng.uniform(0.0, 72.0) if front else rng.uniform(-60.0, 60.0))
        side = 1 if rng.random() < 0.5 else -1
        along = float(rng.normal(0.0, 0.04))
        if cls == "Car":
            u = rng.random()
            if u < self.cfg.random_yaw_fraction:
                return x, float(rng.uniform(-rh, rh)), float(rng.uniform(-np.pi, np.pi))
            if u < 0.5 + 0.5 * self.cfg.random_yaw_fraction:  # driving: right lane along +x, left lane along -x
                y = side * 0.5 * rh + float(rng.normal(0.0, 0.3))
                return x, y, along + (0.0 if side < 0 else np.pi)
            y = side * (rh - 0.5 * size[1] - float(rng.uniform(0.1, 0.4)))  # parked at the kerb
            return x, y, along + (0.0 if rng.random() < 0.5 else np.pi)
        if cls == "Pedestrian":
            if rng.random() < 0.25:  # crossing or on the road
                y = float(rng.uniform(-rh, rh))
            else:
                y = side * float(rng.uniform(rh + 0.3, max(self.front[side] - 0.8, rh + 0.4)))
            return x, y, float(rng.uniform(-np.pi, np.pi))
        if rng.random() < self.cfg.random_yaw_fraction:
            lim = min(self.front[1], self.front[-1]) - 1.0
            return x, float(rng.uniform(-lim, lim)), float(rng.uniform(-np.pi, np.pi))
        y = side * (rh - float(rng.uniform(0.5, 1.5)))
        return x, y, 3.0 * along + (0.0 if side < 0 else np.pi)

    def _in_view(self, c: np.ndarray) -> bool:
        uv, depth = self.calib.project_rect(self.calib.velo_to_rect(c[None]))
        u = uv[0, 0]
        return depth[0] > 3.0 and 0.0 <= u <= IMAGE_SIZE[0] and math.hypot(c[0], c[1]) <= self.cfg.label_range_m - 2.0

    def place(self, cls: str) -> bool:
        cfg, rng = self.cfg, self.rng
        size = self._size(cls)
        front = bool(rng.random() < cfg.front_fraction)
        for _ in range(60):
            x, y, yaw = self._pose(cls, size, front)
            c = self.to_lidar(x, y, 0.5 * size[2])
            if front and not self._in_view(c):
                continue
            if not front and math.hypot(c[0], c[1]) > 60.0:
                continue
            poly = _rect(c[0], c[1], size[0], size[1], yaw - self.street_yaw)
            if not self._free(poly):
                continue
            k = len(self.objects)
            shape = "cylinder" if cls == "Pedestrian" else "box"
            p = self._add(shape, (x, y, 0.5 * size[2]), size, yaw, self._refl(cls), k)
            self.footprints.append(poly)
            self.objects.append({"type": cls, "shape": shape, "prim": len(self.prims) - 1,
                                 "box": np.array([*p.centre, *size, _wrap(p.yaw)])})  # fmt: skip
            return True
        return False


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2.0 * np.pi) - np.pi)


# ---------------------------------------------------------------------------------------------------------------
# Frames


def _dontcare(bbox: np.ndarray) -> KittiLabel:
    return KittiLabel("DontCare", -1.0, -1, -10.0, np.asarray(bbox, dtype=np.float64), np.array([-1.0, -1.0, -1.0]),
                      np.array([-1000.0, -1000.0, -1000.0]), -10.0)  # fmt: skip


def _occlusion(ratio: float) -> int:
    return 0 if ratio > 0.8 else 1 if ratio > 0.4 else 2


def simulate_frame(cfg: KittiLidarSimConfig, rng: np.random.Generator, calib: KittiCalib | None = None,
                   caster: LidarCaster | None = None) -> dict:  # fmt: skip
    """One frame: ``points`` (N, 4) float32, ``instance`` (N,) int16, ``labels`` (list of KittiLabel),
    ``objects`` (list of dicts: the ground truth of every object) and ``street`` (dict)."""
    calib = calib or kitti_calib()
    caster = caster or LidarCaster(cfg.beams, cfg.vertical_fov_deg, cfg.columns)
    street = _Street(cfg, rng, calib)
    for cls, (lo, hi) in zip(CLASSES, (cfg.cars, cfg.pedestrians, cfg.cyclists), strict=True):
        for _ in range(int(rng.integers(lo, hi + 1))):
            if not street.place(cls):
                log.debug("sim kitti-lidar: no free place for a %s", cls)
    prims = street.prims
    t, owner, normal, alone = caster.cast(prims, -cfg.sensor_height_m, cfg.max_range_m, cfg.min_range_m)

    n = len(t)
    r = t + cfg.range_noise_m * rng.standard_normal(n)
    drop = rng.random(n) < cfg.dropout
    keep = np.isfinite(t) & ~drop & (r >= cfg.min_range_m) & (r <= cfg.max_range_m)
    d = caster.dirs[keep]
    xyz = d * r[keep, None]
    refl = np.array([p.reflectivity for p in prims] + [float(rng.uniform(*_REFLECTIVITY["ground"]))])
    own = owner[keep]
    cos_inc = np.abs(np.einsum("ij,ij->i", d, normal[keep]))
    intensity = np.clip(refl[own] * cos_inc + cfg.intensity_noise * rng.standard_normal(len(own)), 0.0, 1.0)
    points = np.concatenate([xyz, intensity[:, None]], axis=1).astype(np.float32)
    inst_of = np.array([p.instance for p in prims] + [STATIC_IDS["ground"]], dtype=np.int16)
    instance = inst_of[own]

    in_range = (t >= cfg.min_range_m) & (t <= cfg.max_range_m)
    visible = np.bincount(owner[in_range & (owner >= 0)], minlength=len(prims))
    returns = np.bincount(own[own >= 0], minlength=len(prims))
    objs = street.objects
    labels: list[KittiLabel] = []
    dontcare: list[KittiLabel] = []
    if objs:
        boxes = np.stack([o["box"] for o in objs])
        proj = lidar_boxes_to_labels(boxes, calib, [o["type"] for o in objs], image_size=IMAGE_SIZE)
        depth = calib.velo_to_rect(boxes[:, :3])[:, 2]
        for k, (o, lab) in enumerate(zip(objs, proj, strict=True)):
            pi = o.pop("prim")
            o.update(points=int(returns[pi]), rays_visible=int(visible[pi]), rays_alone=int(alone[pi]))
            ratio = visible[pi] / alone[pi] if alone[pi] else 0.0
            o["visible_ratio"] = float(ratio)
            o["in_view"] = bool(depth[k] > 0.0 and lab.truncated < 1.0
                                and math.hypot(boxes[k, 0], boxes[k, 1]) <= cfg.label_range_m)  # fmt: skip
            o["label"] = None
            if not o["in_view"] or not visible[pi]:  # out of view, or hidden behind others: no label
                continue
            if o["points"] >= cfg.min_points:
                lab.occluded = _occlusion(ratio)
                o["label"], o["occluded"], o["truncated"] = lab.type, lab.occluded, float(lab.truncated)
                labels.append(lab)
            else:
                o["label"] = "DontCare"
                dontcare.append(_dontcare(lab.bbox))
    street_info = {"road_half_width_m": street.road_half, "ego_y_m": street.ego_y, "street_yaw_rad": street.street_yaw,
                   "facade_front_m": {"left": street.front[1], "right": street.front[-1]},
                   "primitives": len(prims)}  # fmt: skip
    return {"points": points, "instance": instance, "labels": labels + dontcare, "objects": objs,
            "street": street_info}  # fmt: skip


def make_kitti_lidar(out: Path, cfg: KittiLidarSimConfig | None = None, seed: int = 0,
                     progress: Callable[[int, int], None] | None = None) -> dict[str, list[str]]:  # fmt: skip
    """Write ``cfg.frames`` frames under ``out`` in the KITTI object layout (``training/``, ``ImageSets/``) with
    the ground truth in ``gt/``; returns the frame ids per split (``train``, ``val``)."""
    cfg = cfg or KittiLidarSimConfig()
    cfg.validate()
    out = Path(out)
    writer = KittiObjectWriter(out, "training")
    calib = kitti_calib()
    caster = LidarCaster(cfg.beams, cfg.vertical_fov_deg, cfg.columns)
    ids = [f"{k:06d}" for k in range(cfg.frames)]
    gt: dict[str, dict] = {}
    counts = dict.fromkeys(CLASSES, 0)
    n_points = 0
    for k, fid in enumerate(ids):
        frame = simulate_frame(cfg, np.random.default_rng([seed, k]), calib, caster)
        writer.write_frame(fid, frame["points"], calib, frame["labels"])
        atomic_write_bytes(out / "gt" / "instance" / f"{fid}.bin", frame["instance"].astype("<i2").tobytes())
        gt[fid] = {"points": len(frame["points"]), "street": frame["street"], "objects": frame["objects"]}
        for lab in frame["labels"]:
            if lab.type in counts:
                counts[lab.type] += 1
        n_points += len(frame["points"])
        if progress is not None:
            progress(k + 1, cfg.frames)
    n_val = int(round(cfg.val_fraction * cfg.frames))
    if cfg.val_fraction > 0 and cfg.frames >= 2:
        n_val = max(n_val, 1)  # tiny runs still get a val frame
    split = {"train": ids[: cfg.frames - n_val], "val": ids[cfg.frames - n_val :]}
    writer.write_image_set("train", split["train"])
    writer.write_image_set("val", split["val"])
    atomic_write_json(out / "gt" / "objects.json", {
        "generator": "perception.sim.scenarios.kitti_lidar", "seed": seed, "config": asdict(cfg),
        "box_format": "LiDAR frame x y z (box centre) l w h yaw (counter-clockwise from +x)",
        "instance_ids": {"object": "index in objects (>= 0)", **STATIC_IDS}, "frames": gt})  # fmt: skip
    log.info("sim kitti-lidar: %d frames (%d train / %d val), %.0f points per frame, labels per frame: %s -> %s",
             cfg.frames, len(split["train"]), len(split["val"]), n_points / cfg.frames,
             ", ".join(f"{c} {v / cfg.frames:.1f}" for c, v in counts.items()), out)  # fmt: skip
    return split
