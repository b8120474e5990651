"""torch_lie: agreement with the numpy implementation and gradients (gradcheck, float64), incl. zero angle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from perception.geometry import SE3, matrix_to_quat, quat_to_matrix, so3_exp, so3_log
from perception.geometry import torch_lie as tl

torch.set_num_threads(1)


def _t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _rotvecs(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.concatenate([rng.uniform(0, np.pi - 1e-3, n - 6), [0.0, 1e-12, 1e-8, 1e-5, 9.99e-3, np.pi - 1e-3]])
    return axis * angle[:, None]


def test_forward_matches_numpy():
    w = _rotvecs(0, 64)
    R = so3_exp(w)
    np.testing.assert_allclose(tl.so3_exp(_t(w)).numpy(), R, atol=1e-12)
    np.testing.assert_allclose(tl.so3_log(_t(R)).numpy(), so3_log(R), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tl.matrix_to_quat(_t(R)).numpy(), matrix_to_quat(R), atol=1e-12)
    q = np.random.default_rng(1).normal(size=(64, 4))
    np.testing.assert_allclose(tl.quat_to_matrix(_t(q)).numpy(), quat_to_matrix(q), atol=1e-12)
    xi = np.c_[w, np.random.default_rng(2).normal(size=(64, 3)) * 3]
    T = SE3.exp(xi)
    np.testing.assert_allclose(tl.se3_exp(_t(xi)).numpy(), T.matrix(), atol=1e-12)
    np.testing.assert_allclose(tl.se3_log(_t(T.matrix())).numpy(), T.log(), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(tl.se3_log(_t(T.R), _t(T.t)).numpy(), T.log(), rtol=1e-10, atol=1e-11)
    p = np.random.default_rng(3).normal(size=(64, 3))
    np.testing.assert_allclose(tl.transform_points(_t(T.R), _t(T.t), _t(p)).numpy(), T.act(p), atol=1e-12)
    np.testing.assert_allclose(tl.transform_points(_t(T.R[0]), _t(T.t[0]), _t(p)).numpy(), T[0].act(p), atol=1e-12)
    # and with scipy directly, in float32 too (dtype is preserved)
    R32 = tl.so3_exp(torch.tensor(w, dtype=torch.float32))
    assert R32.dtype == torch.float32
    np.testing.assert_allclose(R32.numpy(), Rotation.from_rotvec(w).as_matrix(), atol=1e-5)


def test_batch_shapes():
    w = torch.zeros(2, 5, 3, dtype=torch.float64)
    assert tl.so3_exp(w).shape == (2, 5, 3, 3)
    assert tl.so3_log(tl.so3_exp(w)).shape == (2, 5, 3)
    assert tl.se3_exp(torch.zeros(4, 6, dtype=torch.float64)).shape == (4, 4, 4)
    assert tl.se3_log(torch.eye(4, dtype=torch.float64).expand(3, 4, 4)).shape == (3, 6)
    R = tl.so3_exp(torch.randn(4, 1, 3, dtype=torch.float64))
    assert tl.transform_points(
        R, torch.zeros(4, 1, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    ).shape == (4, 7, 3)
    with pytest.raises(ValueError, match="w"):
        tl.so3_exp(torch.zeros(4))


@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e-9, 0.0])
def test_gradcheck_so3_exp_and_log(scale):
    w = _t(np.array([[0.3, -0.2, 0.5], [1.2, 0.4, -2.0]]) * scale, grad=True)
    assert torch.autograd.gradcheck(tl.so3_exp, (w,), eps=1e-7, atol=1e-7)
    assert torch.autograd.gradcheck(lambda v: tl.so3_log(tl.so3_exp(v)), (w,), eps=1e-7, atol=1e-6)
    # directly on (slightly off-manifold) matrices, as gradcheck perturbs every entry
    R = _t(so3_exp(w.detach().numpy()), grad=True)
    assert torch.autograd.gradcheck(tl.so3_log, (R,), eps=1e-7, atol=1e-6)


def test_gradients_at_exactly_zero_are_finite_and_correct():
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (tl.so3_log(tl.so3_exp(w)) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [1.0, 2.0, 3.0], atol=1e-12)  # d log(exp(w)) / dw = I
    # d exp(w) / dw_k at 0 is hat(e_k)
    J = torch.autograd.functional.jacobian(tl.so3_exp, torch.zeros(3, dtype=torch.float64))
    for k in range(3):
        e = np.zeros(3)
        e[k] = 1.0
        np.testing.assert_allclose(J[..., k].numpy(), np.cross(e, np.eye(3), axisb=0, axisc=0), atol=1e-15)
    xi = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    tl.se3_log(tl.se3_exp(xi)).sum().backward()
    np.testing.assert_allclose(xi.grad.numpy(), np.ones(6), atol=1e-12)
    R = torch.eye(3, dtype=torch.float64, requires_grad=True)
    tl.so3_log(R).sum().backward()
    assert torch.isfinite(R.grad).all()
    np.testing.assert_allclose(R.grad.numpy(), 0.5 * np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]]), atol=1e-12)


def test_gradcheck_near_pi():
    # generic axis so that one Shepperd branch is clearly selected
    axis = np.array([0.8, 0.5, -0.33])
    w = _t(axis / np.linalg.norm(axis) * (np.pi - 0.1), grad=True)
    assert torch.autograd.gradcheck(lambda v: tl.so3_log(tl.so3_exp(v)), (w,), eps=1e-7, atol=1e-6)
    R = _t(so3_exp(w.detach().numpy()), grad=True)
    assert torch.autograd.gradcheck(tl.so3_log, (R,), eps=1e-7, atol=1e-6)
    assert torch.autograd.gradcheck(tl.matrix_to_quat, (R,), eps=1e-7, atol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 1e-9, 0.0])
def test_gradcheck_se3_quat_and_points(scale):
    rng = np.random.default_rng(4)
    xi = _t(np.r_[rng.normal(size=3) * scale, rng.normal(size=3)], grad=True)
    assert torch.autograd.gradcheck(tl.se3_exp, (xi,), eps=1e-7, atol=1e-6)
    assert torch.autograd.gradcheck(lambda v: tl.se3_log(tl.se3_exp(v)), (xi,), eps=1e-7, atol=1e-6)
    T = _t(SE3.exp(xi.detach().numpy()).matrix(), grad=True)
    assert torch.autograd.gradcheck(tl.se3_log, (T,), eps=1e-7, atol=1e-6)
    q = _t(rng.normal(size=(3, 4)), grad=True)
    assert torch.autograd.gradcheck(tl.quat_to_matrix, (q,), eps=1e-7, atol=1e-6)
    R = _t(so3_exp(rng.normal(size=(2, 3))), grad=True)
    assert torch.autograd.gradcheck(tl.matrix_to_quat, (R,), eps=1e-7, atol=1e-6)
    Rp = _t(so3_exp(rng.normal(size=3)), grad=True)
    t = _t(rng.normal(size=3), grad=True)
    p = _t(rng.normal(size=(5, 3)), grad=True)
    assert torch.autograd.gradcheck(tl.transform_points, (Rp, t, p), eps=1e-7, atol=1e-6)
