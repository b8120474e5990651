"""Evaluate an air-ground run against simulated (or surveyed) ground truth.

Reads OUT of ``sparsepipe airground`` and the ground-truth folder of ``sparsepipe sim airground`` (``gt/``):
relative transform error (translation m, rotation deg), UGV keyframe camera ATE after stage 1 (no alignment: both
live in the UGV odometry frame), UAV keyframe camera ATE in the UGV frame, accepted loops, and the measured UAV
stream rate against the 0.3 Mbit/s budget. Writes the metrics as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apps.config import CommonConfig, save_resolved_config
from perception.errors import InputError
from perception.fileio import atomic_write_json
from perception.geometry import SE3
from perception.metrics.pose import rotation_error_deg
from perception.metrics.trajectory import ate
from slam.trajectory import read_tum


@dataclass
class EvalAirgroundConfig(CommonConfig):
    run: Path = Path("out/airground")
    """Output folder of `sparsepipe airground`."""
    gt: Path = Path("out/sim/airground/gt")
    """Ground-truth folder (gt/ of `sparsepipe sim airground`)."""
    out: Path = Path("out/eval/airground")
    json: Path | None = None
    """Where to write the metrics (default OUT/metrics.json)."""
    budget_bits_per_s: float = 300_000.0


def _load_json(path: Path) -> object:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run `sparsepipe airground` / `sparsepipe sim airground` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{path}: not valid JSON") from None


def evaluate(run: Path, gt: Path, budget_bits_per_s: float = 300_000.0) -> dict:
    T_true = SE3.from_matrix(np.array(_load_json(gt / "T_ugvworld_uavworld.json")["T_ugvworld_uavworld"]))
    rel = _load_json(run / "relative_pose.json")
    bw = _load_json(run / "bandwidth.json")
    loops = _load_json(run / "loops.json")
    metrics: dict = {
        "loops_accepted": int(sum(q["accepted"] for q in loops)),
        "loop_queries": len(loops),
        "uav_stream_max_window_bits_per_s": bw["max_window_bits_per_s"],
        "uav_stream_mean_bits_per_s": bw["mean_bits_per_s"],
        "uav_stream_within_budget": bool(bw["max_window_bits_per_s"] <= budget_bits_per_s),
    }
    ugv = ate(read_tum(run / "ugv_keyframes.tum"), read_tum(gt / "ugv_cam.tum"), align="none")
    metrics["ugv_keyframes_ate_rmse_m"] = ugv.rmse
    metrics["ugv_keyframes_ate_median_m"] = ugv.median
    if rel.get("status") == "ok":
        T = SE3.from_matrix(np.array(rel["T_ugvworld_uavworld"]))
        metrics["relative_translation_err_m"] = float(np.linalg.norm(T.t - T_true.t))
        metrics["relative_rotation_err_deg"] = float(rotation_error_deg(T.R, T_true.R))
        uav = ate(read_tum(run / "uav_keyframes.tum"), read_tum(gt / "uav_cam.tum"), align="none")
        metrics["uav_keyframes_ate_rmse_m"] = uav.rmse
    else:
        metrics["relative_translation_err_m"] = None
        metrics["relative_rotation_err_deg"] = None
    return metrics


def run(cfg: EvalAirgroundConfig) -> int:
    metrics = evaluate(Path(cfg.run), Path(cfg.gt), cfg.budget_bits_per_s)
    path = Path(cfg.json) if cfg.json is not None else Path(cfg.out) / "metrics.json"
    atomic_write_json(path, metrics)
    save_resolved_config(cfg, "eval airground", out_dir=path.parent)
    for k, v in metrics.items():
        print(f"{k:36s} {v:.4f}" if isinstance(v, float) else f"{k:36s} {v}")
    return 0
