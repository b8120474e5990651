"""``sparsepipe pointseg train|eval`` and ``sparsepipe eval scannet``: weakly-supervised point-cloud segmentation
(CPCM on the sparse residual U-Net) on data in the ScanNet v2 layout.

``pointseg train --root R --out RUN`` trains on the ``train`` split (``--train.method cpcm|baseline``,
``--train.labels 0.001|0.0001|full``), writes checkpoints ``RUN/last.pt`` and ``RUN/step_XXXXXX.pt`` (atomically;
``--resume`` continues from ``last.pt``), the loss log ``RUN/history.json``, ``RUN/config.yaml`` and, unless
``--no-eval``, the validation metrics ``RUN/metrics.json``. ``pointseg eval`` / ``eval scannet --root R --ckpt C
--json out.json`` evaluate a checkpoint on a split over the full point clouds (inverse voxel map): per-class IoU over
ScanNet's 20 classes, mIoU over the classes present, overall accuracy; ``--write-ply`` also writes each scene's
points with their predicted NYU40 id (``pred/<scene>.ply``). ``pointseg compare`` trains CPCM and the sparse-label
baseline (same network, steps and labels) for each seed, plus the full-label upper bound, side by side in worker
processes, and writes the mIoU table ``compare.json``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from apps.config import CommonConfig, PipelineConfig, save_resolved_config
from apps.progress import progress_bar
from perception.datasets.scannet import VALID_CLASS_IDS, ScanNet, write_ply
from perception.errors import InputError
from perception.fileio import atomic_write_json, json_text
from perception.pointnets.segmentation import (
    Cloud,
    SegEvalResult,
    SegTrainConfig,
    evaluate,
    load_checkpoint,
    train,
)

log = logging.getLogger(__name__)


def load_clouds(root: Path, split: str) -> list[Cloud]:
    """Every scene of ``split`` as a labelled cloud (train ids); one-line errors for missing data or labels."""
    ds = ScanNet(root)
    ids = ds.scenes(split)
    if not ids:
        raise InputError(f"pointseg: no scenes listed in {root}/scannetv2_{split}.txt; generate with `sparsepipe sim "
                         "scannet` or point --root at ScanNet v2")  # fmt: skip
    clouds = []
    for sid in ids:
        sc = ds.load_scene(sid)
        if sc.labels20 is None:
            raise InputError(f"pointseg: scene {sid} under {root} has no labels (_vh_clean_2.labels.ply)")
        if len(sc.xyz) == 0:
            raise InputError(f"pointseg: scene {sid} under {root} has no points; remove it from the split file")
        clouds.append(Cloud(sid, sc.xyz, sc.rgb, sc.labels20))
    return clouds


@dataclass
class PointsegTrainConfig(CommonConfig):
    out: Path = Path("out/pointseg")
    """Run folder: checkpoints, history.json, metrics.json, config.yaml."""
    root: Path = Path("out/sim/scannet")
    """Dataset root in the ScanNet v2 layout (scans/, scannetv2_train.txt, scannetv2_val.txt)."""
    split: str = "train"
    val_split: str = "val"
    train: SegTrainConfig = field(default_factory=SegTrainConfig)
    """Method, label share, network, optimiser and schedule."""
    resume: bool = False
    """Continue from OUT/last.pt (same config) instead of starting over."""
    eval: bool = True
    """Evaluate on --val-split at the end (OUT/metrics.json)."""


def run_train(cfg: PointsegTrainConfig) -> int:
    cfg.train.validate()
    clouds = load_clouds(cfg.root, cfg.split)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, "pointseg train")
    with progress_bar(info=True) as bar:
        task = bar.add_task("training", total=cfg.train.steps, info="")

        def update(step: int, total: int, parts: dict) -> None:
            bar.update(task, completed=step, info=f"loss {parts['loss']:.3f}")

        model, history = train(clouds, cfg.train, out, seed=cfg.seed, resume=cfg.resume, progress=update)
    atomic_write_json(out / "history.json", history)
    print(f"trained {cfg.train.method} ({cfg.train.labels} labels) for {cfg.train.steps} steps -> {out / 'last.pt'}")
    if not cfg.eval:
        return 0
    val = load_clouds(cfg.root, cfg.val_split)
    result = evaluate(model, val, cfg.train.voxel_size)
    atomic_write_json(out / "metrics.json", {"split": cfg.val_split, **result.to_json()})
    print(f"{cfg.val_split}: mIoU {result.miou:.3f}, overall accuracy {result.overall_accuracy:.3f}")
    return 0


@dataclass
class PointsegEvalConfig(PipelineConfig):
    out: Path = Path("out/pointseg/eval")
    """Folder: metrics.json, config.yaml, run.rrd (prediction beside ground truth, one time step per scene) and
    pred/ with --write-ply."""
    root: Path = Path("out/sim/scannet")
    """Dataset root in the ScanNet v2 layout."""
    ckpt: Path = Path("out/pointseg/last.pt")
    """Checkpoint written by `sparsepipe pointseg train`."""
    split: Literal["train", "val"] = "val"
    json: Path | None = None
    """Metrics file (default OUT/metrics.json)."""
    write_ply: bool = False
    """Also write OUT/pred/<scene>.ply: the points with their predicted NYU40 id as `label`."""


def _write_prediction(path: Path, cloud: Cloud, pred: np.ndarray) -> None:
    nyu40 = np.asarray(VALID_CLASS_IDS, dtype=np.int64)[pred]
    v = np.empty(len(cloud.xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                                         ("blue", "u1"), ("label", "u2")])  # fmt: skip
    v["x"], v["y"], v["z"] = cloud.xyz.T
    v["red"], v["green"], v["blue"] = cloud.rgb.T
    v["label"] = nyu40
    write_ply(path, v, np.zeros((0, 3), np.int64))


def _log_rrd(cfg: PointsegEvalConfig, clouds: list[Cloud], predictions: list[np.ndarray]) -> None:
    from apps.viz import blueprint_for, parse_rerun_spec, recording
    from apps.viz.log import log_segmentation, log_world, set_time
    from perception.datasets.scannet import CLASS_NAMES_20, IGNORE_LABEL

    spec = parse_rerun_spec(cfg.rerun, Path(cfg.out))
    with recording("sparsepipe-pointseg", spec, blueprint_for("pointseg")) as rec:
        log_world(rec, "world", up="+z")
        for k, (c, pred) in enumerate(zip(clouds, predictions, strict=True)):
            set_time(rec, frame=k)
            log_segmentation(rec, "world/pred", pred, CLASS_NAMES_20, xyz=c.xyz, radii=0.015)
            log_segmentation(rec, "world/gt", c.labels, CLASS_NAMES_20, xyz=c.xyz, radii=0.015,
                             ignore_label=IGNORE_LABEL)  # fmt: skip


def run_eval(cfg: PointsegEvalConfig, command: str = "pointseg eval") -> int:
    model, state = load_checkpoint(cfg.ckpt)
    voxel = float(state["config"]["voxel_size"])
    clouds = load_clouds(cfg.root, cfg.split)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, command)
    with progress_bar(info=True) as bar:
        task = bar.add_task("evaluating", total=len(clouds), info="")
        result: SegEvalResult = evaluate(model, clouds, voxel, lambda k, n: bar.update(task, completed=k))
    if cfg.write_ply:
        for c, pred in zip(clouds, result.predictions, strict=True):
            _write_prediction(out / "pred" / f"{c.name}.ply", c, pred)
    _log_rrd(cfg, clouds, result.predictions)
    path = Path(cfg.json) if cfg.json is not None else out / "metrics.json"
    run = state["config"]
    payload = {"checkpoint": str(cfg.ckpt), "split": cfg.split, "step": int(state["step"]), "method": run["method"],
               "labels": run["labels"], **result.to_json()}  # fmt: skip
    atomic_write_json(path, payload)
    print(json_text({"miou": round(result.miou, 4), "overall_accuracy": round(result.overall_accuracy, 4),
                      "iou": {k: round(v, 4) for k, v in result.iou.items()}}, indent=None))  # fmt: skip
    return 0


@dataclass
class EvalScanNetConfig(PointsegEvalConfig):
    out: Path = Path("out/eval/scannet")
    """Folder: metrics.json, config.yaml, run.rrd and pred/ with --write-ply."""


def run_eval_scannet(cfg: EvalScanNetConfig) -> int:
    return run_eval(cfg, "eval scannet")


@dataclass
class PointsegCompareConfig(CommonConfig):
    out: Path = Path("out/pointseg/compare")
    """Folder: one run folder per (method, seed), compare.json, config.yaml."""
    root: Path = Path("out/sim/scannet")
    """Dataset root in the ScanNet v2 layout."""
    seeds: tuple[int, ...] = (0, 1)
    """Training seeds (each also draws its own weak labels)."""
    train: SegTrainConfig = field(default_factory=SegTrainConfig)
    """Shared settings; --train.labels is the weak-label share of the cpcm and baseline runs."""
    upper_bound: bool = True
    """Also train the full-label upper bound (baseline recipe, first seed)."""
    workers: int = 2
    """Trainings run side by side (one torch thread each)."""


def _compare_one(args: tuple) -> dict:
    root, split, val_split, cfg, seed, out = args
    import torch

    torch.set_num_threads(cfg.threads)
    model, _ = train(load_clouds(root, split), cfg, out, seed=seed)
    r = evaluate(model, load_clouds(root, val_split), cfg.voxel_size)
    atomic_write_json(Path(out) / "metrics.json", {"split": val_split, **r.to_json()})
    return {"method": cfg.method, "labels": cfg.labels, "seed": seed, **r.to_json()}


def run_compare(cfg: PointsegCompareConfig) -> int:
    """CPCM vs the sparse-label baseline (same network, steps, labels) over seeds, plus the full-label bound."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from dataclasses import replace

    cfg.train.validate()
    for split in ("train", "val"):  # fail early, in this process
        load_clouds(cfg.root, split)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, "pointseg compare")
    # the slower CPCM runs first, so the workers finish together
    jobs = [("cpcm", replace(cfg.train, method="cpcm"), s) for s in cfg.seeds]
    jobs += [("baseline", replace(cfg.train, method="baseline"), s) for s in cfg.seeds]
    if cfg.upper_bound:
        jobs.append(("full", replace(cfg.train, method="baseline", labels="full"), cfg.seeds[0]))
    args = [(cfg.root, "train", "val", c, s, out / f"{name}_seed{s}") for name, c, s in jobs]
    with (
        progress_bar(info=True) as bar,
        ProcessPoolExecutor(max(1, cfg.workers), mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        task = bar.add_task("runs", total=len(jobs), info="")
        rows = []
        for row in pool.map(_compare_one, args):
            rows.append(row)
            bar.update(task, advance=1, info=f"{row['method']} seed {row['seed']}: mIoU {row['miou']:.3f}")
    summary = {}
    for name in ("cpcm", "baseline"):
        vals = [r["miou"] for r in rows if r["method"] == name and r["labels"] != "full"]
        summary[name] = {"miou_mean": float(np.mean(vals)), "miou_per_seed": vals}
    summary["cpcm_minus_baseline"] = summary["cpcm"]["miou_mean"] - summary["baseline"]["miou_mean"]
    if cfg.upper_bound:
        summary["full_labels"] = next(r["miou"] for r in rows if r["labels"] == "full")
    atomic_write_json(out / "compare.json", {"summary": summary, "runs": rows, "labels": cfg.train.labels,
                                             "steps": cfg.train.steps, "seeds": list(cfg.seeds)})  # fmt: skip
    print(json_text(summary, indent=None))
    return 0
