"""Helpers shared by the dataset readers: layout checks, image IO with clear errors, atomic image writes."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from perception.errors import InputError
from perception.fileio import atomic_write_bytes


def require_file(path: str | os.PathLike, dataset: str, expected: str = "") -> Path:
    """``path`` if it is a file, else FileNotFoundError naming it and what the layout expects there."""
    path = Path(path)
    if not path.is_file():
        what = f" ({expected})" if expected else ""
        raise FileNotFoundError(f"{dataset}: missing file {path}{what}")
    return path


def require_dir(path: str | os.PathLike, dataset: str, expected: str = "") -> Path:
    path = Path(path)
    if not path.is_dir():
        what = f" ({expected})" if expected else ""
        raise FileNotFoundError(f"{dataset}: missing folder {path}{what}")
    return path


def _imread(path: Path, flags: int, dataset: str) -> np.ndarray:
    require_file(path, dataset)
    data = np.fromfile(path, dtype=np.uint8)
    try:
        img = cv2.imdecode(data, flags) if data.size else None
    except cv2.error:
        img = None
    if img is None:
        raise InputError(f"{dataset}: {path} is not a readable image (empty, truncated or not PNG/JPEG); replace it")
    return img


def read_rgb(path: str | os.PathLike, dataset: str = "image") -> np.ndarray:
    """An 8-bit image as (H, W, 3) uint8 RGB (grayscale is replicated to 3 channels, alpha dropped)."""
    img = _imread(Path(path), cv2.IMREAD_UNCHANGED, dataset)
    if img.dtype != np.uint8:
        raise InputError(f"{dataset}: {path} has {img.dtype} pixels; expected an 8-bit colour image")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1])


def read_png16(path: str | os.PathLike, dataset: str = "depth") -> np.ndarray:
    """A single-channel 16-bit PNG (depth maps) as (H, W) uint16."""
    img = _imread(Path(path), cv2.IMREAD_UNCHANGED, dataset)
    if img.dtype != np.uint16 or img.ndim != 2:
        raise InputError(
            f"{dataset}: {path} is {img.dtype} with shape {img.shape}; expected a single-channel 16-bit PNG"
        )
    return img


def write_rgb(path: str | os.PathLike, rgb: np.ndarray, jpeg_quality: int = 95) -> Path:
    """Write (H, W, 3) uint8 RGB (or (H, W) gray) as PNG or JPEG (by suffix), atomically."""
    path = Path(path)
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3):
        raise InputError(f"write_rgb({path}): expected (H,W[,3]) uint8, got {rgb.dtype} {rgb.shape}")
    bgr = rgb[:, :, ::-1] if rgb.ndim == 3 else rgb
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext in (".jpg", ".jpeg") else []
    try:
        ok, buf = cv2.imencode(ext, np.ascontiguousarray(bgr), params)
    except cv2.error:
        ok = False
    if not ok:
        raise InputError(f"write_rgb({path}): OpenCV cannot encode '{ext}' images; use .png or .jpg")
    return atomic_write_bytes(path, buf.tobytes())


def write_png16(path: str | os.PathLike, img: np.ndarray) -> Path:
    """Write (H, W) uint16 as a 16-bit PNG, atomically."""
    path = Path(path)
    img = np.asarray(img)
    if img.dtype != np.uint16 or img.ndim != 2:
        raise InputError(f"write_png16({path}): expected (H,W) uint16, got {img.dtype} {img.shape}")
    ok, buf = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover - OpenCV always encodes uint16 PNG
        raise InputError(f"write_png16({path}): encoding failed")
    return atomic_write_bytes(path, buf.tobytes())


def read_matrix_txt(path: str | os.PathLike, shape: tuple[int, int], dataset: str) -> np.ndarray:
    """A whitespace-separated matrix file (e.g. a 4x4 pose), checked for size and finiteness."""
    path = require_file(path, dataset)
    try:
        M = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise InputError(f"{dataset}: {path} is not a numeric matrix ({str(e).splitlines()[0]})") from None
    if M.shape != shape:
        raise InputError(f"{dataset}: {path} holds a {M.shape[0]}x{M.shape[1]} matrix; expected {shape[0]}x{shape[1]}")
    if not np.all(np.isfinite(M)):
        raise InputError(f"{dataset}: {path} contains NaN/inf values; the file is corrupt")
    return M
