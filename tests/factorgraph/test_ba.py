"""GTSAM bundle adjustment against pycolmap synthetic scenes with exact ground truth."""

from __future__ import annotations

import copy

import numpy as np
import pycolmap
import pytest

from perception.errors import InputError
from perception.geometry import SE3, umeyama
from perception.metrics.pose import rotation_error_deg
from perception.sim.colmap_noise import ColmapNoise, perturb_reconstruction
from slam.factorgraph.ba import BAOptions, BAProblem, Observations, bundle_adjust, reprojection_residuals
from slam.factorgraph.colmap_bridge import problem_from_reconstruction


def _scene(seed: int, n_images: int = 8, n_points: int = 150):
    pycolmap.set_random_seed(seed)
    o = pycolmap.SyntheticDatasetOptions()
    o.num_rigs, o.num_cameras_per_rig, o.num_frames_per_rig, o.num_points3D = n_images, 1, 1, n_points
    o.camera_model_id = pycolmap.CameraModelId.OPENCV
    o.camera_params = [700.0, 720.0, 512.0, 384.0, -0.1, 0.02, 1e-3, -1e-3]
    return pycolmap.synthesize_dataset(o)


def _perturb(problem: BAProblem, rng, rot_deg=1.0, trans=0.1, pts=0.05, pix=0.0, outliers=0.0) -> BAProblem:
    n = len(problem.T_world_cam)
    xi = np.concatenate([np.deg2rad(rng.normal(0, rot_deg, (n, 3))), rng.normal(0, trans, (n, 3))], axis=1)
    for i in problem.fixed_images:
        xi[i] = 0
    T = SE3.exp(xi) @ problem.T_world_cam
    uv = problem.observations.uv + rng.normal(0, pix, problem.observations.uv.shape)
    bad = rng.random(len(uv)) < outliers
    uv[bad] = rng.uniform([0, 0], [1024, 768], (int(bad.sum()), 2))
    obs = Observations(problem.observations.image_index, problem.observations.point_index, uv)
    P = problem.points_world + rng.normal(0, pts, problem.points_world.shape)
    return BAProblem(problem.cameras, T, P, obs, problem.fixed_images), bad


def _errors(T_est: SE3, P_est, T_gt: SE3, P_gt):
    S = umeyama(T_est.t, T_gt.t, with_scale=True)
    rot = rotation_error_deg(S.R @ T_est.R, T_gt.R)
    cen = np.linalg.norm(S.act(T_est.t) - T_gt.t, axis=1)
    pts = np.linalg.norm(S.act(P_est) - P_gt, axis=1)
    return rot.max(), cen.max(), np.sqrt(np.mean(pts**2))


def test_bridge_reprojects_ground_truth_exactly() -> None:
    """COLMAP's corner pixel convention and camera conversion: GT reprojects to 0 px after the -0.5 shift."""
    gt, _ = problem_from_reconstruction(_scene(0))
    res, front = reprojection_residuals(gt.cameras, gt.T_world_cam, gt.points_world, gt.observations)
    assert front.all()
    assert res.max() < 1e-6


def test_noise_free_converges_to_ground_truth(rng) -> None:
    gt, _ = problem_from_reconstruction(_scene(1), fixed_images=2)
    init, _ = _perturb(gt, rng)
    r = bundle_adjust(init, BAOptions(loss="l2"))
    rot, cen, pts = _errors(r.T_world_cam, r.points_world, gt.T_world_cam, gt.points_world)
    assert r.initial_rmse_px > 5.0
    assert r.final_rmse_px < 1e-4
    assert rot < 1e-5 and cen < 1e-6 and pts < 1e-6
    # the two fixed poses fix the gauge (frame and scale): no alignment needed
    assert np.abs(r.T_world_cam.t - gt.T_world_cam.t).max() < 1e-6


def test_robust_kernel_beats_l2_with_outliers(rng) -> None:
    gt, _ = problem_from_reconstruction(_scene(2, n_points=200), fixed_images=2)
    init, bad = _perturb(gt, rng, pix=0.5, outliers=0.15)
    assert bad.mean() > 0.1
    e_l2 = _errors(
        *(lambda r: (r.T_world_cam, r.points_world))(bundle_adjust(init, BAOptions(loss="l2"))),
        gt.T_world_cam,
        gt.points_world,
    )
    e_cauchy = _errors(
        *(lambda r: (r.T_world_cam, r.points_world))(bundle_adjust(init, BAOptions(loss="cauchy"))),
        gt.T_world_cam,
        gt.points_world,
    )
    assert e_cauchy[0] < 0.1 and e_cauchy[1] < 0.02  # deg, scene units (~5 units from the cameras)
    assert e_l2[1] > 3 * e_cauchy[1]


def test_agrees_with_pycolmap_bundle_adjuster(rng) -> None:
    rec = _scene(3)
    gt, _ = problem_from_reconstruction(rec, fixed_images=2)
    noisy, _ = perturb_reconstruction(rec, ColmapNoise(pixel_noise=0.3), rng)
    init, _ = problem_from_reconstruction(noisy, fixed_images=2)
    ours = bundle_adjust(init, BAOptions(loss="l2"))
    opts = pycolmap.BundleAdjustmentOptions()
    opts.refine_focal_length = opts.refine_principal_point = opts.refine_extra_params = False
    opts.refine_sensor_from_rig = False
    opts.print_summary = False
    peer_rec = copy.deepcopy(noisy)
    pycolmap.bundle_adjustment(peer_rec, opts)
    peer, _ = problem_from_reconstruction(peer_rec)
    e_ours = _errors(ours.T_world_cam, ours.points_world, gt.T_world_cam, gt.points_world)
    e_peer = _errors(peer.T_world_cam, peer.points_world, gt.T_world_cam, gt.points_world)
    # both minimise the same cost (up to gauge): same accuracy, the same cameras after alignment
    assert e_ours[0] < 0.1 and e_ours[1] < 0.01 and e_ours[2] < 0.005  # deg, scene units
    for a, b in zip(e_ours, e_peer, strict=True):  # no worse than the peer on any measure
        assert a <= 1.1 * b + 1e-4
    S = umeyama(peer.T_world_cam.t, ours.T_world_cam.t)
    assert np.abs(S.act(peer.T_world_cam.t) - ours.T_world_cam.t).max() < 5e-3
    res_peer, _ = reprojection_residuals(peer.cameras, peer.T_world_cam, peer.points_world, init.observations)
    assert abs(ours.final_rmse_px - np.sqrt(np.mean(res_peer**2))) < 0.01


def test_point_behind_camera_is_dropped_not_silently_kept(rng) -> None:
    gt, _ = problem_from_reconstruction(_scene(4, n_images=5, n_points=60), fixed_images=2)
    P = gt.points_world.copy()
    j = int(gt.observations.point_index[0])
    i = int(gt.observations.image_index[0])
    # mirror one point behind the camera that sees it first
    c = gt.T_world_cam[i].t
    P[j] = c - (P[j] - c)
    r = bundle_adjust(BAProblem(gt.cameras, gt.T_world_cam, P, gt.observations, gt.fixed_images))
    assert r.dropped_behind_camera >= 1
    assert r.num_observations == len(gt.observations) - r.dropped_behind_camera


def test_bad_inputs_raise_clear_errors() -> None:
    gt, _ = problem_from_reconstruction(_scene(5, n_images=3, n_points=30))
    P = gt.points_world.copy()
    P[3] = np.nan
    with pytest.raises(InputError, match="landmark contains NaN"):
        BAProblem(gt.cameras, gt.T_world_cam, P, gt.observations)
    with pytest.raises(InputError, match="cameras for 3 poses"):
        BAProblem(gt.cameras[:2], gt.T_world_cam, gt.points_world, gt.observations)
    with pytest.raises(InputError, match="uv\\[0\\] is not finite"):
        Observations([0], [0], [[np.nan, 1.0]])
