"""Photographic textures for the simulator, from the images bundled in the scikit-image wheel (no downloads).

Feature detectors and descriptors must behave on simulated frames as on real ones, so surfaces carry crops of
real photographs: :func:`random_texture` (a random crop / rotation / flip / scale of a photograph, made
seamless for tiling), :func:`texture_bank` (several distinct ones), and deliberately hard surfaces:
:func:`repetitive_texture` (a small crop tiled periodically, e.g. bricks -- ambiguous matches) and
:func:`weak_texture` (low contrast, blurred -- few features). All return (H, W, 3) uint8 RGB and depend only
on the generator's state.

Only the files that ship inside the wheel (``skimage/data/*.png|jpg``) are read, directly from the package
folder, so nothing ever triggers scikit-image's pooch downloader.
"""

from __future__ import annotations

import functools
import io
import logging
from importlib import resources

import cv2
import numpy as np

from perception.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGES",
    "RICH_IMAGES",
    "WEAK_IMAGES",
    "available_images",
    "load_image",
    "make_seamless",
    "mosaic_texture",
    "random_texture",
    "repetitive_texture",
    "texture_bank",
    "weak_texture",
]

# name -> file inside skimage/data (all bundled in the wheel)
IMAGES: dict[str, str] = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "immunohistochemistry": "ihc.png",
    "motorcycle": "motorcycle_left.png",
    "retina": "retina.jpg",
    "camera": "camera.png",
    "brick": "brick.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "coins": "coins.png",
    "page": "page.png",
    "text": "text.png",
    "cell": "cell.png",
    "moon": "moon.png",
    "clock_motion": "clock_motion.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
}
#: well-textured photographs used by :func:`random_texture`
RICH_IMAGES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "motorcycle",
    "camera",
    "grass",
    "gravel",
    "coins",
    "page",
    "text",
)
#: smooth / low-contrast photographs used by :func:`weak_texture`
WEAK_IMAGES = ("moon", "clock_motion", "cell")


@functools.lru_cache(maxsize=1)
def available_images() -> tuple[str, ...]:
    """Names of :data:`IMAGES` whose files are present in the installed scikit-image."""
    try:
        folder = resources.files("skimage.data")
    except ModuleNotFoundError:
        return ()
    return tuple(n for n, f in IMAGES.items() if folder.joinpath(f).is_file())


@functools.lru_cache(maxsize=32)
def _load(name: str) -> np.ndarray:
    if name not in IMAGES:
        raise InputError(f"load_image: unknown image {name!r}; expected one of {sorted(IMAGES)}")
    if name not in available_images():
        raise FileNotFoundError(
            f"load_image: skimage/data/{IMAGES[name]} is not in the installed scikit-image"
        )
    data = resources.files("skimage.data").joinpath(IMAGES[name]).read_bytes()
    try:  # Pillow (a scikit-image dependency) reads page.png without libpng's iCCP warning on stderr
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            img = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception:  # noqa: BLE001 - fall back to OpenCV's decoder
        dec = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if dec is None:
            raise InputError(f"load_image: skimage/data/{IMAGES[name]} is not a readable image") from None
        img = np.ascontiguousarray(dec[:, :, ::-1])
    img = np.array(img)  # own, writeable copy before freezing
    img.setflags(write=False)
    return img


def load_image(name: str) -> np.ndarray:
    """A bundled photograph as (H, W, 3) uint8 RGB (grayscale replicated); see :data:`IMAGES`."""
    return _load(name).copy()


def _size(size: int | tuple[int, int], fn: str) -> tuple[int, int]:
    s = (size, size) if np.isscalar(size) else tuple(size)
    if len(s) != 2 or not all(int(x) == x and 8 <= int(x) <= 8192 for x in s):
        raise InputError(f"{fn}: size must be an int or (height, width) in 8..8192, got {size!r}")
    return int(s[0]), int(s[1])


def _is_gray(img: np.ndarray) -> bool:
    return bool(np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 1], img[:, :, 2]))


def make_seamless(img: np.ndarray, blend: float = 0.25) -> np.ndarray:
    """Make ``img`` tile without visible seams: along each axis in turn, cross-fade it near its borders with a
    copy rolled by half its size along that axis (the roll is continuous across the wrap, and its own seam
    lies in the middle where the original is kept). ``blend``: width of the fade as a fraction of the size."""
    if not 0 < blend <= 0.5:
        raise InputError(f"make_seamless: blend must lie in (0, 0.5], got {blend}")

    def ramp(n: int) -> np.ndarray:
        d = np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5) / (blend * n)  # distance to the border
        r = np.clip(d, 0.0, 1.0)
        return (r * r * (3 - 2 * r)).astype(np.float32)  # smoothstep

    out = img.astype(np.float32)
    for axis in (1, 0):
        n = out.shape[axis]
        a = ramp(n)[:, None, None] if axis == 0 else ramp(n)[None, :, None]
        out = a * out + (1 - a) * np.roll(out, n // 2, axis=axis)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _tint(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colourise a grayscale image with a random pair of colours (dark -> c0, bright -> c1)."""
    c0 = rng.uniform(0.0, 0.35, 3)
    c1 = rng.uniform(0.55, 1.0, 3)
    g = img[:, :, :1].astype(np.float32) / 255.0
    return np.clip(np.rint(255.0 * (c0 + g * (c1 - c0))), 0, 255).astype(np.uint8)


def _random_crop(img: np.ndarray, rng: np.random.Generator, hw: tuple[int, int], scale: float) -> np.ndarray:
    """Rotate by a random multiple of 90 degrees, maybe flip, scale by ``scale`` (upscaled further if needed
    to cover ``hw``) and crop a random (h, w) window."""
    img = np.rot90(img, int(rng.integers(4)))
    if rng.random() < 0.5:
        img = img[:, ::-1]
    h, w = hw
    s = max(scale, h / img.shape[0], w / img.shape[1])
    nh, nw = max(h, round(img.shape[0] * s)), max(w, round(img.shape[1] * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    img = cv2.resize(np.ascontiguousarray(img), (nw, nh), interpolation=interp)
    y = int(rng.integers(nh - h + 1))
    x = int(rng.integers(nw - w + 1))
    return np.ascontiguousarray(img[y : y + h, x : x + w])


def random_texture(
    rng: np.random.Generator,
    size: int | tuple[int, int] = 512,
    *,
    image: str | None = None,
    scale: tuple[float, float] = (0.6, 1.4),
    seamless: bool = True,
    tint_gray: bool = True,
) -> np.ndarray:
    """A random crop of a photograph (``image``, or one of :data:`RICH_IMAGES` drawn by ``rng``), randomly
    rotated by multiples of 90 degrees, flipped and scaled by a factor in ``scale``; grayscale photographs get
    a random colour tint (``tint_gray``); ``seamless`` cross-fades the borders so the texture tiles."""
    hw = _size(size, "random_texture")
    names = [n for n in RICH_IMAGES if n in available_images()]
    if not names:
        raise FileNotFoundError(
            "random_texture: no bundled scikit-image photographs found (is scikit-image installed?)"
        )
    name = image if image is not None else names[int(rng.integers(len(names)))]
    src = _load(name)
    tex = _random_crop(src, rng, hw, float(rng.uniform(*scale)))
    if tint_gray and _is_gray(tex):
        tex = _tint(tex, rng)
    return make_seamless(tex) if seamless else tex


def texture_bank(rng: np.random.Generator, n: int = 8, size: int | tuple[int, int] = 512) -> list[np.ndarray]:
    """``n`` random textures, cycling through the photographs in a random order so that consecutive textures
    come from different images."""
    if int(n) < 1:
        raise InputError(f"texture_bank: n must be >= 1, got {n}")
    names = [m for m in RICH_IMAGES if m in available_images()]
    order = list(rng.permutation(len(names)))
    return [random_texture(rng, size, image=names[order[k % len(order)]]) for k in range(int(n))]


def mosaic_texture(
    rng: np.random.Generator,
    grid: tuple[int, int] = (2, 2),
    tile: int | tuple[int, int] = 512,
) -> np.ndarray:
    """A large texture without repetition: a ``grid`` (rows, cols) of distinct :func:`random_texture` tiles
    (``tile`` pixels each), for big surfaces such as walls and floors that should be stretched once
    (``tiles=1``) rather than tiled -- tiling repeats content and makes matches ambiguous."""
    rows, cols = (int(grid[0]), int(grid[1])) if not np.isscalar(grid) else (int(grid), int(grid))
    if rows < 1 or cols < 1 or rows * cols > 256:
        raise InputError(
            f"mosaic_texture: grid must be (rows, cols) >= 1 with at most 256 tiles, got {grid!r}"
        )
    bank = texture_bank(rng, rows * cols, tile)
    return np.ascontiguousarray(
        np.concatenate([np.concatenate(bank[r * cols : (r + 1) * cols], axis=1) for r in range(rows)], axis=0)
    )


def repetitive_texture(
    rng: np.random.Generator,
    size: int | tuple[int, int] = 512,
    *,
    period: int = 64,
    image: str = "brick",
) -> np.ndarray:
    """A ``period`` x ``period`` crop of a photograph (bricks by default) tiled periodically -- a surface
    whose features repeat every ``period`` texels, to make matching ambiguous."""
    h, w = _size(size, "repetitive_texture")
    if not 8 <= int(period) <= min(h, w):
        raise InputError(f"repetitive_texture: period must lie in 8..{min(h, w)}, got {period}")
    p = int(period)
    patch = make_seamless(_random_crop(_load(image), rng, (p, p), float(rng.uniform(0.5, 1.0))))
    if _is_gray(patch):
        patch = _tint(patch, rng)
    reps = (-(-h // p), -(-w // p), 1)
    return np.ascontiguousarray(np.tile(patch, reps)[:h, :w])


def weak_texture(
    rng: np.random.Generator,
    size: int | tuple[int, int] = 512,
    *,
    contrast: float = 0.06,
    blur_sigma: float = 3.0,
    base_color: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """A nearly uniform surface: a blurred crop of a smooth photograph (:data:`WEAK_IMAGES`) whose intensity
    varies around ``base_color`` (random when None) with a standard deviation of ``contrast / 2`` of full
    scale (before the seamless cross-fade, which lowers it a little) -- few and unstable features (white
    walls, plain floors)."""
    hw = _size(size, "weak_texture")
    if not 0 <= contrast <= 0.5:
        raise InputError(f"weak_texture: contrast must lie in [0, 0.5], got {contrast}")
    names = [m for m in WEAK_IMAGES if m in available_images()]
    src = _load(names[int(rng.integers(len(names)))])
    g = _random_crop(src, rng, hw, float(rng.uniform(0.8, 1.5)))[:, :, 0].astype(np.float32)
    if blur_sigma > 0:
        g = cv2.GaussianBlur(g, (0, 0), blur_sigma, borderType=cv2.BORDER_REFLECT)
    g = (g - g.mean()) / max(float(g.std()), 1e-6)
    base = np.asarray(base_color if base_color is not None else rng.uniform(110, 220, 3), dtype=np.float32)
    out = base + g[:, :, None] * (contrast * 255.0 * 0.5)
    return make_seamless(np.clip(np.rint(out), 0, 255).astype(np.uint8))
