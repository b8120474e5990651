"""``sparsepipe detect3d train|eval``: DSVT-P LiDAR 3D detection on data in the KITTI object layout.

``detect3d train --root R --out RUN`` trains on ``ImageSets/train.txt`` (checkpoints ``RUN/last.pt`` and
``RUN/step_XXXXXX.pt`` written atomically, ``--resume`` continues from ``last.pt``), writes the loss log
``RUN/history.json``, ``RUN/config.yaml`` and, unless ``--no-eval``, evaluates on ``ImageSets/val.txt``
(``RUN/metrics.json``). ``detect3d eval --root R --ckpt C --json out.json`` evaluates a checkpoint: AP|R40 and
AP|R11 per class, BEV and 3D at KITTI's overlaps (Car 0.7, Pedestrian / Cyclist 0.5) and BEV at 0.5 for every
class; the detections are written as KITTI result files (``OUT/pred/NNNNNN.txt``, label_2 lines with a score)
that the official devkit reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from apps.config import CommonConfig, PipelineConfig, save_resolved_config
from apps.progress import progress_bar
from perception.fileio import atomic_write_json, json_text
from perception.pointnets.detect3d import (
    DetEvalResult,
    DetTrainConfig,
    evaluate,
    load_checkpoint,
    load_frames,
    train,
    write_kitti_results,
)

log = logging.getLogger(__name__)


def _summary(result: DetEvalResult) -> str:
    ap = result.bev_at_05.ap_r40
    kitti = result.bev.ap_r40
    parts = [f"{c} BEV AP@0.5 {ap[c]:.3f} (KITTI overlap {kitti[c]:.3f})" for c in ap if ap[c] == ap[c]]
    return "; ".join(parts)


def _evaluate_and_write(model, frames, cfg: DetTrainConfig, out: Path, json_path: Path, extra: dict) -> DetEvalResult:
    with progress_bar(info=True) as bar:
        task = bar.add_task("detecting", total=len(frames), info="")
        result = evaluate(model, frames, cfg, lambda k, n: bar.update(task, completed=k))
    write_kitti_results(out / "pred", frames, result.detections, tuple(cfg.classes), cfg.image_size)
    atomic_write_json(json_path, {**extra, **result.to_json()})
    return result


@dataclass
class Detect3dTrainConfig(CommonConfig):
    out: Path = Path("out/detect3d")
    """Run folder: checkpoints, history.json, metrics.json, pred/, config.yaml."""
    root: Path = Path("out/sim/kitti")
    """Dataset root in the KITTI object layout (training/, ImageSets/)."""
    split: str = "train"
    """ImageSets list to train on."""
    val_split: str = "val"
    train: DetTrainConfig = field(default_factory=DetTrainConfig)
    """Classes, schedule, augmentation, model and inference settings."""
    resume: bool = False
    """Continue from OUT/last.pt (same config) instead of starting over."""
    eval: bool = True
    """Evaluate on --val-split at the end (OUT/metrics.json, OUT/pred/)."""


def run_train(cfg: Detect3dTrainConfig) -> int:
    cfg.train.validate()
    classes = tuple(cfg.train.classes)
    frames = load_frames(cfg.root, cfg.split, classes, cfg.train.fov_only, cfg.train.image_size,
                         cfg.train.model.point_cloud_range)  # fmt: skip
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, "detect3d train")
    with progress_bar(info=True) as bar:
        task = bar.add_task("training", total=cfg.train.steps, info="")

        def update(step: int, total: int, rec: dict) -> None:
            bar.update(task, completed=step, info=f"loss {rec['loss']:.3f}")

        model, history = train(frames, cfg.train, out, seed=cfg.seed, resume=cfg.resume, progress=update)
    atomic_write_json(out / "history.json", history)
    print(f"trained DSVT-P for {cfg.train.steps} steps on {len(frames)} frames -> {out / 'last.pt'}")
    if not cfg.eval:
        return 0
    val = load_frames(cfg.root, cfg.val_split, classes, cfg.train.fov_only, cfg.train.image_size,
                      cfg.train.model.point_cloud_range)  # fmt: skip
    result = _evaluate_and_write(model, val, cfg.train, out, out / "metrics.json", {"split": cfg.val_split})
    print(f"{cfg.val_split}: {_summary(result)}")
    return 0


@dataclass
class Detect3dEvalConfig(PipelineConfig):
    out: Path = Path("out/detect3d/eval")
    """Folder: pred/ (KITTI result files), metrics.json, config.yaml, run.rrd (points, ground-truth and detected
    boxes, one time step per frame)."""
    root: Path = Path("out/sim/kitti")
    """Dataset root in the KITTI object layout."""
    ckpt: Path = Path("out/detect3d/last.pt")
    """Checkpoint written by `sparsepipe detect3d train`."""
    split: str = "val"
    """ImageSets list to evaluate."""
    json: Path | None = None
    """Metrics file (default OUT/metrics.json)."""
    score_threshold: float | None = None
    """Override the checkpoint's detection score threshold."""


def _log_rrd(cfg: Detect3dEvalConfig, frames, result: DetEvalResult, classes: tuple[str, ...]) -> None:
    import numpy as np

    from apps.viz import blueprint_for, parse_rerun_spec, recording
    from apps.viz.log import log_boxes3d, log_points, log_world, set_time

    spec = parse_rerun_spec(cfg.rerun, Path(cfg.out))
    with recording("sparsepipe-detect3d", spec, blueprint_for("detect3d", cameras=[])) as rec:
        log_world(rec, "world", up="+z")
        for k, (f, (boxes, scores, labels)) in enumerate(zip(frames, result.detections, strict=True)):
            set_time(rec, frame=k)
            shade = (np.clip(f.points[:, 3:4], 0, 1) * 200 + 55).astype(np.uint8).repeat(3, 1)
            log_points(rec, "world/points", f.points[:, :3], colors=shade, radii=0.03)
            log_boxes3d(rec, "world/gt", f.boxes[:, :3], f.boxes[:, 3:6], f.boxes[:, 6],
                        [classes[c] for c in f.labels], colors=np.tile([[0, 200, 0]], (len(f.boxes), 1)))  # fmt: skip
            log_boxes3d(rec, "world/pred", boxes[:, :3], boxes[:, 3:6], boxes[:, 6],
                        [f"{classes[c]} {s:.2f}" for c, s in zip(labels, scores, strict=True)],
                        colors=np.tile([[230, 60, 40]], (len(boxes), 1)))  # fmt: skip


def run_eval(cfg: Detect3dEvalConfig) -> int:
    model, state = load_checkpoint(cfg.ckpt)
    tc = state["config"]
    threshold = tc["score_threshold"] if cfg.score_threshold is None else cfg.score_threshold
    train_cfg = DetTrainConfig(classes=tuple(tc["classes"]), fov_only=tc["fov_only"], model=model.cfg,
                               image_size=tuple(tc["image_size"]), nms_iou=tc["nms_iou"],
                               max_detections=tc["max_detections"], score_threshold=threshold)  # fmt: skip
    frames = load_frames(cfg.root, cfg.split, train_cfg.classes, train_cfg.fov_only, train_cfg.image_size,
                         model.cfg.point_cloud_range)  # fmt: skip
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, "detect3d eval")
    path = Path(cfg.json) if cfg.json is not None else out / "metrics.json"
    extra = {"checkpoint": str(cfg.ckpt), "split": cfg.split, "step": int(state["step"])}
    result = _evaluate_and_write(model, frames, train_cfg, out, path, extra)
    _log_rrd(cfg, frames, result, train_cfg.classes)
    print(json_text({"bev_iou0.5_ap_r40": result.to_json()["bev_iou0.5"]["ap_r40"],
                      "bev_ap_r40": result.to_json()["bev"]["ap_r40"]}, indent=None))  # fmt: skip
    return 0
