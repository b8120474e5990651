"""Differentiable torch versions of the SO(3)/SE(3) maps (same conventions as the numpy module).

Every function is batched over leading dimensions, keeps the input dtype/device, and has finite gradients
everywhere including exactly zero rotation (Taylor branches are selected with ``torch.where`` on "safe"
inputs, so the branch that is not taken never produces NaN). ``so3_log`` is not differentiable at angle == pi.

- ``so3_exp(w (...,3)) -> (...,3,3)``, ``so3_log(R (...,3,3)) -> (...,3)``
- ``quat_to_matrix(q_xyzw (...,4)) -> (...,3,3)``, ``matrix_to_quat(R) -> (...,4)`` (xyzw, qw >= 0)
- ``se3_exp(xi (...,6)) -> T (...,4,4)``, ``se3_log(T (...,4,4)) -> (...,6)`` or ``se3_log(R, t)``;
  tangent order (omega, v)
- ``transform_points(R (*B,3,3), t (*B,3), p (...,3)) -> R p + t`` with broadcasting of batch dimensions.
"""

from __future__ import annotations

import torch

from perception.errors import InputError

__all__ = [
    "hat",
    "matrix_to_quat",
    "quat_to_matrix",
    "se3_exp",
    "se3_log",
    "so3_exp",
    "so3_log",
    "transform_points",
    "vee",
]

_SMALL2 = 1e-4  # theta^2 below which Taylor series are used (theta < 1e-2)


def _check(x: torch.Tensor, tail: tuple[int, ...], name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim < len(tail) or tuple(x.shape[-len(tail) :]) != tail:
        shape = ", ".join(str(d) for d in tail)
        raise InputError(f"{name}: expected a tensor of shape (..., {shape}), got {tuple(x.shape)}")


def hat(w: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> skew-symmetric (..., 3, 3)."""
    _check(w, (3,), "w")
    x, y, z = w.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(w.shape[:-1] + (3, 3))


def vee(W: torch.Tensor) -> torch.Tensor:
    """Antisymmetric part of (..., 3, 3) -> (..., 3)."""
    _check(W, (3, 3), "W")
    return 0.5 * torch.stack(
        [W[..., 2, 1] - W[..., 1, 2], W[..., 0, 2] - W[..., 2, 0], W[..., 1, 0] - W[..., 0, 1]], dim=-1
    )


def _coeffs(theta2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``sin t / t``, ``(1 - cos t) / t^2``, ``(t - sin t) / t^3`` as smooth functions of ``theta2 = t^2``."""
    small = theta2 < _SMALL2
    t2 = torch.where(small, torch.ones_like(theta2), theta2)
    t = torch.sqrt(t2)
    s = torch.sin(t)
    a = torch.where(small, 1.0 - theta2 / 6.0 + theta2**2 / 120.0, s / t)
    b = torch.where(small, 0.5 - theta2 / 24.0 + theta2**2 / 720.0, 2.0 * torch.sin(0.5 * t) ** 2 / t2)
    c = torch.where(small, 1.0 / 6.0 - theta2 / 120.0 + theta2**2 / 5040.0, (t - s) / (t2 * t))
    return a, b, c


def _eye(like: torch.Tensor) -> torch.Tensor:
    return torch.eye(3, dtype=like.dtype, device=like.device)


def so3_exp(w: torch.Tensor) -> torch.Tensor:
    """Rotation vectors (..., 3) -> rotation matrices (..., 3, 3)."""
    _check(w, (3,), "w")
    a, b, _ = _coeffs((w * w).sum(-1))
    W = hat(w)
    return _eye(w) + a[..., None, None] * W + b[..., None, None] * (W @ W)


def quat_to_matrix(q_xyzw: torch.Tensor) -> torch.Tensor:
    """Quaternions (qx, qy, qz, qw) (..., 4), normalised internally -> rotation matrices (..., 3, 3)."""
    _check(q_xyzw, (4,), "q_xyzw")
    q = q_xyzw / torch.linalg.norm(q_xyzw, dim=-1, keepdim=True)
    x, y, z, w = q.unbind(-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )  # fmt: skip
    return R.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> quaternions (qx, qy, qz, qw) (..., 4), qw >= 0 (Shepperd's method)."""
    _check(R, (3, 3), "R")
    r00, r11, r22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    tr = r00 + r11 + r22
    d21, s21 = R[..., 2, 1] - R[..., 1, 2], R[..., 2, 1] + R[..., 1, 2]
    d02, s02 = R[..., 0, 2] - R[..., 2, 0], R[..., 0, 2] + R[..., 2, 0]
    d10, s10 = R[..., 1, 0] - R[..., 0, 1], R[..., 1, 0] + R[..., 0, 1]
    diag = torch.stack([tr, r00, r11, r22], dim=-1)
    choice = torch.argmax(diag, dim=-1)
    # Candidate k is (4 q_k) * q where q_k^2 = (1 + diag-combination) / 4; dividing by 2 sqrt(...) normalises.
    dens = torch.stack([1.0 + tr, 1.0 + r00 - r11 - r22, 1.0 - r00 + r11 - r22, 1.0 - r00 - r11 + r22], dim=-1)
    cand = torch.stack(
        [
            torch.stack([d21, d02, d10, dens[..., 0]], dim=-1),
            torch.stack([dens[..., 1], s10, s02, d21], dim=-1),
            torch.stack([s10, dens[..., 2], s21, d02], dim=-1),
            torch.stack([s02, s21, dens[..., 3], d10], dim=-1),
        ],
        dim=-2,
    )  # (..., 4, 4)
    # Clamp keeps the branches that are not selected finite (their gradient is then multiplied by 0, not NaN).
    scale = 0.5 / torch.sqrt(torch.clamp(dens, min=1e-12))
    cand = cand * scale[..., None]
    idx = choice[..., None, None].expand(choice.shape + (1, 4))
    q = torch.gather(cand, -2, idx).squeeze(-2)
    q = q / torch.linalg.norm(q, dim=-1, keepdim=True)
    sign = torch.where(q[..., 3:4] < 0, -torch.ones_like(q[..., 3:4]), torch.ones_like(q[..., 3:4]))
    return q * sign


def so3_log(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> rotation vectors (..., 3), angle in [0, pi] (via the quaternion)."""
    q = matrix_to_quat(R)
    v, w = q[..., :3], q[..., 3]
    n2 = (v * v).sum(-1)
    small = n2 < 1e-8 * w * w  # n / w < 1e-4
    w_safe = torch.where(small, w, torch.ones_like(w))
    x2 = n2 / (w_safe * w_safe)
    series = (2.0 / w_safe) * (1.0 - x2 / 3.0 + x2 * x2 / 5.0)
    n_safe = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    factor = torch.where(small, series, 2.0 * torch.atan2(n_safe, w) / n_safe)
    return factor[..., None] * v


def _left_jacobian_inv(w: torch.Tensor) -> torch.Tensor:
    theta2 = (w * w).sum(-1)
    small = theta2 < _SMALL2
    t2 = torch.where(small, torch.ones_like(theta2), theta2)
    half = 0.5 * torch.sqrt(t2)
    c = torch.where(
        small,
        1.0 / 12.0 + theta2 / 720.0 + theta2**2 / 30240.0,
        (1.0 - half * torch.cos(half) / torch.sin(half)) / t2,
    )
    W = hat(w)
    return _eye(w) - 0.5 * W + c[..., None, None] * (W @ W)


def se3_exp(xi: torch.Tensor) -> torch.Tensor:
    """Twists (..., 6) ordered (omega, v) -> homogeneous matrices (..., 4, 4)."""
    _check(xi, (6,), "xi")
    w, v = xi[..., :3], xi[..., 3:]
    a, b, c = _coeffs((w * w).sum(-1))
    W = hat(w)
    W2 = W @ W
    eye = _eye(xi)
    R = eye + a[..., None, None] * W + b[..., None, None] * W2
    Vm = eye + b[..., None, None] * W + c[..., None, None] * W2
    t = (Vm @ v[..., None])[..., 0]
    top = torch.cat([R, t[..., None]], dim=-1)
    bottom = torch.zeros(xi.shape[:-1] + (1, 4), dtype=xi.dtype, device=xi.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def se3_log(T: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
    """Logarithm (..., 6) ordered (omega, v) of ``T`` (..., 4, 4), or of ``(R (..., 3, 3), t (..., 3))``."""
    if t is None:
        _check(T, (4, 4), "T")
        R, t = T[..., :3, :3], T[..., :3, 3]
    else:
        _check(T, (3, 3), "R")
        _check(t, (3,), "t")
        R = T
    w = so3_log(R)
    v = (_left_jacobian_inv(w) @ t[..., None])[..., 0]
    return torch.cat([w, v], dim=-1)


def transform_points(R: torch.Tensor, t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``R p + t`` for points p (..., 3); the batch shape of (R, t) broadcasts against ``p.shape[:-1]``."""
    _check(R, (3, 3), "R")
    _check(t, (3,), "t")
    _check(p, (3,), "p")
    if R.ndim == 2:
        return p @ R.transpose(-1, -2) + t
    return (R @ p[..., None])[..., 0] + t
