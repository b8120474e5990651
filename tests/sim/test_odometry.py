"""LIO-like odometry: scan-end stamps, exact ground truth without drift, per-step error std, random walk."""

from __future__ import annotations

import gtsam
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from perception.errors import InputError
from perception.geometry import SE3
from perception.sim.odometry import OdometryDrift, simulate_odometry
from perception.sim.trajectories import ground_trajectory

START = 3 * 10**9


@pytest.fixture(scope="module")
def traj():
    return ground_trajectory(np.random.default_rng(1), 100.0, (0.8, 1.5), max_yaw_rate=0.4, start_ns=START)


def _pose3(T: SE3) -> gtsam.Pose3:
    return gtsam.Pose3(gtsam.Rot3(T.R), T.t)


def test_zero_drift_is_ground_truth_stamped_at_scan_end(traj) -> None:
    stamps, T = simulate_odometry(traj, 10.0)
    assert len(stamps) == 1000 and stamps.dtype == np.int64
    assert stamps[0] == START + 100_000_000  # first sweep ends one period after the start
    np.testing.assert_array_equal(np.diff(stamps), 100_000_000)
    gt = traj.pose(stamps)
    np.testing.assert_array_equal(T.R, gt.R)
    np.testing.assert_array_equal(T.t, gt.t)
    s2, T2 = simulate_odometry(traj, 10.0, OdometryDrift.none(), stamp="scan_start", end_ns=START + 10**9)
    assert s2[0] == START and len(s2) == 10
    np.testing.assert_array_equal(T2.t, traj.pose(s2).t)
    # odometry frame = body at the start; a time offset moves the stamps only
    s3, T3 = simulate_odometry(traj, 10.0, odom_frame=True, time_offset_ns=7_000_000, end_ns=START + 10**9)
    np.testing.assert_array_equal(s3, stamps[:10] + 7_000_000)
    ref = traj.pose(START).inverse() @ traj.pose(stamps[:10])
    np.testing.assert_allclose(T3.matrix(), ref.matrix(), atol=1e-12)


def test_per_step_error_has_the_configured_std(traj) -> None:
    drift = OdometryDrift(rotation_std=2e-3, translation_std=0.02)
    stamps, T = simulate_odometry(traj, 10.0, drift, np.random.default_rng(5))
    prev_ts = np.concatenate([[traj.start_ns], stamps[:-1]])
    gt_prev, gt = traj.pose(prev_ts), traj.pose(stamps)
    est_prev = SE3.stack([traj.pose(traj.start_ns)] + [T[i] for i in range(len(T) - 1)])
    xi = []
    for k in range(len(stamps)):
        d_true = _pose3(gt_prev[k]).between(_pose3(gt[k]))
        d_est = _pose3(est_prev[k]).between(_pose3(T[k]))
        xi.append(gtsam.Pose3.Logmap(d_true.between(d_est)))  # (omega, v) of dT_true^-1 dT_est
    xi = np.array(xi)
    rot_std = xi[:, :3].std(axis=0)
    trans_std = xi[:, 3:].std(axis=0)
    assert np.all(np.abs(rot_std / drift.rotation_std - 1) < 0.1), rot_std
    assert np.all(np.abs(trans_std / drift.translation_std - 1) < 0.1), trans_std
    assert np.abs(xi.mean(axis=0) / np.repeat([2e-3, 0.02], 3)).max() < 0.15  # zero-mean
    # ... and the drifted trajectory has wandered off (not a re-sampled ground truth)
    assert np.linalg.norm(T.t[-1] - gt.t[-1]) > 0.1


def test_drift_grows_like_a_random_walk(traj) -> None:
    n_seeds, steps = 400, np.array([10, 25, 50, 100])
    end = START + 10 * 10**9 + 1
    rot = OdometryDrift(rotation_std=3e-3, translation_std=0.0)
    trans = OdometryDrift(rotation_std=0.0, translation_std=0.01)
    stamps, _ = simulate_odometry(traj, 10.0, end_ns=end)
    gt = traj.pose(stamps[steps - 1])
    rot_err, trans_err = [], []
    for seed in range(n_seeds):
        _, Tr = simulate_odometry(traj, 10.0, rot, np.random.default_rng(seed), end_ns=end)
        Tr = Tr[steps - 1]
        rot_err.append(Rotation.from_matrix(np.swapaxes(gt.R, 1, 2) @ Tr.R).as_rotvec())
        _, Tt = simulate_odometry(traj, 10.0, trans, np.random.default_rng(1000 + seed), end_ns=end)
        trans_err.append(Tt[steps - 1].t - gt.t)
    rot_var = (np.array(rot_err) ** 2).sum(axis=2).mean(axis=0)  # E|theta|^2 = 3 k sigma^2
    trans_var = (np.array(trans_err) ** 2).sum(axis=2).mean(axis=0)  # E|dp|^2 = 3 k sigma^2 (rotation exact)
    np.testing.assert_allclose(rot_var / (3 * steps * rot.rotation_std**2), 1.0, atol=0.15)
    np.testing.assert_allclose(trans_var / (3 * steps * trans.translation_std**2), 1.0, atol=0.15)


def test_determinism_and_errors(traj) -> None:
    drift = OdometryDrift()
    a = simulate_odometry(traj, 10.0, drift, np.random.default_rng(3), end_ns=START + 2 * 10**9)[1]
    b = simulate_odometry(traj, 10.0, drift, np.random.default_rng(3), end_ns=START + 2 * 10**9)[1]
    np.testing.assert_array_equal(a.t, b.t)
    with pytest.raises(InputError, match="rng"):
        simulate_odometry(traj, 10.0, drift)
    with pytest.raises(InputError, match="stamp"):
        simulate_odometry(traj, 10.0, stamp="now")
    with pytest.raises(InputError, match="shorter than one sweep"):
        simulate_odometry(traj, 10.0, end_ns=START + 50_000_000)
