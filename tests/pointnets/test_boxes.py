"""LiDAR box operations against analytic cases, a float64 polygon-clipping reference and naive loops."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from perception.datasets.kitti_object import box_corners_lidar
from perception.pointnets.boxes import (
    bev_corners,
    bev_intersection_area,
    bev_iou,
    boxes_to_corners_3d,
    iou3d,
    nms_bev,
    points_box_index,
    points_in_boxes,
)


def _box(x=0.0, y=0.0, z=0.0, l=1.0, w=1.0, h=1.0, yaw=0.0) -> np.ndarray:
    return np.array([[x, y, z, l, w, h, yaw]], dtype=np.float64)


def _random_boxes(rng: np.random.Generator, k: int, extent: float = 6.0) -> np.ndarray:
    xyz = rng.uniform(-extent, extent, (k, 3))
    lwh = rng.uniform(0.3, 4.0, (k, 3))
    yaw = rng.uniform(-math.pi, math.pi, (k, 1))
    return np.concatenate([xyz, lwh, yaw], axis=1)


# --- float64 reference: Sutherland-Hodgman clipping of convex polygons -----------------------------------------


def _area(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _clip(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Intersection of two counter-clockwise convex polygons."""
    out = list(subject)
    for i in range(len(clip)):
        a, b = clip[i], clip[(i + 1) % len(clip)]
        inp, out = out, []
        if not inp:
            break

        def side(p, a=a, b=b):
            return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

        for j in range(len(inp)):
            p, q = inp[j], inp[(j + 1) % len(inp)]
            sp, sq = side(p), side(q)
            if sp >= 0:
                out.append(p)
            if (sp >= 0) != (sq >= 0):
                t = sp / (sp - sq)
                out.append(p + t * (q - p))
    return np.array(out).reshape(-1, 2)


def _ref_bev_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ca, cb = bev_corners(a)[:, ::-1], bev_corners(b)[:, ::-1]  # clockwise -> counter-clockwise
    out = np.zeros((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            inter = abs(_area(_clip(ca[i], cb[j])))
            union = a[i, 3] * a[i, 4] + b[j, 3] * b[j, 4] - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


# --- corners ----------------------------------------------------------------------------------------------------


def test_corners_match_kitti_converter_and_orientation(rng):
    boxes = _random_boxes(rng, 5)
    np.testing.assert_allclose(boxes_to_corners_3d(boxes), box_corners_lidar(boxes), atol=1e-12)
    c = bev_corners(_box(l=4.0, w=2.0, yaw=math.pi / 2))[0]
    # heading +y: the front-left corner is at (-w/2, +l/2)
    np.testing.assert_allclose(c, [[-1, 2], [1, 2], [1, -2], [-1, -2]], atol=1e-12)
    assert _area(c) < 0  # clockwise seen from above


def test_yaw_plus_pi_is_the_same_bev_box(rng):
    boxes = _random_boxes(rng, 6)
    flipped = boxes.copy()
    flipped[:, 6] += math.pi
    np.testing.assert_allclose(np.diag(bev_iou(boxes, flipped)), 1.0, atol=1e-6)
    c0, c1 = bev_corners(boxes), bev_corners(flipped)
    np.testing.assert_allclose(np.roll(c1, 2, axis=1), c0, atol=1e-12)  # same corners, front and rear swapped


# --- IoU --------------------------------------------------------------------------------------------------------


def test_identical_boxes_iou_one(rng):
    boxes = _random_boxes(rng, 8)
    np.testing.assert_allclose(np.diag(bev_iou(boxes, boxes)), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.diag(iou3d(boxes, boxes)), 1.0, atol=1e-6)
    far = boxes + np.array([1000.0, -2000.0, 0, 0, 0, 0, 0])  # re-centring keeps float32 OpenCV exact enough
    np.testing.assert_allclose(np.diag(bev_iou(far, far)), 1.0, atol=1e-6)


def test_axis_aligned_overlap_by_hand():
    a = _box(l=4.0, w=2.0)  # x in [-2, 2], y in [-1, 1]
    b = _box(x=1.0, y=0.5, l=4.0, w=2.0)  # x in [-1, 3], y in [-0.5, 1.5]
    inter = 3.0 * 1.5
    assert bev_intersection_area(a, b)[0, 0] == pytest.approx(inter)
    assert bev_iou(a, b)[0, 0] == pytest.approx(inter / (8 + 8 - inter))
    # the same pair through OpenCV: rotate both by a non-quarter angle about the origin
    t = 0.3
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    ar, br = a.copy(), b.copy()
    ar[:, 6] += t
    br[:, 6] += t
    br[0, :2] = rot @ b[0, :2]
    br[0, 6] += 1e-3  # just off parallel, so this pair goes through OpenCV
    assert bev_intersection_area(ar, br)[0, 0] == pytest.approx(inter, rel=5e-3)
    # a box turned by 90 degrees swaps its extents: 4x2 vs 2x4 at the same centre -> 2x2 overlap
    assert bev_intersection_area(a, _box(l=4.0, w=2.0, yaw=math.pi / 2))[0, 0] == pytest.approx(4.0)


def test_square_and_rotated_square_octagon():
    # Two unit squares about the same centre, one turned 45 degrees: the intersection is a regular octagon with
    # inradius 1/2 (both squares' edges are 1/2 from the centre), area 8 r^2 tan(pi/8) = 2 (sqrt2 - 1).
    a, b = _box(), _box(yaw=math.pi / 4)
    octagon = 2 * (math.sqrt(2) - 1)
    assert bev_intersection_area(a, b)[0, 0] == pytest.approx(octagon, rel=1e-6)
    assert bev_iou(a, b)[0, 0] == pytest.approx(octagon / (2 - octagon), rel=1e-6)
    assert bev_iou(a, b)[0, 0] == pytest.approx(1 / math.sqrt(2), rel=1e-6)  # (sqrt2-1)/(2-sqrt2) = 1/sqrt2


def test_angle_sign_convention():
    # A thin bar centred at (1.5, 1.5): heading +45 deg runs through the origin and crosses the 4x1 box there;
    # heading -45 deg lies on x + y = 3, which misses the box (|x| <= 2, |y| <= 0.5) entirely.
    a = _box(l=4.0, w=1.0)
    plus = _box(x=1.5, y=1.5, l=6.0, w=0.2, yaw=math.pi / 4)
    minus = _box(x=1.5, y=1.5, l=6.0, w=0.2, yaw=-math.pi / 4)
    assert bev_iou(a, plus)[0, 0] > 0.02
    assert bev_iou(a, minus)[0, 0] == 0.0
    np.testing.assert_allclose(bev_iou(a, plus), _ref_bev_iou(a, plus), atol=1e-6)


def test_bev_iou_matches_polygon_reference(rng):
    a, b = _random_boxes(rng, 12, extent=3.0), _random_boxes(rng, 10, extent=3.0)
    b[:3, 6] = a[:3, 6] + np.array([0.0, math.pi / 2, math.pi])  # parallel pairs: the analytic path
    ref = _ref_bev_iou(a, b)
    assert (ref > 0).sum() > 20 and (ref == 0).sum() > 5
    np.testing.assert_allclose(bev_iou(a, b), ref, atol=2e-6)
    np.testing.assert_allclose(bev_iou(b, a), ref.T, atol=2e-6)


def test_iou3d_z_offset():
    a = _box(l=4.0, w=2.0, h=2.0)
    b = _box(z=1.0, l=4.0, w=2.0, h=2.0)  # half the height overlaps: intersection 8, union 16 + 16 - 8
    assert iou3d(a, b)[0, 0] == pytest.approx(8 / 24)
    assert iou3d(a, _box(z=2.0, l=4.0, w=2.0, h=2.0))[0, 0] == 0.0  # touching faces
    assert bev_iou(a, b)[0, 0] == pytest.approx(1.0)


def test_degenerate_inputs():
    empty = np.zeros((0, 7))
    assert bev_iou(empty, _box()).shape == (0, 1)
    assert iou3d(_box(), empty).shape == (1, 0)
    assert bev_corners(empty).shape == (0, 4, 2)
    assert nms_bev(empty, np.zeros(0), 0.5).shape == (0,)
    assert points_in_boxes(np.zeros((0, 3)), _box()).shape == (0, 1)
    np.testing.assert_array_equal(points_box_index(np.zeros((2, 3)), empty), [-1, -1])
    flat = _box(w=0.0)
    assert bev_iou(flat, flat)[0, 0] == 0.0 and iou3d(flat, _box())[0, 0] == 0.0
    with pytest.raises(ValueError, match="NaN"):
        bev_iou(_box(x=float("nan")), _box())
    with pytest.raises(ValueError, match="NaN"):
        nms_bev(_box(), [float("nan")], 0.5)
    with pytest.raises(ValueError, match="NaN"):
        points_in_boxes([[0.0, float("nan"), 0.0]], _box())
    with pytest.raises(ValueError, match="negative size"):
        iou3d(_box(l=-1.0), _box())
    with pytest.raises(ValueError, match=r"\(K, 7\)"):
        bev_iou(np.zeros((3, 5)), _box())


def test_torch_inputs(rng):
    boxes = _random_boxes(rng, 4)
    np.testing.assert_allclose(bev_iou(torch.from_numpy(boxes).float(), boxes), bev_iou(boxes, boxes), atol=1e-5)


# --- NMS --------------------------------------------------------------------------------------------------------


def _brute_greedy(iou: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(iou[i, j] <= thr for j in keep):
            keep.append(int(i))
    return keep


@pytest.mark.parametrize("thr", [0.1, 0.3, 0.6])
def test_nms_matches_brute_force_and_opencv(rng, thr):
    boxes = _random_boxes(rng, 60, extent=5.0)
    scores = (rng.permutation(60) + 1) / 61.0  # distinct, > 0 (OpenCV drops scores <= score_threshold >= 0)
    keep = nms_bev(boxes, scores, thr)
    assert keep.tolist() == _brute_greedy(_ref_bev_iou(boxes, boxes), scores, thr)
    assert 5 < len(keep) < 60
    assert nms_bev(boxes, scores, thr, max_out=3).tolist() == keep[:3].tolist()
    # OpenCV's NMSBoxesRotated scores a pair with one rectangle inside the other (INTERSECT_FULL) as IoU 1; with
    # that quirk replicated on top of our IoUs the two agree (LiDAR box angle = OpenCV angle in degrees).
    rects = [((float(b[0]), float(b[1])), (float(b[3]), float(b[4])), math.degrees(b[6])) for b in boxes]
    nested = np.array([[cv2.rotatedRectangleIntersection(r, q)[0] == cv2.INTERSECT_FULL for q in rects] for r in rects])
    assert nested.sum() > 60  # the quirk matters in this sample
    cv_keep = np.asarray(cv2.dnn.NMSBoxesRotated(rects, scores.tolist(), 0.0, thr)).reshape(-1)
    assert cv_keep.tolist() == _brute_greedy(np.where(nested, 1.0, bev_iou(boxes, boxes)), scores, thr)


def test_nms_keeps_a_small_box_inside_a_big_one():
    boxes = np.concatenate([_box(l=4.0, w=4.0), _box(l=1.0, w=1.0, yaw=0.3)])  # IoU 1/16
    assert nms_bev(boxes, [0.9, 0.8], 0.5).tolist() == [0, 1]
    assert nms_bev(boxes, [0.9, 0.8], 0.05).tolist() == [0]


# --- points in boxes --------------------------------------------------------------------------------------------


def test_points_in_boxes_vs_loop(rng):
    boxes = _random_boxes(rng, 7, extent=3.0)
    pts = rng.uniform(-5, 5, (3000, 4))  # a 4th column (intensity) is ignored
    inside = points_in_boxes(pts, boxes)
    for k, (x, y, z, l, w, h, yaw) in enumerate(boxes):
        R = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
        local = (pts[:, :2] - [x, y]) @ R  # rows: R^T (p - c)
        exp = (np.abs(local[:, 0]) <= l / 2) & (np.abs(local[:, 1]) <= w / 2) & (np.abs(pts[:, 2] - z) <= h / 2)
        np.testing.assert_array_equal(inside[:, k], exp)
    assert inside.any()
    idx = points_box_index(pts, boxes)
    np.testing.assert_array_equal(idx, np.where(inside.any(1), inside.argmax(1), -1))
    # a heading-aligned check: a point 1.9 m ahead of a 4 m long box heading +y is inside, 2.1 m is not
    bar = _box(l=4.0, w=1.0, yaw=math.pi / 2)
    np.testing.assert_array_equal(points_box_index([[0, 1.9, 0], [0, 2.1, 0], [0.6, 0, 0]], bar), [0, -1, -1])
