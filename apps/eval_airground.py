"""Evaluate an air-ground run against simulated (or surveyed) ground truth.

Reads OUT of ``sparsepipe airground`` and the ground-truth folder of ``sparsepipe sim airground`` (``gt/``):
relative transform error (translation m, rotation deg), UGV keyframe camera ATE after stage 1 (no alignment: both
live in the UGV odometry frame), UAV keyframe camera ATE in the UGV frame, loop-closure precision and recall (a
query is a true revisit when enough of its view is seen by the UGV, from gt/uav_overlap.json; an accepted loop is
correct when its matched UGV keyframe sees the view and its PnP pose is near the true UAV camera), and the measured
UAV stream rate against the 0.3 Mbit/s budget. Writes the metrics as JSON.
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
    revisit_overlap: float = 0.3
    """A UAV keyframe is a true revisit when at least this fraction of its view is seen by the UGV
    (gt/uav_overlap.json)."""
    loop_max_err_m: float = 2.0
    """An accepted loop is correct when its matched UGV keyframe sees the UAV view and its PnP camera pose is
    within this distance (and ``loop_max_err_deg``) of the truth."""
    loop_max_err_deg: float = 5.0


def _load_json(path: Path) -> object:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run `sparsepipe airground` / `sparsepipe sim airground` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{path}: not valid JSON") from None


def loop_metrics(loops: list[dict], gt: Path, revisit_overlap: float = 0.3, max_err_m: float = 2.0,
                 max_err_deg: float = 5.0, loops_path: Path | str = "loops.json") -> dict:  # fmt: skip
    """Loop-closure precision and recall against the simulator's co-visibility ground truth."""
    ov = _load_json(gt / "uav_overlap.json")
    frac = dict(zip(ov["uav_stamps_ns"], ov["overlap_fraction"], strict=True))
    partners = {s: set(p) for s, p in zip(ov["uav_stamps_ns"], ov["ugv_stamps_ns"], strict=True)}
    uav_gt = read_tum(gt / "uav_cam.tum")
    revisits = found = accepted = 0
    wrong: list[int] = []
    for q in loops:
        if "query_stamp_ns" not in q:
            raise InputError(f"{loops_path}: a loop has no query_stamp_ns (older run?); re-run `sparsepipe airground`")
        s = int(q["query_stamp_ns"])
        if s not in frac:
            raise InputError(f"{gt / 'uav_overlap.json'}: no entry for UAV stamp {s}; ground truth of another run?")
        is_revisit = frac[s] >= revisit_overlap
        revisits += is_revisit
        if not q["accepted"]:
            continue
        accepted += 1
        T_gt = uav_gt.T_world_body_at(np.array([s]))[0]
        T = SE3.from_matrix(np.array(q["T_ugvworld_cam"]))
        ok = (int(q["match_stamp_ns"]) in partners[s] and float(np.linalg.norm(T.t - T_gt.t)) <= max_err_m
              and float(rotation_error_deg(T.R, T_gt.R)) <= max_err_deg)  # fmt: skip
        if ok:
            found += is_revisit
        else:
            wrong.append(s)
    return {
        "loops_accepted": accepted,
        "loops_false": len(wrong),
        "loop_precision": (accepted - len(wrong)) / accepted if accepted else None,
        "loop_true_revisits": revisits,
        "loop_recall": found / revisits if revisits else None,
        "loop_false_query_stamps_ns": wrong,
    }


def evaluate(run: Path, gt: Path, budget_bits_per_s: float = 300_000.0, revisit_overlap: float = 0.3,
             loop_max_err_m: float = 2.0, loop_max_err_deg: float = 5.0) -> dict:  # fmt: skip
    T_true = SE3.from_matrix(np.array(_load_json(gt / "T_ugvworld_uavworld.json")["T_ugvworld_uavworld"]))
    rel = _load_json(run / "relative_pose.json")
    bw = _load_json(run / "bandwidth.json")
    loops = _load_json(run / "loops.json")
    metrics: dict = {
        "loop_queries": len(loops),
        **loop_metrics(loops, gt, revisit_overlap, loop_max_err_m, loop_max_err_deg, run / "loops.json"),
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
    metrics = evaluate(Path(cfg.run), Path(cfg.gt), cfg.budget_bits_per_s, cfg.revisit_overlap, cfg.loop_max_err_m,
                       cfg.loop_max_err_deg)  # fmt: skip
    path = Path(cfg.json) if cfg.json is not None else Path(cfg.out) / "metrics.json"
    atomic_write_json(path, metrics)
    save_resolved_config(cfg, "eval airground", out_dir=path.parent)
    for k, v in metrics.items():
        print(f"{k:36s} {v:.4f}" if isinstance(v, float) else f"{k:36s} {v}")
    return 0
