"""Timestamped pose trajectories with interpolation of body poses and sensor extrinsics.

A :class:`Trajectory` holds strictly increasing int64 nanosecond stamps and a batch of ``T_world_body`` poses
(body-to-world, see the conventions in :mod:`perception.geometry`).

Sensor poses are obtained with :meth:`Trajectory.T_world_body_at`: the BODY poses are interpolated first
(SE(3) geodesic by default) and the fixed extrinsic ``T_body_sensor`` is composed afterwards,
``T_world_sensor(t) = interp(T_world_body)(t + time_offset_ns) @ T_body_sensor``.
Interpolating already-composed sensor poses would not be equivalent for the decoupled scheme.

Time-offset convention: a sensor stamp ``t_sensor`` corresponds to body (trajectory) time
``t_body = t_sensor + time_offset_ns``. A camera whose clock runs 10 ms behind the trajectory clock
therefore has ``time_offset_ns = +10_000_000``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from perception.geometry import SE3, interpolate_decoupled, interpolate_geodesic

logger = logging.getLogger(__name__)

#: Default largest allowed spacing between the two samples bracketing a query (0.5 s).
DEFAULT_MAX_GAP_NS = 500_000_000

_ROT_TOL = 1e-5  # max |R^T R - I| entry accepted as a rotation matrix


def format_ns(ns: int) -> str:
    """Exact decimal seconds with 9 digits for an integer nanosecond stamp (e.g. ``-1500000000 ->
    '-1.500000000'``)."""
    ns = int(ns)
    sign = "-" if ns < 0 else ""
    sec, frac = divmod(abs(ns), 1_000_000_000)
    return f"{sign}{sec}.{frac:09d}"


def seconds_to_ns(stamps_s: np.ndarray | float) -> np.ndarray:
    """Float seconds -> int64 nanoseconds, rounding the float value to the nearest ns.

    Integer and fractional seconds are converted separately, so no precision is lost beyond what the
    float64 input itself carries (about 0.2 us at Unix-epoch magnitudes). Parse text stamps with the io
    readers instead, which are exact to the nanosecond.
    """
    s = np.asarray(stamps_s, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        bad = int(np.flatnonzero(~np.isfinite(s.ravel()))[0])
        raise ValueError(f"stamps: non-finite timestamp at index {bad}")
    whole = np.floor(s)
    frac_ns = np.round((s - whole) * 1e9).astype(np.int64)
    return whole.astype(np.int64) * 1_000_000_000 + frac_ns


def ns_to_seconds(stamps_ns: np.ndarray | int) -> np.ndarray:
    """int64 nanoseconds -> float64 seconds (whole and fractional parts converted separately)."""
    ns = np.asarray(stamps_ns, dtype=np.int64)
    whole, frac = np.divmod(ns, 1_000_000_000)
    return whole.astype(np.float64) + frac.astype(np.float64) * 1e-9


def first_nonfinite_row(a: np.ndarray) -> int | None:
    """Index along axis 0 of the first row holding NaN/inf, or None."""
    a = np.asarray(a, dtype=np.float64)
    bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
    return int(np.flatnonzero(bad)[0]) if bad.any() else None


def project_to_rotations(
    R: np.ndarray, tol: float = 1e-2, what: str = "rotations", where: Sequence[str] | None = None
) -> np.ndarray:
    """Nearest rotation matrices (SVD) for (N,3,3) nearly-orthonormal input (e.g. 6-digit KITTI files).

    Raises ValueError for the first matrix further than ``tol`` (max entry of |R^T R - I|) from a rotation
    or with a non-positive determinant, naming it ``{what}[i]`` or ``where[i]`` (e.g. ``"file:line"``).
    """
    R = np.asarray(R, dtype=np.float64)
    err = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(axis=(-2, -1))
    det = np.linalg.det(R)
    bad = (err > tol) | (det <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        name = where[i] if where is not None else f"{what}[{i}]"
        raise ValueError(f"{name}: not a rotation matrix (max |R^T R - I| = {err[i]:.3g}, det = {det[i]:.3g})")
    U, _, Vt = np.linalg.svd(R)
    return U @ Vt


def _as_se3(T: SE3 | np.ndarray, name: str) -> SE3:
    if isinstance(T, SE3):
        return T
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"{name}: expected an SE3 or a 4x4 matrix, got an array of shape {T.shape}")
    return SE3.from_matrix(T)


def _as_int_ns(t: np.ndarray | int, name: str) -> np.ndarray:
    a = np.asarray(t)
    if a.dtype.kind not in "iu":
        raise ValueError(
            f"{name}: expected integer nanoseconds, got dtype {a.dtype} "
            "(convert seconds with slam.trajectory.seconds_to_ns)"
        )
    return a.astype(np.int64)


@dataclass(frozen=True, eq=False, repr=False)
class Trajectory:
    """Timestamped body poses ``T_world_body`` (body-to-world).

    Attributes
    ----------
    stamps_ns : (N,) int64, strictly increasing nanoseconds.
    poses : batched SE3 of shape (N,).
    frame_id : name of the world frame (optional).
    child_frame_id : name of the body frame (optional).
    """

    stamps_ns: np.ndarray
    poses: SE3
    frame_id: str | None = None
    child_frame_id: str | None = None

    def __post_init__(self) -> None:
        stamps = _as_int_ns(self.stamps_ns, "stamps_ns")
        if stamps.ndim != 1:
            raise ValueError(f"stamps_ns: expected a 1-D array, got shape {stamps.shape}")
        if stamps.size == 0:
            raise ValueError("stamps_ns: a trajectory needs at least one pose")
        if not isinstance(self.poses, SE3):
            raise ValueError(f"poses: expected a batched perception.geometry.SE3, got {type(self.poses).__name__}")
        R = np.asarray(self.poses.R, dtype=np.float64)
        t = np.asarray(self.poses.t, dtype=np.float64)
        if R.shape != (stamps.size, 3, 3) or t.shape != (stamps.size, 3):
            raise ValueError(
                f"poses: expected batch shape ({stamps.size},) to match stamps_ns, got R {R.shape} and t {t.shape}"
            )
        bad = first_nonfinite_row(np.concatenate([R.reshape(-1, 9), t], axis=1))
        if bad is not None:
            raise ValueError(f"poses: non-finite (NaN/inf) pose at index {bad} (t = {format_ns(stamps[bad])} s)")
        err = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(axis=(-2, -1))
        bad_rot = (err > _ROT_TOL) | (np.linalg.det(R) <= 0)
        if bad_rot.any():
            i = int(np.flatnonzero(bad_rot)[0])
            raise ValueError(f"poses: R at index {i} is not a rotation matrix (max |R^T R - I| = {err[i]:.3g})")
        d = np.diff(stamps)
        if (d <= 0).any():
            i = int(np.flatnonzero(d <= 0)[0]) + 1
            raise ValueError(
                f"stamps_ns: timestamps must be strictly increasing; index {i} ({format_ns(stamps[i])} s) "
                f"is not after index {i - 1} ({format_ns(stamps[i - 1])} s)"
            )
        object.__setattr__(self, "stamps_ns", stamps)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        stamps: np.ndarray,
        positions: np.ndarray | None = None,
        quats_xyzw: np.ndarray | None = None,
        *,
        rotations: np.ndarray | None = None,
        matrices: np.ndarray | None = None,
        stamps_unit: Literal["ns", "s"] = "ns",
        frame_id: str | None = None,
        child_frame_id: str | None = None,
    ) -> Trajectory:
        """Build from arrays: ``positions`` (N,3) with ``quats_xyzw`` (N,4) or ``rotations`` (N,3,3), or
        ``matrices`` (N,4,4). ``stamps`` are int ns (``stamps_unit="ns"``) or float seconds (``"s"``).
        Quaternions are normalised (zero-norm ones are refused)."""
        if stamps_unit == "s":
            stamps_ns = seconds_to_ns(stamps)
        elif stamps_unit == "ns":
            stamps_ns = _as_int_ns(stamps, "stamps")
        else:
            raise ValueError(f"stamps_unit: expected 'ns' or 's', got {stamps_unit!r}")
        if matrices is not None:
            if positions is not None or quats_xyzw is not None or rotations is not None:
                raise ValueError("from_arrays: pass either matrices or positions with quats_xyzw/rotations")
            M = np.asarray(matrices, dtype=np.float64)
            if M.ndim != 3 or M.shape[1:] != (4, 4):
                raise ValueError(f"matrices: expected shape (N,4,4), got {M.shape}")
            R, t = M[:, :3, :3], M[:, :3, 3]
        else:
            if positions is None or (quats_xyzw is None) == (rotations is None):
                raise ValueError("from_arrays: pass positions together with exactly one of quats_xyzw / rotations")
            t = np.asarray(positions, dtype=np.float64)
            if t.ndim != 2 or t.shape[1] != 3:
                raise ValueError(f"positions: expected shape (N,3), got {t.shape}")
            if quats_xyzw is not None:
                q = np.asarray(quats_xyzw, dtype=np.float64)
                if q.ndim != 2 or q.shape[1] != 4:
                    raise ValueError(f"quats_xyzw: expected shape (N,4), got {q.shape}")
                bad = first_nonfinite_row(q)
                if bad is not None:
                    raise ValueError(f"quats_xyzw: non-finite quaternion at index {bad}")
                n = np.linalg.norm(q, axis=1)
                if (n < 1e-12).any():
                    raise ValueError(f"quats_xyzw: zero-norm quaternion at index {int(np.argmax(n < 1e-12))}")
                R = SE3.from_quat_t(q / n[:, None], np.zeros((len(q), 3))).R
            else:
                R = np.asarray(rotations, dtype=np.float64)
                if R.ndim != 3 or R.shape[1:] != (3, 3):
                    raise ValueError(f"rotations: expected shape (N,3,3), got {R.shape}")
        if len(R) != len(t) or len(t) != len(stamps_ns):
            raise ValueError(f"from_arrays: {len(stamps_ns)} stamps but {len(t)} positions and {len(R)} rotations")
        bad = first_nonfinite_row(np.concatenate([np.reshape(R, (-1, 9)), t], axis=1))
        if bad is not None:
            raise ValueError(f"poses: non-finite (NaN/inf) pose at index {bad}")
        return cls(np.asarray(stamps_ns), SE3(np.array(R), np.array(t)), frame_id, child_frame_id)

    @classmethod
    def concat(cls, trajectories: Sequence[Trajectory]) -> Trajectory:
        """Concatenate trajectories in time order; frame ids must agree and stamps must keep increasing."""
        trajs = list(trajectories)
        if not trajs:
            raise ValueError("concat: need at least one trajectory")
        for k in range(1, len(trajs)):
            a, b = trajs[k - 1], trajs[k]
            if (a.frame_id, a.child_frame_id) != (b.frame_id, b.child_frame_id):
                raise ValueError(
                    f"concat: trajectory {k} has frames ({b.frame_id}, {b.child_frame_id}), "
                    f"trajectory {k - 1} has ({a.frame_id}, {a.child_frame_id})"
                )
            if b.stamps_ns[0] <= a.stamps_ns[-1]:
                raise ValueError(
                    f"concat: trajectory {k} starts at {format_ns(b.stamps_ns[0])} s, not after the end of "
                    f"trajectory {k - 1} at {format_ns(a.stamps_ns[-1])} s"
                )
        R = np.concatenate([np.asarray(tr.poses.R) for tr in trajs])
        t = np.concatenate([np.asarray(tr.poses.t) for tr in trajs])
        stamps = np.concatenate([tr.stamps_ns for tr in trajs])
        return cls(stamps, SE3(R, t), trajs[0].frame_id, trajs[0].child_frame_id)

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return int(self.stamps_ns.size)

    def __getitem__(self, idx: int | slice | np.ndarray) -> Trajectory:
        """Slice / index-array / boolean-mask selection; an int gives a length-1 trajectory."""
        if isinstance(idx, (int, np.integer)):
            n = len(self)
            i = int(idx) + n if idx < 0 else int(idx)
            if not 0 <= i < n:
                raise IndexError(f"index {idx} out of range for a trajectory of {n} poses")
            idx = slice(i, i + 1)
        R = np.asarray(self.poses.R)[idx]
        t = np.asarray(self.poses.t)[idx]
        return Trajectory(self.stamps_ns[idx], SE3(R, t), self.frame_id, self.child_frame_id)

    def __repr__(self) -> str:
        n = len(self)
        return (
            f"Trajectory({n} poses, {format_ns(self.stamps_ns[0])}..{format_ns(self.stamps_ns[-1])} s, "
            f"frame_id={self.frame_id!r}, child_frame_id={self.child_frame_id!r})"
        )

    @property
    def positions(self) -> np.ndarray:
        """(N,3) body origins in the world frame."""
        return np.array(self.poses.t, dtype=np.float64)

    @property
    def stamps_s(self) -> np.ndarray:
        """(N,) float seconds."""
        return ns_to_seconds(self.stamps_ns)

    @property
    def duration_s(self) -> float:
        return float(self.stamps_ns[-1] - self.stamps_ns[0]) * 1e-9

    # ------------------------------------------------------------------ interpolation
    def T_world_body_at(
        self,
        t_ns: np.ndarray | int,
        T_body_sensor: SE3 | np.ndarray | None = None,
        time_offset_ns: int = 0,
        max_gap_ns: int | None = DEFAULT_MAX_GAP_NS,
        method: Literal["geodesic", "decoupled"] = "geodesic",
    ) -> SE3:
        """Poses at query stamps: ``interp(T_world_body)(t_ns + time_offset_ns) @ T_body_sensor``.

        Parameters
        ----------
        t_ns : int or (M,) int array, query (sensor) stamps in ns. A scalar gives a single SE3, an array
            a batch.
        T_body_sensor : fixed extrinsic composed after interpolating the body poses (identity if None), so the
            result is ``T_world_sensor``.
        time_offset_ns : sensor-to-body clock offset, ``t_body = t_sensor + time_offset_ns``.
        max_gap_ns : refuse queries strictly between two samples further apart than this (None: no limit).
        method : "geodesic" (SE(3) screw motion, exact for constant twist) or "decoupled" (R slerp + t lerp).

        Raises ValueError for queries outside [first, last] stamp (no extrapolation) or inside too long a gap.
        """
        if method == "geodesic":
            interp = interpolate_geodesic
        elif method == "decoupled":
            interp = interpolate_decoupled
        else:
            raise ValueError(f"method: expected 'geodesic' or 'decoupled', got {method!r}")
        tq = _as_int_ns(t_ns, "t_ns")
        scalar = tq.ndim == 0
        if tq.ndim > 1:
            raise ValueError(f"t_ns: expected a scalar or 1-D array, got shape {tq.shape}")
        tq = np.atleast_1d(tq)
        off = _as_int_ns(time_offset_ns, "time_offset_ns")
        if off.ndim != 0:
            raise ValueError(f"time_offset_ns: expected a scalar, got shape {off.shape}")
        offset = int(off)
        if tq.size == 0:
            return SE3(np.zeros((0, 3, 3)), np.zeros((0, 3)))
        tb = tq + offset
        stamps = self.stamps_ns

        def _when(k: int) -> str:
            s = f"query time {format_ns(tq[k])} s"
            if offset:
                s += f" (body time {format_ns(tb[k])} s with time_offset_ns={offset})"
            return s

        outside = (tb < stamps[0]) | (tb > stamps[-1])
        if outside.any():
            k = int(np.flatnonzero(outside)[0])
            more = int(outside.sum()) - 1
            raise ValueError(
                f"{_when(k)} is outside the trajectory span "
                f"[{format_ns(stamps[0])}, {format_ns(stamps[-1])}] s; "
                f"extrapolation is refused" + (f" ({more} more queries outside)" if more else "")
            )
        n = len(stamps)
        if n == 1:
            i0 = np.zeros(tq.shape, dtype=np.int64)
            i1 = i0
            alpha = np.zeros(tq.shape)
        else:
            i0 = np.clip(np.searchsorted(stamps, tb, side="right") - 1, 0, n - 2)
            i1 = i0 + 1
            span = stamps[i1] - stamps[i0]
            rel = tb - stamps[i0]
            if max_gap_ns is not None:
                in_gap = (span > int(max_gap_ns)) & (rel > 0) & (rel < span)
                if in_gap.any():
                    k = int(np.flatnonzero(in_gap)[0])
                    more = int(in_gap.sum()) - 1
                    raise ValueError(
                        f"{_when(k)} falls in a gap of {format_ns(span[k])} s between samples "
                        f"{i0[k]} ({format_ns(stamps[i0[k]])} s) and {i1[k]} ({format_ns(stamps[i1[k]])} s), "
                        f"longer than max_gap_ns={int(max_gap_ns)} ({format_ns(max_gap_ns)} s)"
                        + (f" ({more} more queries in gaps)" if more else "")
                    )
            alpha = rel.astype(np.float64) / span.astype(np.float64)
        R = np.asarray(self.poses.R)
        t = np.asarray(self.poses.t)
        T = interp(SE3(R[i0], t[i0]), SE3(R[i1], t[i1]), alpha)
        R_wb = np.array(T.R, dtype=np.float64)
        t_wb = np.array(T.t, dtype=np.float64)
        # Exact samples are returned untouched (alpha 0 or 1 is exact in theory, this removes round-off).
        at0 = alpha == 0.0
        R_wb[at0], t_wb[at0] = R[i0[at0]], t[i0[at0]]
        at1 = alpha == 1.0
        R_wb[at1], t_wb[at1] = R[i1[at1]], t[i1[at1]]
        if T_body_sensor is not None:
            X = _as_se3(T_body_sensor, "T_body_sensor")
            R_bs = np.asarray(X.R, dtype=np.float64)
            t_bs = np.asarray(X.t, dtype=np.float64)
            if R_bs.shape != (3, 3):
                raise ValueError(f"T_body_sensor: expected a single pose, got batch shape {R_bs.shape[:-2]}")
            t_wb = np.einsum("nij,j->ni", R_wb, t_bs) + t_wb
            R_wb = R_wb @ R_bs
        if scalar:
            return SE3(R_wb[0], t_wb[0])
        return SE3(R_wb, t_wb)

    # ------------------------------------------------------------------ frame changes
    def transform(self, T_new_world: SE3 | np.ndarray, frame_id: str | None = None) -> Trajectory:
        """Re-express in another world frame: ``T_new_body = T_new_world @ T_world_body``.

        ``frame_id`` names the new world frame (keeps the old name if None)."""
        X = _as_se3(T_new_world, "T_new_world")
        R_nw = np.asarray(X.R, dtype=np.float64)
        t_nw = np.asarray(X.t, dtype=np.float64)
        if R_nw.shape != (3, 3):
            raise ValueError(f"T_new_world: expected a single pose, got batch shape {R_nw.shape[:-2]}")
        R = R_nw @ np.asarray(self.poses.R)
        t = np.asarray(self.poses.t) @ R_nw.T + t_nw
        return Trajectory(self.stamps_ns, SE3(R, t), frame_id or self.frame_id, self.child_frame_id)

    def relative_to(
        self,
        other: Trajectory | SE3 | np.ndarray | None = None,
        max_gap_ns: int | None = DEFAULT_MAX_GAP_NS,
    ) -> Trajectory:
        """Poses relative to a reference.

        - ``None``: relative to this trajectory's first pose (``T_first^-1 @ T_i``, starts at identity);
        - a single pose ``T_world_ref``: ``T_ref_body = T_world_ref^-1 @ T_world_body``;
        - another Trajectory (same world frame):
          ``T_other_body(t) = T_world_other(t)^-1 @ T_world_body(t)`` at this trajectory's stamps, ``other``
          interpolated geodesically (its span must cover ours).
        """
        R = np.asarray(self.poses.R)
        t = np.asarray(self.poses.t)
        if isinstance(other, Trajectory):
            if other.frame_id != self.frame_id and None not in (other.frame_id, self.frame_id):
                raise ValueError(f"relative_to: world frames differ ({self.frame_id!r} vs other {other.frame_id!r})")
            ref = other.T_world_body_at(self.stamps_ns, max_gap_ns=max_gap_ns)
            R_ref = np.asarray(ref.R)
            t_ref = np.asarray(ref.t)
            frame = other.child_frame_id
        else:
            if other is None:
                R_ref, t_ref = R[0], t[0]
                frame = None
            else:
                X = _as_se3(other, "other")
                R_ref = np.asarray(X.R, dtype=np.float64)
                t_ref = np.asarray(X.t, dtype=np.float64)
                if R_ref.shape != (3, 3):
                    raise ValueError(f"other: expected a single pose, got batch shape {R_ref.shape[:-2]}")
                frame = None
            R_ref = np.broadcast_to(R_ref, R.shape)
            t_ref = np.broadcast_to(t_ref, t.shape)
        R_inv = np.swapaxes(R_ref, -1, -2)
        R_new = R_inv @ R
        t_new = np.einsum("nij,nj->ni", R_inv, t - t_ref)
        return Trajectory(self.stamps_ns, SE3(R_new, t_new), frame, self.child_frame_id)
