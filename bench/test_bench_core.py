"""Core numerics side by side with their peers (pytest-benchmark groups): run with `make bench`.

- camera projection with Brown-Conrady distortion: sparsepipe (numpy, batched) vs cv2.projectPoints
- undistortion: sparsepipe Newton vs cv2.undistortPoints (iterative, tight criteria so both are exact)
- SO3 exp on a batch: sparsepipe vs scipy Rotation.from_rotvec
- SE3 geodesic interpolation of a batch: sparsepipe vs a loop over gtsam Pose3.slerp
"""

from __future__ import annotations

import cv2
import gtsam
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from perception.camera import OpenCVCamera
from perception.geometry import SE3, interpolate_geodesic, so3_exp

N = 100_000
CAM = OpenCVCamera(640, 480, 500.0, 505.0, 319.5, 239.5, -0.28, 0.07, 1e-3, -5e-4, 0.0)


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    rng = np.random.default_rng(0)
    p = rng.uniform([-1, -0.8, 1.0], [1, 0.8, 4.0], (N, 3))
    return p


@pytest.mark.benchmark(group="project")
def test_project_sparsepipe(benchmark, points) -> None:
    uv, _ = benchmark(CAM.project, points)
    assert uv.shape == (N, 2)


@pytest.mark.benchmark(group="project")
def test_project_opencv(benchmark, points) -> None:
    z = np.zeros(3)
    uv, _ = benchmark(cv2.projectPoints, points, z, z, CAM.K, CAM.dist_coeffs)
    ours, _ = CAM.project(points)
    assert np.abs(uv.reshape(-1, 2) - ours).max() < 1e-6


@pytest.mark.benchmark(group="undistort")
def test_undistort_sparsepipe(benchmark, points) -> None:
    xy = CAM.distort(points[:, :2] / points[:, 2:])
    out = benchmark(CAM.undistort, xy)
    assert np.abs(out - points[:, :2] / points[:, 2:]).max() < 1e-9


@pytest.mark.benchmark(group="undistort")
def test_undistort_opencv(benchmark, points) -> None:
    xy = CAM.distort(points[:, :2] / points[:, 2:])
    uv = xy * [CAM.fx, CAM.fy] + [CAM.cx, CAM.cy]
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-15)
    out = benchmark(lambda: cv2.undistortPoints(uv.reshape(-1, 1, 2), CAM.K, CAM.dist_coeffs, criteria=crit))
    assert np.abs(out.reshape(-1, 2) - points[:, :2] / points[:, 2:]).max() < 1e-6


@pytest.mark.benchmark(group="so3_exp")
def test_so3_exp_sparsepipe(benchmark) -> None:
    w = np.random.default_rng(1).normal(size=(N, 3))
    R = benchmark(so3_exp, w)
    assert np.allclose(R[:10], Rotation.from_rotvec(w[:10]).as_matrix(), atol=1e-12)


@pytest.mark.benchmark(group="so3_exp")
def test_so3_exp_scipy(benchmark) -> None:
    w = np.random.default_rng(1).normal(size=(N, 3))
    benchmark(lambda: Rotation.from_rotvec(w).as_matrix())


@pytest.mark.benchmark(group="se3_interp")
def test_se3_interp_sparsepipe(benchmark) -> None:
    rng = np.random.default_rng(2)
    a, b = SE3.random(rng, (10_000,)), SE3.random(rng, (10_000,))
    benchmark(interpolate_geodesic, a, b, 0.3)


@pytest.mark.benchmark(group="se3_interp")
def test_se3_interp_gtsam_loop(benchmark) -> None:
    rng = np.random.default_rng(2)
    a, b = SE3.random(rng, (10_000,)), SE3.random(rng, (10_000,))
    pa = [gtsam.Pose3(m) for m in a.matrix()]
    pb = [gtsam.Pose3(m) for m in b.matrix()]
    benchmark(lambda: [x.slerp(0.3, y) for x, y in zip(pa, pb, strict=True)])
