"""Textured primitives for :class:`perception.sim.world.World`: quads, boxes, ground planes, cylinders.

Textures are tiled at a metric scale: one copy of the texture spans ``tile_size`` metres along its width (and
``tile_size * H / W`` along its height, so texels stay square), or ``tiles`` copies span each face. Every face
has a *front* side from which its texture reads unmirrored, with the image's up direction along the face's
"up" (world +z for vertical faces, +y for horizontal ones, before ``R``); triangle corner order follows the
right-hand rule around the front normal. ``inward=True`` turns the fronts of a box / cylinder to the inside
(room walls seen from within). Ray casting is double-sided, so the front only matters for the texture
orientation and :meth:`Mesh.triangle_normals`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from perception.errors import InputError
from perception.sim.world import Mesh

__all__ = ["box_mesh", "cylinder_mesh", "ground_plane", "quad_mesh", "BOX_FACES"]

BOX_FACES = ("+x", "-x", "+y", "-y", "+z", "-z")


def _vec(a: Any, n: int, name: str) -> np.ndarray:
    v = np.asarray(a, dtype=np.float64).reshape(-1)
    if v.size == 1 and n > 1:
        v = np.repeat(v, n)
    if v.shape != (n,) or not np.isfinite(v).all():
        raise InputError(f"{name} must be {n} finite numbers, got {a!r}")
    return v


def _rotation(R: Any, name: str) -> np.ndarray:
    if R is None:
        return np.eye(3)
    if hasattr(R, "matrix") and hasattr(R, "R"):  # an SO3 object
        R = R.matrix() if callable(R.matrix) else R.R
    M = np.asarray(R, dtype=np.float64)
    if M.shape != (3, 3) or not np.allclose(M @ M.T, np.eye(3), atol=1e-6) or np.linalg.det(M) < 0:
        raise InputError(f"{name}: R must be a 3x3 rotation matrix, got {M.tolist()}")
    return M


def _tile_dims(
    width: float, height: float, texture: np.ndarray | None, tile_size: float, tiles: Any
) -> tuple:
    """Metres covered by one texture copy along u and v."""
    aspect = 1.0 if texture is None else texture.shape[0] / texture.shape[1]  # H / W
    if tiles is None:
        if not (np.isfinite(tile_size) and tile_size > 0):
            raise InputError(f"tile_size must be a positive number of metres, got {tile_size}")
        return tile_size, tile_size * aspect
    t = np.asarray(tiles, dtype=np.float64).reshape(-1)
    if t.size not in (1, 2) or not (np.isfinite(t).all() and (t > 0).all()):
        raise InputError(f"tiles must be one or two positive numbers (copies across the face), got {tiles!r}")
    tw = width / t[0]
    th = height / t[1] if t.size == 2 else tw * aspect
    return tw, th


def _quad_uvs(corners: np.ndarray, tw: float, th: float, offset: np.ndarray) -> np.ndarray:
    """Texture coordinates (4, 2) of the corners TL, TR, BR, BL: u along TL->TR, v along TL->BL
    (orthogonalised)."""
    eu = corners[1] - corners[0]
    eu = eu / np.linalg.norm(eu)
    ev = corners[3] - corners[0]
    ev = ev - eu * (ev @ eu)
    ev = ev / np.linalg.norm(ev)
    rel = corners - corners[0]
    return np.stack([rel @ eu / tw, rel @ ev / th], axis=1) + offset


_QUAD_TRIS = np.array([[0, 2, 1], [0, 3, 2]])  # right-hand normal = front for corners TL, TR, BR, BL


def _check_texture(texture: Any) -> np.ndarray | None:
    if texture is None:
        return None
    return Mesh(np.zeros((3, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3, 2)), texture).texture


def quad_mesh(
    corners: Any,
    texture: Any = None,
    tiles: Any = None,
    *,
    tile_size: float = 1.0,
    uv_offset: Sequence[float] = (0.0, 0.0),
    semantic_id: int = 0,
    color: tuple[int, int, int] = (128, 128, 128),
    name: str = "quad",
    reflectivity: float = 0.5,
) -> Mesh:
    """A planar quad from its corners (4, 3) in the order top-left, top-right, bottom-right, bottom-left as
    seen from its front side (the texture's top-left corner lies at ``corners[0]`` when ``uv_offset`` is
    0)."""
    c = np.asarray(corners, dtype=np.float64)
    if c.shape != (4, 3) or not np.isfinite(c).all():
        raise InputError(f"quad_mesh: corners must be 4 finite 3D points (4, 3), got shape {c.shape}")
    w, h = np.linalg.norm(c[1] - c[0]), np.linalg.norm(c[3] - c[0])
    if w <= 0 or h <= 0 or np.linalg.norm(np.cross(c[1] - c[0], c[3] - c[0])) <= 1e-12 * w * h:
        raise InputError("quad_mesh: corners are degenerate (coincident or collinear)")
    tex = _check_texture(texture)
    tw, th = _tile_dims(w, h, tex, tile_size, tiles)
    uv = _quad_uvs(c, tw, th, _vec(uv_offset, 2, "quad_mesh: uv_offset"))
    return Mesh(c, _QUAD_TRIS.copy(), uv[_QUAD_TRIS], tex, color, semantic_id, name, reflectivity)


def _face_frame(face: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(outward normal, texture up direction, axis index) of a box face in the box frame."""
    axis = "xyz".index(face[1])
    normal = np.zeros(3)
    normal[axis] = 1.0 if face[0] == "+" else -1.0
    up = np.array([0.0, 1.0, 0.0]) if axis == 2 else np.array([0.0, 0.0, 1.0])
    return normal, up, axis


def box_mesh(
    center: Any,
    size: Any,
    R: Any = None,
    texture: Any = None,
    tiles: Any = None,
    semantic_id: int = 0,
    inward: bool = False,
    *,
    tile_size: float = 1.0,
    faces: Sequence[str] = BOX_FACES,
    rng: np.random.Generator | None = None,
    color: tuple[int, int, int] = (128, 128, 128),
    name: str = "box",
    reflectivity: float = 0.5,
) -> Mesh:
    """An oriented box (one mesh, 2 triangles per face) centred at ``center`` with edge lengths ``size``
    along the axes of ``R`` (box-to-world rotation). ``faces`` selects a subset of ``+x -x +y -y +z -z``
    (e.g. a room without a ceiling); ``rng`` shifts each face's texture by a random offset so faces do not
    repeat the same patch. ``inward=True``: fronts (texture orientation, normals) face the inside."""
    ctr = _vec(center, 3, "box_mesh: center")
    sz = _vec(size, 3, "box_mesh: size")
    if (sz <= 0).any():
        raise InputError(f"box_mesh: size must be positive, got {sz.tolist()}")
    Rm = _rotation(R, "box_mesh")
    faces = tuple(faces)
    bad = [f for f in faces if f not in BOX_FACES]
    if bad or not faces or len(set(faces)) != len(faces):
        raise InputError(f"box_mesh: faces must be distinct names from {BOX_FACES}, got {faces!r}")
    tex = _check_texture(texture)
    verts, tris, uvs = [], [], []
    for k, face in enumerate(faces):
        normal, up, axis = _face_frame(face)
        front = -normal if inward else normal
        right = np.cross(up, front)
        half = 0.5 * sz
        w = float(np.abs(right) @ sz)
        h = float(np.abs(up) @ sz)
        fc = normal * half[axis]
        hr, hu = right * (0.5 * w), up * (0.5 * h)
        corners = np.stack([fc + hu - hr, fc + hu + hr, fc - hu + hr, fc - hu - hr])
        tw, th = _tile_dims(w, h, tex, tile_size, tiles)
        offset = rng.uniform(0.0, 1.0, 2) if rng is not None else np.zeros(2)
        uv = _quad_uvs(corners, tw, th, offset)
        verts.append(corners @ Rm.T + ctr)
        tris.append(_QUAD_TRIS + 4 * k)
        uvs.append(uv[_QUAD_TRIS])
    return Mesh(
        np.concatenate(verts),
        np.concatenate(tris),
        np.concatenate(uvs),
        tex,
        color,
        semantic_id,
        name,
        reflectivity,
    )


def ground_plane(
    size: Any = (100.0, 100.0),
    center: Any = (0.0, 0.0, 0.0),
    texture: Any = None,
    tiles: Any = None,
    *,
    tile_size: float = 1.0,
    uv_offset: Sequence[float] = (0.0, 0.0),
    semantic_id: int = 0,
    color: tuple[int, int, int] = (128, 128, 128),
    name: str = "ground",
    reflectivity: float = 0.3,
) -> Mesh:
    """A horizontal rectangle (z = center[2], front facing +z) of ``size`` (x extent, y extent) metres."""
    sz = _vec(size, 2, "ground_plane: size")
    if (sz <= 0).any():
        raise InputError(f"ground_plane: size must be positive, got {sz.tolist()}")
    c = _vec(center, 3, "ground_plane: center")
    hx, hy = 0.5 * sz
    corners = c + np.array([[-hx, hy, 0.0], [hx, hy, 0.0], [hx, -hy, 0.0], [-hx, -hy, 0.0]])
    return quad_mesh(
        corners,
        texture,
        tiles,
        tile_size=tile_size,
        uv_offset=uv_offset,
        semantic_id=semantic_id,
        color=color,
        name=name,
        reflectivity=reflectivity,
    )


def cylinder_mesh(
    center: Any,
    radius: float,
    height: float,
    R: Any = None,
    texture: Any = None,
    tiles: Any = None,
    semantic_id: int = 0,
    inward: bool = False,
    *,
    segments: int = 32,
    caps: bool = True,
    tile_size: float = 1.0,
    color: tuple[int, int, int] = (128, 128, 128),
    name: str = "cylinder",
    reflectivity: float = 0.5,
) -> Mesh:
    """A closed (``caps``) cylinder centred at ``center`` (mid-height) with its axis along ``R``'s z axis,
    approximated by ``segments`` flat sides. The texture wraps around the side (``tiles`` = copies around the
    circumference) and is projected along the axis onto the caps."""
    ctr = _vec(center, 3, "cylinder_mesh: center")
    if not (np.isfinite(radius) and radius > 0 and np.isfinite(height) and height > 0):
        raise InputError(f"cylinder_mesh: radius and height must be positive, got {radius}, {height}")
    if int(segments) < 3:
        raise InputError(f"cylinder_mesh: segments must be >= 3, got {segments}")
    n = int(segments)
    Rm = _rotation(R, "cylinder_mesh")
    tex = _check_texture(texture)
    circ = 2 * np.pi * radius
    tw, th = _tile_dims(circ, height, tex, tile_size, tiles)
    th_ = np.linspace(0.0, 2 * np.pi, n + 1)
    ring = np.stack([radius * np.cos(th_[:-1]), radius * np.sin(th_[:-1])], axis=1)
    top = np.column_stack([ring, np.full(n, 0.5 * height)])
    bot = np.column_stack([ring, np.full(n, -0.5 * height)])
    verts = [top, bot]
    tris, uvs = [], []
    arc = radius * th_  # arc length at each seam angle (u grows counter-clockwise seen from +z)
    for k in range(n):
        k1 = (k + 1) % n
        q = np.array([k, k1, n + k1, n + k])  # TL, TR, BR, BL seen from outside
        quv = np.array([[arc[k], 0.0], [arc[k + 1], 0.0], [arc[k + 1], height], [arc[k], height]]) / [tw, th]
        sel = _QUAD_TRIS
        if inward:  # seen from inside: mirror u and flip the winding
            quv = quv * [-1.0, 1.0]
            sel = _QUAD_TRIS[:, ::-1]
        tris.append(q[sel])
        uvs.append(quv[sel])
    if caps:
        verts.append(np.array([[0.0, 0.0, 0.5 * height], [0.0, 0.0, -0.5 * height]]))
        xy_all = np.concatenate([ring, ring, np.zeros((2, 2))])
        for k in range(n):
            k1 = (k + 1) % n
            for center_idx, ring_off, outward_up in ((2 * n, 0, True), (2 * n + 1, n, False)):
                tri = np.array([center_idx, ring_off + k, ring_off + k1])  # counter-clockwise seen from +z
                if outward_up == inward:  # front faces -z: reverse the winding
                    tri = tri[::-1]
                xy = xy_all[tri]
                tris.append(tri[None])
                uvs.append(np.column_stack([xy[:, 0] / tw, -xy[:, 1] / th])[None])
    V = np.concatenate(verts) @ Rm.T + ctr
    return Mesh(V, np.concatenate(tris), np.concatenate(uvs), tex, color, semantic_id, name, reflectivity)
