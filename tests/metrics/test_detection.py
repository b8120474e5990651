"""Detection AP (KITTI R40 / R11, centre distance) against hand-computed cases and the plain definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perception.metrics.detection import (
    ap_r11,
    ap_r40,
    evaluate_center_distance,
    evaluate_detection,
    match_and_ap,
)


def _b(x=0.0, y=0.0, z=0.0, l=4.0, w=2.0, h=1.5, yaw=0.0) -> list[float]:
    return [x, y, z, l, w, h, yaw]


def _scene(rng: np.random.Generator, frames: int = 4):
    gts, names = [], []
    for f in range(frames):
        k = 3 + f
        boxes = np.array([_b(x=8.0 * i, y=5.0 * f, yaw=rng.uniform(-3, 3)) for i in range(k)])
        boxes[:, 3:6] = rng.uniform(0.6, 4.5, (k, 3))
        gts.append(boxes)
        names.append([("Car", "Pedestrian", "Cyclist")[i % 3] for i in range(k)])
    return gts, names


def test_perfect_detections_ap_one(rng):
    gts, names = _scene(rng)
    scores = [rng.uniform(0.1, 1.0, len(g)) for g in gts]
    for metric in ("bev", "3d"):
        res = evaluate_detection(gts, names, gts, scores, names, metric=metric)
        for cls, r in res.per_class.items():
            assert r.ap_r40 == pytest.approx(1.0) and r.ap_r11 == pytest.approx(1.0), cls
            assert r.num_gt == sum(np.count_nonzero(np.asarray(n) == cls) for n in names)
            assert r.num_tp == r.num_dt == r.num_gt and r.num_fp == 0
        assert res.map_r40 == pytest.approx(1.0)


def _tp_fp_tp():
    # 2 GT cars (one per frame); ranked detections: TP (0.9), FP (0.8), TP (0.7)
    gts = [np.array([_b()]), np.array([_b(x=10.0)])]
    dts = [np.array([_b(), _b(x=30.0)]), np.array([_b(x=10.0)])]
    scores = [np.array([0.9, 0.8]), np.array([0.7])]
    return gts, dts, scores


def test_hand_computed_tp_fp_tp():
    gts, dts, scores = _tp_fp_tp()
    r = match_and_ap(gts, dts, scores, threshold=0.7)
    np.testing.assert_array_equal(r.tp, [True, False, True])
    np.testing.assert_allclose(r.precision, [1, 1 / 2, 2 / 3])
    np.testing.assert_allclose(r.recall, [1 / 2, 1 / 2, 1])
    # R40: recall 1/40..20/40 -> max precision at recall >= r is 1; 21/40..40/40 -> 2/3 (only the last rank)
    assert r.ap_r40 == pytest.approx((20 * 1 + 20 * 2 / 3) / 40)  # 5/6
    # R11: r = 0, 0.1, ..., 0.5 -> 1 (6 points); 0.6 ... 1.0 -> 2/3 (5 points)
    assert r.ap_r11 == pytest.approx((6 + 5 * 2 / 3) / 11)  # 28/33
    np.testing.assert_allclose(r.precision_r40, [1.0] * 20 + [2 / 3] * 20)
    names = [["Car"], ["Car"]]
    res = evaluate_detection(gts, names, dts, scores, [["Car", "Car"], ["Car"]], classes=("Car",))
    assert res.ap_r40["Car"] == pytest.approx(5 / 6)


def test_ap_functions_match_plain_definition(rng):
    for _ in range(30):
        n = int(rng.integers(1, 25))
        tp = rng.random(n) < 0.6
        num_gt = int(tp.sum() + rng.integers(0, 4)) or 1
        prec = np.cumsum(tp) / np.arange(1, n + 1)
        rec = np.cumsum(tp) / num_gt

        def interp(r, prec=prec, rec=rec):
            ok = rec >= r - 1e-12
            return prec[ok].max() if ok.any() else 0.0

        assert ap_r40(tp, num_gt) == pytest.approx(np.mean([interp(i / 40) for i in range(1, 41)]))
        assert ap_r11(tp, num_gt) == pytest.approx(np.mean([interp(i / 10) for i in range(11)]))
    assert ap_r40([], 3) == 0.0 and math.isnan(ap_r40([True], 0))


def test_threshold_per_class_and_metric():
    gt = [np.array([_b()])]
    dt = [np.array([_b(x=0.8)])]  # BEV IoU (3.2 * 2) / (16 - 6.4) = 2/3
    names, sc = [["Car"]], [np.array([0.5])]
    assert evaluate_detection(gt, names, dt, sc, names, classes=("Car",)).ap_r40["Car"] == 0.0  # Car @ 0.7
    assert evaluate_detection(gt, names, dt, sc, names, classes=("Car",), iou_thresholds=0.5).ap_r40["Car"] == 1.0
    res = evaluate_detection(gt, names, dt, sc, names, classes=("Car",), iou_thresholds={"Car": 0.6})
    assert res.ap_r40["Car"] == 1.0
    # the same box shifted up by 3/4 of its height: BEV IoU 1, 3D IoU 1/7
    up = [np.array([_b(z=1.125)])]
    assert evaluate_detection(gt, names, up, sc, names, classes=("Car",), metric="bev").ap_r40["Car"] == 1.0
    r3d = evaluate_detection(gt, names, up, sc, names, classes=("Car",), metric="3d", iou_thresholds=0.1)
    assert r3d.ap_r40["Car"] == 1.0
    assert evaluate_detection(gt, names, up, sc, names, classes=("Car",), metric="3d").ap_r40["Car"] == 0.0
    with pytest.raises(ValueError, match="no threshold"):
        evaluate_detection(gt, names, dt, sc, names, classes=("Car", "Tram"))


def test_duplicates_and_class_separation():
    gt = [np.array([_b(), _b(x=10.0)])]
    gn = [["Car", "Pedestrian"]]
    dt = [np.array([_b(), _b(x=0.1), _b(x=10.0)])]
    dn = [["Car", "Car", "Cyclist"]]  # a duplicate car, and the pedestrian detected as a cyclist
    res = evaluate_detection(gt, gn, dt, [np.array([0.9, 0.8, 0.7])], dn)
    car = res.per_class["Car"]
    np.testing.assert_array_equal(car.tp, [True, False])
    assert car.ap_r40 == 1.0  # the FP ranks below the only TP
    assert res.ap_r40["Pedestrian"] == 0.0 and res.per_class["Pedestrian"].num_gt == 1
    assert math.isnan(res.ap_r40["Cyclist"]) and res.per_class["Cyclist"].num_fp == 1
    assert res.map_r40 == pytest.approx(0.5)  # Cyclist (no GT) is left out of the mean


def test_greedy_takes_best_unmatched_gt():
    gt = [np.array([_b(), _b(x=2.5)])]
    dt = [np.array([_b(x=1.5), _b(x=0.2)])]  # first overlaps x=2.5 best (IoU 3/5) and x=0 less (IoU 5/11)
    r = match_and_ap(gt, dt, [np.array([0.9, 0.5])], threshold=0.4)
    np.testing.assert_array_equal(r.tp, [True, True])


def test_dontcare_and_ignored_classes():
    gts, dts, scores = _tp_fp_tp()  # the FP sits at x = 30 in frame 0
    dc = [np.array([_b(x=30.0, l=10.0, w=10.0)]), np.zeros((0, 7))]
    r = match_and_ap(gts, dts, scores, threshold=0.7, dontcare_boxes=dc)
    assert r.ap_r40 == 1.0 and r.num_ignored_dt == 1 and r.num_fp == 0 and r.num_dt == 3
    # the same region as a GT entry named DontCare; KITTI's 2D-only DontCare labels (sizes -1) are dropped
    gt0 = np.array([_b(), _b(x=30.0, l=10.0, w=10.0), [-1000, -1000, -1000, -1, -1, -1, -10]])
    names = [["Car", "DontCare", "DontCare"], ["Car"]]
    dn = [["Car", "Car"], ["Car"]]
    res = evaluate_detection([gt0, gts[1]], names, dts, scores, dn, classes=("Car",))
    assert res.ap_r40["Car"] == 1.0 and res.per_class["Car"].num_gt == 2
    # a detection that only grazes the region (1/4 of its area inside) stays a false positive
    grazing = [np.array([_b(), _b(x=36.0)]), dts[1]]  # region x in [25, 35], box x in [34, 38]
    assert match_and_ap(gts, grazing, scores, threshold=0.7, dontcare_boxes=dc).num_fp == 1
    # a Van GT: a Car detection on it is ignored (neither TP nor FP) and the Van is not a missed car
    gt = [np.array([_b(), _b(x=10.0, l=5.0)])]
    gn = [["Car", "Van"]]
    dt = [np.array([_b(x=10.0, l=5.0), _b()])]
    res = evaluate_detection(gt, gn, dt, [np.array([0.9, 0.8])], [["Car", "Car"]], classes=("Car",))
    car = res.per_class["Car"]
    assert car.ap_r40 == 1.0 and car.num_gt == 1 and car.num_ignored_dt == 1
    res = evaluate_detection(gt, gn, dt, [np.array([0.9, 0.8])], [["Car", "Car"]], classes=("Car",), ignore_classes={})
    assert res.per_class["Car"].num_fp == 1


def test_center_distance():
    gt = [np.array([_b(), _b(x=20.0)])]
    dt = [np.array([_b(x=0.7), _b(x=20.0, y=1.5, yaw=1.0)])]  # centre errors 0.7 m and 1.5 m
    names = [["Car", "Car"]]
    res, mean = evaluate_center_distance(gt, names, dt, [np.array([0.9, 0.8])], names, classes=("Car",))
    assert res.ap_r40[("Car", 0.5)] == 0.0
    assert res.ap_r40[("Car", 1.0)] == pytest.approx(0.5)  # TP first, then FP: recall 1/2 at precision 1
    assert res.ap_r40[("Car", 2.0)] == 1.0
    assert mean["Car"] == pytest.approx(0.5)


def test_empty_and_invalid_inputs():
    empty = np.zeros((0, 7))
    res = evaluate_detection([empty], [[]], [empty], [np.zeros(0)], [[]])
    assert all(math.isnan(v) for v in res.ap_r40.values()) and math.isnan(res.map_r40)
    res = evaluate_detection([np.array([_b()])], [["Car"]], [empty], [np.zeros(0)], [[]], classes=("Car",))
    assert res.ap_r40["Car"] == 0.0 and res.per_class["Car"].num_dt == 0
    ok = [np.array([_b()])]
    with pytest.raises(ValueError, match="NaN"):
        evaluate_detection(ok, [["Car"]], [np.array([_b(x=float("nan"))])], [np.array([0.5])], [["Car"]])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_detection(ok, [["Car"]], ok, [np.array([float("nan")])], [["Car"]])
    with pytest.raises(ValueError, match="one entry per frame"):
        evaluate_detection(ok, [["Car"]], ok + ok, [np.array([0.5])] * 2, [["Car"]] * 2)
    with pytest.raises(ValueError, match="one per detection"):
        evaluate_detection(ok, [["Car"]], ok, [np.array([0.5, 0.4])], [["Car"]])
    with pytest.raises(ValueError, match="metric"):
        evaluate_detection(ok, [["Car"]], ok, [np.array([0.5])], [["Car"]], metric="2d")
