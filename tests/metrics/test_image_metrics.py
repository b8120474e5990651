"""PSNR / SSIM against hand values, scikit-image and an independent valid-window SSIM."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import convolve2d
from skimage.metrics import peak_signal_noise_ratio

from perception.metrics import psnr, ssim


def test_psnr_hand_values_and_skimage(rng):
    a = np.zeros((4, 4, 3))
    # MSE = 0.1^2 = 0.01 -> 10 log10(1 / 0.01) = 20 dB
    assert psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-12)
    # 8-bit range: MSE = 16^2 = 256 -> 10 log10(65025 / 256) = 10 log10(254.0039) = 24.0484 dB
    assert psnr(a, a + 16, data_range=255) == pytest.approx(10 * np.log10(255**2 / 256), abs=1e-12)
    assert psnr(a, a + 16, data_range=255) == pytest.approx(24.0484, abs=1e-4)
    assert psnr(a, a) == float("inf")
    x = rng.random((20, 24, 3))
    y = np.clip(x + rng.normal(scale=0.05, size=x.shape), 0, 1)
    assert psnr(x, y) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1.0), abs=1e-10)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(x, y[:-1])


def test_range_warning(caplog, rng):
    x = 255 * rng.random((12, 12))
    with caplog.at_level("WARNING"):
        psnr(x, x + 1)  # 8-bit values with the default data_range=1.0
    assert "outside [0, data_range=1]" in caplog.text


def _ssim_reference(x: np.ndarray, y: np.ndarray, L: float = 1.0) -> float:
    """Wang et al. SSIM with an 11x11 Gaussian (sigma 1.5) and 'valid' filtering, averaged over channels."""
    g = np.exp(-0.5 * ((np.arange(11) - 5) / 1.5) ** 2)
    w = np.outer(g, g) / np.outer(g, g).sum()
    f = lambda im: convolve2d(im, w, mode="valid")  # noqa: E731
    C1, C2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    vals = []
    for c in range(x.shape[-1]):
        a, b = x[..., c], y[..., c]
        mu_a, mu_b = f(a), f(b)
        va, vb, cab = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
        s = ((2 * mu_a * mu_b + C1) * (2 * cab + C2)) / ((mu_a**2 + mu_b**2 + C1) * (va + vb + C2))
        vals.append(s.mean())
    return float(np.mean(vals))


def test_ssim_hand_value_constant_images():
    # constant images: variances and covariance vanish, so
    # SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1) * C2 / C2;
    # with m1 = 0.5, m2 = 0.25, C1 = 1e-4: (0.25 + 1e-4) / (0.25 + 0.0625 + 1e-4) = 0.2501 / 0.3126 = 0.800064
    a = np.full((16, 16, 3), 0.5)
    b = np.full((16, 16, 3), 0.25)
    assert ssim(a, b) == pytest.approx(0.2501 / 0.3126, abs=1e-9)
    assert ssim(a[..., 0], b[..., 0]) == pytest.approx(0.2501 / 0.3126, abs=1e-9)  # grayscale


def test_ssim_matches_independent_gaussian_implementation(rng):
    x = rng.random((32, 40, 3))
    y = np.clip(0.8 * x + 0.1 + rng.normal(scale=0.05, size=x.shape), 0, 1)
    assert ssim(x, y) == pytest.approx(_ssim_reference(x, y), abs=1e-9)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    # channel-first input
    assert ssim(np.moveaxis(x, -1, 0), np.moveaxis(y, -1, 0), channel_axis=0) == pytest.approx(
        ssim(x, y), abs=1e-12
    )
    # 8-bit data range
    assert ssim(255 * x, 255 * y, data_range=255) == pytest.approx(ssim(x, y), abs=1e-9)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(x[:8], y[:8])
