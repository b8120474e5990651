"""Smooth (C2) body trajectories with analytic derivatives, for simulating IMUs, odometry and LiDAR sweeps.

A :class:`SplineTrajectory` is a position curve and a yaw-pitch-roll curve, each a piecewise polynomial in
time (quintic or higher, so position, velocity, acceleration, rotation, angular velocity and angular
acceleration are all continuous). Everything a sensor needs is evaluated analytically from the polynomials:

* ``pose(t)`` -- ``T_world_body`` with ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (intrinsic z-y'-x'', as scipy's
  ``Rotation.from_euler("ZYX", [yaw, pitch, roll])``);
* ``velocity(t)``, ``acceleration(t)`` -- of the body origin, in the world frame;
* ``angular_velocity_body(t)``, ``angular_acceleration_body(t)`` -- ``R^T dR/dt = hat(omega_body)``.

The body frame is the vehicle's (ROS REP-103): x forward, y left, z up; the world is z-up, gravity along -z.
Yaw can follow the direction of travel exactly (``yaw_from_heading=True``: ``yaw = atan2(vy, vx)`` of the
position curve itself), which is how the ground-vehicle generator keeps the body aligned with its velocity.
Pitch must stay away from +-90 degrees (the yaw-pitch-roll singularity), which vehicles and drones do.

Time is int64 nanoseconds at the interface; the polynomials run in float seconds since the first knot.

Generators: :func:`unicycle_trajectory` (speed and yaw-rate profiles), :func:`ground_trajectory` (random
smooth planar drive within speed / yaw-rate bounds), :func:`aerial_trajectory` (random smooth 3D flight,
optional multirotor tilt), :func:`orbit_trajectory` (circle around a point, facing it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.integrate import cumulative_simpson
from scipy.interpolate import BPoly, make_interp_spline
from scipy.spatial.transform import Rotation

from perception.errors import InputError
from perception.geometry import SE3

__all__ = [
    "SplineTrajectory",
    "aerial_trajectory",
    "ground_trajectory",
    "orbit_trajectory",
    "uniform_stamps",
    "unicycle_trajectory",
]

_NS = 1_000_000_000
# Largest |pitch| accepted from control poses: beyond it the yaw-pitch-roll rates blow up.
_MAX_PITCH = np.deg2rad(85.0)

Profile = float | Callable[[np.ndarray], np.ndarray]


def uniform_stamps(start_ns: int, end_ns: int, rate_hz: float) -> np.ndarray:
    """Stamps ``start + round(k * 1e9 / rate)`` for every k that stays <= ``end_ns`` (int64)."""
    if not (np.isfinite(rate_hz) and rate_hz > 0):
        raise InputError(f"rate_hz: expected a positive number, got {rate_hz}")
    if end_ns < start_ns:
        raise InputError(f"end_ns ({end_ns}) is before start_ns ({start_ns})")
    n = int(np.floor((end_ns - start_ns) * rate_hz / _NS + 1e-9)) + 1
    stamps = start_ns + np.round(np.arange(n) * (_NS / rate_hz)).astype(np.int64)
    return stamps[stamps <= end_ns]


def _piecewise(tau: np.ndarray, values: np.ndarray, derivs: Sequence[Any], name: str):
    """Smooth piecewise polynomial through ``values`` (K, D) at ``tau``.

    ``derivs`` are the known derivatives at the knots, in order (first, second[, third]), or empty: with m of
    them the curve is the Hermite spline of degree 2m + 1 matching them (C^m); with none, an interpolating
    not-a-knot spline (quintic with >= 6 knots, C^4; cubic with 4-5 knots, C^2).
    """
    if derivs:
        arrs = [np.asarray(d, dtype=np.float64) for d in derivs]
        if any(a.shape != values.shape or not np.all(np.isfinite(a)) for a in arrs):
            raise InputError(f"{name}: derivative arrays must be finite with shape {values.shape}")
        return BPoly.from_derivatives(tau, np.stack([values, *arrs], axis=1))
    k = len(tau)
    if k < 4:
        raise InputError(
            f"{name}: an interpolating spline needs >= 4 knots (got {k}); or give the derivatives"
        )
    return make_interp_spline(tau, values, k=5 if k >= 6 else 3, axis=0)


def _derivs(name: str, *arrays: Any) -> list[Any]:
    """Leading non-None derivative arrays; a gap (e.g. jerks without accelerations) is an error."""
    out = []
    for i, a in enumerate(arrays):
        if a is None:
            if any(b is not None for b in arrays[i + 1 :]):
                raise InputError(f"{name}: higher derivatives given without the lower ones")
            break
        out.append(a)
    if len(out) == 1:
        raise InputError(f"{name}: give at least the first and second derivatives at the knots (C2), or none")
    return out


def _ypr_to_matrix(ypr: np.ndarray) -> np.ndarray:
    y, p, r = ypr[..., 0], ypr[..., 1], ypr[..., 2]
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    R = np.empty(ypr.shape[:-1] + (3, 3))
    R[..., 0, 0] = cy * cp
    R[..., 0, 1] = cy * sp * sr - sy * cr
    R[..., 0, 2] = cy * sp * cr + sy * sr
    R[..., 1, 0] = sy * cp
    R[..., 1, 1] = sy * sp * sr + cy * cr
    R[..., 1, 2] = sy * sp * cr - cy * sr
    R[..., 2, 0] = -sp
    R[..., 2, 1] = cp * sr
    R[..., 2, 2] = cp * cr
    return R


class SplineTrajectory:
    """C2 trajectory ``T_world_body(t)`` from knots (positions and yaw-pitch-roll) with analytic derivatives.

    Parameters
    ----------
    stamps_ns : (K,) strictly increasing knot times (int64 ns).
    positions : (K, 3) body origin in the world frame.
    ypr : (K, 3) yaw, pitch, roll (rad, ``R = Rz(yaw) Ry(pitch) Rx(roll)``), unwrapped; None -> level, yaw 0.
    velocities, accelerations, jerks : (K, 3) optional; with velocities and accelerations the position curve
        is the quintic Hermite spline matching them at every knot (C2), with jerks too the degree-7 one (C3);
        without them an interpolating not-a-knot quintic spline (C4).
    ypr_rates, ypr_accels : (K, 3) the same for the angles (quintic Hermite, C2).
    yaw_from_heading : yaw = ``atan2(vy, vx)`` of the position curve (the yaw column of ``ypr`` is ignored);
        the horizontal speed must stay > 0. The rotation is then one order less smooth than the position:
        give jerks (or no derivatives) for a continuous angular acceleration.
    """

    def __init__(
        self,
        stamps_ns: Any,
        positions: Any,
        ypr: Any = None,
        *,
        velocities: Any = None,
        accelerations: Any = None,
        jerks: Any = None,
        ypr_rates: Any = None,
        ypr_accels: Any = None,
        yaw_from_heading: bool = False,
    ) -> None:
        stamps = np.asarray(stamps_ns)
        if stamps.ndim != 1 or len(stamps) < 2 or not np.issubdtype(stamps.dtype, np.integer):
            raise InputError("stamps_ns: expected a 1-D int64 array of at least 2 knot times (ns)")
        stamps = stamps.astype(np.int64)
        if np.any(np.diff(stamps) <= 0):
            raise InputError("stamps_ns: knot times must be strictly increasing")
        K = len(stamps)
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (K, 3) or not np.all(np.isfinite(positions)):
            raise InputError(f"positions: expected finite values of shape ({K}, 3), got {positions.shape}")
        if ypr is None:
            ypr = np.zeros((K, 3))
        ypr = np.asarray(ypr, dtype=np.float64)
        if ypr.shape != (K, 3) or not np.all(np.isfinite(ypr)):
            raise InputError(f"ypr: expected finite yaw/pitch/roll of shape ({K}, 3), got {ypr.shape}")
        if np.any(np.abs(ypr[:, 1]) > _MAX_PITCH):
            raise InputError("ypr: |pitch| must stay below 85 degrees (yaw-pitch-roll singularity at 90)")
        self._t0 = int(stamps[0])
        self._t1 = int(stamps[-1])
        self._knots = stamps
        tau = (stamps - self._t0) * 1e-9
        pos = _piecewise(tau, positions, _derivs("positions", velocities, accelerations, jerks), "positions")
        ang = _piecewise(tau, ypr, _derivs("ypr", ypr_rates, ypr_accels), "ypr")
        # Derivatives 0..3 of position (the jerk for the heading yaw's second derivative), 0..2 of the angles.
        self._pos = [pos] + [pos.derivative(i) for i in range(1, 4)]
        self._ang = [ang, ang.derivative(1), ang.derivative(2)]
        self.yaw_from_heading = bool(yaw_from_heading)
        if self.yaw_from_heading:
            dense = np.linspace(tau[0], tau[-1], 20 * K + 1)
            if np.min(np.linalg.norm(self._pos[1](dense)[:, :2], axis=1)) < 1e-6:
                raise InputError("yaw_from_heading: the horizontal speed must stay > 0 along the trajectory")

    # -- constructors ---------------------------------------------------------------------------------------
    @classmethod
    def from_poses(cls, stamps_ns: Any, poses: SE3, *, yaw_from_heading: bool = False) -> SplineTrajectory:
        """Interpolating spline through control poses ``T_world_body`` (>= 4 of them; yaw/roll unwrapped)."""
        if not isinstance(poses, SE3) or poses.shape == ():
            raise InputError("poses: expected a batch of SE3 control poses T_world_body")
        ypr = Rotation.from_matrix(poses.R).as_euler("ZYX")
        ypr[:, 0] = np.unwrap(ypr[:, 0])
        ypr[:, 2] = np.unwrap(ypr[:, 2])
        return cls(stamps_ns, poses.t, ypr, yaw_from_heading=yaw_from_heading)

    @classmethod
    def stationary(cls, pose: SE3, start_ns: int, end_ns: int) -> SplineTrajectory:
        """A body at rest at ``pose`` between the two times."""
        ypr = Rotation.from_matrix(pose.R).as_euler("ZYX")
        zeros = np.zeros((2, 3))
        return cls(
            np.array([start_ns, end_ns], dtype=np.int64),
            np.stack([pose.t, pose.t]),
            np.stack([ypr, ypr]),
            velocities=zeros,
            accelerations=zeros,
            ypr_rates=zeros,
            ypr_accels=zeros,
        )

    # -- time -----------------------------------------------------------------------------------------------
    @property
    def start_ns(self) -> int:
        return self._t0

    @property
    def end_ns(self) -> int:
        return self._t1

    @property
    def duration_s(self) -> float:
        return (self._t1 - self._t0) * 1e-9

    @property
    def knots_ns(self) -> np.ndarray:
        return self._knots.copy()

    def stamps(self, rate_hz: float) -> np.ndarray:
        """Uniform stamps at ``rate_hz`` from the start to (at most) the end of the trajectory."""
        return uniform_stamps(self._t0, self._t1, rate_hz)

    def _tau(self, t_ns: Any) -> tuple[np.ndarray, bool]:
        t = np.asarray(t_ns)
        if t.ndim > 1 or not np.issubdtype(t.dtype, np.number):
            raise InputError("t_ns: expected a scalar or a 1-D array of times in nanoseconds")
        if t.size and (np.min(t) < self._t0 or np.max(t) > self._t1):
            raise InputError(
                f"t_ns: times must lie within the trajectory [{self._t0}, {self._t1}] ns "
                f"(got [{np.min(t)}, {np.max(t)}])"
            )
        if np.issubdtype(t.dtype, np.integer):
            tau = (t.astype(np.int64) - self._t0) * 1e-9
        else:
            tau = (t.astype(np.float64) - self._t0) * 1e-9
        scalar = t.ndim == 0
        return np.atleast_1d(tau), scalar

    @staticmethod
    def _out(a: np.ndarray, scalar: bool) -> np.ndarray:
        return a[0] if scalar else a

    # -- evaluation -----------------------------------------------------------------------------------------
    def _angles(self, tau: np.ndarray, order: int) -> list[np.ndarray]:
        """[ypr, ypr_dot, ypr_ddot][: order + 1], each (N, 3)."""
        out = [self._ang[i](tau) for i in range(order + 1)]
        if self.yaw_from_heading:
            v = self._pos[1](tau)
            vx, vy = v[:, 0], v[:, 1]
            out[0][:, 0] = np.arctan2(vy, vx)
            if order >= 1:
                a = self._pos[2](tau)
                ax, ay = a[:, 0], a[:, 1]
                s2 = vx * vx + vy * vy
                cross = vx * ay - vy * ax
                out[1][:, 0] = cross / s2
                if order >= 2:
                    j = self._pos[3](tau)
                    dcross = vx * j[:, 1] - vy * j[:, 0]
                    ds2 = 2.0 * (vx * ax + vy * ay)
                    out[2][:, 0] = dcross / s2 - cross * ds2 / (s2 * s2)
        return out

    def ypr(self, t_ns: Any) -> np.ndarray:
        """Yaw, pitch, roll (rad) at the given times, (N, 3) or (3,)."""
        tau, scalar = self._tau(t_ns)
        return self._out(self._angles(tau, 0)[0], scalar)

    def position(self, t_ns: Any) -> np.ndarray:
        tau, scalar = self._tau(t_ns)
        return self._out(self._pos[0](tau), scalar)

    def velocity(self, t_ns: Any) -> np.ndarray:
        """Linear velocity of the body origin in the world frame (m/s)."""
        tau, scalar = self._tau(t_ns)
        return self._out(self._pos[1](tau), scalar)

    def acceleration(self, t_ns: Any) -> np.ndarray:
        """Linear acceleration of the body origin in the world frame (m/s^2), gravity not included."""
        tau, scalar = self._tau(t_ns)
        return self._out(self._pos[2](tau), scalar)

    def rotation(self, t_ns: Any) -> np.ndarray:
        """``R_world_body`` (N, 3, 3) or (3, 3)."""
        tau, scalar = self._tau(t_ns)
        return self._out(_ypr_to_matrix(self._angles(tau, 0)[0]), scalar)

    def pose(self, t_ns: Any) -> SE3:
        """``T_world_body`` at the given times (SE3 of shape (N,), or () for a scalar time)."""
        tau, scalar = self._tau(t_ns)
        T = SE3(_ypr_to_matrix(self._angles(tau, 0)[0]), self._pos[0](tau))
        return T[0] if scalar else T

    def sample(self, stamps_ns: Any) -> tuple[np.ndarray, SE3]:
        """``(stamps, T_world_body)`` at the given stamps (int64 ns)."""
        stamps = np.atleast_1d(np.asarray(stamps_ns))
        if not np.issubdtype(stamps.dtype, np.integer):
            raise InputError("stamps_ns: expected integer nanoseconds")
        stamps = stamps.astype(np.int64)
        return stamps, self.pose(stamps)

    def angular_velocity_body(self, t_ns: Any) -> np.ndarray:
        """``omega`` with ``R^T dR/dt = hat(omega)`` (rad/s, body frame)."""
        tau, scalar = self._tau(t_ns)
        (y, p, r), (yd, pd, rd) = (a.T for a in self._angles(tau, 1))
        sp, cp, sr, cr = np.sin(p), np.cos(p), np.sin(r), np.cos(r)
        w = np.stack([rd - yd * sp, pd * cr + yd * cp * sr, -pd * sr + yd * cp * cr], axis=-1)
        return self._out(w, scalar)

    def angular_velocity_world(self, t_ns: Any) -> np.ndarray:
        """``omega`` with ``dR/dt R^T = hat(omega)`` (rad/s, world frame)."""
        w_b = self.angular_velocity_body(t_ns)
        return np.einsum("...ij,...j->...i", self.rotation(t_ns), w_b)

    def angular_acceleration_body(self, t_ns: Any) -> np.ndarray:
        """Time derivative of :meth:`angular_velocity_body` (rad/s^2)."""
        tau, scalar = self._tau(t_ns)
        (y, p, r), (yd, pd, rd), (ydd, pdd, rdd) = (a.T for a in self._angles(tau, 2))
        sp, cp, sr, cr = np.sin(p), np.cos(p), np.sin(r), np.cos(r)
        a0 = rdd - ydd * sp - yd * pd * cp
        a1 = pdd * cr - pd * rd * sr + ydd * cp * sr - yd * pd * sp * sr + yd * rd * cp * cr
        a2 = -pdd * sr - pd * rd * cr + ydd * cp * cr - yd * pd * sp * cr - yd * rd * cp * sr
        return self._out(np.stack([a0, a1, a2], axis=-1), scalar)

    def __repr__(self) -> str:
        return (
            f"SplineTrajectory(start_ns={self._t0}, duration_s={self.duration_s:.3f}, "
            f"knots={len(self._knots)}, yaw_from_heading={self.yaw_from_heading})"
        )


# -- generators ---------------------------------------------------------------------------------------------
def _profile(f: Profile, t: np.ndarray, name: str) -> np.ndarray:
    if callable(f):
        v = np.asarray(f(t), dtype=np.float64)
        if v.shape != t.shape:
            raise InputError(
                f"{name}: the profile must return one value per time (shape {t.shape}), got {v.shape}"
            )
    else:
        v = np.full(t.shape, float(f))
    if not np.all(np.isfinite(v)):
        raise InputError(f"{name}: the profile returned non-finite values")
    return v


def _profile_derivatives(f: Profile, t: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """First and second time derivatives of a profile (analytic for :class:`_SmoothProfile`, else central
    differences with h = 1 ms, accurate to ~1e-7 relative for smooth profiles)."""
    if isinstance(f, _SmoothProfile):
        return f.derivatives(t)
    if not callable(f):
        return np.zeros_like(t), np.zeros_like(t)
    h = 1e-3
    fp, f0, fm = _profile(f, t + h, name), _profile(f, t, name), _profile(f, t - h, name)
    return (fp - fm) / (2 * h), (fp - 2 * f0 + fm) / (h * h)


class _SmoothProfile:
    """``mid + amp * sin(1.5 g(t))`` for a smooth random spline g: stays within ``mid +- amp``."""

    def __init__(self, mid: float, amp: float, g: Any) -> None:
        self.mid, self.amp, self.g = mid, amp, g
        self.g1, self.g2 = g.derivative(1), g.derivative(2)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return self.mid + self.amp * np.sin(1.5 * self.g(t))

    def derivatives(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, x1, x2 = 1.5 * self.g(t), 1.5 * self.g1(t), 1.5 * self.g2(t)
        return self.amp * np.cos(x) * x1, self.amp * (np.cos(x) * x2 - np.sin(x) * x1 * x1)


def _knot_grid(duration_s: float, knot_spacing_s: float) -> np.ndarray:
    if not (np.isfinite(duration_s) and duration_s > 0):
        raise InputError(f"duration_s: expected a positive duration, got {duration_s}")
    if not (np.isfinite(knot_spacing_s) and knot_spacing_s > 0):
        raise InputError(f"knot_spacing_s: expected a positive spacing, got {knot_spacing_s}")
    n = max(int(np.ceil(duration_s / knot_spacing_s)), 1)
    return np.linspace(0.0, duration_s, n + 1)


def _stamps_from_tau(start_ns: int, tau: np.ndarray) -> np.ndarray:
    return int(start_ns) + np.round(tau * _NS).astype(np.int64)


def _planar_knots(
    tau: np.ndarray,
    speed: Profile,
    yaw_rate: Profile,
    start_xy: np.ndarray,
    start_yaw: float,
    substeps: int = 32,
) -> tuple[np.ndarray, ...]:
    """Unicycle states at the knots: xy position, velocity, acceleration and jerk (each (K, 2))."""
    fine = np.linspace(tau[0], tau[-1], (len(tau) - 1) * substeps + 1)
    s = _profile(speed, fine, "speed")
    w = _profile(yaw_rate, fine, "yaw_rate")
    yaw = start_yaw + cumulative_simpson(w, x=fine, initial=0.0)
    vel = s[:, None] * np.stack([np.cos(yaw), np.sin(yaw)], axis=-1)
    xy = start_xy + cumulative_simpson(vel, x=fine, axis=0, initial=0.0)
    sel = slice(None, None, substeps)
    yaw_k, s_k, w_k = yaw[sel], s[sel], w[sel]
    s1, s2 = _profile_derivatives(speed, tau, "speed")
    w1, _ = _profile_derivatives(yaw_rate, tau, "yaw_rate")
    u = np.stack([np.cos(yaw_k), np.sin(yaw_k)], axis=-1)
    u_perp = np.stack([-np.sin(yaw_k), np.cos(yaw_k)], axis=-1)
    # v = s u, du/dt = w u_perp, du_perp/dt = -w u
    v_k = s_k[:, None] * u
    a_k = s1[:, None] * u + (s_k * w_k)[:, None] * u_perp
    j_k = (s2 - s_k * w_k * w_k)[:, None] * u + (2 * s1 * w_k + s_k * w1)[:, None] * u_perp
    return xy[sel], v_k, a_k, j_k


def unicycle_trajectory(
    duration_s: float,
    speed: Profile,
    yaw_rate: Profile = 0.0,
    *,
    start_ns: int = 0,
    start_position: Sequence[float] = (0.0, 0.0, 0.0),
    start_yaw: float = 0.0,
    knot_spacing_s: float = 0.2,
) -> SplineTrajectory:
    """Planar drive from a speed profile (m/s, > 0) and a yaw-rate profile (rad/s), constant height.

    ``speed`` and ``yaw_rate`` are numbers or vectorised functions of the time in seconds since the start. The
    unicycle is integrated finely and its states (position, velocity, acceleration) at knots every
    ``knot_spacing_s`` define a Hermite spline (degree 7, C3); yaw follows the spline's velocity exactly, roll
    and pitch are zero. E.g. "20 s at 1 m/s, straight, then a 90 degree turn at 0.3 rad/s" is a speed of
    1.0 and a (smoothed) yaw-rate step.
    """
    tau = _knot_grid(duration_s, knot_spacing_s)
    p0 = np.asarray(start_position, dtype=np.float64)
    if p0.shape != (3,):
        raise InputError(f"start_position: expected 3 numbers, got shape {p0.shape}")
    if np.min(_profile(speed, np.linspace(0.0, duration_s, 1001), "speed")) <= 0:
        raise InputError("speed: the speed profile must stay > 0 (the yaw follows the direction of travel)")
    xy, vxy, axy, jxy = _planar_knots(tau, speed, yaw_rate, p0[:2], float(start_yaw))
    K = len(tau)
    pos = np.column_stack([xy, np.full(K, p0[2])])
    vel = np.column_stack([vxy, np.zeros(K)])
    acc = np.column_stack([axy, np.zeros(K)])
    jerk = np.column_stack([jxy, np.zeros(K)])
    zeros = np.zeros((K, 3))
    return SplineTrajectory(
        _stamps_from_tau(start_ns, tau),
        pos,
        zeros,
        velocities=vel,
        accelerations=acc,
        jerks=jerk,
        ypr_rates=zeros,
        ypr_accels=zeros,
        yaw_from_heading=True,
    )


def _smooth_unit(rng: np.random.Generator, duration_s: float, correlation_s: float) -> Callable:
    """A random smooth function of time (a cubic spline through N(0,1) values every ``correlation_s``)."""
    n = max(int(np.ceil(duration_s / correlation_s)), 1) + 5
    x = np.linspace(-correlation_s, duration_s + correlation_s, n)
    return make_interp_spline(x, rng.normal(size=n), k=5)


def _bounded(
    rng: np.random.Generator, lo: float, hi: float, duration_s: float, correlation_s: float
) -> Profile:
    """Random smooth profile strictly inside [lo, hi] (5 % margin): ``mid + 0.95 half sin(g(t))``."""
    if lo == hi:
        return float(lo)
    return _SmoothProfile(
        0.5 * (lo + hi), 0.95 * 0.5 * (hi - lo), _smooth_unit(rng, duration_s, correlation_s)
    )


def _speed_range(speed: float | tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(speed), float(speed)) if np.isscalar(speed) else (float(speed[0]), float(speed[1]))
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
        raise InputError(
            f"speed: expected a positive number or a (min, max) range with 0 < min <= max, got {speed}"
        )
    return lo, hi


def ground_trajectory(
    rng: np.random.Generator,
    duration_s: float,
    speed: float | tuple[float, float] = (0.5, 1.5),
    *,
    max_yaw_rate: float = 0.4,
    z: float = 0.0,
    start_xy: Sequence[float] = (0.0, 0.0),
    start_yaw: float | None = None,
    start_ns: int = 0,
    correlation_s: float = 3.0,
    knot_spacing_s: float = 0.2,
) -> SplineTrajectory:
    """Random smooth planar drive: speed within ``speed`` (a number or (min, max)), |yaw rate| <=
    ``max_yaw_rate``, constant height ``z``, zero roll and pitch, yaw along the velocity (see
    :func:`unicycle_trajectory`)."""
    lo, hi = _speed_range(speed)
    if not (np.isfinite(max_yaw_rate) and max_yaw_rate >= 0):
        raise InputError(f"max_yaw_rate: expected a number >= 0, got {max_yaw_rate}")
    if start_yaw is None:
        start_yaw = float(rng.uniform(-np.pi, np.pi))
    speed_fn = _bounded(rng, lo, hi, duration_s, correlation_s)
    yaw_rate_fn = _bounded(rng, -max_yaw_rate, max_yaw_rate, duration_s, correlation_s)
    return unicycle_trajectory(
        duration_s,
        speed_fn,
        yaw_rate_fn,
        start_ns=start_ns,
        start_position=(float(start_xy[0]), float(start_xy[1]), float(z)),
        start_yaw=start_yaw,
        knot_spacing_s=knot_spacing_s,
    )


def aerial_trajectory(
    rng: np.random.Generator,
    duration_s: float,
    altitude: float = 12.0,
    *,
    speed: float | tuple[float, float] = (1.0, 3.0),
    max_yaw_rate: float = 0.3,
    altitude_amplitude: float = 1.0,
    banking: bool = True,
    gravity: float = 9.81,
    start_xy: Sequence[float] = (0.0, 0.0),
    start_yaw: float | None = None,
    start_ns: int = 0,
    correlation_s: float = 4.0,
    knot_spacing_s: float = 0.2,
) -> SplineTrajectory:
    """Random smooth 3D flight: horizontal speed within ``speed``, height ``altitude +- altitude_amplitude``,
    yaw along the horizontal velocity.

    With ``banking`` the body tilts like a multirotor: its z axis follows the thrust direction ``a + g e_z``
    (roll and pitch from that direction at the knots, splined); without it the body stays level.
    """
    lo, hi = _speed_range(speed)
    if start_yaw is None:
        start_yaw = float(rng.uniform(-np.pi, np.pi))
    speed_fn = _bounded(rng, lo, hi, duration_s, correlation_s)
    yaw_rate_fn = _bounded(rng, -max_yaw_rate, max_yaw_rate, duration_s, correlation_s)
    h = _smooth_unit(rng, duration_s, correlation_s)
    tau = _knot_grid(duration_s, knot_spacing_s)
    if len(tau) < 6:
        raise InputError("duration_s: too short for the knot spacing (need >= 6 knots)")
    xy, vxy, axy, jxy = _planar_knots(
        tau, speed_fn, yaw_rate_fn, np.asarray(start_xy, dtype=np.float64), start_yaw
    )
    # z = altitude + A sin(h(t)) with exact derivatives.
    A = float(altitude_amplitude)
    h0, h1, h2, h3 = (h.derivative(i)(tau) if i else h(tau) for i in range(4))
    sh, ch = np.sin(h0), np.cos(h0)
    z = altitude + A * sh
    z1 = A * ch * h1
    z2 = A * (ch * h2 - sh * h1 * h1)
    z3 = A * (ch * (h3 - h1**3) - 3 * sh * h1 * h2)
    pos = np.column_stack([xy, z])
    vel = np.column_stack([vxy, z1])
    acc = np.column_stack([axy, z2])
    jerk = np.column_stack([jxy, z3])
    ypr = np.zeros((len(tau), 3))
    if banking:
        yaw = np.arctan2(vxy[:, 1], vxy[:, 0])
        f = acc + np.array([0.0, 0.0, gravity])
        c, s = np.cos(yaw), np.sin(yaw)
        f1 = c * f[:, 0] + s * f[:, 1]  # thrust direction in the yaw-aligned frame
        f2 = -s * f[:, 0] + c * f[:, 1]
        ypr[:, 1] = np.arctan2(f1, f[:, 2])
        ypr[:, 2] = np.arctan2(-f2, np.hypot(f1, f[:, 2]))
    return SplineTrajectory(
        _stamps_from_tau(start_ns, tau),
        pos,
        ypr,
        velocities=vel,
        accelerations=acc,
        jerks=jerk,
        yaw_from_heading=True,
    )


def orbit_trajectory(
    center: Sequence[float],
    radius: float,
    duration_s: float,
    *,
    height: float = 0.0,
    angular_speed: float = 0.3,
    start_angle: float = 0.0,
    face_center: bool = True,
    start_ns: int = 0,
    knot_spacing_s: float = 0.1,
) -> SplineTrajectory:
    """Circle of ``radius`` around ``center``, ``height`` above it, at ``angular_speed`` rad/s (sign: sense).

    With ``face_center`` the body x axis points at the centre (pitched down towards it when ``height > 0``);
    otherwise it points along the direction of travel. Knots carry the exact circle's derivatives.
    """
    c = np.asarray(center, dtype=np.float64)
    if c.shape != (3,):
        raise InputError(f"center: expected 3 numbers, got shape {c.shape}")
    if not (np.isfinite(radius) and radius > 0):
        raise InputError(f"radius: expected a positive number, got {radius}")
    if angular_speed == 0:
        raise InputError("angular_speed: must be non-zero")
    tau = _knot_grid(duration_s, knot_spacing_s)
    W = float(angular_speed)
    th = start_angle + W * tau
    cs, sn = np.cos(th), np.sin(th)
    K = len(tau)
    pos = c + np.column_stack([radius * cs, radius * sn, np.full(K, height)])
    vel = radius * W * np.column_stack([-sn, cs, np.zeros(K)])
    acc = -radius * W * W * np.column_stack([cs, sn, np.zeros(K)])
    jerk = radius * W**3 * np.column_stack([sn, -cs, np.zeros(K)])
    ypr = np.zeros((K, 3))
    rates = np.zeros((K, 3))
    if face_center:
        ypr[:, 0] = th + np.pi
        ypr[:, 1] = np.arctan2(height, radius)
    else:
        ypr[:, 0] = th + np.sign(W) * 0.5 * np.pi
    rates[:, 0] = W
    return SplineTrajectory(
        _stamps_from_tau(start_ns, tau),
        pos,
        ypr,
        velocities=vel,
        accelerations=acc,
        jerks=jerk,
        ypr_rates=rates,
        ypr_accels=np.zeros((K, 3)),
    )
