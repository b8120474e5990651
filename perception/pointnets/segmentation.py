"""Point-cloud semantic segmentation on the sparse U-Net: voxelisation, augmentation, CPCM training, evaluation.

Training (:func:`train`) follows CPCM's ``_step_two_and_mask_stream`` (research note ``pointnets.md`` section 2):

- two independently augmented views of each scene (rotation about z in [-pi, pi), tilt about x / y within pi/64,
  scale 0.9-1.1, mirror x, sub-voxel translation, elastic distortion, colour translation and jitter) are voxelised
  separately and pass through one shared network (logits ``Z1``, ``Z2``);
- the masked stream: view 2 with RegionMask (grid mode, ``G^3`` quantile boxes, 75 % of them with zeroed input
  features, coordinates kept) passes through the network a third time (``Zm``);
- ``L = CE(Z1) + CE(Z2) + lambda_c JS(Z1, Z2) + lambda_m ramp(t) [JS(Z1.detach(), Zm) + JS(Z2.detach(), Zm)]`` with
  cross-entropy on the labelled voxels only (ignore 255) and the views aligned through the points they share (each
  voxel of view 2 is paired with the view-1 voxel holding its representative point).

``method="baseline"`` is the sparse-label baseline of the done-when: one augmented view, cross-entropy only, same
network and steps. ``labels="full"`` trains on every point (the upper bound); ``labels=0.001`` keeps
``max(int(n_c p), 1)`` points per class and scene (:func:`perception.pointnets.cpcm.weak_labels`), drawn once per
scene from ``label_seed`` as CPCM's fixed index files are.

Voxel features are the colour of one point per voxel (``rgb / 255 - 0.5``, as upstream; the point is drawn at
random, which is what ``sparse_quantize`` on shuffled points does); a voxel's label is that point's label, or, when
that point is unlabelled, the label of a labelled point inside the voxel (so no weak label is lost to
quantisation). Optimiser: AdamW with poly decay (power 0.9, per step) by default -- it converges in the few hundred
steps a CPU allows; ``optimizer="sgd"`` gives CPCM's SGD (momentum 0.9, dampening 0.1, lr 0.01, weight decay 1e-3).
Checkpoints (model, optimiser, step, RNG states, config) are written atomically every ``checkpoint_every`` steps
and at the end; :func:`train` resumes from ``last.pt`` when asked (with the same config).

Evaluation (:func:`evaluate`) predicts every voxel of an un-augmented scene and hands each *point* the prediction of
its voxel (inverse voxel map), so metrics are over the full point clouds: per-class IoU over ScanNet's 20 classes and
mIoU over the classes present (:mod:`perception.metrics.segmentation`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import uniform_filter

from perception.datasets.scannet import CLASS_NAMES_20, IGNORE_LABEL
from perception.errors import InputError
from perception.metrics.segmentation import confusion_matrix, iou_per_class, miou, overall_accuracy
from perception.pointnets.checkpoint import (
    read_checkpoint,
    require_same_run,
    restore_rng,
    rng_state,
    save_training_state,
)
from perception.pointnets.cpcm import js_divergence, ramp, region_mask, weak_labels
from perception.pointnets.sparse import sparse_tensor
from perception.pointnets.unet import ResUNet, ResUNetConfig

log = logging.getLogger(__name__)

__all__ = ["Cloud", "SegEvalResult", "SegTrainConfig", "augment", "evaluate", "load_checkpoint", "predict",
           "train", "voxelize"]  # fmt: skip

NUM_CLASSES = len(CLASS_NAMES_20)


@dataclass
class Cloud:
    """One labelled point cloud: xyz (N, 3) metres, rgb (N, 3) uint8, labels (N,) train ids (255 = ignore)."""

    name: str
    xyz: np.ndarray
    rgb: np.ndarray
    labels: np.ndarray


@dataclass
class SegTrainConfig:
    method: Literal["cpcm", "baseline"] = "cpcm"
    """cpcm: two views + masked stream (CE + masked-consistency JS); baseline: one view, cross-entropy only."""
    labels: str = "0.001"
    """Share of labelled points per class and scene ('0.001' = 0.1 %, '0.0001' = 0.01 %), or 'full'."""
    label_seed: int | None = None
    """Seed of the weak-label draw (default: the training seed)."""
    voxel_size: float = 0.08
    """Voxel edge (m). CPCM uses 0.02 on real ScanNet (with the upstream network, ``res16unet34c``); 0.08 keeps the
    simulated rooms at ~15k voxels, so 400 CPCM steps take minutes on one CPU thread."""
    steps: int = 400
    batch_size: int = 2
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float | None = None
    """Default: 3e-3 (AdamW) or 0.01 (SGD, CPCM's)."""
    weight_decay: float | None = None
    """Default: 1e-2 (AdamW) or 1e-3 (SGD)."""
    grid: int | None = None
    """RegionMask grid G (default as CPCM: 8 below 0.1 % labels, else 4)."""
    mask_ratio: float = 0.75
    lambda_mask: float | None = None
    """Weight of the masked-consistency loss (default as CPCM: 10 below 0.1 % labels, else 5)."""
    lambda_views: float = 0.0
    """Weight of the view-consistency JS(Z1, Z2) (0 on ScanNet, 2 on S3DIS)."""
    ramp_fraction: float = 0.1
    """Share of the steps over which both consistency weights ramp in."""
    elastic: bool = True
    model: ResUNetConfig = field(default_factory=ResUNetConfig)
    checkpoint_every: int = 100
    threads: int = 1
    """torch threads (the spconv wrapper is race-free at any count; 1 is fastest on a busy 2-core box)."""

    def validate(self) -> None:
        if self.labels != "full":
            try:
                p = float(self.labels)
            except ValueError:
                raise InputError(f"pointseg: --train.labels must be full or a fraction, got {self.labels!r}") from None
            if not 0.0 < p <= 1.0:
                raise InputError(f"pointseg: --train.labels fraction must be in (0, 1], got {p}")
        if self.steps < 1 or self.batch_size < 1 or self.voxel_size <= 0 or not 0 < self.mask_ratio < 1:
            raise InputError("pointseg: steps >= 1, batch_size >= 1, voxel_size > 0 and mask_ratio in (0, 1) required")

    @property
    def label_fraction(self) -> float | None:
        return None if self.labels == "full" else float(self.labels)

    @property
    def _scarce(self) -> bool:
        return self.label_fraction is not None and self.label_fraction < 0.001 - 1e-12

    @property
    def mask_grid(self) -> int:
        return self.grid if self.grid is not None else (8 if self._scarce else 4)

    @property
    def mask_weight(self) -> float:
        return self.lambda_mask if self.lambda_mask is not None else (10.0 if self._scarce else 5.0)


# ---------------------------------------------------------------------------------------------------------------
# data


def voxelize(xyz: np.ndarray, voxel_size: float, rng: np.random.Generator | None = None):
    """Integer voxel coordinates (M, 3) >= 0, the voxel of every point (N,) and one representative point per voxel
    (M,) (random with ``rng``, else the first)."""
    q = np.floor(np.asarray(xyz, dtype=np.float64) / voxel_size).astype(np.int64)
    q -= q.min(axis=0)
    order = rng.permutation(len(q)) if rng is not None else np.arange(len(q))
    coords, first, inverse = np.unique(q[order], axis=0, return_index=True, return_inverse=True)
    inv = np.empty(len(q), dtype=np.int64)
    inv[order] = inverse.reshape(-1)
    return coords, inv, order[first]


def _elastic(xyz: np.ndarray, granularity: float, magnitude: float, rng: np.random.Generator) -> np.ndarray:
    """MinkowskiEngine-style elastic distortion: smoothed Gaussian noise on a ``granularity`` grid, interpolated."""
    lo = xyz.min(0) - granularity * 2
    dims = ((xyz.max(0) - lo) // granularity).astype(int) + 3
    noise = rng.standard_normal((*dims, 3)).astype(np.float32)
    for _ in range(2):
        noise = uniform_filter(noise, size=(3, 3, 3, 1), mode="constant")
    axes = [np.linspace(lo[d], lo[d] + granularity * (dims[d] - 1), dims[d]) for d in range(3)]
    interp = RegularGridInterpolator(axes, noise, bounds_error=False, fill_value=0.0)
    return xyz + interp(xyz) * magnitude


def augment(xyz: np.ndarray, rgb: np.ndarray, rng: np.random.Generator, voxel_size: float, elastic: bool = True):
    """One random view: (xyz, rgb float 0..255) after CPCM's spatial and colour augmentations."""
    p = np.asarray(xyz, dtype=np.float64)
    if elastic and rng.random() < 0.95:
        for gran, mag in ((0.2, 0.4), (0.8, 1.6)):  # upstream ELASTIC_DISTORT_PARAMS (metres)
            p = _elastic(p, gran, mag, rng)
    a, bx, by = rng.uniform(-np.pi, np.pi), rng.uniform(-np.pi / 64, np.pi / 64), rng.uniform(-np.pi / 64, np.pi / 64)
    cz, sz, cx, sx, cy, sy = np.cos(a), np.sin(a), np.cos(bx), np.sin(bx), np.cos(by), np.sin(by)
    R = (np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
         @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]))  # fmt: skip
    p = (p - p.mean(0)) @ R.T * rng.uniform(0.9, 1.1)
    if rng.random() < 0.5:
        p[:, 0] = -p[:, 0]
    p += rng.uniform(0.0, voxel_size, 3)
    c = np.asarray(rgb, dtype=np.float64)
    if rng.random() < 0.95:
        c = c + rng.uniform(-0.1, 0.1, 3) * 255.0  # chromatic translation (ratio 0.1)
    if rng.random() < 0.95:
        c = c + rng.normal(0.0, 0.05 * 255.0, c.shape)  # chromatic jitter (std 0.05)
    return p, np.clip(c, 0.0, 255.0)


@dataclass
class _Voxels:
    coords: np.ndarray  # (M, 3)
    feats: np.ndarray  # (M, 3) float32
    labels: np.ndarray  # (M,) int64
    inverse: np.ndarray  # (N,) voxel of each point
    rep: np.ndarray  # (M,) representative point of each voxel


def _voxels(xyz: np.ndarray, rgb: np.ndarray, labels: np.ndarray, voxel_size: float, rng) -> _Voxels:
    coords, inv, rep = voxelize(xyz, voxel_size, rng)
    vl = np.asarray(labels, dtype=np.int64)[rep].copy()  # the representative point's label, as sparse_quantize
    unlabelled = vl == IGNORE_LABEL
    if unlabelled.any():  # keep a weak label that is not the representative's (any labelled point of the voxel)
        lab = np.where(labels == IGNORE_LABEL, -1, labels).astype(np.int64)
        anyl = np.full(len(coords), -1, np.int64)
        np.maximum.at(anyl, inv, lab)
        take = unlabelled & (anyl >= 0)
        vl[take] = anyl[take]
    feats = (np.asarray(rgb, dtype=np.float32)[rep] / 255.0 - 0.5).astype(np.float32)
    return _Voxels(coords, feats, vl, inv, rep)


def _batch(vox: list[_Voxels], device="cpu"):
    """One sparse tensor for several scenes (batch index first) + concatenated labels and per-scene offsets."""
    coords = np.concatenate([np.column_stack([np.full(len(v.coords), b), v.coords]) for b, v in enumerate(vox)])
    shape = coords[:, 1:].max(0) + 1  # ResUNet pads it to its total stride
    feats = torch.from_numpy(np.concatenate([v.feats for v in vox]))
    x = sparse_tensor(feats.to(device), torch.from_numpy(coords), shape, batch_size=len(vox))
    labels = torch.from_numpy(np.concatenate([v.labels for v in vox]))
    offsets = np.cumsum([0] + [len(v.coords) for v in vox])
    return x, labels, offsets


# ---------------------------------------------------------------------------------------------------------------
# training


def _optimizer(model: torch.nn.Module, cfg: SegTrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        lr, wd = cfg.lr or 0.01, cfg.weight_decay if cfg.weight_decay is not None else 1e-3
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, dampening=0.1, weight_decay=wd)
    lr, wd = cfg.lr or 3e-3, cfg.weight_decay if cfg.weight_decay is not None else 1e-2
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)


def _training_labels(clouds: list[Cloud], cfg: SegTrainConfig, seed: int) -> list[np.ndarray]:
    frac = cfg.label_fraction
    if frac is None:
        return [c.labels for c in clouds]
    rng = np.random.default_rng(cfg.label_seed if cfg.label_seed is not None else seed)
    return [weak_labels(c.labels, frac, rng, IGNORE_LABEL) for c in clouds]


def load_checkpoint(path: str | os.PathLike) -> tuple[ResUNet, dict]:
    """The network of a checkpoint (eval mode) and the checkpoint's other entries; one-line errors on bad files."""
    state = read_checkpoint(path, "pointseg", ("model", "model_config", "config", "step"))
    try:
        mc = state["model_config"]
        model = ResUNet(ResUNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in mc.items()}))
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise InputError(f"pointseg: {path} does not match the network ({type(e).__name__}); retrain") from None
    model.eval()
    return model, state


def train(clouds: list[Cloud], cfg: SegTrainConfig, out: str | os.PathLike, seed: int = 0, resume: bool = False,
          progress: Callable[[int, int, dict], None] | None = None) -> tuple[ResUNet, list[dict]]:  # fmt: skip
    """Train on ``clouds``; checkpoints under ``out`` (``last.pt``, ``step_XXXXXX.pt``). Returns the model (eval
    mode) and the per-step loss log."""
    cfg.validate()
    if not clouds:
        raise InputError("pointseg train: no training scenes")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    labels = _training_labels(clouds, cfg, seed)
    n_labelled = sum(int((lab != IGNORE_LABEL).sum()) for lab in labels)
    log.info("pointseg: %d scenes, %d labelled points (%s), method %s", len(clouds), n_labelled, cfg.labels, cfg.method)
    cfg.model.num_classes = NUM_CLASSES
    model = ResUNet(cfg.model)
    opt = _optimizer(model, cfg)
    base_lr = [g["lr"] for g in opt.param_groups]
    step, history = 0, []
    gen = torch.Generator().manual_seed(seed)  # RegionMask draws
    last = out / "last.pt"
    if resume and last.is_file():
        state = read_checkpoint(last, "pointseg", ("model", "optimizer", "step", "config", "mask_rng"))
        require_same_run(state, asdict(cfg), seed, last, "pointseg", ("checkpoint_every", "threads"))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        restore_rng(rng, state)
        gen.set_state(state["mask_rng"])
        history = list(state.get("history", []))
        log.info("pointseg: resumed from %s at step %d", last, step)
    model.train()
    while step < cfg.steps:
        for g, lr in zip(opt.param_groups, base_lr, strict=True):
            g["lr"] = lr * (1.0 - step / cfg.steps) ** 0.9
        pick = rng.choice(len(clouds), size=min(cfg.batch_size, len(clouds)), replace=False)
        v1, v2 = [], []
        for i in pick:
            c = clouds[i]
            xyz, rgb = augment(c.xyz, c.rgb, rng, cfg.voxel_size, cfg.elastic)
            v1.append(_voxels(xyz, rgb, labels[i], cfg.voxel_size, rng))
            if cfg.method == "cpcm":
                xyz, rgb = augment(c.xyz, c.rgb, rng, cfg.voxel_size, cfg.elastic)
                v2.append(_voxels(xyz, rgb, labels[i], cfg.voxel_size, rng))
        x1, y1, off1 = _batch(v1)
        z1 = model(x1)
        ce = F.cross_entropy(z1, y1, ignore_index=IGNORE_LABEL) if (y1 != IGNORE_LABEL).any() else z1.sum() * 0
        parts = {"ce1": float(ce.detach())}
        loss = ce
        if cfg.method == "cpcm":
            x2, y2, off2 = _batch(v2)
            z2 = model(x2)
            ce2 = F.cross_entropy(z2, y2, ignore_index=IGNORE_LABEL) if (y2 != IGNORE_LABEL).any() else z2.sum() * 0
            # pair each view-2 voxel with the view-1 voxel holding its representative point
            pair = torch.from_numpy(np.concatenate([off1[b] + v1[b].inverse[v2[b].rep] for b in range(len(v2))]))
            masks = [region_mask(torch.from_numpy(v.coords), cfg.mask_grid, cfg.mask_ratio, gen) for v in v2]
            fm = x2.features * (~torch.cat(masks)).unsqueeze(1).to(x2.features.dtype)
            zm = model(x2.replace_feature(fm))
            w = ramp(step / max(cfg.ramp_fraction * cfg.steps, 1.0))
            z1p = z1[pair]
            js_m = js_divergence(z1p.detach(), zm) + js_divergence(z2.detach(), zm)
            loss = loss + ce2 + cfg.mask_weight * w * js_m
            parts.update(ce2=float(ce2.detach()), js_mask=float(js_m.detach()), ramp=w)
            if cfg.lambda_views > 0:
                js_v = js_divergence(z1p, z2)
                loss = loss + cfg.lambda_views * w * js_v
                parts["js_views"] = float(js_v.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        parts.update(step=step, loss=float(loss.detach()), lr=opt.param_groups[0]["lr"])
        history.append(parts)
        if not np.isfinite(parts["loss"]):
            raise RuntimeError(f"pointseg train: loss became {parts['loss']} at step {step}; lower --train.lr")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_training_state(out, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                                      **rng_state(rng), "mask_rng": gen.get_state(), "config": asdict(cfg),
                                      "model_config": asdict(cfg.model), "seed": seed, "history": history},
                                step, cfg.checkpoint_every)  # fmt: skip
        if progress is not None:
            progress(step, cfg.steps, parts)
    model.eval()
    return model, history


# ---------------------------------------------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def predict(model: ResUNet, xyz: np.ndarray, rgb: np.ndarray, voxel_size: float) -> np.ndarray:
    """Per-point train ids (N,) from one un-augmented pass (each point gets its voxel's prediction)."""
    v = _voxels(xyz, rgb, np.full(len(xyz), IGNORE_LABEL), voxel_size, None)
    x, _, _ = _batch([v])
    was = model.training
    model.eval()
    logits = model(x)
    model.train(was)
    return logits.argmax(1).numpy()[v.inverse]


@dataclass
class SegEvalResult:
    miou: float
    """Mean IoU over the classes present in the GT or the prediction."""
    overall_accuracy: float
    iou: dict[str, float]
    """Per-class IoU (classes absent from GT and prediction left out)."""
    scenes: int
    points: int
    confusion: np.ndarray
    predictions: list[np.ndarray] = field(default_factory=list)
    """Per-point train ids of every scene (in the order evaluated)."""

    def to_json(self) -> dict:
        return {"miou": self.miou, "overall_accuracy": self.overall_accuracy, "iou": self.iou, "scenes": self.scenes,
                "points": self.points}  # fmt: skip


def evaluate(model: ResUNet, clouds: list[Cloud], voxel_size: float,
             progress: Callable[[int, int], None] | None = None) -> SegEvalResult:  # fmt: skip
    """Confusion over the full point clouds (inverse voxel map), per-class IoU and mIoU."""
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    points = 0
    preds = []
    for k, c in enumerate(clouds):
        pred = predict(model, c.xyz, c.rgb, voxel_size)
        preds.append(pred)
        conf += confusion_matrix(pred, c.labels.astype(np.int64), NUM_CLASSES, IGNORE_LABEL)
        points += len(c.xyz)
        if progress is not None:
            progress(k + 1, len(clouds))
    iou = iou_per_class(conf)
    per = {CLASS_NAMES_20[i]: float(iou[i]) for i in range(NUM_CLASSES) if np.isfinite(iou[i])}
    return SegEvalResult(miou(conf), overall_accuracy(conf), per, len(clouds), points, conf, preds)
