"""Semantic-segmentation metrics from a confusion matrix (rows = ground truth, columns = prediction).

Conventions: pixels/points whose GT label equals ``ignore_index`` are dropped. The IoU of a class absent
from both the prediction and the GT (TP + FP + FN = 0) is NaN, and mIoU is the mean over the remaining
(present) classes, so classes a scene does not contain neither help nor hurt. A class that is only
predicted (FP > 0) counts with IoU 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(pred: Any, gt: Any, num_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, ``C[g, p]`` = number of elements with GT g predicted as p."""
    p = np.asarray(pred)
    g = np.asarray(gt)
    if p.shape != g.shape:
        raise ValueError(f"pred/gt: shapes differ ({p.shape} vs {g.shape})")
    if p.dtype.kind not in "iu" or g.dtype.kind not in "iu":
        raise ValueError(f"pred/gt: expected integer labels, got dtypes {p.dtype} and {g.dtype}")
    if not int(num_classes) > 0:
        raise ValueError(f"num_classes: expected a positive integer, got {num_classes}")
    n = int(num_classes)
    p = p.ravel().astype(np.int64)
    g = g.ravel().astype(np.int64)
    keep = np.ones(g.shape, dtype=bool) if ignore_index is None else g != ignore_index
    p, g = p[keep], g[keep]
    if g.size and (g.min() < 0 or g.max() >= n):
        bad = g[(g < 0) | (g >= n)][0]
        raise ValueError(f"gt: label {bad} outside [0, {n}) and not ignore_index={ignore_index}")
    if p.size and (p.min() < 0 or p.max() >= n):
        bad = p[(p < 0) | (p >= n)][0]
        raise ValueError(f"pred: label {bad} outside [0, {n}) at a non-ignored element")
    return np.bincount(g * n + p, minlength=n * n).reshape(n, n)


def _conf(conf: Any) -> np.ndarray:
    c = np.asarray(conf)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"conf: expected a square confusion matrix, got shape {c.shape}")
    return c.astype(np.float64)


def iou_per_class(conf: Any) -> np.ndarray:
    """TP / (TP + FP + FN) per class; NaN for classes absent from both prediction and GT."""
    c = _conf(conf)
    tp = np.diag(c)
    denom = c.sum(0) + c.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


def miou(conf: Any) -> float:
    """Mean IoU over classes present in the prediction or the GT (NaN if none)."""
    iou = iou_per_class(conf)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def overall_accuracy(conf: Any) -> float:
    """Correct / total over all non-ignored elements (NaN if empty)."""
    c = _conf(conf)
    total = c.sum()
    return float(np.trace(c) / total) if total > 0 else float("nan")


def mean_class_accuracy(conf: Any) -> float:
    """Mean over GT-present classes of per-class recall TP / (TP + FN) (NaN if no GT)."""
    c = _conf(conf)
    gt_count = c.sum(1)
    present = gt_count > 0
    return float(np.mean(np.diag(c)[present] / gt_count[present])) if present.any() else float("nan")
