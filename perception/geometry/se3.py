"""Rigid transforms (:class:`SE3`) and similarity transforms (:class:`Sim3`), batched over leading dimensions.

Tangent order is (omega, v) for SE(3) -- the same as gtsam ``Pose3.Logmap`` -- and (omega, v, log s) for
Sim(3) (the same as gtsam ``Similarity3.Logmap``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from perception.errors import InputError

from .so3 import (
    SO3,
    _as_matrices,
    _as_vectors,
    _batch_take,
    _random_quat,
    hat,
    matrix_to_quat,
    orthonormalize,
    quat_to_matrix,
    so3_exp,
    so3_left_jacobian,
    so3_left_jacobian_inv,
    so3_log,
)

__all__ = ["SE3", "Sim3"]

# Tolerance on |R^T R - I| accepted by from_matrix before re-orthonormalising (text files carry ~6 digits).
_ORTHO_TOL = 1e-4


def _shape_arg(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, int) else tuple(shape)


def _rotate(R: np.ndarray, p: np.ndarray) -> np.ndarray:
    """R (*B,3,3) applied to p (...,3) with broadcasting of batch dims."""
    if R.ndim == 2:
        return p @ R.T
    return (R @ p[..., None])[..., 0]


def _checked_rotation(A: np.ndarray, name: str) -> np.ndarray:
    err = np.abs(np.swapaxes(A, -1, -2) @ A - np.eye(3))
    if not np.all(np.isfinite(A)) or (err.size and err.max() > _ORTHO_TOL):
        raise InputError(f"{name}: the rotation block is not orthonormal (max |R^T R - I| > {_ORTHO_TOL:g})")
    if np.any(np.linalg.det(A) <= 0):
        raise InputError(f"{name}: the rotation block has a non-positive determinant (a reflection)")
    return orthonormalize(A)


def _check_last_row(T: np.ndarray, name: str) -> None:
    if not np.allclose(T[..., 3, :3], 0.0, atol=1e-9) or not np.allclose(T[..., 3, 3], 1.0, atol=1e-9):
        raise InputError(f"{name}: the last row of each 4x4 matrix must be [0, 0, 0, 1]")


class _RigidBatch:
    """What SE3 and Sim3 share: rotation ``R`` (*B,3,3), translation ``t`` (*B,3), batch shape, iteration."""

    R: np.ndarray
    t: np.ndarray

    @property
    def rotation(self) -> SO3:
        return SO3(self.R)

    @property
    def translation(self) -> np.ndarray:
        return self.t

    @property
    def shape(self) -> tuple[int, ...]:
        return self.t.shape[:-1]

    def __len__(self) -> int:
        if self.shape == ():
            raise TypeError(f"len() of a single (unbatched) {type(self).__name__}")
        return self.shape[0]

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self[i]  # type: ignore[index]


class SE3(_RigidBatch):
    """Batched rigid transforms ``p -> R p + t``. ``R`` has shape (*B, 3, 3), ``t`` (*B, 3).

    The constructor checks shapes only (R is trusted to be a rotation); use :meth:`from_matrix` to validate and
    re-orthonormalise matrices read from files. ``SE3(R, t)`` broadcasts the batch shapes of R and t.
    """

    __slots__ = ("R", "t")

    def __init__(self, R: Any, t: Any) -> None:
        R = _as_matrices(R, 3, 3, "R")
        t = _as_vectors(t, 3, "t")
        if R.shape[:-2] != t.shape[:-1]:
            try:
                B = np.broadcast_shapes(R.shape[:-2], t.shape[:-1])
            except ValueError:
                raise InputError(
                    f"SE3: batch shapes of R {R.shape[:-2]} and t {t.shape[:-1]} do not broadcast"
                ) from None
            R = np.broadcast_to(R, B + (3, 3)).copy()
            t = np.broadcast_to(t, B + (3,)).copy()
        self.R = R
        self.t = t

    # -- constructors ---------------------------------------------------------------------------------------
    @classmethod
    def identity(cls, shape: int | Sequence[int] = ()) -> SE3:
        shape = _shape_arg(shape)
        return cls(np.broadcast_to(np.eye(3), shape + (3, 3)).copy(), np.zeros(shape + (3,)))

    @classmethod
    def from_matrix(cls, T: Any) -> SE3:
        """From homogeneous matrices (*B, 4, 4); the rotation block is re-orthonormalised (tolerance 1e-4)."""
        T = _as_matrices(T, 4, 4, "T")
        _check_last_row(T, "T")
        return cls(_checked_rotation(T[..., :3, :3], "T"), T[..., :3, 3].copy())

    @classmethod
    def from_quat_t(cls, q_xyzw: Any, t: Any) -> SE3:
        return cls(quat_to_matrix(q_xyzw), t)

    @classmethod
    def exp(cls, xi: Any) -> SE3:
        """Exponential map of twists (*B, 6) ordered (omega, v)."""
        xi = _as_vectors(xi, 6, "xi")
        w, v = xi[..., :3], xi[..., 3:]
        return cls(so3_exp(w), (so3_left_jacobian(w) @ v[..., None])[..., 0])

    @classmethod
    def random(cls, rng: np.random.Generator, shape: int | Sequence[int] = (), trans_scale: float = 1.0) -> SE3:
        """Uniform random rotations and Gaussian translations with standard deviation ``trans_scale``."""
        shape = _shape_arg(shape)
        return cls(quat_to_matrix(_random_quat(rng, shape)), trans_scale * rng.normal(size=shape + (3,)))

    @classmethod
    def stack(cls, poses: Sequence[SE3], axis: int = 0) -> SE3:
        if len(poses) == 0:
            raise InputError("poses: expected a non-empty sequence of SE3")
        rax, tax = (axis, axis) if axis >= 0 else (axis - 2, axis - 1)
        return cls(np.stack([p.R for p in poses], axis=rax), np.stack([p.t for p in poses], axis=tax))

    # -- maps -----------------------------------------------------------------------------------------------
    def matrix(self) -> np.ndarray:
        T = np.zeros(self.shape + (4, 4))
        T[..., :3, :3] = self.R
        T[..., :3, 3] = self.t
        T[..., 3, 3] = 1.0
        return T

    def as_quat_t(self) -> tuple[np.ndarray, np.ndarray]:
        return matrix_to_quat(self.R), self.t.copy()

    def log(self) -> np.ndarray:
        """Logarithm map (*B, 6) ordered (omega, v), rotation angle in [0, pi]."""
        w = so3_log(self.R)
        v = (so3_left_jacobian_inv(w) @ self.t[..., None])[..., 0]
        return np.concatenate([w, v], axis=-1)

    def inverse(self) -> SE3:
        Rt = np.swapaxes(self.R, -1, -2)
        return SE3(Rt.copy(), -(Rt @ self.t[..., None])[..., 0])

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, Sim3):
            return Sim3.from_se3(self) @ other
        if not isinstance(other, SE3):
            return NotImplemented
        return SE3(self.R @ other.R, (self.R @ other.t[..., None])[..., 0] + self.t)

    def act(self, p: Any) -> np.ndarray:
        """Transform points ``p`` (..., 3). The batch shape broadcasts against ``p.shape[:-1]``."""
        p = _as_vectors(p, 3, "p")
        return _rotate(self.R, p) + self.t

    def adjoint(self) -> np.ndarray:
        """Adjoint (*B, 6, 6) in (omega, v) order: ``a @ SE3.exp(xi) == SE3.exp(a.adjoint() @ xi) @ a``."""
        Ad = np.zeros(self.shape + (6, 6))
        Ad[..., :3, :3] = self.R
        Ad[..., 3:, 3:] = self.R
        Ad[..., 3:, :3] = hat(self.t) @ self.R
        return Ad

    # -- batch ----------------------------------------------------------------------------------------------
    def __getitem__(self, idx: Any) -> SE3:
        sel, shape = _batch_take(self.shape, idx)
        flat = sel.reshape(-1)
        return SE3(
            self.R.reshape(-1, 3, 3)[flat].reshape(shape + (3, 3)),
            self.t.reshape(-1, 3)[flat].reshape(shape + (3,)),
        )

    def __repr__(self) -> str:
        if self.shape == ():
            return (
                f"SE3(rotvec={np.array2string(so3_log(self.R), precision=4)}, t={np.array2string(self.t, precision=4)})"
            )
        return f"SE3(shape={self.shape})"


def _sim3_W(w: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """``W = int_0^1 exp(tau (hat(w) + lam I)) dtau`` (*B, 3, 3), the Sim(3) analogue of the left Jacobian.

    With ``theta = |w|``, ``K = hat(w / theta)`` and ``I(z) = (e^z - 1) / z`` at ``z = lam + i theta``:
    ``W = a I + Im(I(z)) K + (a - Re(I(z))) K^2`` with ``a = (e^lam - 1) / lam``. The numerator of ``I(z)`` is
    formed with ``expm1`` and ``1 - cos = 2 sin^2(theta / 2)``, so every term is accurate to machine precision
    in absolute terms, including the limits theta -> 0 and lam -> 0.
    """
    theta = np.linalg.norm(w, axis=-1)
    zero_l = lam == 0.0
    a = np.where(zero_l, 1.0, np.expm1(lam) / np.where(zero_l, 1.0, lam))
    num = (np.expm1(lam) * np.cos(theta) - 2.0 * np.sin(0.5 * theta) ** 2) + 1j * (np.exp(lam) * np.sin(theta))
    z = lam + 1j * theta
    zero_z = z == 0
    Iz = np.where(zero_z, 1.0 + 0j, num / np.where(zero_z, 1.0, z))
    zero_t = theta == 0.0
    K = hat(w / np.where(zero_t, 1.0, theta)[..., None])
    b = np.where(zero_t, 0.0, Iz.imag)
    c = np.where(zero_t, 0.0, a - Iz.real)
    return a[..., None, None] * np.eye(3) + b[..., None, None] * K + c[..., None, None] * (K @ K)


class Sim3(_RigidBatch):
    """Batched similarity transforms ``p -> s R p + t``; ``s`` (*B,), ``R`` (*B, 3, 3), ``t`` (*B, 3).

    Composition: ``(s1, R1, t1) @ (s2, R2, t2) = (s1 s2, R1 R2, s1 R1 t2 + t1)``.
    Tangent vectors are 7-vectors (omega, v, log s); ``matrix()`` is ``[[s R, t], [0, 1]]``.
    """

    __slots__ = ("R", "s", "t")

    def __init__(self, s: Any, R: Any, t: Any) -> None:
        s = np.asarray(s, dtype=np.float64)
        R = _as_matrices(R, 3, 3, "R")
        t = _as_vectors(t, 3, "t")
        if np.any(~((s > 0) & np.isfinite(s))):
            raise InputError("Sim3: scale s must be finite and > 0")
        B = s.shape
        if not (s.shape == R.shape[:-2] == t.shape[:-1]):
            try:
                B = np.broadcast_shapes(s.shape, R.shape[:-2], t.shape[:-1])
            except ValueError:
                raise InputError(
                    f"Sim3: batch shapes of s {s.shape}, R {R.shape[:-2]}, t {t.shape[:-1]} do not broadcast"
                ) from None
            s = np.broadcast_to(s, B).copy()
            R = np.broadcast_to(R, B + (3, 3)).copy()
            t = np.broadcast_to(t, B + (3,)).copy()
        self.s = s
        self.R = R
        self.t = t

    # -- constructors ---------------------------------------------------------------------------------------
    @classmethod
    def identity(cls, shape: int | Sequence[int] = ()) -> Sim3:
        shape = _shape_arg(shape)
        return cls(np.ones(shape), np.broadcast_to(np.eye(3), shape + (3, 3)).copy(), np.zeros(shape + (3,)))

    @classmethod
    def from_se3(cls, T: SE3, s: Any = 1.0) -> Sim3:
        return cls(np.broadcast_to(np.asarray(s, dtype=np.float64), T.shape), T.R, T.t)

    @classmethod
    def from_matrix(cls, T: Any) -> Sim3:
        """From (*B, 4, 4) matrices ``[[s R, t], [0, 1]]``; ``s = cbrt(det(sR))``, R re-orthonormalised."""
        T = _as_matrices(T, 4, 4, "T")
        _check_last_row(T, "T")
        A = T[..., :3, :3]
        det = np.linalg.det(A)
        if np.any(~(det > 0)):
            raise InputError("T: the 3x3 block s*R must have a positive determinant")
        s = np.cbrt(det)
        return cls(s, _checked_rotation(A / s[..., None, None], "T"), T[..., :3, 3].copy())

    @classmethod
    def from_quat_t(cls, q_xyzw: Any, t: Any, s: Any = 1.0) -> Sim3:
        R = quat_to_matrix(q_xyzw)
        return cls(np.broadcast_to(np.asarray(s, dtype=np.float64), R.shape[:-2]), R, t)

    @classmethod
    def exp(cls, xi: Any) -> Sim3:
        """Exponential map of (*B, 7) vectors ordered (omega, v, log s)."""
        xi = _as_vectors(xi, 7, "xi")
        w, v, lam = xi[..., :3], xi[..., 3:6], xi[..., 6]
        t = (_sim3_W(w, lam) @ v[..., None])[..., 0]
        return cls(np.exp(lam), so3_exp(w), t)

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        shape: int | Sequence[int] = (),
        trans_scale: float = 1.0,
        log_scale_std: float = 0.5,
    ) -> Sim3:
        """Uniform rotations, Gaussian translations (std ``trans_scale``), log-normal scales."""
        shape = _shape_arg(shape)
        R = quat_to_matrix(_random_quat(rng, shape))
        return cls(np.exp(log_scale_std * rng.normal(size=shape)), R, trans_scale * rng.normal(size=shape + (3,)))

    @classmethod
    def stack(cls, transforms: Sequence[Sim3], axis: int = 0) -> Sim3:
        if len(transforms) == 0:
            raise InputError("transforms: expected a non-empty sequence of Sim3")
        rax, tax = (axis, axis) if axis >= 0 else (axis - 2, axis - 1)
        return cls(
            np.stack([x.s for x in transforms], axis=axis),
            np.stack([x.R for x in transforms], axis=rax),
            np.stack([x.t for x in transforms], axis=tax),
        )

    # -- maps -----------------------------------------------------------------------------------------------
    def matrix(self) -> np.ndarray:
        T = np.zeros(self.shape + (4, 4))
        T[..., :3, :3] = self.s[..., None, None] * self.R
        T[..., :3, 3] = self.t
        T[..., 3, 3] = 1.0
        return T

    def as_quat_t(self) -> tuple[np.ndarray, np.ndarray]:
        return matrix_to_quat(self.R), self.t.copy()

    def as_se3(self) -> SE3:
        """Drop the scale: ``SE3(R, t)``. ``(S @ Sim3.from_se3(T)).as_se3()`` is the pose T mapped by S."""
        return SE3(self.R.copy(), self.t.copy())

    def log(self) -> np.ndarray:
        """Logarithm map (*B, 7) ordered (omega, v, log s)."""
        w = so3_log(self.R)
        lam = np.log(self.s)
        v = np.linalg.solve(_sim3_W(w, lam), self.t[..., None])[..., 0]
        return np.concatenate([w, v, lam[..., None]], axis=-1)

    def inverse(self) -> Sim3:
        Rt = np.swapaxes(self.R, -1, -2)
        inv_s = 1.0 / self.s
        return Sim3(inv_s, Rt.copy(), -inv_s[..., None] * (Rt @ self.t[..., None])[..., 0])

    def __matmul__(self, other: Any) -> Sim3:
        if isinstance(other, SE3):
            other = Sim3.from_se3(other)
        if not isinstance(other, Sim3):
            return NotImplemented
        return Sim3(
            self.s * other.s,
            self.R @ other.R,
            self.s[..., None] * (self.R @ other.t[..., None])[..., 0] + self.t,
        )

    def act(self, p: Any) -> np.ndarray:
        """Transform points ``p`` (..., 3) as ``s R p + t``; batch shape broadcasts with ``p.shape[:-1]``."""
        p = _as_vectors(p, 3, "p")
        if self.s.ndim == 0:
            return self.s * _rotate(self.R, p) + self.t
        return self.s[..., None] * _rotate(self.R, p) + self.t

    def adjoint(self) -> np.ndarray:
        """Adjoint (*B, 7, 7) in (omega, v, log s) order.

        ``a @ Sim3.exp(xi) == Sim3.exp(a.adjoint() @ xi) @ a``.
        """
        Ad = np.zeros(self.shape + (7, 7))
        Ad[..., :3, :3] = self.R
        Ad[..., 3:6, :3] = hat(self.t) @ self.R
        Ad[..., 3:6, 3:6] = self.s[..., None, None] * self.R
        Ad[..., 3:6, 6] = -self.t
        Ad[..., 6, 6] = 1.0
        return Ad

    @property
    def scale(self) -> np.ndarray:
        return self.s

    # -- batch ----------------------------------------------------------------------------------------------
    def __getitem__(self, idx: Any) -> Sim3:
        sel, shape = _batch_take(self.shape, idx)
        flat = sel.reshape(-1)
        return Sim3(
            self.s.reshape(-1)[flat].reshape(shape),
            self.R.reshape(-1, 3, 3)[flat].reshape(shape + (3, 3)),
            self.t.reshape(-1, 3)[flat].reshape(shape + (3,)),
        )

    def __repr__(self) -> str:
        if self.shape == ():
            return (
                f"Sim3(s={float(self.s):.6g}, rotvec={np.array2string(so3_log(self.R), precision=4)}, "
                f"t={np.array2string(self.t, precision=4)})"
            )
        return f"Sim3(shape={self.shape})"
