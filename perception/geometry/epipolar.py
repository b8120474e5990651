"""Two-view epipolar geometry on normalised (undistorted, ``K^-1``) image coordinates."""

from __future__ import annotations

import numpy as np

from .so3 import hat

__all__ = ["essential_from_pose", "sampson_distance"]


def essential_from_pose(R_b_a: np.ndarray, t_b_a: np.ndarray) -> np.ndarray:
    """Essential matrix ``E = [t]x R`` (translation normalised) with ``x_b^T E x_a = 0`` for points
    ``p_b = R_b_a p_a + t_b_a``."""
    t = np.asarray(t_b_a, dtype=np.float64)
    return hat(t / max(float(np.linalg.norm(t)), 1e-12)) @ np.asarray(R_b_a, dtype=np.float64)


def sampson_distance(E: np.ndarray, x_a: np.ndarray, x_b: np.ndarray) -> np.ndarray:
    """Signed first-order (Sampson) distance (N,) of correspondences ``x_a -> x_b`` (N, 2) to ``x_b^T E x_a = 0``,
    in the units of ``x`` (multiply by the focal length for pixels)."""
    h_a = np.c_[x_a, np.ones(len(x_a))]
    h_b = np.c_[x_b, np.ones(len(x_b))]
    Ex = h_a @ E.T
    Etx = h_b @ E
    num = np.sum(h_b * Ex, axis=1)
    den = Ex[:, 0] ** 2 + Ex[:, 1] ** 2 + Etx[:, 0] ** 2 + Etx[:, 1] ** 2
    return num / np.sqrt(np.maximum(den, 1e-18))
