"""Operations on LiDAR 3D boxes on the CPU: corners, rotated BEV / 3D IoU, rotated NMS, points in boxes.

Boxes are ``(K, 7)`` arrays ``(x, y, z, l, w, h, yaw)`` in the LiDAR frame (OpenPCDet's convention, see
:mod:`perception.datasets.kitti_object`): the box *centre*, the length along the heading, the width, the height
along +z, and the heading angle counter-clockwise about +z from +x (radians). Extra columns (velocities, ...) are
allowed and ignored. ``yaw`` and ``yaw + pi`` describe the same box. Inputs may be numpy arrays, anything
``np.asarray`` takes, or torch tensors (copied to the CPU); results are numpy arrays in float64.

Rotated BEV intersections of non-parallel boxes use OpenCV (``cv2.rotatedRectangleIntersection`` and
``cv2.contourArea``, in float32 internally; the pair is re-centred on the first box first, so far-away coordinates
cost no precision). OpenCV's ``RotatedRect`` angle is in degrees and rotates the rectangle by
``[[cos, -sin], [sin, cos]]`` in the coordinates it is given (clockwise on screen only because image y points
down); LiDAR x-y coordinates are passed as they are, so the angle is simply ``degrees(yaw)`` with
``size = (l, w)``. Pairs of boxes whose yaws differ by a multiple of pi/2 (the common case of identical or
axis-aligned boxes) are intersected analytically in float64, and pairs whose circumscribed circles or
axis-aligned bounding rectangles do not overlap are rejected without calling OpenCV.

Degenerate input: empty box arrays give empty results; boxes with a zero size have zero area and IoU 0 with
everything (also with themselves); negative sizes and NaN / inf values raise ``ValueError`` naming the argument.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from perception.datasets.kitti_object import box_corners_lidar

__all__ = [
    "bev_corners",
    "bev_intersection_area",
    "bev_iou",
    "boxes_to_corners_3d",
    "convex_polygons_overlap",
    "iou3d",
    "nms_bev",
    "points_box_index",
    "points_in_boxes",
]

# Yaw differences within this of a multiple of pi/2 are treated as parallel boxes (analytic intersection).
_PARALLEL_TOL = 1e-9
# Largest (points x boxes) block processed at once by points_in_boxes.
_POINT_CHUNK = 1 << 21


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_finite(a: np.ndarray, name: str) -> None:
    if a.size and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name}: NaN or inf at index {tuple(int(i) for i in bad)}; remove or fix such entries")


def _boxes(x: Any, name: str) -> np.ndarray:
    """(K, 7) float64 boxes, validated: finite values, non-negative sizes."""
    b = _to_numpy(x)
    if b.size == 0:
        return np.zeros((0, 7))
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] < 7:
        raise ValueError(f"{name}: expected boxes of shape (K, 7) = (x, y, z, l, w, h, yaw), got shape {b.shape}")
    b = b[:, :7]
    _check_finite(b, name)
    if (b[:, 3:6] < 0).any():
        k = int(np.argwhere((b[:, 3:6] < 0).any(1))[0, 0])
        raise ValueError(f"{name}: box {k} has a negative size (l, w, h) = {tuple(b[k, 3:6].tolist())}")
    return b


def bev_corners(boxes: Any) -> np.ndarray:
    """(K, 4, 2) bird's-eye-view corners: front-left, front-right, rear-right, rear-left (clockwise from above).

    The bottom face of :func:`boxes_to_corners_3d`.
    """
    return boxes_to_corners_3d(boxes)[:, :4, :2]


def boxes_to_corners_3d(boxes: Any) -> np.ndarray:
    """(K, 8, 3) corners (validated boxes): the 4 bottom corners, then the 4 top ones, in the order of
    :func:`perception.datasets.kitti_object.box_corners_lidar`, which computes them."""
    return box_corners_lidar(_boxes(boxes, "boxes"))


def convex_polygons_overlap(a: np.ndarray, b: np.ndarray, margin: float = 0.0) -> bool:
    """Whether two convex polygons (n, 2) come closer than ``margin`` along every separating axis (SAT): False as
    soon as the projections on one edge normal are more than ``margin`` apart."""
    for poly in (a, b):
        edges = np.roll(poly, -1, axis=0) - poly
        for e in edges:
            n = np.array([-e[1], e[0]]) / max(np.hypot(e[0], e[1]), 1e-12)
            pa, pb = a @ n, b @ n
            if pa.min() > pb.max() + margin or pb.min() > pa.max() + margin:
                return False
    return True


def _radius_and_aabb(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Circumscribed-circle radius (K,) and half extents of the axis-aligned bounding rectangle (K, 2)."""
    hl, hw = b[:, 3] / 2.0, b[:, 4] / 2.0
    c, s = np.abs(np.cos(b[:, 6])), np.abs(np.sin(b[:, 6]))
    return np.hypot(hl, hw), np.stack([c * hl + s * hw, s * hl + c * hw], axis=-1)


def _candidates(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (ia, ib) whose BEV rectangles may intersect (circle and AABB test, both with positive area)."""
    ra, ea = _radius_and_aabb(a)
    rb, eb = _radius_and_aabb(b)
    d = b[None, :, :2] - a[:, None, :2]  # (Ka, Kb, 2)
    close = np.hypot(d[..., 0], d[..., 1]) < ra[:, None] + rb[None, :]
    close &= (np.abs(d) < ea[:, None, :] + eb[None, :, :]).all(-1)
    close &= ((a[:, 3] * a[:, 4]) > 0)[:, None] & ((b[:, 3] * b[:, 4]) > 0)[None, :]
    return np.nonzero(close)


def _intersect_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """BEV intersection areas of the row-aligned box pairs a[i], b[i] (both (P, 7), positive areas)."""
    out = np.zeros(a.shape[0])
    if not a.shape[0]:
        return out
    dyaw = b[:, 6] - a[:, 6]
    quarter = np.round(dyaw / (np.pi / 2.0))
    parallel = np.abs(dyaw - quarter * (np.pi / 2.0)) < _PARALLEL_TOL
    if parallel.any():
        # Analytic: express b's centre in a's frame; b's extents along a's axes swap for odd quarter turns.
        pa, pb, q = a[parallel], b[parallel], quarter[parallel].astype(np.int64)
        d = pb[:, :2] - pa[:, :2]
        c, s = np.cos(pa[:, 6]), np.sin(pa[:, 6])
        u, v = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
        odd = (q % 2) == 1
        bl, bw = np.where(odd, pb[:, 4], pb[:, 3]), np.where(odd, pb[:, 3], pb[:, 4])
        ox = np.minimum(pa[:, 3] / 2, u + bl / 2) - np.maximum(-pa[:, 3] / 2, u - bl / 2)
        oy = np.minimum(pa[:, 4] / 2, v + bw / 2) - np.maximum(-pa[:, 4] / 2, v - bw / 2)
        out[parallel] = np.clip(ox, 0, None) * np.clip(oy, 0, None)
    for i in np.nonzero(~parallel)[0]:
        ra = ((0.0, 0.0), (float(a[i, 3]), float(a[i, 4])), math.degrees(a[i, 6]))
        dx, dy = float(b[i, 0] - a[i, 0]), float(b[i, 1] - a[i, 1])
        rb = ((dx, dy), (float(b[i, 3]), float(b[i, 4])), math.degrees(b[i, 6]))
        ret, pts = cv2.rotatedRectangleIntersection(ra, rb)
        if ret == cv2.INTERSECT_NONE or pts is None or len(pts) < 3:
            continue
        # The intersection of convex polygons is convex: the hull fixes the vertex order OpenCV returns.
        out[i] = cv2.contourArea(cv2.convexHull(pts.reshape(-1, 1, 2).astype(np.float32)))
    # Guard against float32 round-off above the smaller box's area.
    return np.minimum(out, np.minimum(a[:, 3] * a[:, 4], b[:, 3] * b[:, 4]))


def bev_intersection_area(a: Any, b: Any) -> np.ndarray:
    """(Ka, Kb) areas of the rotated BEV intersections of boxes ``a`` and ``b`` (square metres)."""
    a, b = _boxes(a, "a"), _boxes(b, "b")
    out = np.zeros((a.shape[0], b.shape[0]))
    ia, ib = _candidates(a, b)
    out[ia, ib] = _intersect_pairs(a[ia], b[ib])
    return out


def _iou_from_inter(inter: np.ndarray, size_a: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    union = size_a[:, None] + size_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def bev_iou(a: Any, b: Any) -> np.ndarray:
    """(Ka, Kb) rotated bird's-eye-view IoU (0 for pairs involving a zero-area box)."""
    a, b = _boxes(a, "a"), _boxes(b, "b")
    return _iou_from_inter(bev_intersection_area(a, b), a[:, 3] * a[:, 4], b[:, 3] * b[:, 4])


def iou3d(a: Any, b: Any) -> np.ndarray:
    """(Ka, Kb) 3D IoU of z-aligned boxes: BEV intersection area x z overlap / union volume."""
    a, b = _boxes(a, "a"), _boxes(b, "b")
    za0, za1 = a[:, 2] - a[:, 5] / 2, a[:, 2] + a[:, 5] / 2
    zb0, zb1 = b[:, 2] - b[:, 5] / 2, b[:, 2] + b[:, 5] / 2
    dz = np.clip(np.minimum(za1[:, None], zb1[None, :]) - np.maximum(za0[:, None], zb0[None, :]), 0, None)
    inter = bev_intersection_area(a, b) * dz
    return _iou_from_inter(inter, a[:, 3] * a[:, 4] * a[:, 5], b[:, 3] * b[:, 4] * b[:, 5])


def nms_bev(boxes: Any, scores: Any, iou_threshold: float, max_out: int | None = None) -> np.ndarray:
    """Greedy rotated-BEV non-maximum suppression; returns the kept indices (int64) in descending score order.

    Boxes are visited by descending score (ties: lower index first); a visited box that is not suppressed is
    kept and suppresses every later box whose BEV IoU with it is ``> iou_threshold``. IoUs are computed only
    between each kept box and the boxes still alive, so the cost grows with the number kept, not K^2.
    ``max_out`` stops after that many boxes are kept. Unlike ``cv2.dnn.NMSBoxesRotated``, which scores a box lying
    entirely inside another as IoU 1, a small box inside a large one has its true (small) IoU here.
    """
    b = _boxes(boxes, "boxes")
    s = _to_numpy(scores).reshape(-1)
    if s.shape[0] != b.shape[0]:
        raise ValueError(f"scores: expected {b.shape[0]} scores (one per box), got {s.shape[0]}")
    _check_finite(s, "scores")
    if not math.isfinite(iou_threshold):
        raise ValueError(f"iou_threshold: expected a finite number, got {iou_threshold}")
    limit = b.shape[0] if max_out is None else max(int(max_out), 0)
    order = np.argsort(-s, kind="stable")
    alive = np.ones(b.shape[0], dtype=bool)
    area = b[:, 3] * b[:, 4]
    keep: list[int] = []
    for pos, i in enumerate(order):
        if len(keep) >= limit:
            break
        if not alive[i]:
            continue
        keep.append(int(i))
        rest = order[pos + 1 :]
        rest = rest[alive[rest]]
        if not rest.size:
            break
        ia, ib = _candidates(b[i : i + 1], b[rest])
        if not ib.size:
            continue
        inter = _intersect_pairs(b[np.full(ib.size, i)], b[rest[ib]])
        iou = _iou_from_inter(inter[None, :], area[i : i + 1], area[rest[ib]])[0]
        alive[rest[ib[iou > iou_threshold]]] = False
    return np.asarray(keep, dtype=np.int64)


def _points(x: Any) -> np.ndarray:
    p = _to_numpy(x)
    if p.size == 0:
        return np.zeros((0, 3))
    if p.ndim != 2 or p.shape[1] < 3:
        raise ValueError(f"points: expected shape (N, 3+) with x y z first, got shape {p.shape}")
    p = p[:, :3]
    _check_finite(p, "points")
    return p


def points_in_boxes(points: Any, boxes: Any) -> np.ndarray:
    """(N, K) bool: point n lies in box k (closed boxes: points on a face count as inside)."""
    p, b = _points(points), _boxes(boxes, "boxes")
    n, k = p.shape[0], b.shape[0]
    out = np.zeros((n, k), dtype=bool)
    if not n or not k:
        return out
    c, s = np.cos(b[:, 6]), np.sin(b[:, 6])
    half = b[:, 3:6] / 2.0
    step = max(1, _POINT_CHUNK // k)
    for lo in range(0, n, step):
        d = p[lo : lo + step, None, :] - b[None, :, :3]  # (n', K, 3)
        u = c * d[..., 0] + s * d[..., 1]  # along the heading
        v = -s * d[..., 0] + c * d[..., 1]  # to the left of the heading
        out[lo : lo + step] = (np.abs(u) <= half[:, 0]) & (np.abs(v) <= half[:, 1]) & (np.abs(d[..., 2]) <= half[:, 2])
    return out


def points_box_index(points: Any, boxes: Any) -> np.ndarray:
    """(N,) int64 index of the box containing each point, -1 for none (the lowest index where boxes overlap)."""
    inside = points_in_boxes(points, boxes)
    if not inside.shape[1]:
        return np.full(inside.shape[0], -1, dtype=np.int64)
    return np.where(inside.any(1), inside.argmax(1), -1).astype(np.int64)
