"""Descriptor quantisation for transmission: fp16, or uint8 with one scale per set."""

from __future__ import annotations

from typing import Literal

import numpy as np

from perception.errors import InputError


def quantize(desc: np.ndarray, kind: Literal["fp16", "uint8"] = "uint8") -> tuple[np.ndarray, float]:
    d = np.asarray(desc, dtype=np.float32)
    if kind == "fp16":
        return d.astype(np.float16), 1.0
    if kind == "uint8":
        scale = float(np.abs(d).max()) if d.size else 1.0
        scale = scale if scale > 0 else 1.0
        return (np.round(d / scale * 127.0) + 128).clip(0, 255).astype(np.uint8), scale
    raise InputError(f"quantize: kind must be 'fp16' or 'uint8', got {kind!r}")


def dequantize(q: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Back to float32 with unit rows."""
    q = np.asarray(q)
    d = q.astype(np.float32) if q.dtype == np.float16 else (q.astype(np.float32) - 128.0) / 127.0 * scale
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    return d / np.where(n > 0, n, 1.0)
