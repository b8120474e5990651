"""make_stage1_problem's ground truth is self-consistent (checked with OpenCV and scipy), and the stage-1 bench
(bench/bench_airground_stage1.py) gives finite numbers for all methods, with stage 1 halving the LIO camera error."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from perception.errors import InputError
from slam.airground.synthetic import CAMERA, T_IMU_CAM, make_stage1_problem

# keyframes sit a quarter of a sweep after a LIO pose (0.125 s + 0.5 s k, LIO every 0.1 s): the interpolated error
# between two keyframes sums the sweep steps with weights 0.75, 1, 1, 1, 1, 0.25 -> variance 4.625 steps
KF_DRIFT_FACTOR = np.sqrt(0.75**2 + 4 + 0.25**2)


def _opencv_project(T_world_cam, points: np.ndarray) -> np.ndarray:
    """Pixels of ``points`` through OpenCV's projectPoints with CAMERA's intrinsics and distortion."""
    T_cw = T_world_cam.inverse()
    rvec = Rotation.from_matrix(T_cw.R).as_rotvec()
    K = np.array([[CAMERA.fx, 0, CAMERA.cx], [0, CAMERA.fy, CAMERA.cy], [0, 0, 1.0]])
    dist = np.array([CAMERA.k1, CAMERA.k2, CAMERA.p1, CAMERA.p2, CAMERA.k3])
    uv, _ = cv2.projectPoints(points.reshape(-1, 1, 3), rvec, T_cw.t, K, dist)
    return uv.reshape(-1, 2)


def test_noise_free_observations_reproject_from_the_true_poses_and_points() -> None:
    sc = make_stage1_problem(np.random.default_rng(7), duration=12.0, pix=0.0, n_landmarks=300)
    obs, K = sc.observations, len(sc.T_world_cam_true)
    assert K == 24 and len(obs) > 2000 and sc.points.shape == (300, 3)
    # the camera poses are the true IMU poses through the lever arm; the camera looks left (IMU +y)
    assert np.allclose((sc.T_world_imu_true @ T_IMU_CAM).matrix(), sc.T_world_cam_true.matrix(), atol=1e-12)
    assert np.allclose(sc.T_world_cam_true.R[0][:, 2], sc.T_world_imu_true.R[0][:, 1], atol=1e-12)
    err = np.zeros(len(obs))
    for k in range(K):
        sel = obs.image_index == k
        assert sel.sum() >= 20  # every keyframe sees the facades
        uv = _opencv_project(sc.T_world_cam_true[k], sc.points[obs.point_index[sel]])
        err[sel] = np.linalg.norm(uv - obs.uv[sel], axis=1)
        depth = sc.T_world_cam_true[k].inverse().act(sc.points[obs.point_index[sel]])[:, 2]
        assert depth.min() > 1.0 and depth.max() < 25.0
    assert err.max() < 1e-6, err.max()
    assert np.all((obs.uv > 0) & (obs.uv < [639, 479]))
    # same seed, 1 px noise: the same geometry (same draws), observations moved by N(0, 1) per axis
    noisy = make_stage1_problem(np.random.default_rng(7), duration=12.0, pix=1.0, n_landmarks=300)
    assert np.array_equal(noisy.observations.point_index, obs.point_index)
    d = noisy.observations.uv - obs.uv
    assert abs(d.std() - 1.0) < 0.05 and abs(d.mean()) < 0.05
    # the problem property hands the LIO poses (not the truth) to stage 1
    assert sc.problem.T_world_imu is sc.T_world_imu_lio and sc.problem.observations is obs


@pytest.mark.parametrize("drift", [(2e-3, 0.02), (5e-3, 0.005)])
def test_lio_keyframe_poses_drift_as_requested(drift) -> None:
    sc = make_stage1_problem(np.random.default_rng(3), duration=60.0, drift=drift, pix=0.0, n_landmarks=20)
    true, lio = sc.T_world_imu_true, sc.T_world_imu_lio
    # relative-motion error between consecutive keyframes, rotation from scipy
    rel_true = true[:-1].inverse() @ true[1:]
    rel_lio = lio[:-1].inverse() @ lio[1:]
    dR = np.einsum("nji,njk->nik", rel_true.R, rel_lio.R)
    rot = Rotation.from_matrix(dR).as_rotvec()
    trans = np.einsum("nji,nj->ni", rel_true.R, rel_lio.t - rel_true.t)
    assert len(rot) >= 110  # 2 Hz keyframes over 60 s: >= 330 samples per component
    assert abs(rot.std() / (KF_DRIFT_FACTOR * drift[0]) - 1) < 0.15, rot.std()
    assert abs(trans.std() / (KF_DRIFT_FACTOR * drift[1]) - 1) < 0.15, trans.std()
    assert np.abs(rot.mean(axis=0)).max() < 0.35 * KF_DRIFT_FACTOR * drift[0]  # zero-mean steps
    # and it accumulates: the last keyframe is off by about sqrt(600 sweeps) x the step, far more than one step
    assert np.linalg.norm(lio.t[-1] - true.t[-1]) > 5 * drift[1]


def test_zero_drift_lio_is_the_truth_up_to_interpolation() -> None:
    sc = make_stage1_problem(np.random.default_rng(1), duration=12.0, drift=(0.0, 0.0), pix=0.0, n_landmarks=20)
    true, lio = sc.T_world_imu_true, sc.T_world_imu_lio
    assert np.abs(lio.t - true.t).max() < 2e-3  # geodesic interpolation of a smooth drive between 10 Hz poses
    dR = np.einsum("nji,njk->nik", true.R, lio.R)
    assert np.degrees(np.linalg.norm(Rotation.from_matrix(dR).as_rotvec(), axis=1)).max() < 0.05


def test_make_stage1_problem_rejects_bad_input() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="duration"):
        make_stage1_problem(rng, duration=0.5)
    with pytest.raises(InputError, match="drift"):
        make_stage1_problem(rng, drift=(-1e-3, 0.02))
    with pytest.raises(InputError, match="pix"):
        make_stage1_problem(rng, pix=float("nan"))
    with pytest.raises(InputError, match="n_landmarks"):
        make_stage1_problem(rng, n_landmarks=0)


def _load_bench():
    path = Path(__file__).resolve().parents[2] / "bench" / "bench_airground_stage1.py"
    spec = importlib.util.spec_from_file_location("bench_airground_stage1_t", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _sim3_umeyama_scipy(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Reference similarity ``dst ~= s R src + t`` from scipy's Wahba solver on the centred point sets."""
    ms, md = src.mean(0), dst.mean(0)
    rot, _ = Rotation.align_vectors(dst - md, src - ms)
    R = rot.as_matrix()
    s = float(np.sum((dst - md) * ((src - ms) @ R.T)) / np.sum((src - ms) ** 2))
    return s, R, md - s * R @ ms


def test_bench_run_case_on_a_tiny_problem() -> None:
    bench = _load_bench()
    seed, duration, n_landmarks = 4, 10.0, 400
    row = bench.run_case(seed, repeats=1, duration=duration, n_landmarks=n_landmarks)
    methods = ("lio", "sparsepipe_gtsam", "pycolmap_ceres")
    for m in methods:
        nums = {k: v for k, v in row[m].items() if k.endswith(("_m", "_deg", "_aligned"))}
        assert len(nums) == 7 and all(np.isfinite(v) for v in nums.values()), (m, row[m])
    for m in methods[1:]:
        assert row[m]["seconds_median"] > row[m]["optimize_seconds_median"] > 0
        assert row[m]["observations_used"] > 0.9 * row["observations"]
    assert "LIO" in row["pycolmap_ceres"]["note"]

    # the LIO row against an independent computation (scipy) on the same problem
    sc = make_stage1_problem(np.random.default_rng(seed), duration=duration, n_landmarks=n_landmarks)
    cams, true = sc.T_world_imu_lio @ T_IMU_CAM, sc.T_world_cam_true
    lio = row["lio"]
    assert lio["camera_pos_median_m"] == pytest.approx(np.median(np.linalg.norm(cams.t - true.t, axis=1)), rel=1e-9)
    dR = np.einsum("nji,njk->nik", cams.R, true.R)
    rot_deg = np.degrees(np.linalg.norm(Rotation.from_matrix(dR).as_rotvec(), axis=1))
    assert lio["camera_rot_median_deg"] == pytest.approx(np.median(rot_deg), rel=1e-6)
    s, R, t = _sim3_umeyama_scipy(cams.t, true.t)
    aligned = s * cams.t @ R.T + t
    assert lio["sim3_scale"] == pytest.approx(s, rel=1e-6)
    assert lio["camera_pos_median_m_sim3_aligned"] == pytest.approx(
        np.median(np.linalg.norm(aligned - true.t, axis=1)), rel=1e-6
    )

    # stage 1 halves the LIO camera error (raw, in the LIO frame) and removes the rotation drift
    ours, col = row["sparsepipe_gtsam"], row["pycolmap_ceres"]
    assert ours["camera_pos_median_m"] <= 0.5 * lio["camera_pos_median_m"], (ours, lio)
    assert ours["camera_rot_median_deg"] <= 0.25 * lio["camera_rot_median_deg"]
    assert ours["camera_pos_median_m_sim3_aligned"] <= 0.25 * lio["camera_pos_median_m_sim3_aligned"]
    assert ours["landmark_median_m_sim3_aligned"] <= 0.5 * lio["landmark_median_m_sim3_aligned"]
    # the visual-only BA gets the shape right too (its scale is free, so compare it aligned)
    assert col["camera_pos_median_m_sim3_aligned"] <= 0.25 * lio["camera_pos_median_m_sim3_aligned"]
    assert col["camera_rot_median_deg_sim3_aligned"] <= 0.25 * lio["camera_rot_median_deg_sim3_aligned"]


def test_bench_run_case_rejects_bad_input() -> None:
    bench = _load_bench()
    with pytest.raises(InputError, match="duration"):
        bench.run_case(0, repeats=1, duration=6.0)
    with pytest.raises(InputError, match="repeats"):
        bench.run_case(0, repeats=0)
