"""Pose / relocalisation metrics against hand-computed values and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from perception.geometry import SE3, SO3
from perception.metrics import (
    pose_errors,
    recall_at,
    reloc_summary,
    rotation_error_deg,
    translation_error_m,
)


def test_rotation_error_hand_values_and_symmetry(rng):
    Rz30 = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    assert rotation_error_deg(Rz30, np.eye(3)) == pytest.approx(30.0, abs=1e-12)
    # R_x(10) vs R_x(-25): relative rotation is 35 degrees about x
    a = Rotation.from_euler("x", 10, degrees=True).as_matrix()
    b = Rotation.from_euler("x", -25, degrees=True).as_matrix()
    assert rotation_error_deg(a, b) == pytest.approx(35.0, abs=1e-12)
    # symmetric and batched, equal to scipy's magnitude of R_est^T R_gt
    A = Rotation.random(50, random_state=1)
    B = Rotation.random(50, random_state=2)
    e_ab = rotation_error_deg(A.as_matrix(), B.as_matrix())
    e_ba = rotation_error_deg(B.as_matrix(), A.as_matrix())
    np.testing.assert_allclose(e_ab, e_ba, atol=1e-12)
    np.testing.assert_allclose(e_ab, np.degrees((A.inv() * B).magnitude()), atol=1e-9)
    # accurate near 0 (arccos of the trace would give ~1e-6 deg noise) and near 180 deg
    tiny = Rotation.from_rotvec([1e-9, 0, 0]).as_matrix()
    assert rotation_error_deg(tiny, np.eye(3)) == pytest.approx(np.degrees(1e-9), rel=1e-6)
    near_pi = Rotation.from_rotvec([0, np.radians(179.9999), 0]).as_matrix()
    assert rotation_error_deg(near_pi, np.eye(3)) == pytest.approx(179.9999, abs=1e-9)
    # objects and 4x4 poses are accepted
    assert rotation_error_deg(SO3(Rz30), SE3(np.eye(3), np.ones(3))) == pytest.approx(30.0, abs=1e-12)


def test_translation_error_hand():
    # |(1, 2, 2) - 0| = sqrt(1 + 4 + 4) = 3
    assert translation_error_m([1.0, 2.0, 2.0], [0.0, 0.0, 0.0]) == pytest.approx(3.0)
    np.testing.assert_allclose(
        translation_error_m([[0, 0, 0.05], [0.03, 0.04, 0]], np.zeros((2, 3))), [0.05, 0.05]
    )


def test_pose_errors_camera_centres_in_both_conventions(rng):
    T_gt = SE3.random(rng, (10,), trans_scale=3.0)
    # perturb: 2 cm along a random direction and 1 degree about a random axis, applied in the world frame
    d = rng.normal(size=(10, 3))
    d = 0.02 * d / np.linalg.norm(d, axis=1, keepdims=True)
    axis = rng.normal(size=(10, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    dR = Rotation.from_rotvec(np.radians(1.0) * axis).as_matrix()
    T_est = SE3(dR @ np.asarray(T_gt.R), np.asarray(T_gt.t) + d)
    t_err, r_err = pose_errors(T_est, T_gt)
    np.testing.assert_allclose(t_err, 0.02, atol=1e-12)
    np.testing.assert_allclose(r_err, 1.0, atol=1e-9)
    # same errors from world-to-camera matrices when told so (centre = -R^T t)
    inv = lambda T: np.linalg.inv(T.matrix())  # noqa: E731
    t2, r2 = pose_errors(inv(T_est), inv(T_gt), convention="T_cam_world")
    np.testing.assert_allclose(t2, t_err, atol=1e-12)
    np.testing.assert_allclose(r2, r_err, atol=1e-9)
    # read as T_world_cam, the inverted poses give different (wrong) centre errors
    t3, _ = pose_errors(inv(T_est), inv(T_gt))
    assert np.abs(t3 - 0.02).max() > 1e-3
    with pytest.raises(ValueError, match="convention"):
        pose_errors(T_est, T_gt, convention="cam")


def test_recall_and_summary_hand_values():
    t = [0.01, 0.03, 0.06, 0.01, np.nan]
    r = [1.0, 1.0, 1.0, 6.0, 1.0]
    rec = recall_at(t, r, [(0.05, 5), (0.02, 2), (0.25, 2)])
    # (5 cm, 5 deg): queries 0 and 1 pass (2 = 0.06 m fails, 3 = 6 deg fails, 4 = failure) -> 2/5
    # (2 cm, 2 deg): only query 0 -> 1/5 ; (25 cm, 2 deg): 0, 1, 2 -> 3/5
    assert rec == {
        (0.05, 5.0): pytest.approx(0.4),
        (0.02, 2.0): pytest.approx(0.2),
        (0.25, 2.0): pytest.approx(0.6),
    }
    # thresholds are strict: an error equal to the threshold does not count
    assert recall_at([0.05], [1.0], [(0.05, 5)])[(0.05, 5.0)] == 0.0
    s = reloc_summary(t, r)
    # median of t with the failure as +inf: sorted [0.01, 0.01, 0.03, 0.06, inf] -> 0.03 m = 3 cm
    assert s.median_t_cm == pytest.approx(3.0)
    assert s.median_r_deg == pytest.approx(1.0)
    assert s.recalls[(0.05, 5.0)] == pytest.approx(0.4) and s.recalls[(0.02, 2.0)] == pytest.approx(0.2)
    assert (s.n, s.n_failed) == (5, 1)
    assert "3.00 cm" in s.format()
    with pytest.raises(ValueError, match="same number"):
        recall_at([0.1, 0.2], [1.0])


def test_median_ratio_exact_when_one_method_is_a_scaled_copy() -> None:
    from perception.metrics import median_ratio

    a = np.random.default_rng(0).lognormal(0.0, 1.0, 40)
    r = median_ratio(a, 2 * a)
    assert r.ratio == pytest.approx(0.5) and r.low == pytest.approx(0.5) and r.high == pytest.approx(0.5)
    assert r.n == 40 and r.as_dict()["interval"] == [r.low, r.high]


def test_median_ratio_interval_covers_the_true_ratio_about_as_often_as_it_says() -> None:
    """Independent errors (true ratio of medians 0.8): the 90 % interval from 40 queries contains 0.8 in roughly
    90 % of repeated experiments, and is wide (a ratio from 40 queries is uncertain)."""
    from perception.metrics import median_ratio

    rng = np.random.default_rng(1)
    hits, widths = [], []
    for k in range(200):
        a = rng.lognormal(np.log(0.8), 0.6, 40)
        b = rng.lognormal(0.0, 0.6, 40)
        r = median_ratio(a, b, level=0.9, n_boot=400, seed=k)
        hits.append(r.low <= 0.8 <= r.high)
        widths.append(r.high - r.low)
    assert 0.8 <= np.mean(hits) <= 0.97
    assert np.median(widths) > 0.3


def test_median_ratio_uses_the_pairing_of_queries() -> None:
    """Errors that vary 30x across queries but by 10 % +- 1 % between the methods on each query: the paired interval
    is tight around 0.9, although either method's median alone moves a lot between resamples."""
    from perception.metrics import median_ratio

    rng = np.random.default_rng(2)
    b = rng.lognormal(0.0, 1.0, 60)
    a = b * rng.normal(0.9, 0.01, 60)
    r = median_ratio(a, b)
    assert r.low < r.ratio < r.high and r.high - r.low < 0.03 and abs(r.ratio - 0.9) < 0.01


def test_median_ratio_failures_and_bad_input() -> None:
    from perception.metrics import median_ratio

    ok = np.full(10, 0.01)
    failing = np.where(np.arange(10) < 6, np.nan, 0.01)  # fails on most queries: infinite median
    assert median_ratio(failing, ok).ratio == np.inf
    assert median_ratio(ok, failing).ratio == 0.0
    both_fail = np.where(np.arange(10) < 6, np.nan, 0.01)
    r = median_ratio(both_fail, both_fail)  # both fail on the same 6 queries: no ratio, no interval
    assert np.isnan(r.ratio) and np.isnan(r.low) and np.isnan(r.high)
    with pytest.raises(ValueError, match="same queries"):
        median_ratio(ok, ok[:5])
    with pytest.raises(ValueError, match="no errors"):
        median_ratio([], [])
    with pytest.raises(ValueError, match="group labels"):
        median_ratio(ok, ok, groups=[0, 1])


def test_median_ratio_groups_resample_within_each_scene() -> None:
    """Two scenes of very different error levels, pooled: ungrouped resampling changes the scenes' shares (and the
    pooled median with them); resampling within each scene keeps them, so the interval is narrower."""
    from perception.metrics import median_ratio

    rng = np.random.default_rng(3)
    scale = np.repeat([0.005, 0.05], 30)  # a 0.5 cm scene and a 5 cm scene
    a = scale * rng.lognormal(np.log(0.9), 0.3, 60)
    b = scale * rng.lognormal(0.0, 0.3, 60)
    free = median_ratio(a, b)
    grouped = median_ratio(a, b, groups=np.repeat(["chess", "fire"], 30))
    assert grouped.ratio == free.ratio
    assert grouped.high - grouped.low < free.high - free.low
