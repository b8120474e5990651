"""Kineo-style camera and human metrics against hand-computed values, invariances and geometry.umeyama."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from perception.geometry import SE3, Sim3, umeyama
from perception.metrics import ae, camera_metrics, mpjpe, pa_mpjpe, procrustes, s_te, te, w_mpjpe

# Regular tetrahedron centred at the origin: every centre is sqrt(3) from the centroid.
TETRA = np.array([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])


def cameras(centres: np.ndarray, rng) -> np.ndarray:
    T = np.tile(np.eye(4), (len(centres), 1, 1))
    T[:, :3, :3] = Rotation.random(len(centres), random_state=int(rng.integers(1000))).as_matrix()
    T[:, :3, 3] = centres
    return T


def test_te_s_te_hand_values():
    # Prediction twice as large as GT (centroid 0). Rigid fit of 2x onto x: R = I, t = 0 (the cross-covariance
    # sum x (2x)^T is symmetric PSD), so each camera is off by |2x - x| = |x| = sqrt(3) -> TE = sqrt(3);
    # a Sim(3) fit recovers s = 1/2 exactly -> s-TE = 0.
    assert te(2 * TETRA, TETRA) == pytest.approx(np.sqrt(3), abs=1e-12)
    assert s_te(2 * TETRA, TETRA) == pytest.approx(0.0, abs=1e-12)
    # a rigidly moved prediction has TE = 0
    Q = Rotation.from_euler("xyz", [10, -40, 70], degrees=True).as_matrix()
    assert te(TETRA @ Q.T + [3, -2, 1], TETRA) == pytest.approx(0.0, abs=1e-12)
    # 2 cameras: TE defined, s-TE undefined (NaN, as Kineo's later code)
    assert te(TETRA[:2] + [0, 0, 5], TETRA[:2]) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(s_te(TETRA[:2], TETRA[:2]))


def test_te_agrees_with_geometry_umeyama_and_s_te_is_scale_invariant(rng):
    gt = rng.normal(scale=3.0, size=(8, 3))
    S = Sim3(0.7, Rotation.random(random_state=4).as_matrix(), [1.0, 2.0, -3.0])
    pred = S.act(gt + rng.normal(scale=0.05, size=gt.shape))
    T = umeyama(pred, gt, with_scale=False)
    assert te(pred, gt) == pytest.approx(np.mean(np.linalg.norm(T.act(pred) - gt, axis=1)), abs=1e-12)
    S_fit = umeyama(pred, gt, with_scale=True)
    ref_ste = np.mean(np.linalg.norm(S_fit.act(pred) - gt, axis=1))
    assert s_te(pred, gt) == pytest.approx(ref_ste, abs=1e-12)
    for k in (0.01, 3.0, 250.0):
        assert s_te(k * pred, gt) == pytest.approx(ref_ste, abs=1e-9)
    assert te(3.0 * pred, gt) != pytest.approx(te(pred, gt), abs=1e-3)  # TE does see scale


def test_ae_rra_cca_hand_values(rng):
    T_gt = cameras(3 * TETRA, rng)
    # predicted world = GT world rotated by Q, scaled by 2 and shifted
    Q = Rotation.from_euler("z", 35, degrees=True).as_matrix()
    T_pred = T_gt.copy()
    T_pred[:, :3, :3] = Q @ T_gt[:, :3, :3]
    T_pred[:, :3, 3] = 2 * T_gt[:, :3, 3] @ Q.T + [1, 2, 3]
    assert ae(T_pred, T_gt) == pytest.approx(0.0, abs=1e-9)
    # rotate camera 2 by an extra 5 degrees about its own x axis: AE = 5 / 4 cameras = 1.25 degrees
    T_pred[2, :3, :3] = T_pred[2, :3, :3] @ Rotation.from_euler("x", 5, degrees=True).as_matrix()
    assert ae(T_pred, T_gt) == pytest.approx(1.25, abs=1e-9)
    m = camera_metrics(T_pred, T_gt, tau_rra_deg=1.0, tau_cca=0.1)
    np.testing.assert_allclose(m.ae_per_camera, [0, 0, 5, 0], atol=1e-9)
    assert m.rra == pytest.approx(0.75)  # 3 of 4 cameras below 1 degree
    assert m.scale == pytest.approx(0.5, abs=1e-12)
    # scene scale = |3 * (1,1,1)| = 3 sqrt(3); pred is 2x GT, so each camera's TE is 3 sqrt(3),
    # above 0.1 * scene scale
    np.testing.assert_allclose(m.te_per_camera, 3 * np.sqrt(3), atol=1e-9)
    assert (m.cca, m.s_cca) == (0.0, 1.0)
    assert m.s_te == pytest.approx(0.0, abs=1e-9)
    assert camera_metrics(SE3.from_matrix(T_pred), SE3.from_matrix(T_gt)).ae_deg == pytest.approx(
        1.25, abs=1e-9
    )


def test_mpjpe_hand_values_and_masks():
    gt = np.zeros((2, 3, 3))
    pred = gt + [0.03, 0.04, 0.0]  # every joint 5 cm off: sqrt(0.03^2 + 0.04^2) = 0.05
    assert mpjpe(pred, gt) == pytest.approx(0.05)
    pred[1, 2] = [1.0, 0, 0]  # a 1 m error on a masked-out joint does not count
    mask = np.ones((2, 3), bool)
    mask[1, 2] = False
    assert mpjpe(pred, gt, mask) == pytest.approx(0.05)
    # unmasked: (5 * 0.05 + 1.0) / 6 = 0.2083333
    assert mpjpe(pred, gt) == pytest.approx((5 * 0.05 + 1.0) / 6)
    gt_nan = gt.copy()
    gt_nan[1, 2] = np.nan  # missing GT joints are skipped automatically
    assert mpjpe(pred, gt_nan) == pytest.approx(0.05)
    pred_nan = pred.copy()
    pred_nan[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite predicted joint at index \(0, 1\)"):
        mpjpe(pred_nan, gt)
    assert np.isnan(mpjpe(pred, gt, np.zeros((2, 3), bool)))


def test_pa_mpjpe_hand_value():
    # GT: (+-1, 0, 0), (0, +-1, 0); prediction stretches y by a = 2. The Sim(3) fit keeps R = I, t = 0
    # (symmetric), scale s = trace(D) / var_src with cov = diag(2, 2a, 0) / 4, var_src = (2 + 2a^2) / 4:
    # s = (1 + a) / (1 + a^2) = 3/5. Aligned x joints: 0.6 vs 1 -> 0.4; y joints: 1.2 vs 1 -> 0.2.
    # PA-MPJPE = (0.4 + 0.4 + 0.2 + 0.2) / 4 = 0.3
    gt = np.array([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]])
    pred = gt * [1, 2, 1]
    assert pa_mpjpe(pred, gt) == pytest.approx(0.3, abs=1e-12)
    s, R, t = procrustes(pred, gt)
    assert s == pytest.approx(0.6) and np.allclose(R, np.eye(3)) and np.allclose(t, 0)


def test_pa_mpjpe_invariance_and_umeyama_cross_check(rng):
    F, J = 6, 17
    gt = rng.normal(scale=0.4, size=(F, J, 3))
    pred = gt + rng.normal(scale=0.03, size=gt.shape)
    mask = rng.random((F, J)) > 0.15
    base = pa_mpjpe(pred, gt, mask)
    # reference: geometry.umeyama per frame on the valid joints
    errs = []
    for f in range(F):
        m = mask[f]
        S = umeyama(pred[f, m], gt[f, m], with_scale=True)
        errs.append(np.linalg.norm(S.act(pred[f, m]) - gt[f, m], axis=1))
    assert base == pytest.approx(np.concatenate(errs).mean(), abs=1e-12)
    # invariant to a (different) similarity transform of each predicted frame
    moved = np.stack(
        [
            Sim3(np.exp(rng.normal()), Rotation.random(random_state=f).as_matrix(), rng.normal(size=3)).act(
                pred[f]
            )
            for f in range(F)
        ]
    )
    assert pa_mpjpe(moved, gt, mask) == pytest.approx(base, abs=1e-10)
    assert mpjpe(moved, gt, mask) > 10 * base  # whereas plain MPJPE is not invariant
    # (F, persons, J, 3): each frame/person is its own instance; frames with < 3 valid joints are skipped
    two = np.stack([pred, pred], axis=1)
    gt2 = np.stack([gt, gt], axis=1)
    m2 = np.stack([mask, mask], axis=1)
    m2[0, 1, :] = False
    m2[0, 1, :2] = True
    assert pa_mpjpe(two, gt2, m2) == pytest.approx(np.concatenate(errs + errs[1:]).mean(), abs=1e-12)


def test_w_mpjpe_penalises_scale_and_uses_camera_alignment():
    cams_gt = 4 * TETRA
    joints_gt = np.array([[[1.0, 0, 0], [0, 1, 0], [0, 0, -1]]])  # unit distance from the origin
    # predicted world = GT world rigidly moved: W-MPJPE 0
    Q = Rotation.from_euler("y", 60, degrees=True).as_matrix()
    move = lambda p: p @ Q.T + [5, 0, -2]  # noqa: E731
    assert w_mpjpe(move(joints_gt), joints_gt, move(cams_gt), cams_gt) == pytest.approx(0.0, abs=1e-12)
    # predicted world = 2 x GT world (cameras and joints): the rigid camera fit is the identity (see TE test),
    # so every joint is off by |2j - j| = |j| = 1 m -> W-MPJPE = 1, while PA-MPJPE is 0
    assert w_mpjpe(2 * joints_gt, joints_gt, 2 * cams_gt, cams_gt) == pytest.approx(1.0, abs=1e-12)
    assert pa_mpjpe(2 * joints_gt, joints_gt) == pytest.approx(0.0, abs=1e-12)
    # per-frame camera centres (F, C, 3): each frame with its own rigid motion -> 0;
    # plus a 2 cm joint offset -> 0.02
    F = 3
    jg = np.repeat(joints_gt, F, axis=0)
    motions = [Rotation.from_euler("z", 20 * f, degrees=True).as_matrix() for f in range(F)]
    cams_pred = np.stack([cams_gt @ R.T + f for f, R in enumerate(motions)])
    jp = np.stack([(jg[f] + [0.02, 0, 0]) @ R.T + f for f, R in enumerate(motions)])
    assert w_mpjpe(jp, jg, cams_pred, np.repeat(cams_gt[None], F, axis=0)) == pytest.approx(0.02, abs=1e-12)
    with pytest.raises(ValueError, match="at least 2 cameras"):
        w_mpjpe(jp[0], jg[0], cams_gt[:1], cams_gt[:1])
