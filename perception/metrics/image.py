"""Image-quality metrics: PSNR (by hand) and SSIM (scikit-image, with the settings of published numbers).

SSIM uses an 11x11 Gaussian window with sigma 1.5, population covariance and K1 = 0.01, K2 = 0.03
(C1 = (0.01 L)^2, C2 = (0.03 L)^2), averaged over the region the window fits and over channels: the
Wang et al. 2004 definition used by WildGaussians / mip-NeRF style evaluations (research/sparsegs.md 4.4).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

SSIM_SIGMA = 1.5
SSIM_WIN = 11  # = 2 * int(3.5 * 1.5 + 0.5) + 1, the support of skimage's Gaussian at truncate 3.5


def _warn_range(x: np.ndarray, y: np.ndarray, data_range: float) -> None:
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    if lo < -1e-3 * data_range or hi > (1 + 1e-3) * data_range:
        logger.warning(
            "image values span [%.4g, %.4g], outside [0, data_range=%g]: is data_range right?",
            lo,
            hi,
            data_range,
        )


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"a/b: image shapes differ ({x.shape} vs {y.shape})")
    if x.size == 0:
        raise ValueError("a/b: empty images")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("a/b: images must be finite (no NaN/inf)")
    return x, y


def psnr(a: Any, b: Any, data_range: float = 1.0) -> float:
    """``10 log10(data_range^2 / MSE)`` in dB over all pixels and channels; +inf for identical images."""
    if not data_range > 0:
        raise ValueError(f"data_range: expected a positive number, got {data_range}")
    x, y = _pair(a, b)
    _warn_range(x, y, data_range)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def ssim(a: Any, b: Any, data_range: float = 1.0, channel_axis: int | None = -1) -> float:
    """Mean SSIM (Gaussian 11x11, sigma 1.5).

    2-D images are treated as single-channel (``channel_axis`` is then ignored).

    Images must be at least 11 pixels in each spatial dimension.
    """
    from skimage.metrics import structural_similarity

    if not data_range > 0:
        raise ValueError(f"data_range: expected a positive number, got {data_range}")
    x, y = _pair(a, b)
    _warn_range(x, y, data_range)
    if x.ndim == 2:
        channel_axis = None
    elif x.ndim != 3 or channel_axis is None:
        raise ValueError(
            f"a/b: expected (H, W) or (H, W, C)-like images with a channel_axis, got shape {x.shape}"
        )
    spatial = [s for i, s in enumerate(x.shape) if channel_axis is None or i != channel_axis % x.ndim]
    if min(spatial) < SSIM_WIN:
        raise ValueError(
            f"a/b: SSIM needs images of at least {SSIM_WIN}x{SSIM_WIN} pixels, got shape {x.shape}"
        )
    return float(
        structural_similarity(
            x,
            y,
            data_range=data_range,
            channel_axis=channel_axis,
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
            K1=0.01,
            K2=0.03,
        )
    )
