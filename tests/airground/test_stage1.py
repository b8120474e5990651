"""Stage 1 (UGV window BA) on a synthetic drive past facades: BA must at least halve the LIO camera error."""

from __future__ import annotations

import numpy as np
import pytest

from perception.camera import PinholeCamera
from perception.errors import InputError
from perception.geometry import SE3
from slam.airground.stage1 import Stage1Options, Stage1Problem, run_stage1
from slam.factorgraph.ba import Observations

CAM = PinholeCamera(640, 480, 450.0, 450.0, 319.5, 239.5)
# IMU: x forward, y left, z up; the camera 0.6 m above and 0.3 m ahead, looking left (towards +y facades)
T_IMU_CAM = SE3.from_matrix(np.array([[1, 0, 0, 0.3], [0, 0, 1, 0.0], [0, -1, 0, 0.6], [0, 0, 0, 1.0]], float))


def _drive(rng, n_kf=30, dt=0.5, speed=1.0, yaw_rate=0.03, drift=(2e-3, 0.002), steps_per_kf=5, pix=1.0):
    t = np.arange(n_kf) * dt
    truth = SE3.exp(np.outer(t, [0, 0, yaw_rate, speed, 0, 0]))
    truth = SE3(truth.R, truth.t + [0, 0, 0.9])
    # LIO: chain true relative motions corrupted by a random walk of per-10 Hz-step drift. LiDAR keeps the
    # metric scale, so the drift is mostly rotational (2 mrad per step) with mm-level translation noise: a
    # camera-only window cannot observe scale, so along-track drift is not something stage 1 could correct.
    lio = [truth[0]]
    for k in range(1, n_kf):
        rel = truth[k - 1].inverse() @ truth[k]
        noise = np.concatenate([rng.normal(0, drift[0], 3), rng.normal(0, drift[1], 3)]) * np.sqrt(steps_per_kf)
        lio.append(lio[-1] @ rel @ SE3.exp(noise))
    lio = SE3.stack(lio)
    # facade landmarks at y = 8 m and y = 10 m (a recessed row), 0..5 m high, along the drive
    pts = np.concatenate([rng.uniform([-5, 8, 0], [n_kf * dt * speed + 5, 8, 5], (900, 3)),
                          rng.uniform([-5, 10, 0], [n_kf * dt * speed + 5, 10, 5], (300, 3))])  # fmt: skip
    cams = truth @ T_IMU_CAM
    ii, jj, uv = [], [], []
    for k in range(n_kf):
        p = cams[k].inverse().act(pts)
        u, valid = CAM.project(p)
        inside = valid & (p[:, 2] < 25) & (u[:, 0] > 0) & (u[:, 0] < 639) & (u[:, 1] > 0) & (u[:, 1] < 479)
        idx = np.flatnonzero(inside)
        ii.append(np.full(len(idx), k))
        jj.append(idx)
        uv.append(u[idx] + rng.normal(0, pix, (len(idx), 2)))
    obs = Observations(np.concatenate(ii), np.concatenate(jj), np.concatenate(uv))
    return truth, lio, pts, obs


def _cam_err(T_world_imu: SE3, truth: SE3) -> np.ndarray:
    return np.linalg.norm((T_world_imu @ T_IMU_CAM).t - (truth @ T_IMU_CAM).t, axis=1)


OPTS = dict(between_sigma_rot=4.5e-3, between_sigma_trans=4.5e-3)  # the LIO drift over one keyframe interval


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stage1_halves_the_lio_error(seed) -> None:
    truth, lio, pts, obs = _drive(np.random.default_rng(seed))
    r = run_stage1(Stage1Problem(lio, T_IMU_CAM, CAM, obs), Stage1Options(**OPTS))
    before = np.median(_cam_err(lio, truth))
    after = np.median(_cam_err(r.T_world_imu, truth))
    assert before > 0.03  # the drift is real
    assert after <= 0.5 * before, (before, after)
    ok = r.point_ok
    assert ok.mean() > 0.5
    assert np.median(np.linalg.norm(r.points[ok] - pts[: len(ok)][ok], axis=1)) < 0.15
    assert r.final_rmse_px < r.initial_rmse_px and r.final_rmse_px < 1.5


def test_stage1_is_robust_to_wrong_observations() -> None:
    rng = np.random.default_rng(4)
    truth, lio, pts, obs = _drive(rng)
    bad = rng.random(len(obs)) < 0.1
    uv = obs.uv.copy()
    uv[bad] = rng.uniform([0, 0], [640, 480], (int(bad.sum()), 2))
    obs = Observations(obs.image_index, obs.point_index, uv)
    robust = run_stage1(Stage1Problem(lio, T_IMU_CAM, CAM, obs), Stage1Options(loss="cauchy", **OPTS))
    before = np.median(_cam_err(lio, truth))
    assert np.median(_cam_err(robust.T_world_imu, truth)) <= 0.5 * before


def test_stage1_errors() -> None:
    obs = Observations([0, 1], [0, 0], [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(InputError, match="1 UGV keyframe"):
        run_stage1(Stage1Problem(SE3.stack([SE3.identity()]), T_IMU_CAM, CAM, obs))
    with pytest.raises(InputError, match="too few matched features"):
        run_stage1(Stage1Problem(SE3.stack([SE3.identity(), SE3.identity()]), T_IMU_CAM, CAM, obs))
