"""Spinning multi-beam LiDAR (Velodyne-like) ray-cast against a :class:`~perception.sim.world.World`.

Sensor frame: x forward, y left, z up. Beam ``b`` has elevation ``el_b``; column ``j`` of a sweep has
azimuth ``az_j = azimuth_offset + 2 pi j / C`` (counter-clockwise seen from above, C columns per turn) and
fires all beams at ``t_start + round(j * P / C)`` (``P = 1 / rate``). Each column is cast from the sensor pose
*at its own time* along the trajectory, so a moving sensor produces motion-distorted sweeps, as real ones do.

A :class:`LidarScan` is stamped at the sweep end ``t_start + P`` (as LIO pipelines stamp it). Its points are
either the raw measurements -- each in the sensor frame at its own firing time, i.e. distorted when moving
(``deskew=False``, what a driver delivers) -- or de-skewed with the true trajectory into the sensor frame at
the sweep end (``deskew=True``). ``time_offset_ns`` (from ``t_start_ns``) lets a LIO de-skew raw points.

Intensity is ``reflectivity * cos(incidence)`` (Lambertian) with the hit mesh's reflectivity; returns with a
measured range outside ``[min_range, max_range]`` are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from perception.errors import InputError
from perception.geometry import SE3

from .trajectories import SplineTrajectory
from .world import World

__all__ = ["LidarScan", "SpinningLidar"]

_NS = 1_000_000_000


@dataclass
class LidarScan:
    """One sweep. Per-point arrays are ordered by column (firing time), then by ring."""

    points: np.ndarray  # (N, 3) sensor frame (raw: at each point's firing time; deskewed: at t_end_ns)
    intensity: np.ndarray  # (N,) in [0, 1]
    ring: np.ndarray  # (N,) int32 beam index, 0 = lowest elevation
    column: np.ndarray  # (N,) int32 firing column
    time_offset_ns: np.ndarray  # (N,) int64 firing time minus t_start_ns
    range: np.ndarray  # (N,) measured range (m)
    instance_id: np.ndarray  # (N,) int32 world instance hit
    semantic_id: np.ndarray  # (N,) int32
    points_world: np.ndarray  # (N, 3) true (noise-free) hit points in the world frame
    t_start_ns: int
    t_end_ns: int
    deskewed: bool

    @property
    def stamp_ns(self) -> int:
        """The scan's stamp: the sweep end."""
        return self.t_end_ns

    def __len__(self) -> int:
        return len(self.points)


@dataclass
class SpinningLidar:
    """Spinning LiDAR model (defaults: a Velodyne HDL-32E at 10 Hz, 0.2 degree azimuth steps).

    Parameters
    ----------
    beams : number of beams, evenly spread over ``vertical_fov_deg`` (unless ``elevations_deg`` is given).
    vertical_fov_deg : (lowest, highest) beam elevation in degrees.
    elevations_deg : explicit beam elevations (overrides ``beams`` and ``vertical_fov_deg``).
    horizontal_resolution_deg : azimuth step; ``round(360 / step)`` columns per sweep.
    rate_hz : sweeps per second.
    min_range, max_range : returns outside are dropped (m).
    range_noise_std : Gaussian noise on the range (m); needs ``rng`` in :meth:`scan` when > 0.
    intensity_noise_std : Gaussian noise on the intensity (clipped to [0, 1]).
    azimuth_offset_deg : azimuth of the first column.
    """

    beams: int = 32
    vertical_fov_deg: tuple[float, float] = (-30.67, 10.67)
    elevations_deg: Sequence[float] | None = None
    horizontal_resolution_deg: float = 0.2
    rate_hz: float = 10.0
    min_range: float = 0.3
    max_range: float = 100.0
    range_noise_std: float = 0.0
    intensity_noise_std: float = 0.0
    azimuth_offset_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.elevations_deg is not None:
            el = np.asarray(self.elevations_deg, dtype=np.float64).reshape(-1)
            if len(el) < 1 or not np.all(np.isfinite(el)) or np.any(np.abs(el) >= 90):
                raise InputError("elevations_deg: expected finite beam elevations in (-90, 90) degrees")
            self.beams = len(el)
        else:
            if int(self.beams) < 1:
                raise InputError(f"beams: expected >= 1, got {self.beams}")
            lo, hi = (float(x) for x in self.vertical_fov_deg)
            if not (-90 < lo <= hi < 90):
                raise InputError(
                    f"vertical_fov_deg: expected (low, high) within (-90, 90), got {self.vertical_fov_deg}"
                )
            el = np.linspace(lo, hi, int(self.beams)) if self.beams > 1 else np.array([0.5 * (lo + hi)])
        self._elev = np.deg2rad(np.sort(el))
        res = float(self.horizontal_resolution_deg)
        if not (np.isfinite(res) and 0 < res <= 360):
            raise InputError(f"horizontal_resolution_deg: expected a step in (0, 360], got {res}")
        self._cols = max(int(round(360.0 / res)), 1)
        if not (np.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise InputError(f"rate_hz: expected a positive number, got {self.rate_hz}")
        if not (0 <= self.min_range < self.max_range):
            raise InputError(
                f"min_range/max_range: expected 0 <= min < max, got {self.min_range}, {self.max_range}"
            )
        for name in ("range_noise_std", "intensity_noise_std"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise InputError(f"{name}: expected a finite number >= 0, got {v}")

    # -- geometry -------------------------------------------------------------------------------------------
    @property
    def elevations_rad(self) -> np.ndarray:
        """Beam elevations (B,), ascending (index = ring)."""
        return self._elev.copy()

    @property
    def columns(self) -> int:
        return self._cols

    @property
    def azimuths_rad(self) -> np.ndarray:
        return np.deg2rad(self.azimuth_offset_deg) + 2 * np.pi * np.arange(self._cols) / self._cols

    @property
    def period_ns(self) -> int:
        return round(_NS / self.rate_hz)

    def column_offsets_ns(self) -> np.ndarray:
        """Firing time of each column relative to the sweep start (C,) int64."""
        return np.round(np.arange(self._cols) * (self.period_ns / self._cols)).astype(np.int64)

    def directions(self) -> np.ndarray:
        """Unit beam directions in the sensor frame, (C, B, 3)."""
        az = self.azimuths_rad[:, None]
        el = self._elev[None, :]
        return np.stack(
            np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), axis=-1
        )

    def sweep_starts(self, traj: SplineTrajectory) -> np.ndarray:
        """Starts of all complete consecutive sweeps within the trajectory (int64 ns)."""
        P = self.period_ns
        n = (traj.end_ns - traj.start_ns) // P
        return traj.start_ns + P * np.arange(n, dtype=np.int64)

    # -- scanning -------------------------------------------------------------------------------------------
    def scan(
        self,
        world: World,
        traj: SplineTrajectory,
        t_start_ns: int,
        T_body_lidar: SE3 | None = None,
        *,
        rng: np.random.Generator | None = None,
        deskew: bool = False,
    ) -> LidarScan:
        """One sweep from ``t_start_ns`` to ``t_start_ns + period`` (which must lie within the trajectory)."""
        if not isinstance(world, World):
            raise InputError("world: expected a perception.sim.world.World")
        if not isinstance(traj, SplineTrajectory):
            raise InputError("traj: expected a SplineTrajectory")
        t0 = int(t_start_ns)
        t_end = t0 + self.period_ns
        if t0 < traj.start_ns or t_end > traj.end_ns:
            raise InputError(
                f"t_start_ns: the sweep [{t0}, {t_end}] ns must lie within the trajectory "
                f"[{traj.start_ns}, {traj.end_ns}] ns"
            )
        if T_body_lidar is None:
            T_body_lidar = SE3.identity()
        elif not isinstance(T_body_lidar, SE3) or T_body_lidar.shape != ():
            raise InputError("T_body_lidar: expected a single SE3")
        noisy = self.range_noise_std > 0 or self.intensity_noise_std > 0
        if noisy and rng is None:
            raise InputError("rng: a numpy Generator is required when the range or intensity noise is > 0")

        B = len(self._elev)
        offsets = self.column_offsets_ns()
        T_wl = traj.pose(t0 + offsets) @ T_body_lidar  # (C,) sensor pose at each column's firing time
        d_local = self.directions()  # (C, B, 3)
        d_world = np.einsum("cij,cbj->cbi", T_wl.R, d_local).reshape(-1, 3)
        origins = np.repeat(T_wl.t, B, axis=0)
        hits = world.raycast(origins, d_world)

        rng_true = hits.t
        r_meas = rng_true.copy()
        if self.range_noise_std > 0:
            r_meas = r_meas + self.range_noise_std * rng.standard_normal(len(r_meas))
        keep = hits.hit & (r_meas >= self.min_range) & (r_meas <= self.max_range) & (r_meas > 0)
        idx = np.flatnonzero(keep)
        col = (idx // B).astype(np.int32)
        ring = (idx % B).astype(np.int32)
        r = r_meas[idx]
        dl = d_local.reshape(-1, 3)[idx]
        pts = dl * r[:, None]
        if deskew:
            T_end = (traj.pose(t_end) @ T_body_lidar).inverse()
            T_end_col = T_end @ T_wl  # (C,) firing-time sensor frame -> sweep-end sensor frame
            pts = np.einsum("nij,nj->ni", T_end_col.R[col], pts) + T_end_col.t[col]

        cos_inc = np.abs(np.einsum("ij,ij->i", d_world[idx], hits.normal[idx]))
        intensity = hits.reflectivity[idx] * cos_inc
        if self.intensity_noise_std > 0:
            intensity = intensity + self.intensity_noise_std * rng.standard_normal(len(intensity))
        intensity = np.clip(intensity, 0.0, 1.0)
        return LidarScan(
            points=pts,
            intensity=intensity,
            ring=ring,
            column=col,
            time_offset_ns=offsets[col],
            range=r,
            instance_id=hits.instance_id[idx].astype(np.int32),
            semantic_id=hits.semantic_id[idx].astype(np.int32),
            points_world=hits.point[idx],
            t_start_ns=t0,
            t_end_ns=t_end,
            deskewed=bool(deskew),
        )
