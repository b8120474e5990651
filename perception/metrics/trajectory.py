"""Trajectory metrics backed by evo: absolute trajectory error (ATE) and relative pose error (RPE).

Inputs are evo ``PoseTrajectory3D`` objects or any object with ``stamps_ns`` (int ns) and ``poses``
(batched SE3 ``T_world_body``), e.g. ``slam.trajectory.Trajectory`` (duck-typed: perception does not
import slam). Poses are associated by nearest timestamp within ``max_diff_s``
(``evo.core.sync.associate_trajectories``). ATE aligns the estimate to the reference with evo's Umeyama
(``se3``: rigid, ``sim3``: with scale, ``none``) and reports statistics of the position error
``|t_ref - t_est_aligned|`` (evo APE, translation part). RPE uses evo's RPE with consecutive pairs
(``all_pairs=False``) selected on the estimate's path, as the evo_rpe CLI does by default.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from perception.geometry import Sim3

logger = logging.getLogger(__name__)


def _to_evo(traj: Any, name: str):
    from evo.core.trajectory import PoseTrajectory3D

    if isinstance(traj, PoseTrajectory3D):
        return traj
    if hasattr(traj, "stamps_ns") and hasattr(traj, "poses"):
        ns = np.asarray(traj.stamps_ns, dtype=np.int64)
        whole, frac = np.divmod(ns, 1_000_000_000)
        stamps_s = whole.astype(np.float64) + frac.astype(np.float64) * 1e-9
        R = np.asarray(traj.poses.R, dtype=np.float64)
        t = np.asarray(traj.poses.t, dtype=np.float64)
        T = np.zeros((len(ns), 4, 4))
        T[:, :3, :3], T[:, :3, 3], T[:, 3, 3] = R, t, 1.0
        return PoseTrajectory3D(poses_se3=list(T), timestamps=stamps_s)
    raise ValueError(
        f"{name}: expected an evo PoseTrajectory3D or a trajectory with stamps_ns and poses, "
        f"got {type(traj).__name__}"
    )


def _associate(est: Any, ref: Any, max_diff_s: float):
    from evo.core import sync

    ref_e, est_e = _to_evo(ref, "traj_ref"), _to_evo(est, "traj_est")
    if not max_diff_s >= 0:
        raise ValueError(f"max_diff_s: expected a non-negative number of seconds, got {max_diff_s}")
    try:
        ref_a, est_a = sync.associate_trajectories(ref_e, est_e, max_diff=float(max_diff_s))
    except sync.SyncException as e:
        raise ValueError(f"traj_est/traj_ref: {e}") from None
    return ref_a, est_a


def _stats(errors: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "mean": float(np.mean(errors)),
        "median": float(np.median(errors)),
        "max": float(np.max(errors)),
    }


@dataclass
class ATEResult:
    """ATE statistics in metres over ``n_pairs`` associated poses.

    ``alignment`` maps the estimate's world to the reference world (``p_ref ~= alignment.act(p_est)``),
    ``scale`` is its scale (1 unless ``align="sim3"``)."""

    rmse: float
    mean: float
    median: float
    max: float
    scale: float
    n_pairs: int
    alignment: Sim3
    errors: np.ndarray = field(repr=False)


@dataclass
class RPEResult:
    """RPE statistics over ``n_pairs`` pose pairs (m for ``translation``, deg for ``rotation_deg``)."""

    rmse: float
    mean: float
    median: float
    max: float
    n_pairs: int
    delta: float
    delta_unit: str
    relation: str
    errors: np.ndarray = field(repr=False)


def ate(
    traj_est: Any,
    traj_ref: Any,
    align: Literal["se3", "sim3", "none"] = "se3",
    max_diff_s: float = 0.01,
) -> ATEResult:
    """Absolute trajectory error of ``traj_est`` against ``traj_ref`` (see module docstring)."""
    from evo.core import metrics
    from evo.core.geometry import GeometryException

    if align not in ("se3", "sim3", "none"):
        raise ValueError(f"align: expected 'se3', 'sim3' or 'none', got {align!r}")
    ref_a, est_a = _associate(traj_est, traj_ref, max_diff_s)
    n = est_a.num_poses
    if align == "none":
        R, t, s = np.eye(3), np.zeros(3), 1.0
    else:
        if n < 3:
            raise ValueError(
                f"traj_est/traj_ref: {align} alignment needs at least 3 associated poses, got {n}"
            )
        est_a = copy.deepcopy(est_a)
        try:
            R, t, s = est_a.align(ref_a, correct_scale=(align == "sim3"))
        except GeometryException as e:
            raise ValueError(f"traj_est/traj_ref: alignment failed ({e})") from None
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref_a, est_a))
    err = np.asarray(ape.error, dtype=np.float64)
    st = ape.get_all_statistics()
    return ATEResult(
        rmse=float(st["rmse"]),
        mean=float(st["mean"]),
        median=float(st["median"]),
        max=float(st["max"]),
        scale=float(s),
        n_pairs=int(n),
        alignment=Sim3(float(s), np.asarray(R, dtype=np.float64), np.asarray(t, dtype=np.float64)),
        errors=err,
    )


def rpe(
    traj_est: Any,
    traj_ref: Any,
    delta: float = 1.0,
    delta_unit: Literal["m", "frames"] = "m",
    relation: Literal["translation", "rotation_deg"] = "translation",
    max_diff_s: float = 0.01,
    all_pairs: bool = False,
) -> RPEResult:
    """Relative pose error over pose pairs ``delta`` metres (path length) or frames apart.

    ``relation="translation"``: norm of the translation of ``(Q_i^-1 Q_j)^-1 (P_i^-1 P_j)``;
    ``"rotation_deg"``: its rotation angle in degrees (Q reference, P estimate).
    """
    from evo.core import filters, metrics
    from evo.core.metrics import PoseRelation, Unit

    units = {"m": Unit.meters, "frames": Unit.frames}
    relations = {
        "translation": PoseRelation.translation_part,
        "rotation_deg": PoseRelation.rotation_angle_deg,
    }
    if delta_unit not in units:
        raise ValueError(f"delta_unit: expected 'm' or 'frames', got {delta_unit!r}")
    if relation not in relations:
        raise ValueError(f"relation: expected 'translation' or 'rotation_deg', got {relation!r}")
    if not delta > 0 or (delta_unit == "frames" and float(delta) != int(delta)):
        kind = "a positive integer" if delta_unit == "frames" else "a positive number"
        raise ValueError(f"delta: expected {kind} of {delta_unit}, got {delta}")
    ref_a, est_a = _associate(traj_est, traj_ref, max_diff_s)
    d = int(delta) if delta_unit == "frames" else float(delta)
    metric = metrics.RPE(relations[relation], delta=d, delta_unit=units[delta_unit], all_pairs=all_pairs)
    try:
        metric.process_data((ref_a, est_a))
    except (metrics.MetricsException, filters.FilterException) as e:
        raise ValueError(f"rpe: {e}") from None
    err = np.asarray(metric.error, dtype=np.float64)
    if err.size == 0:
        raise ValueError(f"rpe: no pose pairs {delta} {delta_unit} apart in the associated trajectories")
    return RPEResult(
        **_stats(err),
        n_pairs=int(err.size),
        delta=float(delta),
        delta_unit=delta_unit,
        relation=relation,
        errors=err,
    )
