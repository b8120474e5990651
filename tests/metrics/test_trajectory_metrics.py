"""ATE / RPE (evo-backed) against hand-computed values and the project's own Umeyama."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from perception.geometry import SE3, umeyama
from perception.metrics import ate, rpe
from slam.trajectory import Trajectory, to_evo

MS = 1_000_000


def line_traj(n=11, step=1.0, yaw_step_deg=0.0, t0_ns=0, period_ns=100 * MS, offset=(0, 0, 0)):
    k = np.arange(n)
    pos = np.stack([k * step, np.zeros(n), np.zeros(n)], 1) + np.asarray(offset, dtype=float)
    R = Rotation.from_euler("z", (k * yaw_step_deg)[:, None], degrees=True).as_matrix()
    return Trajectory(t0_ns + k * period_ns, SE3(R, pos))


def curvy_traj(rng, n=60):
    t = np.linspace(0, 6, n)
    pos = np.stack([np.cos(t) * 3, np.sin(1.3 * t) * 2, 0.3 * t], 1)
    R = Rotation.from_rotvec(rng.normal(scale=0.3, size=(n, 3))).as_matrix()
    return Trajectory(1_000 * MS + np.arange(n) * 50 * MS, SE3(R, pos))


def test_ate_constant_offset_hand_values(rng):
    ref = curvy_traj(rng)
    est = Trajectory(ref.stamps_ns, SE3(np.asarray(ref.poses.R), ref.positions + [0.0, 0.1, 0.0]))
    r = ate(est, ref, align="none")
    # every position is off by 0.1 m -> rmse = mean = median = max = 0.1
    assert (r.rmse, r.mean, r.median, r.max) == pytest.approx((0.1, 0.1, 0.1, 0.1), abs=1e-12)
    assert r.n_pairs == len(ref) and r.scale == 1.0
    # a rigid alignment removes a pure offset ...
    r = ate(est, ref, align="se3")
    assert r.rmse < 1e-9
    np.testing.assert_allclose(r.alignment.t, [0, -0.1, 0], atol=1e-9)
    np.testing.assert_allclose(r.alignment.R, np.eye(3), atol=1e-9)
    # ... evo trajectories are accepted as well
    assert ate(to_evo(est), to_evo(ref), align="none").rmse == pytest.approx(0.1, abs=1e-12)
    # collinear positions leave the rotation undetermined: a clear error, not evo's exception
    with pytest.raises(ValueError, match="alignment failed"):
        ate(line_traj(offset=(0, 0.1, 0)), line_traj(), align="se3")


def test_ate_sim3_recovers_scale_and_matches_own_umeyama(rng):
    ref = curvy_traj(rng)
    # estimate in another frame at half scale, with 5 mm noise and stamps shifted by 3 ms
    S_true = SE3.random(rng, trans_scale=2.0)
    noisy = ref.positions + rng.normal(scale=0.005, size=ref.positions.shape)
    pos_est = 0.5 * noisy @ np.asarray(S_true.R).T + np.asarray(S_true.t)
    est = Trajectory(ref.stamps_ns + 3 * MS, SE3(np.asarray(ref.poses.R), pos_est))

    r = ate(est, ref, align="sim3", max_diff_s=0.01)
    assert r.n_pairs == len(ref)
    assert r.scale == pytest.approx(2.0, rel=5e-3)
    # independent reference: perception.geometry.umeyama on the same associated positions
    S = umeyama(pos_est, ref.positions, with_scale=True)
    err = np.linalg.norm(S.act(pos_est) - ref.positions, axis=1)
    assert r.rmse == pytest.approx(float(np.sqrt(np.mean(err**2))), abs=1e-9)
    assert r.median == pytest.approx(float(np.median(err)), abs=1e-9)
    assert r.max == pytest.approx(float(err.max()), abs=1e-9)
    assert r.scale == pytest.approx(float(S.s), abs=1e-9)
    np.testing.assert_allclose(r.alignment.R, S.R, atol=1e-9)
    np.testing.assert_allclose(r.alignment.t, S.t, atol=1e-9)
    np.testing.assert_allclose(r.errors, err, atol=1e-9)
    assert 0.003 < r.rmse < 0.012  # the 5 mm noise (3-D) survives

    r_se3 = ate(est, ref, align="se3")
    T = umeyama(pos_est, ref.positions, with_scale=False)
    err = np.linalg.norm(T.act(pos_est) - ref.positions, axis=1)
    assert r_se3.rmse == pytest.approx(float(np.sqrt(np.mean(err**2))), abs=1e-9)
    assert r_se3.scale == 1.0 and r_se3.rmse > 1.0  # half scale is heavily penalised without sim3


def test_ate_association():
    ref = line_traj(n=20)
    keep = np.r_[0:5, 8:20]  # estimate misses 3 poses and is 4 ms late
    est_full = line_traj(n=20, t0_ns=4 * MS)
    est = est_full[keep]
    assert ate(est, ref, align="none", max_diff_s=0.005).n_pairs == 17
    with pytest.raises(ValueError, match="found no matching timestamps"):
        ate(est, ref, align="none", max_diff_s=0.003)
    with pytest.raises(ValueError, match="align"):
        ate(est, ref, align="umeyama")
    with pytest.raises(ValueError, match="at least 3"):
        ate(est[:2], ref, align="se3")
    assert ate(est[:2], ref, align="none").n_pairs == 2


def test_rpe_hand_values():
    ref = line_traj(n=11, step=0.5)  # 0.5 m per frame along x, no rotation
    est_rot = line_traj(n=11, step=0.5, yaw_step_deg=1.0)  # same positions, yawing 1 degree per frame
    est_long = line_traj(n=11, step=0.55)  # 0.55 m per frame, no rotation
    # delta = 1 frame, rotation: each relative rotation is R_z(1 deg) vs I -> 1 degree for all 10 pairs
    r = rpe(est_rot, ref, delta=1, delta_unit="frames", relation="rotation_deg")
    assert r.n_pairs == 10
    np.testing.assert_allclose(r.errors, 1.0, atol=1e-9)
    # delta = 1 frame, translation: relative translations (0.55,0,0) vs (0.5,0,0) -> 0.05 for all 10 pairs
    r = rpe(est_long, ref, delta=1, delta_unit="frames", relation="translation")
    np.testing.assert_allclose(r.errors, 0.05, atol=1e-12)
    assert (r.rmse, r.mean, r.median, r.max) == pytest.approx((0.05, 0.05, 0.05, 0.05))
    # yawing estimate, translation: E = Q_rel^-1 P_rel with P_rel.t = R_z(k deg)^T (0.5, 0, 0) (the world
    # step seen from body frame k) and Q_rel.t = (0.5, 0, 0):
    # |E.t| = 0.5 * |(cos k - 1, -sin k)| = 0.5 * 2 sin(k/2)
    r = rpe(est_rot, ref, delta=1, delta_unit="frames", relation="translation")
    k = np.radians(np.arange(10))
    np.testing.assert_allclose(r.errors, 0.5 * 2 * np.sin(k / 2), atol=1e-12)
    # delta = 1 m along the estimate's path: 2 frames = 1.1 m >= 1 m -> pairs (0,2), (2,4), ..., (8,10);
    # each compares 1.1 m with 1.0 m -> 0.1
    r = rpe(est_long, ref, delta=1.0, delta_unit="m", relation="translation")
    assert r.n_pairs == 5
    np.testing.assert_allclose(r.errors, 0.1, atol=1e-12)
    with pytest.raises(ValueError, match="delta"):
        rpe(est_long, ref, delta=1.5, delta_unit="frames")
    with pytest.raises(ValueError, match="empty index list"):
        rpe(est_long, ref, delta=100.0, delta_unit="m")
