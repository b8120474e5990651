"""SO(3) / SE(3) / Sim(3): round trips (hypothesis), scipy and gtsam agreement, hand-computed values."""

from __future__ import annotations

import gtsam
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from perception.geometry import (
    SE3,
    SO3,
    Sim3,
    hat,
    matrix_to_quat,
    quat_to_matrix,
    so3_exp,
    so3_left_jacobian,
    so3_left_jacobian_inv,
    so3_log,
    vee,
)

FAST = settings(max_examples=60, deadline=None, derandomize=True)

# -- strategies ------------------------------------------------------------------------------------------------
_unit = st.floats(-1.0, 1.0, allow_nan=False)
axes = (
    st.tuples(_unit, _unit, _unit)
    .filter(lambda a: np.linalg.norm(a) > 0.1)
    .map(lambda a: np.asarray(a) / np.linalg.norm(a))
)
angles = st.one_of(
    st.floats(0.0, np.pi - 1e-3),
    st.floats(np.pi - 1e-2, np.pi - 1e-3),
    st.floats(1e-4, 5e-2),  # around the switch between Taylor series and closed forms (1e-2)
    st.floats(1e-12, 1e-6),
    st.just(1e-10),
    st.just(0.0),
)
rotvecs = st.builds(lambda a, th: a * th, axes, angles)
vec3 = st.tuples(*[st.floats(-10.0, 10.0, allow_nan=False)] * 3).map(np.asarray)
twists = st.builds(lambda w, v: np.concatenate([w, v]), rotvecs, vec3)
log_scales = st.floats(-3.0, 3.0)
sim3_tangents = st.builds(lambda xi, ls: np.concatenate([xi, [ls]]), twists, log_scales)
seeds = st.integers(0, 2**32 - 1)


def _assert_rotvec_close(actual: np.ndarray, expected: np.ndarray) -> None:
    # Accuracy relative to the angle, so that tiny angles (1e-10) are checked to ~12 significant digits too.
    # (the 1e-300 floor only forgives subnormal inputs)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-13 * np.linalg.norm(expected) + 1e-300)


def _gtsam_log_atol(angle: float) -> float:
    # gtsam's Logmap loses up to ~1e-7 within 1e-2 of pi; ours round-trips to 1e-12 there (tested separately)
    return 1e-9 if angle < np.pi - 1e-2 else 1e-6


def _pose3(T: SE3) -> gtsam.Pose3:
    return gtsam.Pose3(gtsam.Rot3(T.R), T.t)


# -- hat / vee ---------------------------------------------------------------------------------------------------
@FAST
@given(w=vec3, p=vec3)
def test_hat_is_cross_product_and_vee_inverts_it(w, p):
    np.testing.assert_allclose(hat(w) @ p, np.cross(w, p), atol=1e-12)
    np.testing.assert_array_equal(vee(hat(w)), w)
    np.testing.assert_array_equal(hat(w), -hat(w).T)


def test_hat_hand_values():
    np.testing.assert_array_equal(hat([1.0, 2.0, 3.0]), [[0, -3, 2], [3, 0, -1], [-2, 1, 0]])


# -- SO(3) -------------------------------------------------------------------------------------------------------
@FAST
@given(w=rotvecs)
def test_so3_exp_log_round_trip_and_scipy(w):
    R = so3_exp(w)
    np.testing.assert_allclose(R, Rotation.from_rotvec(w).as_matrix(), atol=1e-14)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-14)
    _assert_rotvec_close(so3_log(R), w)
    _assert_rotvec_close(SO3.exp(w).log(), w)


@FAST
@given(seed=seeds)
def test_so3_log_exp_round_trip_and_scipy(seed):
    R = Rotation.random(16, random_state=seed)
    w = so3_log(R.as_matrix())
    np.testing.assert_allclose(w, R.as_rotvec(), atol=1e-12)
    np.testing.assert_allclose(so3_exp(w), R.as_matrix(), atol=1e-14)


@pytest.mark.parametrize("axis", [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -2, 3], [-1, -1, -1]])
@pytest.mark.parametrize("delta", [0.0, 1e-12, 1e-8, 1e-5])
def test_so3_log_near_and_at_pi(axis, delta):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    R = Rotation.from_rotvec(axis * (np.pi - delta)).as_matrix()
    w = so3_log(R)
    assert abs(np.linalg.norm(w) - (np.pi - delta)) < 1e-10
    np.testing.assert_allclose(so3_exp(w), R, atol=1e-14)
    if delta > 0:  # the axis sign is only ambiguous at exactly pi
        np.testing.assert_allclose(w, axis * (np.pi - delta), atol=1e-10)
    else:
        assert min(np.abs(w - np.pi * axis).max(), np.abs(w + np.pi * axis).max()) < 1e-10


def test_so3_tiny_angle_precision():
    w = np.array([3e-11, -1e-10, 2e-10])
    R = so3_exp(w)
    # first order: R = I + hat(w) (the quadratic term is ~1e-20)
    np.testing.assert_allclose(R - np.eye(3), hat(w), atol=1e-25)
    np.testing.assert_allclose(so3_log(R), w, rtol=1e-12)
    np.testing.assert_array_equal(so3_log(np.eye(3)), np.zeros(3))


def test_so3_hand_values():
    Rz90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(so3_exp([0, 0, np.pi / 2]), Rz90, atol=1e-15)
    s = np.sqrt(0.5)
    np.testing.assert_allclose(matrix_to_quat(Rz90), [0, 0, s, s], atol=1e-15)
    np.testing.assert_allclose(quat_to_matrix([0, 0, s, s]), Rz90, atol=1e-15)
    # 180 degrees about x: q = (1, 0, 0, 0)
    np.testing.assert_allclose(matrix_to_quat(np.diag([1.0, -1.0, -1.0])), [1, 0, 0, 0], atol=1e-15)


@FAST
@given(seed=seeds)
def test_quaternion_round_trip_scipy_and_sign(seed):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(32, 4))
    q[0] = [0.0, 0.0, 0.0, 1.0]
    q[1] = [1.0, 0.0, 0.0, 0.0]  # qw = 0 exactly
    q[2] = [0.0, 0.0, 0.0, -3.0]  # not normalised, negative qw
    R = quat_to_matrix(q)
    np.testing.assert_allclose(R, Rotation.from_quat(q).as_matrix(), atol=1e-14)
    q_back = matrix_to_quat(R)
    assert np.all(q_back[:, 3] >= 0.0)
    np.testing.assert_allclose(np.linalg.norm(q_back, axis=1), 1.0, atol=1e-15)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    qn = np.where(qn[:, 3:4] < 0, -qn, qn)
    np.testing.assert_allclose(q_back[3:], qn[3:], atol=1e-14)
    np.testing.assert_allclose(q_back[:3], [[0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 1]], atol=1e-15)
    np.testing.assert_allclose(q_back[3:], Rotation.from_matrix(R[3:]).as_quat(canonical=True), atol=1e-14)
    np.testing.assert_allclose(SO3.from_quat(q).as_quat(), q_back, atol=0)


def test_quat_rejects_zero():
    with pytest.raises(ValueError, match="q_xyzw"):
        quat_to_matrix([0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="q_xyzw"):
        quat_to_matrix(np.ones((2, 3)))


@FAST
@given(w1=rotvecs, w2=rotvecs, p=vec3)
def test_so3_class_compose_inverse_act(w1, w2, p):
    a, b = SO3.exp(w1), SO3.exp(w2)
    np.testing.assert_allclose((a @ b).matrix, a.matrix @ b.matrix, atol=1e-15)
    np.testing.assert_allclose((a @ a.inverse()).matrix, np.eye(3), atol=1e-14)
    np.testing.assert_allclose((a @ b).act(p), a.act(b.act(p)), atol=1e-12)
    np.testing.assert_allclose(a.act(p), Rotation.from_rotvec(w1).apply(p), atol=1e-12)
    # adjoint of SO(3) is R: a Exp(w) a^-1 = Exp(R w)
    np.testing.assert_allclose((a @ SO3.exp(w2) @ a.inverse()).matrix, so3_exp(a.adjoint() @ w2), atol=1e-13)


def test_so3_random_is_uniform_on_average():
    R = SO3.random(np.random.default_rng(1), (20000,))
    assert R.shape == (20000,) and len(R) == 20000
    # E[R] = 0 for the Haar measure, and the angle density is (1 - cos t) / pi -> mean angle pi/2 + 2/pi
    np.testing.assert_allclose(R.matrix.mean(axis=0), np.zeros((3, 3)), atol=0.02)
    mean_angle = np.linalg.norm(R.log(), axis=1).mean()
    assert abs(mean_angle - (np.pi / 2 + 2 / np.pi)) < 0.02


def test_left_jacobian_inverse_and_definition():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(50, 3))
    w[0] = 0.0
    w[1] = 1e-9
    J = so3_left_jacobian(w)
    np.testing.assert_allclose(J @ so3_left_jacobian_inv(w), np.broadcast_to(np.eye(3), J.shape), atol=1e-12)
    # J(w) = int_0^1 exp(tau hat(w)) dtau, by Gauss-Legendre quadrature (exact to ~1e-15 for 20 nodes here)
    x, wq = np.polynomial.legendre.leggauss(20)
    tau = 0.5 * (x + 1.0)
    quad = 0.5 * np.einsum("k,kbij->bij", wq, so3_exp(tau[:, None, None] * w[None]))
    np.testing.assert_allclose(J, quad, atol=1e-13)


# -- SE(3) -------------------------------------------------------------------------------------------------------
@FAST
@given(xi=twists)
def test_se3_exp_log_round_trip_and_gtsam(xi):
    T = SE3.exp(xi)
    gT = gtsam.Pose3.Expmap(xi)
    np.testing.assert_allclose(T.matrix(), gT.matrix(), atol=1e-12)
    back = T.log()
    _assert_rotvec_close(back[:3], xi[:3])
    np.testing.assert_allclose(back[3:], xi[3:], rtol=1e-12, atol=1e-12)
    atol = _gtsam_log_atol(np.linalg.norm(xi[:3]))
    np.testing.assert_allclose(back, gtsam.Pose3.Logmap(gT), rtol=1e-9, atol=atol)


@FAST
@given(seed=seeds)
def test_se3_log_exp_round_trip_batched_and_gtsam(seed):
    rng = np.random.default_rng(seed)
    T = SE3.random(rng, (8,), trans_scale=5.0)
    xi = T.log()
    assert xi.shape == (8, 6)
    np.testing.assert_allclose(SE3.exp(xi).matrix(), T.matrix(), atol=1e-12)
    for i in range(8):
        atol = _gtsam_log_atol(np.linalg.norm(xi[i, :3]))
        np.testing.assert_allclose(xi[i], gtsam.Pose3.Logmap(_pose3(T[i])), rtol=1e-9, atol=atol)


@FAST
@given(seed=seeds)
def test_se3_group_operations_against_gtsam(seed):
    rng = np.random.default_rng(seed)
    a, b, c = (SE3.random(rng, trans_scale=3.0) for _ in range(3))
    ga, gb = _pose3(a), _pose3(b)
    np.testing.assert_allclose((a @ b).matrix(), ga.compose(gb).matrix(), atol=1e-12)
    np.testing.assert_allclose(a.inverse().matrix(), ga.inverse().matrix(), atol=1e-12)
    np.testing.assert_allclose((a @ a.inverse()).matrix(), np.eye(4), atol=1e-12)
    np.testing.assert_allclose((a.inverse() @ a).matrix(), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(((a @ b) @ c).matrix(), (a @ (b @ c)).matrix(), atol=1e-12)
    np.testing.assert_allclose(a.adjoint(), ga.AdjointMap(), atol=1e-12)
    np.testing.assert_allclose((a @ b).matrix(), a.matrix() @ b.matrix(), atol=1e-12)
    p = rng.normal(size=(10, 3)) * 4
    np.testing.assert_allclose(a.act(p), (a.matrix() @ np.c_[p, np.ones(10)].T).T[:, :3], atol=1e-12)
    np.testing.assert_allclose((a @ b).act(p), a.act(b.act(p)), atol=1e-12)
    np.testing.assert_allclose(a.act(p[0]), ga.transformFrom(p[0]), atol=1e-12)
    q, t = a.as_quat_t()
    np.testing.assert_allclose(SE3.from_quat_t(q, t).matrix(), a.matrix(), atol=1e-14)


@FAST
@given(seed=seeds, xi=twists)
def test_se3_adjoint_identity(seed, xi):
    a = SE3.random(np.random.default_rng(seed), trans_scale=3.0)
    lhs = (a @ SE3.exp(xi)).matrix()
    rhs = (SE3.exp(a.adjoint() @ xi) @ a).matrix()
    np.testing.assert_allclose(lhs, rhs, atol=1e-10)


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-4, 0.0099999, 0.01, 0.0100001, 0.3, 2.0, np.pi - 1e-6])
def test_se3_exp_log_against_matrix_exponential(angle):
    # independent reference: scipy's Pade matrix exponential of the 4x4 twist, and Sim3 likewise
    rng = np.random.default_rng(int(angle * 1e6))
    axis = rng.normal(size=3)
    xi = np.r_[axis / np.linalg.norm(axis) * angle, rng.normal(size=3) * 10]
    X = np.zeros((4, 4))
    X[:3, :3] = hat(xi[:3])
    X[:3, 3] = xi[3:]
    np.testing.assert_allclose(SE3.exp(xi).matrix(), scipy.linalg.expm(X), rtol=0, atol=1e-13)
    np.testing.assert_allclose(SE3.from_matrix(scipy.linalg.expm(X)).log(), xi, rtol=1e-12, atol=1e-12)
    lam = 0.7
    X[:3, :3] += lam * np.eye(3)
    S = Sim3.exp(np.r_[xi, lam])
    np.testing.assert_allclose(S.matrix(), scipy.linalg.expm(X), rtol=1e-13, atol=1e-13)


def test_se3_hand_values():
    # quarter-turn screw about z with unit velocity along x: t = (sin th / th, (1 - cos th) / th, 0)
    T = SE3.exp([0.0, 0.0, np.pi / 2, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(T.t, [2 / np.pi, 2 / np.pi, 0.0], atol=1e-15)
    np.testing.assert_allclose(T.act([1.0, 0.0, 0.0]), [2 / np.pi, 1 + 2 / np.pi, 0.0], atol=1e-15)
    # pure translation
    np.testing.assert_allclose(SE3.exp([0, 0, 0, 1.0, -2.0, 3.0]).t, [1, -2, 3], atol=0)
    np.testing.assert_allclose(SE3(np.eye(3), [1.0, -2.0, 3.0]).log(), [0, 0, 0, 1, -2, 3], atol=0)
    # tiny rotation: t = v + w x v / 2 to first order
    w, v = np.array([1e-10, 0, 0]), np.array([0.0, 1.0, 0.0])
    np.testing.assert_allclose(SE3.exp(np.r_[w, v]).t, v + np.cross(w, v) / 2, rtol=0, atol=1e-20)


def test_se3_batching_broadcasting_and_indexing():
    rng = np.random.default_rng(5)
    T = SE3.random(rng, (4, 5))
    assert T.shape == (4, 5) and len(T) == 4 and T.matrix().shape == (4, 5, 4, 4)
    np.testing.assert_array_equal(T[1, 2].matrix(), T.matrix()[1, 2])
    np.testing.assert_array_equal(T[1:3].R, T.R[1:3])
    np.testing.assert_array_equal(T[:, [0, 4]].t, T.t[:, [0, 4]])
    np.testing.assert_array_equal(T[np.array([True, False, True, False])].t, T.t[[0, 2]])
    with pytest.raises(IndexError):
        T[0, 0, 0]
    single = T[0, 0]
    with pytest.raises(TypeError):
        len(single)
    # single pose acts on any (..., 3)
    p = rng.normal(size=(2, 3, 3))
    np.testing.assert_allclose(single.act(p), p @ single.R.T + single.t, atol=1e-14)
    # batched pose acts element-wise on matching points and broadcasts otherwise
    q = rng.normal(size=(4, 5, 3))
    np.testing.assert_allclose(T.act(q)[2, 3], T[2, 3].act(q[2, 3]), atol=1e-14)
    np.testing.assert_allclose(T.act(q[0, 0])[3, 1], T[3, 1].act(q[0, 0]), atol=1e-14)
    # compose broadcasts: (4,5) @ () and vectorised log/exp equal per-element results
    comp = T @ single
    np.testing.assert_allclose(comp[2, 1].matrix(), (T[2, 1] @ single).matrix(), atol=1e-14)
    np.testing.assert_allclose(T.log()[3, 4], T[3, 4].log(), atol=1e-14)
    # stack / iteration / identity / from_matrix round trip
    st_ = SE3.stack(list(T[0]))
    np.testing.assert_array_equal(st_.matrix(), T[0].matrix())
    assert SE3.stack([single, single], axis=-1).shape == (2,)
    np.testing.assert_array_equal(SE3.identity((2, 3)).matrix(), np.broadcast_to(np.eye(4), (2, 3, 4, 4)))
    np.testing.assert_allclose(SE3.from_matrix(T.matrix()).matrix(), T.matrix(), atol=1e-15)
    np.testing.assert_array_equal(single.rotation.matrix, single.R)
    np.testing.assert_array_equal(single.translation, single.t)


def test_se3_from_matrix_validation_and_orthonormalisation():
    T = SE3.random(np.random.default_rng(2)).matrix()
    noisy = T.copy()
    noisy[:3, :3] = np.round(noisy[:3, :3], 6)  # what a 6-digit text file gives
    R = SE3.from_matrix(noisy).R
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-14)
    np.testing.assert_allclose(R, T[:3, :3], atol=2e-6)
    bad = T.copy()
    bad[3, 0] = 1.0
    with pytest.raises(ValueError, match="last row"):
        SE3.from_matrix(bad)
    bad = T.copy()
    bad[:3, :3] *= 1.1
    with pytest.raises(ValueError, match="orthonormal"):
        SE3.from_matrix(bad)
    bad = T.copy()
    bad[:3, 0] *= -1
    with pytest.raises(ValueError, match="reflection"):
        SE3.from_matrix(bad)
    with pytest.raises(ValueError, match="T"):
        SE3.from_matrix(np.eye(3))
    with pytest.raises(ValueError, match="t"):
        SE3(np.eye(3), np.zeros(4))
    with pytest.raises(ValueError, match="xi"):
        SE3.exp(np.zeros(7))
    with pytest.raises(ValueError, match="broadcast"):
        SE3(np.broadcast_to(np.eye(3), (2, 3, 3)), np.zeros((3, 3)))


# -- Sim(3) ------------------------------------------------------------------------------------------------------
def _similarity3(S: Sim3) -> gtsam.Similarity3:
    # gtsam acts as s (R p + t_g), we act as s R p + t  ->  t_g = t / s
    return gtsam.Similarity3(gtsam.Rot3(S.R), S.t / S.s, float(S.s))


@FAST
@given(xi=sim3_tangents)
def test_sim3_exp_log_round_trip_and_gtsam(xi):
    S = Sim3.exp(xi)
    G = gtsam.Similarity3.Expmap(xi)
    np.testing.assert_allclose(S.s, np.exp(xi[6]), rtol=1e-15)
    np.testing.assert_allclose(S.R, G.rotation().matrix(), atol=1e-12)
    np.testing.assert_allclose(S.t, G.scale() * G.translation(), rtol=1e-9, atol=1e-9)
    back = S.log()
    _assert_rotvec_close(back[:3], xi[:3])
    np.testing.assert_allclose(back[3:], xi[3:], rtol=1e-12, atol=1e-11)


@FAST
@given(seed=seeds)
def test_sim3_group_operations_against_gtsam(seed):
    rng = np.random.default_rng(seed)
    a, b, c = (Sim3.random(rng, trans_scale=3.0) for _ in range(3))
    ga, gb = _similarity3(a), _similarity3(b)
    np.testing.assert_allclose((a @ b).matrix(), a.matrix() @ b.matrix(), atol=1e-12)
    gab = ga.compose(gb)
    np.testing.assert_allclose((a @ b).s, gab.scale(), rtol=1e-14)
    np.testing.assert_allclose((a @ b).t, gab.scale() * gab.translation(), atol=1e-12)
    np.testing.assert_allclose((a @ a.inverse()).matrix(), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(((a @ b) @ c).matrix(), (a @ (b @ c)).matrix(), atol=1e-12)
    atol = _gtsam_log_atol(np.linalg.norm(a.log()[:3]))
    np.testing.assert_allclose(a.log(), gtsam.Similarity3.Logmap(ga), rtol=1e-9, atol=atol)
    np.testing.assert_allclose(a.adjoint(), ga.AdjointMap(), atol=1e-12)
    p = rng.normal(size=(7, 3))
    np.testing.assert_allclose(a.act(p), (a.matrix() @ np.c_[p, np.ones(7)].T).T[:, :3], atol=1e-12)
    np.testing.assert_allclose(a.act(p[0]), ga.transformFrom(p[0]), atol=1e-12)
    np.testing.assert_allclose(Sim3.exp(a.log()).matrix(), a.matrix(), atol=1e-12)
    np.testing.assert_allclose(Sim3.from_matrix(a.matrix()).matrix(), a.matrix(), atol=1e-13)


@FAST
@given(seed=seeds, xi=sim3_tangents)
def test_sim3_adjoint_identity(seed, xi):
    a = Sim3.random(np.random.default_rng(seed), trans_scale=3.0)
    lhs = (a @ Sim3.exp(xi)).matrix()
    rhs = (Sim3.exp(a.adjoint() @ xi) @ a).matrix()
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9 * np.abs(lhs).max())


def test_sim3_hand_values_batching_and_mixing_with_se3():
    # pure scale: exp((0, v, l)) has t = (e^l - 1) / l * v
    S = Sim3.exp([0, 0, 0, 1.0, 2.0, 0.0, np.log(2.0)])
    np.testing.assert_allclose(S.t, np.array([1.0, 2.0, 0.0]) / np.log(2.0), atol=1e-14)
    np.testing.assert_allclose(S.act([1.0, 1.0, 1.0]), 2.0 + S.t, atol=1e-14)
    rng = np.random.default_rng(9)
    B = Sim3.random(rng, (6,))
    assert B.shape == (6,) and B.log().shape == (6, 7) and B.adjoint().shape == (6, 7, 7)
    np.testing.assert_allclose(B.log()[4], B[4].log(), atol=1e-14)
    np.testing.assert_array_equal(Sim3.stack(list(B)).matrix(), B.matrix())
    T = SE3.random(rng)
    mixed = B[0] @ T
    assert isinstance(mixed, Sim3)
    np.testing.assert_allclose(mixed.matrix(), B[0].matrix() @ T.matrix(), atol=1e-14)
    np.testing.assert_allclose((T @ B[0]).matrix(), T.matrix() @ B[0].matrix(), atol=1e-14)
    # mapping a pose by a similarity: rotation R_s R, position s R_s t + t_s
    np.testing.assert_allclose(mixed.as_se3().t, B[0].act(T.t), atol=1e-14)
    with pytest.raises(ValueError, match="scale"):
        Sim3(-1.0, np.eye(3), np.zeros(3))
    with pytest.raises(ValueError, match="positive determinant"):
        Sim3.from_matrix(np.diag([-1.0, 1.0, 1.0, 1.0]))
