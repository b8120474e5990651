"""Camera rendering of a :class:`perception.sim.world.World`: RGB, depth, instance and semantic ids.

Rays leave the camera centre through the pixel centres (OpenCV convention: pixel ``(u, v)`` has its centre at
integer coordinates) along ``camera.unproject_bearing``, so any model of :mod:`perception.camera` --
pinhole, OpenCV (Brown-Conrady), fisheye -- is rendered with its exact distortion. Depth (z in the camera
frame, metres), ids and ``valid`` come from the ray through each pixel centre, intersected in float64.

Colour: each pixel averages ``supersample`` x ``supersample`` sub-rays. Each sub-ray samples its texture with
mip-mapping: bilinear within a level (wrapping, so textures tile), the level chosen from the analytic
footprint of the sub-ray on the surface (the derivative of the texture coordinate with respect to the
sub-pixel grid, through the triangle's exact world-to-texture map), and the two nearest levels blended around
each transition; distant and grazing surfaces therefore do not alias. Textures are sampled from an atlas of
all mip levels (16-bit linear RGB) with ``cv2.remap``; atlas and per-camera rays are cached (the first render
of a world / camera costs about a second more). Shading is Lambertian under a directional
light plus ambient (optionally hard shadows and a headlight), with an optional white Blinn-Phong highlight of
either light (view-dependent appearance: glossy surfaces), computed in linear RGB (textures are decoded
from sRGB); exposure and white balance scale the linear image, which is then clipped, sRGB-encoded and
quantised to 8 bits, with optional Gaussian sensor noise of ``noise_std`` digital numbers added before the
quantisation.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from perception.camera.models import CameraModel
from perception.errors import InputError
from perception.geometry import SE3
from perception.sim.world import World

logger = logging.getLogger(__name__)

__all__ = ["Frame", "Light", "linear_to_srgb", "render_camera", "srgb_to_linear"]


# ---------------------------------------------------------------------- colour
def srgb_to_linear(x: Any) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear intensity (IEC 61966-2-1)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: Any) -> np.ndarray:
    """Linear intensity in [0, 1] -> sRGB-encoded values in [0, 1]."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


@functools.lru_cache(maxsize=1)
def _srgb_lut() -> np.ndarray:
    return srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)


# ---------------------------------------------------------------------- public types
@dataclass(frozen=True)
class Light:
    """Lighting: a directional light (``direction`` points from the scene *towards* the light, world frame)
    with Lambertian ``diffuse`` strength, an ``ambient`` term, an optional ``headlight`` (a light at the
    camera, ``headlight * |cos|`` of the viewing angle; view dependent) and optional hard ``shadows`` of the
    directional light (one extra ray per sample). Radiance = albedo * (ambient + diffuse * max(0, n . l) +
    headlight ...) + highlights.

    Highlights (white, Blinn-Phong, every surface equally glossy; 0 = the Lambertian default):
    ``specular * max(0, n . h)^shininess`` with ``h`` halfway between the directional light and the viewer (zero
    where that light does not reach: back-facing or shadowed), and ``headlight_specular * |n . v|^shininess``
    for the headlight (``h = v``): a highlight that follows the camera, so a surface point's appearance depends
    on the direction it is seen from."""

    direction: tuple[float, float, float] = (0.35, -0.25, 1.0)
    ambient: float = 0.45
    diffuse: float = 0.55
    headlight: float = 0.0
    shadows: bool = False
    specular: float = 0.0
    headlight_specular: float = 0.0
    shininess: float = 30.0

    def __post_init__(self) -> None:
        d = np.asarray(self.direction, dtype=np.float64)
        if d.shape != (3,) or not np.isfinite(d).all() or np.linalg.norm(d) == 0:
            raise InputError(f"Light: direction must be a non-zero 3-vector, got {self.direction!r}")
        for name in ("ambient", "diffuse", "headlight", "specular", "headlight_specular"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise InputError(f"Light: {name} must be a finite number >= 0, got {v!r}")
        if not (np.isfinite(self.shininess) and self.shininess > 0):
            raise InputError(f"Light: shininess must be a finite number > 0, got {self.shininess!r}")

    @property
    def unit_direction(self) -> np.ndarray:
        d = np.asarray(self.direction, dtype=np.float64)
        return d / np.linalg.norm(d)


@dataclass
class Frame:
    """A rendered image with its ground truth (all (H, W) in pixel order)."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32, z in the camera frame (metres), 0 where no hit
    instance: np.ndarray  # (H, W) uint16, 0 = background
    semantic: np.ndarray  # (H, W) uint16
    valid: np.ndarray  # (H, W) bool: the ray through the pixel centre hit geometry


# ---------------------------------------------------------------------- camera rays (cached per camera)
@functools.lru_cache(maxsize=8)
def _center_bearings(camera: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """Unit bearings (H*W, 3) through the pixel centres and their validity."""
    u, v = np.meshgrid(np.arange(camera.width, dtype=np.float64), np.arange(camera.height, dtype=np.float64))
    b, ok = camera.unproject_bearing(np.stack([u, v], axis=-1).reshape(-1, 2), return_valid=True)
    b = np.where(ok[:, None], b, 0.0)
    b.setflags(write=False)
    return b, ok


@functools.lru_cache(maxsize=4)
def _subpixel_bearings(camera: CameraModel, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bearings (H*s, W*s, 3) of the sub-pixel grid, their derivatives per sub-pixel step along rows (d/dv)
    and columns (d/du), and validity (derivatives are 0 where a neighbour is invalid)."""
    if s == 1:
        b, ok = _center_bearings(camera)
        b = b.reshape(camera.height, camera.width, 3)
        ok = ok.reshape(camera.height, camera.width)
    else:
        off = (np.arange(s) + 0.5) / s - 0.5
        us = (np.arange(camera.width)[:, None] + off[None, :]).reshape(-1)
        vs = (np.arange(camera.height)[:, None] + off[None, :]).reshape(-1)
        u, v = np.meshgrid(us, vs)
        b, ok = camera.unproject_bearing(np.stack([u, v], axis=-1), return_valid=True)
        b = np.where(ok[..., None], b, 0.0)
    with np.errstate(invalid="ignore"):
        dv = np.gradient(b, axis=0) if b.shape[0] > 1 else np.zeros_like(b)
        du = np.gradient(b, axis=1) if b.shape[1] > 1 else np.zeros_like(b)
    okn = ok.copy()
    okn[1:] &= ok[:-1]
    okn[:-1] &= ok[1:]
    okn[:, 1:] &= ok[:, :-1]
    okn[:, :-1] &= ok[:, 1:]
    du = np.where(okn[..., None], du, 0.0)
    dv = np.where(okn[..., None], dv, 0.0)
    out = tuple(np.ascontiguousarray(a.reshape(-1, 3), dtype=np.float32) for a in (b, du, dv))
    ok = ok.reshape(-1)
    for a in (*out, ok):
        a.setflags(write=False)
    return out[0], out[1], out[2], ok


# ---------------------------------------------------------------------- texture atlas (cached per world)
_PAGE = 16384  # atlas page side (cv2.remap needs images and maps smaller than SHRT_MAX)
_REMAP_COLS = 1024
_U16 = 65535.0


@dataclass
class _Atlas:
    """All mip levels of all textures, packed into pages of linear RGB (uint16, 1 = 65535).

    Every level is stored with a one-texel wrap-around border (its first column repeated on the right, its
    first row below), so bilinear lookups at wrapped coordinates in [0, w) x [0, h) read the right neighbours.
    """

    pages: list[np.ndarray]  # (Hp, Wp, 3) uint16
    lev_page: np.ndarray  # (K, L) page of level l of texture k (levels past the last repeat the 1x1 level)
    lev_x0: np.ndarray  # (K, L) float64 column of the level's top-left texel in its page
    lev_y0: np.ndarray  # (K, L) float64
    lev_w: np.ndarray  # (K, L) float64 level width (texels)
    lev_h: np.ndarray  # (K, L) float64
    levels: np.ndarray  # (K,) number of levels per texture
    tri_tex: np.ndarray  # (T,) texture index per triangle
    tri_uv: np.ndarray  # (T, 3, 2) float32 corner uvs
    tri_jac: np.ndarray  # (T, 2, 3) float32 d(texel coords at level 0) / d(world point) in the triangle plane
    tri_normal: np.ndarray  # (T, 3) float32
    table: np.ndarray  # (K * L, 5) float32 rows (w, h, x0, y0, page) of level l of texture k at k * L + l
    table_stride: int  # L


def _pyramid(tex_lin: np.ndarray) -> list[np.ndarray]:
    """Mip levels (linear float32, box-filtered halvings down to 1 x 1)."""
    levels = [np.ascontiguousarray(tex_lin, dtype=np.float32)]
    while levels[-1].shape[0] > 1 or levels[-1].shape[1] > 1:
        h, w = levels[-1].shape[:2]
        nxt = cv2.resize(levels[-1], (-(-w // 2), -(-h // 2)), interpolation=cv2.INTER_AREA)
        levels.append(np.ascontiguousarray(nxt.reshape(nxt.shape[0], nxt.shape[1], 3)))
    return levels


def _pack(pyramids: list[list[np.ndarray]]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Shelf-pack each texture's pyramid block (level 0 on the left, the others stacked on its right) into
    pages; returns (pages, page per level, x0 per level, y0 per level)."""
    K = len(pyramids)
    L = max(len(p) for p in pyramids)
    blocks = []  # (block height, block width, [(dx, dy) per level])
    for pyr in pyramids:
        h0, w0 = pyr[0].shape[:2]
        offs = [(0, 0)]
        y = 0
        for lev in pyr[1:]:
            offs.append((w0 + 1, y))
            y += lev.shape[0] + 1
        bw = w0 + 1 + (pyr[1].shape[1] + 1 if len(pyr) > 1 else 0)
        bh = max(h0 + 1, y)
        if bw > _PAGE or bh > _PAGE:
            raise InputError(
                f"render: a {w0}x{h0} texture is too large for the texture atlas; keep textures below "
                f"{(_PAGE - 2) * 2 // 3} pixels wide and {_PAGE - 1} high"
            )
        blocks.append((bh, bw, offs))
    order = sorted(range(K), key=lambda k: -blocks[k][0])
    place: dict[int, tuple[int, int, int]] = {}
    page_dims: list[list[int]] = []  # [used height, max width] per page
    page, x, y, shelf_h = 0, 0, 0, 0
    page_dims.append([0, 0])
    for k in order:
        bh, bw, _ = blocks[k]
        if x + bw > _PAGE:  # next shelf
            x, y, shelf_h = 0, y + shelf_h, 0
        if y + bh > _PAGE:  # next page
            page, x, y, shelf_h = page + 1, 0, 0, 0
            page_dims.append([0, 0])
        place[k] = (page, x, y)
        x += bw
        shelf_h = max(shelf_h, bh)
        page_dims[page][0] = max(page_dims[page][0], y + bh)
        page_dims[page][1] = max(page_dims[page][1], x)
    pages = [np.zeros((h, w, 3), np.uint16) for h, w in page_dims]
    lev_page = np.zeros((K, L), np.int64)
    lev_x0 = np.zeros((K, L))
    lev_y0 = np.zeros((K, L))
    for k, pyr in enumerate(pyramids):
        pg, bx, by = place[k]
        for li in range(L):
            lev = min(li, len(pyr) - 1)
            dx, dy = blocks[k][2][lev]
            lev_page[k, li], lev_x0[k, li], lev_y0[k, li] = pg, bx + dx, by + dy
            if li == lev:
                img = np.rint(np.clip(pyr[lev], 0.0, 1.0) * _U16).astype(np.uint16)
                img = np.concatenate([img, img[:, :1]], axis=1)
                img = np.concatenate([img, img[:1]], axis=0)
                h, w = img.shape[:2]
                pages[pg][by + dy : by + dy + h, bx + dx : bx + dx + w] = img
    return pages, lev_page, lev_x0, lev_y0


def _build_atlas(world: World) -> _Atlas:
    lut = _srgb_lut()
    tex_index: dict[Any, int] = {}
    pyramids: list[list[np.ndarray]] = []
    mesh_tex = []
    for m in world.meshes:
        if m.texture is not None:
            key: Any = id(m.texture)
            img = m.texture
        else:
            key = ("flat", m.color)
            img = np.array(m.color, dtype=np.uint8).reshape(1, 1, 3)
        if key not in tex_index:
            tex_index[key] = len(pyramids)
            pyramids.append(_pyramid(lut[img]))
        mesh_tex.append(tex_index[key])
    pages, lev_page, lev_x0, lev_y0 = _pack(pyramids)
    L = lev_page.shape[1]
    lev_w = np.array([[p[min(li, len(p) - 1)].shape[1] for li in range(L)] for p in pyramids], np.float64)
    lev_h = np.array([[p[min(li, len(p) - 1)].shape[0] for li in range(L)] for p in pyramids], np.float64)
    td = world.triangle_data()
    counts = [m.num_triangles for m in world.meshes]
    tri_tex = np.repeat(np.array(mesh_tex, np.int64), counts)
    # world -> uv map of each triangle: J = dUV @ pinv([e1 e2]), scaled to level-0 texels
    E = np.stack([td["e1"], td["e2"]], axis=2)  # (T, 3, 2)
    uv = td["uv"]
    dUV = np.stack([uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]], axis=2)  # (T, 2, 2)
    G = np.einsum("tki,tkj->tij", E, E)
    det = G[:, 0, 0] * G[:, 1, 1] - G[:, 0, 1] * G[:, 1, 0]
    Ginv = np.stack([np.stack([G[:, 1, 1], -G[:, 0, 1]], -1), np.stack([-G[:, 1, 0], G[:, 0, 0]], -1)], -2)
    Ginv /= np.where(det > 1e-300, det, np.inf)[:, None, None]
    J = dUV @ Ginv @ np.swapaxes(E, 1, 2)  # (T, 2, 3)
    J *= np.stack([lev_w[tri_tex, 0], lev_h[tri_tex, 0]], axis=1)[:, :, None]
    return _Atlas(
        pages=pages,
        lev_page=lev_page,
        lev_x0=lev_x0,
        lev_y0=lev_y0,
        lev_w=lev_w,
        lev_h=lev_h,
        levels=np.array([len(p) for p in pyramids], np.int64),
        tri_tex=tri_tex,
        tri_uv=uv.astype(np.float32),
        tri_jac=J.astype(np.float32),
        tri_normal=td["normal"].astype(np.float32),
        table=np.stack([lev_w, lev_h, lev_x0, lev_y0, lev_page], axis=-1).reshape(-1, 5).astype(np.float32),
        table_stride=L,
    )


def _sample(atlas: _Atlas, tex: np.ndarray, level: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup (M, 3) float32 with wrap-around at integer mip ``level`` (M,) of texture ``tex`` (M,)
    at texture coordinates ``uv`` (M, 2) (float32), by cv2.remap on the atlas pages."""
    m = len(tex)
    out = np.empty((m, 3), np.float32)
    if m == 0:
        return out
    tab = atlas.table[tex * atlas.table_stride + level]  # (M, 5): w, h, x0, y0, page
    rows = -(-m // _REMAP_COLS)
    maps = np.zeros((2, rows * _REMAP_COLS), np.float32)
    for c in range(2):
        x = uv[:, c] - np.floor(uv[:, c])  # wrap to [0, 1)
        x *= tab[:, c]
        x -= 0.5
        x += np.where(x < 0, tab[:, c], np.float32(0))  # pixel centres at (k + 0.5) / size
        x += tab[:, 2 + c]
        maps[c, :m] = x
    mx = maps[0].reshape(rows, _REMAP_COLS)
    my = maps[1].reshape(rows, _REMAP_COLS)
    if len(atlas.pages) == 1:
        r = cv2.remap(atlas.pages[0], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[:] = r.reshape(-1, 3)[:m]
    else:
        page = tab[:, 4].astype(np.int64)
        for pg in np.unique(page):
            r = cv2.remap(atlas.pages[pg], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            sel = np.flatnonzero(page == pg)
            out[sel] = r.reshape(-1, 3)[sel]
    out *= np.float32(1.0 / _U16)
    return out


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _shade_samples(
    world: World,
    atlas: _Atlas,
    light: Light,
    origin: np.ndarray,
    R: np.ndarray,
    bear: np.ndarray,
    dbu: np.ndarray,
    dbv: np.ndarray,
    ok: np.ndarray,
    background: np.ndarray,
    max_depth: float,
) -> np.ndarray:
    """Linear RGB (N, 3) float32 of the sub-pixel rays (camera-frame unit bearings ``bear`` with derivatives
    ``dbu``, ``dbv`` per sub-pixel step). Everything after the cast is computed in the camera frame."""
    n = len(bear)
    out = np.empty((n, 3), np.float32)
    out[:] = background
    Rf = R.astype(np.float32)
    all_ok = bool(ok.all())
    idx = np.arange(n) if all_ok else np.flatnonzero(ok)
    b = bear if all_ok else bear[idx]
    raw = world._cast32(np.broadcast_to(origin, b.shape), b @ Rf.T)
    t = raw["t_hit"]
    hit = np.isfinite(t)
    if np.isfinite(max_depth):
        hit &= t * b[:, 2] <= max_depth
    if not hit.any():
        return out
    tri = raw["primitive_ids"]
    bary = raw["primitive_uvs"]
    if not hit.all():
        sel = np.flatnonzero(hit)
        idx, b, t, tri, bary = idx[sel], b[sel], t[sel], tri[sel], bary[sel]
        du, dv = dbu[idx], dbv[idx]
    else:
        du, dv = (dbu, dbv) if all_ok else (dbu[idx], dbv[idx])
    tri = tri.astype(np.int64)
    # texture coordinates (float32 is ample: 1e-5 of a tile)
    cu = atlas.tri_uv[tri]
    b1, b2 = bary[:, :1], bary[:, 1:]
    uv = cu[:, 0] + (cu[:, 1] - cu[:, 0]) * b1 + (cu[:, 2] - cu[:, 0]) * b2
    # triangle normal and world->texel Jacobian, rotated into the camera frame (n_c = R^T n, J_c = J R)
    nrm = atlas.tri_normal[tri] @ Rf
    ndotb = _rowdot(nrm, b)
    safe = np.where(np.abs(ndotb) > 1e-6, ndotb, np.float32(1e-6))
    J = atlas.tri_jac[tri]
    J0 = J[:, 0] @ Rf
    J1 = J[:, 1] @ Rf
    # footprint of a sub-pixel step on the surface: dp = t (db - (n.db / n.b) b), in texels: J dp
    jb0, jb1 = _rowdot(J0, b), _rowdot(J1, b)
    foot = []
    for db in (du, dv):
        k = _rowdot(nrm, db) / safe
        x = _rowdot(J0, db) - k * jb0
        y = _rowdot(J1, db) - k * jb1
        foot.append((x * x + y * y) * (t * t))
    major = np.maximum(foot[0], foot[1])
    minor = np.minimum(foot[0], foot[1])
    # isotropic filter width: geometric mean of the footprint axes, but at least 1/4 of the major axis
    rho2 = np.maximum(np.sqrt(major * minor), major * np.float32(1.0 / 16.0))
    tex = atlas.tri_tex[tri]
    with np.errstate(divide="ignore", invalid="ignore"):
        lod = np.float32(0.5) * np.log2(rho2)
    lod = np.clip(np.nan_to_num(lod, nan=0.0, posinf=0.0, neginf=0.0), 0.0, atlas.levels[tex] - 1)
    l0 = lod.astype(np.int64)
    # "brilinear" filtering: blend the two nearest levels only in the middle half between them
    w1 = np.clip((lod - l0).astype(np.float32) * 2.0 - 0.5, 0.0, 1.0)
    albedo = _sample(atlas, tex, l0 + (w1 >= 1.0), uv)
    mix = np.flatnonzero((w1 > 0) & (w1 < 1))
    if mix.size:
        a1 = _sample(atlas, tex[mix], l0[mix] + 1, uv[mix])
        f = w1[mix, None]
        albedo[mix] = albedo[mix] * (1 - f) + a1 * f
    # Lambertian shading, the normal turned towards the camera
    nf = nrm * np.where(ndotb > 0, np.float32(-1), np.float32(1))[:, None]
    ldir = light.unit_direction.astype(np.float32) @ Rf  # camera frame
    cos_l = np.maximum(nf @ ldir, 0.0)
    if light.shadows and (light.diffuse > 0 or light.specular > 0):
        lit = np.flatnonzero(cos_l > 0)
        if lit.size:
            p = origin + ((t[lit, None] * b[lit]) @ Rf.T).astype(np.float64)
            eps = 1e-4 + 1e-5 * t[lit].astype(np.float64)  # off the surface, beyond float32 noise
            p += eps[:, None] * (nf[lit] @ Rf.T).astype(np.float64)
            sh = world._cast32(p, np.broadcast_to(light.unit_direction, (lit.size, 3)))
            cos_l[lit[np.isfinite(sh["t_hit"])]] = 0.0
    shade = light.ambient + light.diffuse * cos_l
    if light.headlight > 0:
        shade = shade + light.headlight * np.abs(ndotb)
    albedo *= shade.astype(np.float32)[:, None]
    if light.specular > 0 or light.headlight_specular > 0:
        albedo += _highlight(light, nf, b, ldir, cos_l)[:, None]
    if len(idx) == n:
        out[:] = albedo
    else:
        out[idx] = albedo
    return out


def _highlight(light: Light, nf: np.ndarray, b: np.ndarray, ldir: np.ndarray, cos_l: np.ndarray) -> np.ndarray:
    """White Blinn-Phong highlights (N,) of the directional light and the headlight, camera frame: ``nf`` normals
    turned towards the camera, ``b`` unit bearings (the viewer direction is ``-b``), ``cos_l`` the directional
    light's clamped cosine (0 in shadow)."""
    out = np.zeros(len(b), np.float32)
    if light.specular > 0:
        h = ldir[None, :] - b
        h /= np.maximum(np.linalg.norm(h, axis=1, keepdims=True), np.float32(1e-12))
        out += np.where(cos_l > 0, light.specular * np.maximum(_rowdot(nf, h), 0.0) ** light.shininess, 0.0)
    if light.headlight_specular > 0:
        out += light.headlight_specular * np.maximum(-_rowdot(nf, b), 0.0) ** light.shininess
    return out


# ---------------------------------------------------------------------- the renderer
def _check_args(world, camera, T_world_cam, exposure, white_balance, supersample, noise_std, background):
    if not isinstance(world, World):
        raise InputError(f"render_camera: world must be a World, got {type(world).__name__}")
    if not isinstance(camera, CameraModel):
        raise InputError(f"render_camera: camera must be a perception.camera model, got {type(camera).__name__}")
    if len(world.meshes) > 65535:
        raise InputError(f"render_camera: at most 65535 meshes fit the uint16 instance image, got {len(world.meshes)}")
    if not isinstance(T_world_cam, SE3) or T_world_cam.shape != ():
        raise InputError("render_camera: T_world_cam must be a single SE3 (camera-to-world)")
    if not (np.isfinite(exposure) and exposure >= 0):
        raise InputError(f"render_camera: exposure must be a finite number >= 0, got {exposure!r}")
    wb = np.asarray(white_balance, dtype=np.float64)
    if wb.shape != (3,) or not np.isfinite(wb).all() or (wb < 0).any():
        raise InputError(f"render_camera: white_balance must be 3 gains >= 0 (R, G, B), got {white_balance!r}")
    if int(supersample) != supersample or not 1 <= int(supersample) <= 8:
        raise InputError(f"render_camera: supersample must be an integer in 1..8, got {supersample!r}")
    if not (np.isfinite(noise_std) and noise_std >= 0):
        raise InputError(f"render_camera: noise_std must be a finite number >= 0, got {noise_std!r}")
    bg = np.asarray(background)
    if bg.shape != (3,) or (bg < 0).any() or (bg > 255).any():
        raise InputError(f"render_camera: background must be an RGB triple in 0..255, got {background!r}")
    return wb


def render_camera(
    world: World,
    camera: CameraModel,
    T_world_cam: SE3,
    *,
    light: Light = Light(),
    exposure: float = 1.0,
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0),
    supersample: int = 2,
    noise_std: float = 0.0,
    rng: np.random.Generator | int | None = None,
    background: tuple[int, int, int] = (0, 0, 0),
    max_depth: float = np.inf,
) -> Frame:
    """Render ``world`` seen by ``camera`` at pose ``T_world_cam`` (camera-to-world, OpenCV camera axes).

    Parameters
    ----------
    light
        Lighting (:class:`Light`).
    exposure, white_balance
        Gains on the linear image: pixel = sRGB(clip(exposure * white_balance[c] * radiance)).
    supersample
        Sub-rays per pixel along each axis for the colour (depth and ids use the pixel centre).
    noise_std
        Std of additive Gaussian noise in 8-bit digital numbers (after gamma, before quantisation).
    rng
        Generator or seed for the noise (same seed -> identical frame); None -> fresh entropy.
    background
        sRGB colour (0..255) where rays hit nothing (sky), at exposure 1 (it is scaled like the scene).
    max_depth
        Surfaces farther than this (camera z, metres) count as no hit.
    """
    wb = _check_args(world, camera, T_world_cam, exposure, white_balance, supersample, noise_std, background)
    s = int(supersample)
    H, W = camera.height, camera.width
    R = np.asarray(T_world_cam.R, dtype=np.float64)
    origin = np.asarray(T_world_cam.t, dtype=np.float64)

    # geometry through the pixel centres (float64 intersection)
    bc, okc = _center_bearings(camera)
    depth = np.zeros(H * W, np.float32)
    inst = np.zeros(H * W, np.uint16)
    sem = np.zeros(H * W, np.uint16)
    valid = np.zeros(H * W, bool)
    if world.meshes:
        ci = np.flatnonzero(okc)
        hits = world.raycast(origin, bc[ci] @ R.T)
        z = hits.t * bc[ci, 2]
        good = hits.hit & (z <= max_depth)
        ci, z = ci[good], z[good]
        depth[ci] = z
        inst[ci] = hits.instance_id[good]
        sem[ci] = hits.semantic_id[good]
        valid[ci] = True

    # colour from the sub-pixel grid
    bg_lin = _srgb_lut()[np.asarray(background, dtype=np.uint8)]
    if world.meshes:
        atlas = world.cached("render.atlas", lambda: _build_atlas(world))
        bs, dbu, dbv, oks = _subpixel_bearings(camera, s)
        lin = _shade_samples(world, atlas, light, origin, R, bs, dbu, dbv, oks, bg_lin, max_depth)
    else:
        lin = np.broadcast_to(bg_lin, (H * s * W * s, 3))
    img = lin.reshape(H, s, W, s, 3).mean(axis=(1, 3)) if s > 1 else lin.reshape(H, W, 3)
    img = img * (exposure * wb).astype(np.float32)
    enc = 255.0 * linear_to_srgb(img)
    if noise_std > 0:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        enc = enc + gen.normal(0.0, noise_std, enc.shape)
    rgb = np.clip(np.rint(enc), 0, 255).astype(np.uint8)
    return Frame(
        rgb=rgb,
        depth=depth.reshape(H, W),
        instance=inst.reshape(H, W),
        semantic=sem.reshape(H, W),
        valid=valid.reshape(H, W),
    )
