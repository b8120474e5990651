"""LiDAR 3D detection with DSVT-P + CenterHead on data in the KITTI object layout: frames, augmentation, training
(checkpoints, exact resumption), inference (rotated NMS) and KITTI-style evaluation.

- Frames (:func:`load_frames`): points ``x y z intensity`` of ``velodyne/``, cropped to camera 2's field of view
  (``fov_only``, as OpenPCDet does for KITTI, whose labels exist only there), and the LiDAR boxes of the trained
  classes from ``label_2`` + ``calib``; ``DontCare`` entries with a 3D extent and objects outside the detection
  range become ignore regions, and Van / Person_sitting boxes are kept for the evaluation's neighbour-class rule.
  Training targets are the boxes whose centre lies in the range after augmentation.
- Augmentation (upstream's KITTI recipe): ground-truth sampling (:class:`GtDatabase`: objects with >= 5 points
  from other training frames pasted at their recorded positions where they collide with nothing, the frame's points
  inside them removed; 15 cars, 10 pedestrians, 10 cyclists drawn per frame), then mirror about the x axis,
  rotation about z within +-pi/4 and scaling 0.95-1.05, applied to points and boxes together.
- Training (:func:`train`): AdamW with the one-cycle schedule (``adam_onecycle`` upstream: peak lr 3e-3, weight
  decay 0.05 -- here 1e-2 --, 40 % warm-up, momentum 0.95 -> 0.85), gradient-norm clip 10, batch of frames drawn
  at random; checkpoints (model, optimiser, schedule, step, random states) every ``checkpoint_every`` steps and
  ``last.pt`` for ``resume``.
- Inference (:func:`detect`): the head's top-K peaks, class-wise rotated BEV NMS
  (:func:`perception.pointnets.boxes.nms_bev`), at most ``max_detections`` per frame.
- Evaluation (:func:`evaluate`): :func:`perception.metrics.detection.evaluate_detection` over the split, BEV and 3D,
  at KITTI's overlaps (Car 0.7, Pedestrian / Cyclist 0.5) and at 0.5 for every class (the done-when's car BEV
  AP@0.5), AP|R40 and AP|R11.

The CPU default model (:func:`cpu_model_config`) is the research note's small DSVT-P: d = 64, set size 36, windows
12 x 12 / 24 x 24 (shift 6), 2 blocks, pillars of 0.32 m over KITTI's [0, 69.12] x [-39.68, 39.68] m, a BEV backbone
whose first stage already has stride 2 (head cells of 0.64 m), so one training step on two frames takes about a
second on one thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from perception.datasets.kitti_object import KittiObject, labels_to_lidar_boxes, lidar_boxes_to_labels, write_labels
from perception.errors import InputError
from perception.metrics.detection import DEFAULT_IGNORE_CLASSES, DetectionEval, evaluate_detection
from perception.pointnets.boxes import bev_iou, nms_bev, points_box_index
from perception.pointnets.checkpoint import (
    read_checkpoint,
    require_same_run,
    restore_rng,
    rng_state,
    save_training_state,
)
from perception.pointnets.dsvt import DSVTConfig, DSVTDetector

log = logging.getLogger(__name__)

__all__ = ["DetFrame", "DetTrainConfig", "GtDatabase", "augment_frame", "cpu_model_config", "detect", "evaluate",
           "fov_mask", "in_range", "load_checkpoint", "load_frames", "train", "write_kitti_results"]  # fmt: skip


def cpu_model_config() -> DSVTConfig:
    """The small DSVT-P for CPU training (see the module docstring)."""
    return DSVTConfig(bev_layer_strides=(2, 2, 2), bev_num_filters=(64, 64, 64), bev_upsample_filters=(32, 32, 32),
                      head_channels=32, num_hm_conv=1)  # fmt: skip


@dataclass
class DetFrame:
    name: str
    points: np.ndarray  # (N, 4) float32 x y z intensity, LiDAR frame
    boxes: np.ndarray  # (K, 7) x y z l w h yaw
    labels: np.ndarray  # (K,) class index into the config's classes
    dontcare: np.ndarray  # (D, 7) ignore regions: DontCare with a 3D extent, objects outside the detection range
    calib: object = None
    other_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 7), np.float32))
    """Boxes of the neighbouring classes KITTI's evaluation ignores (Van for Car, Person_sitting for Pedestrian)."""
    other_names: list[str] = field(default_factory=list)


@dataclass
class DetTrainConfig:
    classes: tuple[str, ...] = ("Car", "Pedestrian", "Cyclist")
    steps: int = 1200
    batch_size: int = 2
    lr: float = 3e-3
    weight_decay: float = 1e-2
    grad_clip: float = 10.0
    augment: bool = True
    gt_sampling: tuple[int, ...] = (15, 10, 10)
    """Ground-truth sampling: objects per class (``classes`` order) pasted into each training frame from the other
    training frames, at their recorded positions, when they collide with nothing (OpenPCDet's KITTI numbers);
    empty or zeros: off."""
    gt_sampling_min_points: int = 5
    fov_only: bool = True
    """Keep only the points in camera 2's image (KITTI labels exist only there)."""
    image_size: tuple[int, int] = (1242, 375)
    """Width, height of image 2 when no image file says otherwise."""
    model: DSVTConfig = field(default_factory=cpu_model_config)
    checkpoint_every: int = 200
    threads: int = 1
    score_threshold: float = 0.1
    nms_iou: float = 0.1
    """Class-wise rotated BEV NMS overlap (objects do not overlap in BEV)."""
    max_detections: int = 100

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise InputError("detect3d: steps >= 1, batch_size >= 1 and lr > 0 are required")
        if tuple(self.classes) != tuple(self.model.class_names):
            self.model = DSVTConfig(**{**asdict(self.model), "class_names": tuple(self.classes)})


# ---------------------------------------------------------------------------------------------------------------
# data


def fov_mask(points: np.ndarray, calib, image_size: tuple[int, int]) -> np.ndarray:
    """Points in front of camera 2 that project into its ``image_size`` (width, height) image."""
    rect = calib.velo_to_rect(points[:, :3])
    uv, depth = calib.project_rect(rect, 2)
    w, h = image_size
    with np.errstate(invalid="ignore"):
        return (depth > 0.1) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)


def in_range(boxes: np.ndarray, point_cloud_range) -> np.ndarray:
    """Boxes whose centre lies in the detector's x / y range (OpenPCDet's ``mask_boxes_outside_range``)."""
    r = point_cloud_range
    b = np.asarray(boxes).reshape(-1, 7)
    return (b[:, 0] >= r[0]) & (b[:, 0] < r[3]) & (b[:, 1] >= r[1]) & (b[:, 1] < r[4])


def load_frames(root: str | os.PathLike, image_set: str | None, classes: tuple[str, ...], fov_only: bool = True,
                image_size: tuple[int, int] = (1242, 375), point_cloud_range=None) -> list[DetFrame]:  # fmt: skip
    """Frames of ``ImageSets/<image_set>.txt`` (all scans when None) with the boxes of ``classes``; with
    ``point_cloud_range``, objects whose centre lies outside it become ignore regions (the detector cannot see
    them), as do ``DontCare`` entries with a 3D extent."""
    ds = KittiObject(root)
    names = ds.frames(image_set)
    if not names:
        raise InputError(f"detect3d: no frames in {ds.root}/ImageSets/{image_set}.txt; generate data with "
                         "`sparsepipe sim kitti-lidar` or point --root at KITTI object")  # fmt: skip
    out = []
    for name in names:
        pts = ds.load_points(name)
        calib = ds.load_calib(name)
        if not np.isfinite(pts).all():
            raise InputError(f"detect3d: {ds.path('velodyne', name)} contains NaN/inf points; re-export the scan")
        if fov_only:
            size = image_size
            if ds.has_image(name):
                img = ds.load_image(name)
                size = (img.shape[1], img.shape[0])
            pts = pts[fov_mask(pts, calib, size)]
        boxes, types = labels_to_lidar_boxes(ds.load_labels(name), calib, skip_dontcare=False)
        types = np.array(types, dtype=object)
        inside = in_range(boxes, point_cloud_range) if point_cloud_range is not None else np.ones(len(types), bool)
        keep = np.isin(types, list(classes)) & inside
        dc = ((types == "DontCare") & (boxes[:, 3:6] > 0).all(1)) | (np.isin(types, list(classes)) & ~inside)
        other = np.isin(types, [n for c in classes for n in DEFAULT_IGNORE_CLASSES.get(c, ())]) & inside
        labels = np.array([classes.index(t) for t in types[keep]], dtype=np.int64)
        out.append(DetFrame(name, pts.astype(np.float32), boxes[keep].astype(np.float32), labels,
                            boxes[dc].astype(np.float32), calib, boxes[other].astype(np.float32),
                            list(types[other])))  # fmt: skip
    return out


@dataclass
class GtDatabase:
    """Every training object's box, class and the points inside it (ground-truth sampling)."""

    boxes: np.ndarray  # (M, 7)
    labels: np.ndarray  # (M,)
    points: list[np.ndarray]  # M arrays (n_i, 4)
    frame: np.ndarray  # (M,) index of the source frame

    @classmethod
    def build(cls, frames: list[DetFrame], min_points: int = 5) -> GtDatabase:
        boxes, labels, pts, src = [], [], [], []
        for i, f in enumerate(frames):
            if not len(f.boxes):
                continue
            idx = points_box_index(f.points[:, :3], f.boxes)
            for k in range(len(f.boxes)):
                inside = f.points[idx == k]
                if len(inside) >= min_points:
                    boxes.append(f.boxes[k])
                    labels.append(f.labels[k])
                    pts.append(inside)
                    src.append(i)
        if not boxes:
            return cls(np.zeros((0, 7), np.float32), np.zeros(0, np.int64), [], np.zeros(0, np.int64))
        return cls(np.stack(boxes), np.array(labels, np.int64), pts, np.array(src))

    def paste(self, frame_index: int, points: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
              counts: tuple[int, ...], rng: np.random.Generator):  # fmt: skip
        """Up to ``counts[c]`` objects of each class from other frames, kept where their box overlaps no box of
        the frame nor another pasted one (BEV); the frame's points inside pasted boxes are removed."""
        chosen = []
        for c, n in enumerate(counts):
            pool = np.flatnonzero((self.labels == c) & (self.frame != frame_index))
            if n > 0 and len(pool):
                chosen.extend(rng.choice(pool, size=min(n, len(pool)), replace=False))
        if not chosen:
            return points, boxes, labels
        cand = self.boxes[chosen]
        ok = np.ones(len(cand), bool)
        if len(boxes):
            ok &= bev_iou(cand, boxes).max(1) <= 0
        taken: list[int] = []
        for k in np.flatnonzero(ok):
            if taken and bev_iou(cand[k : k + 1], cand[taken]).max() > 0:
                continue
            taken.append(int(k))
        if not taken:
            return points, boxes, labels
        new_boxes = cand[taken]
        keep = points_box_index(points[:, :3], new_boxes) < 0
        pasted = [self.points[chosen[k]] for k in taken]
        points = np.concatenate([points[keep], *pasted]).astype(points.dtype)
        return (points, np.concatenate([boxes, new_boxes]).astype(boxes.dtype),
                np.concatenate([labels, self.labels[[chosen[k] for k in taken]]]))  # fmt: skip


def augment_frame(points: np.ndarray, boxes: np.ndarray, rng: np.random.Generator):
    """Mirror (y -> -y), rotate about z within +-pi/4 and scale 0.95-1.05 points (N, >=3) and boxes (K, 7) alike."""
    p, b = points.copy(), boxes.copy()
    if rng.random() < 0.5:
        p[:, 1] = -p[:, 1]
        b[:, 1] = -b[:, 1]
        b[:, 6] = -b[:, 6]
    a = rng.uniform(-np.pi / 4, np.pi / 4)
    c, s = np.cos(a), np.sin(a)
    R = np.array([[c, -s], [s, c]], dtype=p.dtype)
    p[:, :2] = p[:, :2] @ R.T
    b[:, :2] = b[:, :2] @ R.T.astype(b.dtype)
    b[:, 6] = (b[:, 6] + a + np.pi) % (2 * np.pi) - np.pi
    k = rng.uniform(0.95, 1.05)
    p[:, :3] *= k
    b[:, :6] *= k
    return p, b


# ---------------------------------------------------------------------------------------------------------------
# training


def _optim(model: torch.nn.Module, cfg: DetTrainConfig):
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.95, 0.99), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.4,
                                                div_factor=10.0, base_momentum=0.85, max_momentum=0.95)  # fmt: skip
    return opt, sched


def load_checkpoint(path: str | os.PathLike) -> tuple[DSVTDetector, dict]:
    """The detector of a checkpoint (eval mode) and the checkpoint dict; one-line errors on bad files."""
    state = read_checkpoint(path, "detect3d", ("model", "config", "model_config", "step"))
    try:
        mc = {k: tuple(v) if isinstance(v, list) else v for k, v in state["model_config"].items()}
        model = DSVTDetector(DSVTConfig(**mc))
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, RuntimeError, KeyError, InputError) as e:
        raise InputError(f"detect3d: {path} does not match the detector ({type(e).__name__}); retrain") from None
    model.eval()
    return model, state


def train(frames: list[DetFrame], cfg: DetTrainConfig, out: str | os.PathLike, seed: int = 0, resume: bool = False,
          progress: Callable[[int, int, dict], None] | None = None) -> tuple[DSVTDetector, list[dict]]:  # fmt: skip
    """Train DSVT-P + CenterHead on ``frames``; checkpoints under ``out``. Returns the model (eval mode) and the
    per-step loss log."""
    cfg.validate()
    if not frames:
        raise InputError("detect3d train: no training frames")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = DSVTDetector(cfg.model)
    opt, sched = _optim(model, cfg)
    step, history = 0, []
    last = out / "last.pt"
    if resume and last.is_file():
        state = read_checkpoint(last, "detect3d", ("model", "optimizer", "scheduler", "step", "config"))
        inference = ("checkpoint_every", "threads", "score_threshold", "nms_iou", "max_detections")
        require_same_run(state, asdict(cfg), seed, last, "detect3d", inference)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, history = int(state["step"]), list(state.get("history", []))
        restore_rng(rng, state)
        log.info("detect3d: resumed from %s at step %d", last, step)
    model.train()
    counts = tuple(cfg.gt_sampling)
    db = GtDatabase.build(frames, cfg.gt_sampling_min_points) if cfg.augment and any(counts) else None
    n_obj = sum(len(f.labels) for f in frames)
    log.info("detect3d: %d frames, %d objects, %d steps", len(frames), n_obj, cfg.steps)
    while step < cfg.steps:
        pick = rng.choice(len(frames), size=min(cfg.batch_size, len(frames)), replace=False)
        pts, gtb, gtl = [], [], []
        for i in pick:
            f = frames[i]
            p, b, lab = f.points, f.boxes, f.labels
            if db is not None:
                p, b, lab = db.paste(int(i), p, b, lab, counts, rng)
            if cfg.augment:
                p, b = augment_frame(p, b, rng)
            seen = in_range(b, cfg.model.point_cloud_range)  # no targets the detector cannot see
            pts.append(torch.from_numpy(np.ascontiguousarray(p)))
            gtb.append(torch.from_numpy(np.ascontiguousarray(b[seen])))
            gtl.append(torch.from_numpy(np.ascontiguousarray(lab[seen])))
        outputs = model(pts)
        loss, parts = model.loss(outputs, gtb, gtl)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        step += 1
        rec = {"step": step, "loss": float(loss.detach()), "lr": sched.get_last_lr()[0],
               **{k: float(v) for k, v in parts.items() if k in ("heatmap", "regression")}}  # fmt: skip
        history.append(rec)
        if not np.isfinite(rec["loss"]):
            raise RuntimeError(f"detect3d train: loss became {rec['loss']} at step {step}; lower --train.lr")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_training_state(out, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                      "scheduler": sched.state_dict(), "step": step, **rng_state(rng),
                                      "config": asdict(cfg), "model_config": asdict(cfg.model), "seed": seed,
                                      "history": history}, step, cfg.checkpoint_every)  # fmt: skip
        if progress is not None:
            progress(step, cfg.steps, rec)
    model.eval()
    return model, history


# ---------------------------------------------------------------------------------------------------------------
# inference and evaluation


@torch.no_grad()
def detect(model: DSVTDetector, points: np.ndarray, score_threshold: float = 0.1, nms_iou: float = 0.1,
           max_detections: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Boxes (K, 7), scores (K,) and class indices (K,) of one frame after class-wise rotated BEV NMS (none, with a
    warning, for a frame without points in the detection range)."""
    pts = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    if len(model.batch_points([pts])) == 0:  # nothing in range (an empty sweep): nothing to detect
        log.warning("detect3d: a frame has no points in the detection range; no detections")
        return np.zeros((0, 7)), np.zeros(0, np.float32), np.zeros(0, np.int64)
    ((boxes, scores, labels),) = model.predict([pts], score_threshold=score_threshold, top_k=4 * max_detections)
    boxes, scores, labels = boxes.numpy().astype(np.float64), scores.numpy(), labels.numpy()
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.extend(idx[nms_bev(boxes[idx], scores[idx], nms_iou)])
    keep = np.array(sorted(keep, key=lambda i: -scores[i])[:max_detections], dtype=np.int64)
    return boxes[keep], scores[keep], labels[keep]


@dataclass
class DetEvalResult:
    bev: DetectionEval
    """KITTI overlaps (Car 0.7, others 0.5), BEV."""
    iou3d: DetectionEval
    bev_at_05: DetectionEval
    """Every class at overlap 0.5, BEV (car BEV AP@0.5)."""
    frames: int
    detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]]

    def to_json(self) -> dict:
        def table(ev: DetectionEval) -> dict:
            return {"ap_r40": {k: _num(v) for k, v in ev.ap_r40.items()},
                    "ap_r11": {k: _num(v) for k, v in ev.ap_r11.items()}, "map_r40": _num(ev.map_r40)}  # fmt: skip

        return {"frames": self.frames, "bev": table(self.bev), "3d": table(self.iou3d),
                "bev_iou0.5": table(self.bev_at_05)}  # fmt: skip


def _num(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def evaluate(model: DSVTDetector, frames: list[DetFrame], cfg: DetTrainConfig,
             progress: Callable[[int, int], None] | None = None) -> DetEvalResult:  # fmt: skip
    """Detect in every frame and score against its labels (see the module docstring)."""
    dets = []
    for k, f in enumerate(frames):
        dets.append(detect(model, f.points, cfg.score_threshold, cfg.nms_iou, cfg.max_detections))
        if progress is not None:
            progress(k + 1, len(frames))
    return score(frames, dets, tuple(cfg.classes))


def score(frames: list[DetFrame], dets: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
          classes: tuple[str, ...]) -> DetEvalResult:  # fmt: skip
    """KITTI-style AP of per-frame detections ``(boxes, scores, class indices)`` against the frames' labels."""
    names = np.array(classes, dtype=object)
    gt_b = [np.concatenate([f.boxes, f.other_boxes]) for f in frames]
    gt_n = [list(names[f.labels]) + list(f.other_names) for f in frames]
    dt_b = [d[0] for d in dets]
    dt_s = [d[1] for d in dets]
    dt_n = [list(names[d[2]]) for d in dets]
    dc = [f.dontcare for f in frames]
    kitti = {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5}
    thr = {c: kitti.get(c, 0.5) for c in classes}
    common = dict(classes=classes, dontcare_boxes=dc)
    return DetEvalResult(
        bev=evaluate_detection(gt_b, gt_n, dt_b, dt_s, dt_n, iou_thresholds=thr, metric="bev", **common),
        iou3d=evaluate_detection(gt_b, gt_n, dt_b, dt_s, dt_n, iou_thresholds=thr, metric="3d", **common),
        bev_at_05=evaluate_detection(gt_b, gt_n, dt_b, dt_s, dt_n, iou_thresholds=0.5, metric="bev", **common),
        frames=len(frames), detections=dets)


def write_kitti_results(folder: str | os.PathLike, frames: list[DetFrame], dets, classes: tuple[str, ...],
                        image_size: tuple[int, int] = (1242, 375)) -> Path:  # fmt: skip
    """KITTI result files ``folder/NNNNNN.txt`` (label_2 lines + score), one per frame (atomically)."""
    folder = Path(folder)
    for f, (boxes, scores, labels) in zip(frames, dets, strict=True):
        types = [classes[int(c)] for c in labels]
        write_labels(folder / f"{f.name}.txt", lidar_boxes_to_labels(boxes, f.calib, types, image_size, scores=scores))
    return folder
