"""Segmentation metrics against a hand-worked example and a naive loop."""

from __future__ import annotations

import numpy as np
import pytest

from perception.metrics import confusion_matrix, iou_per_class, mean_class_accuracy, miou, overall_accuracy


def test_hand_example():
    gt = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 0, 2]])
    C = confusion_matrix(pred, gt, num_classes=4)
    # pairs (gt, pred) without the ignored 255: (0,0) (0,1) (1,1) (1,1) (2,0)
    expected = np.zeros((4, 4), int)
    expected[0, 0] = expected[0, 1] = expected[2, 0] = 1
    expected[1, 1] = 2
    np.testing.assert_array_equal(C, expected)
    iou = iou_per_class(C)
    # class 0: TP 1, FP 1 (gt 2 -> 0), FN 1 (0 -> 1): 1/3 ; class 1: TP 2, FP 1, FN 0: 2/3 ;
    # class 2: TP 0, FN 1: 0 ; class 3: absent from both -> NaN
    np.testing.assert_allclose(iou[:3], [1 / 3, 2 / 3, 0.0], atol=1e-15)
    assert np.isnan(iou[3])
    assert miou(C) == pytest.approx(1 / 3)  # (1/3 + 2/3 + 0) / 3 present classes
    assert overall_accuracy(C) == pytest.approx(3 / 5)
    assert mean_class_accuracy(C) == pytest.approx((1 / 2 + 1 + 0) / 3)
    # a class that is only predicted (never in GT) counts with IoU 0
    C2 = confusion_matrix(np.array([3, 1]), np.array([0, 1]), num_classes=4)
    assert miou(C2) == pytest.approx((0 + 1 + 0) / 3)  # classes 0, 1, 3 present; 2 absent


def test_matches_naive_loop(rng):
    n = 7
    gt = rng.integers(0, n, size=(40, 30))
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = rng.integers(0, n, size=gt.shape)
    C = confusion_matrix(pred, gt, num_classes=n)
    ref = np.zeros((n, n), int)
    for g, p in zip(gt.ravel(), pred.ravel(), strict=True):
        if g != 255:
            ref[g, p] += 1
    np.testing.assert_array_equal(C, ref)
    assert C.sum() == np.count_nonzero(gt != 255)


def test_errors_and_empty():
    with pytest.raises(ValueError, match="gt: label 5 outside"):
        confusion_matrix(np.array([0, 1]), np.array([0, 5]), num_classes=3)
    with pytest.raises(ValueError, match="pred: label -1"):
        confusion_matrix(np.array([0, -1]), np.array([0, 1]), num_classes=3)
    with pytest.raises(ValueError, match="integer labels"):
        confusion_matrix(np.array([0.0, 1.0]), np.array([0, 1]), num_classes=3)
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_matrix(np.array([0, 1]), np.array([0]), num_classes=3)
    C = confusion_matrix(np.array([1, 2]), np.array([255, 255]), num_classes=3)
    assert C.sum() == 0 and np.isnan(miou(C)) and np.isnan(overall_accuracy(C))
