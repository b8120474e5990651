"""3D object-detection evaluation on LiDAR boxes: KITTI-style AP|R40 / AP|R11 (BEV or 3D IoU) and centre-distance AP.

Boxes are LiDAR boxes ``(x, y, z, l, w, h, yaw)`` (see :mod:`perception.pointnets.boxes`); every input is a
sequence with one entry per frame. Definitions, per class and per overlap criterion:

* **Overlap.** ``metric="bev"``: rotated bird's-eye-view IoU; ``"3d"``: 3D IoU (BEV intersection x z overlap /
  union volume); ``"center"``: BEV centre distance (metres). A detection and a GT box *match* when
  IoU ``> threshold`` (strictly, as the KITTI devkit's ``overlap > min_overlap``), or centre distance ``< d``
  (as nuScenes).
* **Matching.** Detections of the class are visited in descending score (ties: frame order, then index). In its
  frame a detection takes the unmatched GT box of the class with the best overlap; if that overlap passes the
  threshold the detection is a true positive (TP) and the GT is used up. Otherwise, if it matches an unmatched
  *ignored* GT box (a neighbouring class, ``ignore_classes``: Van for Car and Person_sitting for Pedestrian as
  in KITTI), that GT is used up and the detection is ignored. Otherwise, if more than ``dontcare_threshold`` of
  its BEV area lies inside one DontCare region (the devkit's ``boxoverlap(..., criterion=0)``), it is ignored.
  Otherwise it is a false positive (FP). Ignored GT boxes and ignored detections count neither way.
* **Precision / recall.** Over the ranked list of non-ignored detections of all frames, after the first ``k``:
  ``precision_k = TP_k / k`` and ``recall_k = TP_k / N_gt`` (``N_gt``: non-ignored GT boxes of the class).
* **AP|R40** = (1/40) sum over r in {1/40, 2/40, ..., 1} of ``max {precision_k : recall_k >= r}`` (0 when recall
  r is never reached). This is the 40-point interpolation the KITTI benchmark uses since 2019, proposed in
  Simonelli et al., "Disentangling Monocular 3D Object Detection", ICCV 2019, which drops the r = 0 point of
  **AP|R11** = (1/11) sum over r in {0, 0.1, ..., 1} of the same interpolated precision (PASCAL VOC 2007 / the
  original KITTI devkit). Recall comparisons are done in exact integer arithmetic.
* A class with no GT box has AP NaN (and is skipped by the mean over classes); with GT but no detection, AP 0.

Differences from the official devkit (``cpp/evaluate_object.cpp``): no easy / moderate / hard difficulty split
(that needs 2D boxes, truncation and occlusion), the matching is the detection-centric greedy one above instead
of the devkit's GT-centric assignment, and the interpolated precision is taken over detections rather than over
score thresholds sampled at the recall points (the two agree unless scores tie). GT entries named ``DontCare``
are taken out of the GT; those with a positive 3D size are used as DontCare regions (KITTI's own DontCare
labels are 2D-only, with ``l = w = h = -1``, and are dropped).

Centre-distance AP (:func:`evaluate_center_distance`) uses the same matching with ``metric="center"`` and the
same R40 / R11 summaries, per distance ``d`` in (0.5, 1, 2) m by default, plus their mean over distances. It is
*not* nuScenes' clipped 101-point AP (which drops recall < 0.1 and precision < 0.1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from perception.pointnets.boxes import bev_intersection_area, bev_iou, iou3d

__all__ = [
    "DEFAULT_IGNORE_CLASSES",
    "DEFAULT_IOU_THRESHOLDS",
    "ClassAP",
    "DetectionEval",
    "ap_r11",
    "ap_r40",
    "evaluate_center_distance",
    "evaluate_detection",
    "match_and_ap",
]

Metric = Literal["bev", "3d", "center"]
DEFAULT_CLASSES: tuple[str, ...] = ("Car", "Pedestrian", "Cyclist")
DEFAULT_IOU_THRESHOLDS: dict[str, float] = {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5}
DEFAULT_IGNORE_CLASSES: dict[str, tuple[str, ...]] = {"Car": ("Van",), "Pedestrian": ("Person_sitting",)}
DONTCARE = "DontCare"


@dataclass
class ClassAP:
    """AP of one class at one threshold, with the ranked detections behind it.

    ``scores``, ``tp``, ``precision`` and ``recall`` are over the non-ignored detections, in ranked order.
    ``precision_r40`` is the interpolated precision at recall 1/40, ..., 1 (its mean is ``ap_r40``).
    """

    name: str
    metric: str
    threshold: float
    ap_r40: float
    ap_r11: float
    num_gt: int
    num_dt: int
    num_tp: int
    num_fp: int
    num_ignored_dt: int
    scores: np.ndarray = field(repr=False)
    tp: np.ndarray = field(repr=False)
    precision: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)
    precision_r40: np.ndarray = field(repr=False)


@dataclass
class DetectionEval:
    """Per-class results of :func:`evaluate_detection` (keys: class names) or :func:`evaluate_center_distance`
    (keys: ``(class, distance)``)."""

    metric: str
    per_class: dict[Any, ClassAP]

    @property
    def ap_r40(self) -> dict[Any, float]:
        return {k: v.ap_r40 for k, v in self.per_class.items()}

    @property
    def ap_r11(self) -> dict[Any, float]:
        return {k: v.ap_r11 for k, v in self.per_class.items()}

    @property
    def map_r40(self) -> float:
        """Mean AP|R40 over entries with GT (NaN if none)."""
        return _nanmean(list(self.ap_r40.values()))

    @property
    def map_r11(self) -> float:
        return _nanmean(list(self.ap_r11.values()))


def _nanmean(values: list[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else float("nan")


# ---------------------------------------------------------------------------------------------------------------
# AP from a ranked TP / FP list


def _interp_precision(tp: np.ndarray, num_gt: int, num_points: int, include_zero: bool) -> np.ndarray:
    """Max precision at recall >= r for r = i / (num_points - 1 or num_points); exact integer recall tests."""
    tp = np.asarray(tp, dtype=bool)
    ctp = np.cumsum(tp, dtype=np.int64)
    prec = ctp / np.arange(1, tp.size + 1, dtype=np.float64)
    # Best precision from each rank onwards: recall is non-decreasing in rank, so max over {recall >= r} is the
    # suffix max starting at the first rank whose recall reaches r.
    suffix = np.maximum.accumulate(prec[::-1])[::-1] if tp.size else prec
    denom = num_points - 1 if include_zero else num_points
    idx = np.arange(0 if include_zero else 1, denom + 1, dtype=np.int64)
    # recall_k >= i / denom  <=>  ctp_k * denom >= i * num_gt
    first = np.searchsorted(ctp * denom, idx * num_gt, side="left")
    out = np.zeros(idx.size)
    ok = first < tp.size
    out[ok] = suffix[first[ok]]
    return out


def ap_r40(tp: Any, num_gt: int) -> float:
    """AP|R40 of a ranked list of TP flags (True = TP, False = FP) against ``num_gt`` GT boxes (NaN if none)."""
    if num_gt <= 0:
        return float("nan")
    return float(_interp_precision(np.asarray(tp, dtype=bool), int(num_gt), 40, include_zero=False).mean())


def ap_r11(tp: Any, num_gt: int) -> float:
    """AP|R11 (recall 0, 0.1, ..., 1) of a ranked list of TP flags against ``num_gt`` GT boxes (NaN if none)."""
    if num_gt <= 0:
        return float("nan")
    return float(_interp_precision(np.asarray(tp, dtype=bool), int(num_gt), 11, include_zero=True).mean())


# ---------------------------------------------------------------------------------------------------------------
# Matching


def _array(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _frame_boxes(x: Any, name: str) -> np.ndarray:
    if x is None:
        return np.zeros((0, 7))
    b = _array(x)
    if b.size == 0:
        return np.zeros((0, 7))
    b = b.reshape(1, -1) if b.ndim == 1 else b
    if b.ndim != 2 or b.shape[1] < 7:
        raise ValueError(f"{name}: expected boxes of shape (K, 7) = (x, y, z, l, w, h, yaw), got shape {b.shape}")
    b = b[:, :7]
    if not np.isfinite(b).all():
        k = int(np.argwhere(~np.isfinite(b).all(1))[0, 0])
        raise ValueError(f"{name}: box {k} has NaN or inf values; remove or fix such boxes")
    return b


def _frame_scores(x: Any, n: int, name: str) -> np.ndarray:
    s = _array(x).reshape(-1)
    if s.shape[0] != n:
        raise ValueError(f"{name}: expected {n} scores (one per detection box), got {s.shape[0]}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name}: score {int(np.argwhere(~np.isfinite(s))[0, 0])} is NaN or inf")
    return s


def _affinity(dt: np.ndarray, gt: np.ndarray, metric: Metric) -> np.ndarray:
    """(D, G) overlap where larger is better: IoU, or minus the BEV centre distance."""
    if metric == "bev":
        return bev_iou(dt, gt)
    if metric == "3d":
        return iou3d(dt, gt)
    if metric == "center":
        return -np.linalg.norm(dt[:, None, :2] - gt[None, :, :2], axis=-1)
    raise ValueError(f"metric: expected 'bev', '3d' or 'center', got {metric!r}")


def _check_frames(n: int, **seqs: Any) -> None:
    for name, seq in seqs.items():
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name}: expected one entry per frame ({n} frames), got {len(seq)}")


def match_and_ap(
    gt_boxes: Sequence[Any],
    dt_boxes: Sequence[Any],
    dt_scores: Sequence[Any],
    *,
    threshold: float,
    metric: Metric = "bev",
    gt_ignore: Sequence[Any] | None = None,
    dontcare_boxes: Sequence[Any] | None = None,
    dontcare_threshold: float = 0.5,
    name: str = "",
) -> ClassAP:
    """Match one class's detections to its GT over all frames and compute AP|R40 / AP|R11 (module docstring).

    ``threshold`` is the IoU threshold (``metric`` "bev" / "3d") or the centre distance in metres ("center").
    ``gt_ignore``: per frame, a bool mask over ``gt_boxes`` of GT boxes that are ignored (neighbouring classes).
    ``dontcare_boxes``: per frame, (M, 7) DontCare regions; an unmatched detection with more than
    ``dontcare_threshold`` of its BEV area inside one of them is ignored.
    """
    n = len(gt_boxes)
    _check_frames(n, dt_boxes=dt_boxes, dt_scores=dt_scores, gt_ignore=gt_ignore, dontcare_boxes=dontcare_boxes)
    if not math.isfinite(threshold):
        raise ValueError(f"threshold: expected a finite number, got {threshold}")
    thr = -float(threshold) if metric == "center" else float(threshold)

    frame_scores: list[np.ndarray] = []
    frame_status: list[np.ndarray] = []  # 1 TP, 0 FP, -1 ignored
    num_gt = 0
    for f in range(n):
        gt = _frame_boxes(gt_boxes[f], f"gt_boxes[{f}]")
        dt = _frame_boxes(dt_boxes[f], f"dt_boxes[{f}]")
        sc = _frame_scores(dt_scores[f], dt.shape[0], f"dt_scores[{f}]")
        ign = np.zeros(gt.shape[0], dtype=bool)
        if gt_ignore is not None and gt_ignore[f] is not None:
            ign = np.asarray(gt_ignore[f], dtype=bool).reshape(-1)
            if ign.shape[0] != gt.shape[0]:
                raise ValueError(f"gt_ignore[{f}]: expected {gt.shape[0]} flags (one per GT box), got {ign.shape[0]}")
        num_gt += int((~ign).sum())
        status = np.zeros(dt.shape[0], dtype=np.int8)
        if dt.shape[0]:
            order = np.argsort(-sc, kind="stable")
            aff = _affinity(dt, gt, metric) if gt.shape[0] else np.zeros((dt.shape[0], 0))
            used = np.zeros(gt.shape[0], dtype=bool)
            for j in order:
                for pool, st in ((~ign, 1), (ign, -1)):
                    cand = np.nonzero(pool & ~used)[0]
                    if cand.size:
                        g = cand[np.argmax(aff[j, cand])]
                        if aff[j, g] > thr:
                            used[g] = True
                            status[j] = st
                            break
            dc = _frame_boxes(None if dontcare_boxes is None else dontcare_boxes[f], f"dontcare_boxes[{f}]")
            fp = np.nonzero(status == 0)[0]
            if dc.shape[0] and fp.size:
                area = dt[fp, 3] * dt[fp, 4]
                inter = bev_intersection_area(dt[fp], dc).max(1)
                frac = np.where(area > 0, inter / np.where(area > 0, area, 1.0), 0.0)
                status[fp[frac > dontcare_threshold]] = -1
        frame_scores.append(sc)
        frame_status.append(status)

    scores = np.concatenate(frame_scores) if frame_scores else np.zeros(0)
    status = np.concatenate(frame_status) if frame_status else np.zeros(0, dtype=np.int8)
    order = np.argsort(-scores, kind="stable")
    scores, status = scores[order], status[order]
    keep = status >= 0
    tp = status[keep] == 1
    ranked_scores = scores[keep]
    ctp = np.cumsum(tp)
    precision = ctp / np.arange(1, tp.size + 1) if tp.size else np.zeros(0)
    recall = ctp / num_gt if num_gt > 0 else np.full(tp.size, np.nan)
    p40 = _interp_precision(tp, num_gt, 40, include_zero=False) if num_gt > 0 else np.full(40, np.nan)
    return ClassAP(
        name=name,
        metric=metric,
        threshold=float(threshold),
        ap_r40=ap_r40(tp, num_gt),
        ap_r11=ap_r11(tp, num_gt),
        num_gt=num_gt,
        num_dt=int(status.size),
        num_tp=int(tp.sum()),
        num_fp=int((~tp).sum()),
        num_ignored_dt=int((~keep).sum()),
        scores=ranked_scores,
        tp=tp,
        precision=precision,
        recall=recall,
        precision_r40=p40,
    )


def _names(x: Any, n: int, name: str) -> np.ndarray:
    a = np.asarray(list(x) if x is not None else [], dtype=object).reshape(-1)
    if a.shape[0] != n:
        raise ValueError(f"{name}: expected {n} class names (one per box), got {a.shape[0]}")
    return a.astype(str) if a.size else np.zeros(0, dtype=str)


def _split_frames(
    gt_boxes: Sequence[Any],
    gt_names: Sequence[Any],
    dt_boxes: Sequence[Any],
    dt_scores: Sequence[Any],
    dt_names: Sequence[Any],
    dontcare_boxes: Sequence[Any] | None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per frame: (gt boxes, gt names, dt boxes, dt scores, dt names, dontcare regions), DontCare GT moved out."""
    n = len(gt_boxes)
    _check_frames(
        n, gt_names=gt_names, dt_boxes=dt_boxes, dt_scores=dt_scores, dt_names=dt_names, dontcare_boxes=dontcare_boxes
    )
    frames = []
    for f in range(n):
        gt_raw = _array(gt_boxes[f])
        gt_raw = np.zeros((0, 7)) if gt_raw.size == 0 else gt_raw.reshape(-1, gt_raw.shape[-1])
        gn = _names(gt_names[f], gt_raw.shape[0], f"gt_names[{f}]")
        dc_gt = gn == DONTCARE
        gt = _frame_boxes(gt_raw[~dc_gt], f"gt_boxes[{f}]")
        dc_from_gt = gt_raw[dc_gt][:, :7]
        dc_from_gt = dc_from_gt[np.isfinite(dc_from_gt).all(1) & (dc_from_gt[:, 3:6] > 0).all(1)]
        dt = _frame_boxes(dt_boxes[f], f"dt_boxes[{f}]")
        sc = _frame_scores(dt_scores[f], dt.shape[0], f"dt_scores[{f}]")
        dn = _names(dt_names[f], dt.shape[0], f"dt_names[{f}]")
        dc = _frame_boxes(None if dontcare_boxes is None else dontcare_boxes[f], f"dontcare_boxes[{f}]")
        frames.append((gt, gn[~dc_gt], dt, sc, dn, np.concatenate([dc, dc_from_gt])))
    return frames


def _per_class(
    frames: list, cls: str, ignore: tuple[str, ...], threshold: float, metric: Metric, dontcare_threshold: float
) -> ClassAP:
    gts, igns, dts, scs, dcs = [], [], [], [], []
    for gt, gn, dt, sc, dn, dc in frames:
        sel = (gn == cls) | np.isin(gn, list(ignore))
        gts.append(gt[sel])
        igns.append(gn[sel] != cls)
        dts.append(dt[dn == cls])
        scs.append(sc[dn == cls])
        dcs.append(dc)
    return match_and_ap(
        gts,
        dts,
        scs,
        threshold=threshold,
        metric=metric,
        gt_ignore=igns,
        dontcare_boxes=dcs,
        dontcare_threshold=dontcare_threshold,
        name=cls,
    )


def evaluate_detection(
    gt_boxes: Sequence[Any],
    gt_names: Sequence[Any],
    dt_boxes: Sequence[Any],
    dt_scores: Sequence[Any],
    dt_names: Sequence[Any],
    classes: Sequence[str] = DEFAULT_CLASSES,
    iou_thresholds: Mapping[str, float] | float | None = None,
    metric: Literal["bev", "3d"] = "bev",
    dontcare_boxes: Sequence[Any] | None = None,
    ignore_classes: Mapping[str, Sequence[str]] | None = None,
    dontcare_threshold: float | None = None,
) -> DetectionEval:
    """KITTI-style AP|R40 and AP|R11 per class (see the module docstring for the exact definitions).

    Per-frame inputs: GT boxes (G, 7) and names (G,), detection boxes (D, 7), scores (D,) and names (D,), and
    optionally DontCare regions (M, 7). ``iou_thresholds``: per class (default KITTI's Car 0.7, Pedestrian /
    Cyclist 0.5), or one number for all classes (e.g. 0.5 for the project's "car BEV AP@0.5"). ``ignore_classes``
    maps a class to GT classes whose boxes are ignored for it (default KITTI's Van -> Car,
    Person_sitting -> Pedestrian; pass ``{}`` for none). ``dontcare_threshold`` defaults to the class threshold,
    as in the devkit.
    """
    if metric not in ("bev", "3d"):
        raise ValueError(f"metric: expected 'bev' or '3d', got {metric!r} (use evaluate_center_distance)")
    if iou_thresholds is None:
        iou_thresholds = DEFAULT_IOU_THRESHOLDS
    ignore_classes = DEFAULT_IGNORE_CLASSES if ignore_classes is None else ignore_classes
    frames = _split_frames(gt_boxes, gt_names, dt_boxes, dt_scores, dt_names, dontcare_boxes)
    out: dict[Any, ClassAP] = {}
    for cls in classes:
        if isinstance(iou_thresholds, Mapping):
            if cls not in iou_thresholds:
                raise ValueError(f"iou_thresholds: no threshold for class {cls!r} (has {sorted(iou_thresholds)})")
            thr = float(iou_thresholds[cls])
        else:
            thr = float(iou_thresholds)
        dct = thr if dontcare_threshold is None else float(dontcare_threshold)
        out[cls] = _per_class(frames, cls, tuple(ignore_classes.get(cls, ())), thr, metric, dct)
    return DetectionEval(metric=metric, per_class=out)


def evaluate_center_distance(
    gt_boxes: Sequence[Any],
    gt_names: Sequence[Any],
    dt_boxes: Sequence[Any],
    dt_scores: Sequence[Any],
    dt_names: Sequence[Any],
    classes: Sequence[str] = DEFAULT_CLASSES,
    distances: Sequence[float] = (0.5, 1.0, 2.0),
    dontcare_boxes: Sequence[Any] | None = None,
    ignore_classes: Mapping[str, Sequence[str]] | None = None,
    dontcare_threshold: float = 0.5,
) -> tuple[DetectionEval, dict[str, float]]:
    """Centre-distance AP: a detection matches a GT box whose BEV centre is closer than ``d`` metres.

    Returns the per ``(class, d)`` results and, per class, the mean AP|R40 over the distances.
    """
    ignore_classes = DEFAULT_IGNORE_CLASSES if ignore_classes is None else ignore_classes
    frames = _split_frames(gt_boxes, gt_names, dt_boxes, dt_scores, dt_names, dontcare_boxes)
    out: dict[Any, ClassAP] = {}
    for cls in classes:
        for d in distances:
            out[(cls, float(d))] = _per_class(
                frames, cls, tuple(ignore_classes.get(cls, ())), float(d), "center", dontcare_threshold
            )
    mean = {cls: _nanmean([out[(cls, float(d))].ap_r40 for d in distances]) for cls in classes}
    return DetectionEval(metric="center", per_class=out), mean
