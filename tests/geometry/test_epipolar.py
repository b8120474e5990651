"""Essential matrix from a relative pose and the Sampson distance."""

from __future__ import annotations

import numpy as np

from perception.geometry import SE3, essential_from_pose, sampson_distance


def test_true_correspondences_have_zero_distance_and_shifts_are_measured() -> None:
    rng = np.random.default_rng(0)
    T_b_a = SE3.exp(np.r_[0.3, -0.1, 0.05, 0.05, 0.2, -0.1])
    X = rng.uniform([-1, -1, 3], [1, 1, 6], (50, 3))
    Y = T_b_a.act(X)
    xa, xb = X[:, :2] / X[:, 2:], Y[:, :2] / Y[:, 2:]
    E = essential_from_pose(T_b_a.R, T_b_a.t)
    assert np.abs(sampson_distance(E, xa, xb)).max() < 1e-12
    assert np.allclose(essential_from_pose(T_b_a.R, 7.0 * T_b_a.t), E)  # the scale of t does not matter
    # moving x_b off its epipolar line: the distance is signed and first-order linear in the shift
    line = (E @ np.c_[xa, np.ones(50)].T).T
    n = line[:, :2] / np.linalg.norm(line[:, :2], axis=1, keepdims=True)
    d1, d2, dm = (sampson_distance(E, xa, xb + s * 1e-3 * n) for s in (1.0, 2.0, -1.0))
    assert np.all(d1 > 0) and np.allclose(d2, 2 * d1, rtol=1e-3) and np.allclose(dm, -d1, rtol=1e-3)
    assert np.all((d1 > 0.3e-3) & (d1 <= 1e-3 + 1e-9))  # at most the shift, and not far below it
