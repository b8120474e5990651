"""Rotations: so(3) hat/vee, exponential and logarithm maps, quaternions (xyzw) and the batched :class:`SO3`.

All functions are vectorised over leading batch dimensions ``(...)`` and work in float64.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from perception.errors import InputError

__all__ = [
    "SO3",
    "hat",
    "matrix_to_quat",
    "orthonormalize",
    "quat_to_matrix",
    "so3_exp",
    "so3_left_jacobian",
    "so3_left_jacobian_inv",
    "so3_log",
    "vee",
]

# Below this angle (rad) the closed forms are replaced by Taylor series (error ~ theta^6 / 5040 < 1e-17).
_SMALL_ANGLE = 1e-2


def _as_vectors(x: Any, dim: int, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 1 or a.shape[-1] != dim:
        raise InputError(f"{name}: expected an array of shape (..., {dim}), got shape {a.shape}")
    return a


def _as_matrices(x: Any, rows: int, cols: int, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2 or a.shape[-2:] != (rows, cols):
        raise InputError(f"{name}: expected an array of shape (..., {rows}, {cols}), got shape {a.shape}")
    return a


def hat(w: Any) -> np.ndarray:
    """Skew-symmetric matrix ``[w]x`` of shape (..., 3, 3) such that ``hat(w) @ p == cross(w, p)``."""
    w = _as_vectors(w, 3, "w")
    W = np.zeros(w.shape + (3,), dtype=np.float64)
    W[..., 0, 1] = -w[..., 2]
    W[..., 0, 2] = w[..., 1]
    W[..., 1, 0] = w[..., 2]
    W[..., 1, 2] = -w[..., 0]
    W[..., 2, 0] = -w[..., 1]
    W[..., 2, 1] = w[..., 0]
    return W


def vee(W: Any) -> np.ndarray:
    """Inverse of :func:`hat`: (..., 3, 3) -> (..., 3). Uses the antisymmetric part of ``W``."""
    W = _as_matrices(W, 3, 3, "W")
    return 0.5 * np.stack(
        [W[..., 2, 1] - W[..., 1, 2], W[..., 0, 2] - W[..., 2, 0], W[..., 1, 0] - W[..., 0, 1]], axis=-1
    )


def _rodrigues_coeffs(theta2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sin(t)/t``, ``(1-cos t)/t^2`` and ``(t - sin t)/t^3`` for ``t = sqrt(theta2)``, robust at 0."""
    small = theta2 < _SMALL_ANGLE**2
    t2 = np.where(small, 1.0, theta2)
    t = np.sqrt(t2)
    s = np.sin(t)
    a = np.where(small, 1.0 - theta2 / 6.0 + theta2**2 / 120.0, s / t)
    # 1 - cos t = 2 sin^2(t/2) avoids cancellation.
    b = np.where(small, 0.5 - theta2 / 24.0 + theta2**2 / 720.0, 2.0 * np.sin(0.5 * t) ** 2 / t2)
    c = np.where(small, 1.0 / 6.0 - theta2 / 120.0 + theta2**2 / 5040.0, (t - s) / (t2 * t))
    return a, b, c


def so3_exp(w: Any) -> np.ndarray:
    """Exponential map: rotation vector (..., 3) (axis * angle, rad) -> rotation matrix (..., 3, 3)."""
    w = _as_vectors(w, 3, "w")
    theta2 = np.sum(w * w, axis=-1)
    a, b, _ = _rodrigues_coeffs(theta2)
    W = hat(w)
    return np.eye(3) + a[..., None, None] * W + b[..., None, None] * (W @ W)


def so3_left_jacobian(w: Any) -> np.ndarray:
    """Left Jacobian ``J(w) = I + (1-cos t)/t^2 W + (t - sin t)/t^3 W^2`` (the ``V`` matrix of SE(3) exp)."""
    w = _as_vectors(w, 3, "w")
    theta2 = np.sum(w * w, axis=-1)
    _, b, c = _rodrigues_coeffs(theta2)
    W = hat(w)
    return np.eye(3) + b[..., None, None] * W + c[..., None, None] * (W @ W)


def so3_left_jacobian_inv(w: Any) -> np.ndarray:
    """Inverse of :func:`so3_left_jacobian` (valid for angles < 2 pi): ``I - W/2 + c(t) W^2``."""
    w = _as_vectors(w, 3, "w")
    theta2 = np.sum(w * w, axis=-1)
    small = theta2 < _SMALL_ANGLE**2
    t2 = np.where(small, 1.0, theta2)
    t = np.sqrt(t2)
    # c = (1 - (t/2) cot(t/2)) / t^2 ; (t/2) cot(t/2) = t sin t / (2 (1 - cos t)).
    half = 0.5 * t
    c = np.where(
        small,
        1.0 / 12.0 + theta2 / 720.0 + theta2**2 / 30240.0,
        (1.0 - half * np.cos(half) / np.sin(half)) / t2,
    )
    W = hat(w)
    return np.eye(3) - 0.5 * W + c[..., None, None] * (W @ W)


def quat_to_matrix(q_xyzw: Any) -> np.ndarray:
    """Quaternion ``(qx, qy, qz, qw)`` (..., 4) -> rotation matrix (..., 3, 3); the input is normalised."""
    q = _as_vectors(q_xyzw, 4, "q_xyzw")
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(~(n > 1e-12)):
        raise InputError("q_xyzw: quaternions must have a finite, non-zero norm")
    q = q / n
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    R = np.stack(
        [
            1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
            2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
            2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
        ],
        axis=-1,
    )  # fmt: skip
    return R.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(R: Any) -> np.ndarray:
    """Rotation matrix (..., 3, 3) -> unit quaternion ``(qx, qy, qz, qw)`` (..., 4) with ``qw >= 0``.

    Shepperd's method: the largest of ``4qw^2, 4qx^2, 4qy^2, 4qz^2`` selects the numerically stable formula,
    so the result is accurate at all angles including 0 and pi.
    """
    R = _as_matrices(R, 3, 3, "R")
    r00, r11, r22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    tr = r00 + r11 + r22
    d21, s21 = R[..., 2, 1] - R[..., 1, 2], R[..., 2, 1] + R[..., 1, 2]
    d02, s02 = R[..., 0, 2] - R[..., 2, 0], R[..., 0, 2] + R[..., 2, 0]
    d10, s10 = R[..., 1, 0] - R[..., 0, 1], R[..., 1, 0] + R[..., 0, 1]
    diag = np.stack([tr, r00, r11, r22], axis=-1)
    choice = np.argmax(diag, axis=-1)
    # Each candidate is 4*q_k times the quaternion, with k the index of the chosen largest component.
    cand = np.stack(
        [
            np.stack([d21, d02, d10, 1.0 + tr], axis=-1),
            np.stack([1.0 + r00 - r11 - r22, s10, s02, d21], axis=-1),
            np.stack([s10, 1.0 - r00 + r11 - r22, s21, d02], axis=-1),
            np.stack([s02, s21, 1.0 - r00 - r11 + r22, d10], axis=-1),
        ],
        axis=-2,
    )
    q = np.take_along_axis(cand, choice[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:4] < 0.0, -q, q)


def so3_log(R: Any) -> np.ndarray:
    """Logarithm map: rotation matrix (..., 3, 3) -> rotation vector (..., 3) with angle in [0, pi].

    Goes through the (Shepperd) quaternion, which is accurate both for tiny angles and near pi.
    """
    q = matrix_to_quat(R)
    v, w = q[..., :3], q[..., 3]  # w >= 0
    n2 = np.sum(v * v, axis=-1)
    n = np.sqrt(n2)
    # factor = 2 atan2(n, w) / n ; for n << w use the series of 2 atan(x)/n with x = n / w.
    small = n < 1e-4 * np.maximum(w, 1e-300)
    w_safe = np.where(small, w, 1.0)
    x2 = n2 / w_safe**2
    series = (2.0 / w_safe) * (1.0 - x2 / 3.0 + x2**2 / 5.0)
    n_safe = np.where(small, 1.0, n)
    factor = np.where(small, series, 2.0 * np.arctan2(n, w) / n_safe)
    return factor[..., None] * v


def orthonormalize(M: Any) -> np.ndarray:
    """Nearest rotation matrix (Frobenius norm, via SVD) to each (..., 3, 3) matrix."""
    M = _as_matrices(M, 3, 3, "M")
    U, _, Vt = np.linalg.svd(M)
    d = np.sign(np.linalg.det(U @ Vt))
    d = np.where(d == 0, 1.0, d)
    U = U.copy()
    U[..., :, 2] *= d[..., None]
    return U @ Vt


def _random_quat(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    q = rng.normal(size=tuple(shape) + (4,))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _batch_take(shape: tuple[int, ...], idx: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """Flat indices and new batch shape for indexing the batch dimensions ``shape`` with ``idx``."""
    if shape == ():
        raise TypeError("cannot index a single (unbatched) transform")
    sel = np.arange(int(np.prod(shape))).reshape(shape)[idx]
    sel = np.asarray(sel)
    return sel, sel.shape


class SO3:
    """Batched rotations. ``matrix`` has shape (*B, 3, 3); ``B == ()`` is a single rotation."""

    __slots__ = ("matrix",)

    def __init__(self, matrix: Any) -> None:
        self.matrix = _as_matrices(matrix, 3, 3, "matrix")

    # -- constructors ---------------------------------------------------------------------------------------
    @classmethod
    def identity(cls, shape: int | Sequence[int] = ()) -> SO3:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return cls(np.broadcast_to(np.eye(3), shape + (3, 3)).copy())

    @classmethod
    def exp(cls, w: Any) -> SO3:
        return cls(so3_exp(w))

    @classmethod
    def from_quat(cls, q_xyzw: Any) -> SO3:
        return cls(quat_to_matrix(q_xyzw))

    @classmethod
    def random(cls, rng: np.random.Generator, shape: int | Sequence[int] = ()) -> SO3:
        """Uniformly distributed (Haar) random rotations."""
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return cls(quat_to_matrix(_random_quat(rng, shape)))

    @classmethod
    def stack(cls, rotations: Sequence[SO3], axis: int = 0) -> SO3:
        if len(rotations) == 0:
            raise InputError("rotations: expected a non-empty sequence of SO3")
        return cls(np.stack([r.matrix for r in rotations], axis=axis if axis >= 0 else axis - 2))

    # -- maps -----------------------------------------------------------------------------------------------
    def log(self) -> np.ndarray:
        return so3_log(self.matrix)

    def as_quat(self) -> np.ndarray:
        return matrix_to_quat(self.matrix)

    def inverse(self) -> SO3:
        return SO3(np.swapaxes(self.matrix, -1, -2).copy())

    def __matmul__(self, other: SO3) -> SO3:
        if not isinstance(other, SO3):
            return NotImplemented
        return SO3(self.matrix @ other.matrix)

    def act(self, p: Any) -> np.ndarray:
        """Rotate points ``p`` (..., 3); the batch shape broadcasts against ``p.shape[:-1]``."""
        p = _as_vectors(p, 3, "p")
        if self.matrix.ndim == 2:
            return p @ self.matrix.T
        return (self.matrix @ p[..., None])[..., 0]

    def adjoint(self) -> np.ndarray:
        """Adjoint of SO(3) acting on rotation vectors: the rotation matrix itself."""
        return self.matrix.copy()

    # -- batch ----------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.matrix.shape[:-2]

    def __len__(self) -> int:
        if self.shape == ():
            raise TypeError("len() of a single (unbatched) SO3")
        return self.shape[0]

    def __getitem__(self, idx: Any) -> SO3:
        sel, shape = _batch_take(self.shape, idx)
        return SO3(self.matrix.reshape(-1, 3, 3)[sel.reshape(-1)].reshape(shape + (3, 3)))

    def __iter__(self) -> Iterator[SO3]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        if self.shape == ():
            return f"SO3(rotvec={np.array2string(self.log(), precision=4)})"
        return f"SO3(shape={self.shape})"
