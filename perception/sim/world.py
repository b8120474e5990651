"""A world of textured triangle meshes, ray-cast exactly with Open3D's ``RaycastingScene`` (Embree, CPU).

Every mesh added to a :class:`World` becomes one *instance* (ids 1, 2, ... in the order of :meth:`World.add`;
0 means "no hit / background") and carries a semantic class id, a texture (a photograph, see
:mod:`perception.sim.textures`) with per-corner texture coordinates, and a LiDAR reflectivity.

Precision: Embree intersects in float32; :meth:`World.raycast` re-intersects every hit with the plane of the
triangle it found in float64, so hit distances, points and texture coordinates are exact to ~1e-12 relative
(the scene is also built relative to its centre, so large outdoor worlds keep their float32 accuracy for the
triangle search). Triangles are double-sided; the returned normals face the ray origin.

Meshes are treated as immutable once added: after editing a mesh in place call :meth:`World.invalidate`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perception.errors import InputError
from perception.geometry import SE3

logger = logging.getLogger(__name__)

__all__ = ["Mesh", "RayHits", "World"]


def _rgb_texture(texture: Any, name: str) -> np.ndarray | None:
    if texture is None:
        return None
    tex = np.asarray(texture)
    if tex.dtype == bool:
        tex = tex.astype(np.uint8) * 255
    if tex.dtype != np.uint8:
        raise InputError(
            f"Mesh {name!r}: texture must be a uint8 image (H, W) or (H, W, 3), got dtype {tex.dtype}"
        )
    if tex.ndim == 2:
        tex = np.repeat(tex[:, :, None], 3, axis=2)
    if tex.ndim != 3 or tex.shape[2] not in (3, 4) or tex.shape[0] < 1 or tex.shape[1] < 1:
        raise InputError(f"Mesh {name!r}: texture must have shape (H, W) or (H, W, 3), got {tex.shape}")
    return np.ascontiguousarray(tex[:, :, :3])


@dataclass(eq=False)
class Mesh:
    """A triangle mesh in world coordinates with its texture and labels.

    ``uvs[t, k]`` is the texture coordinate of corner ``k`` of triangle ``t``: ``u`` to the right, ``v`` down,
    in units of the texture size (texture pixel ``(row i, col j)`` has its centre at ``((j + 0.5) / W,
    (i + 0.5) / H)``); values outside [0, 1] repeat the texture (tiling). Without a texture the surface has
    the flat ``color`` (RGB 0..255) -- only for surfaces that no method has to match.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    uvs: np.ndarray | None = None
    texture: np.ndarray | None = None
    color: tuple[int, int, int] = (128, 128, 128)
    semantic_id: int = 0
    name: str = ""
    reflectivity: float = 0.5

    def __post_init__(self) -> None:
        nm = self.name
        v = np.asarray(self.vertices, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 3:
            raise InputError(f"Mesh {nm!r}: vertices must have shape (V, 3), got {v.shape}")
        if not np.isfinite(v).all():
            raise InputError(f"Mesh {nm!r}: vertices must be finite")
        f = np.asarray(self.triangles)
        if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
            raise InputError(
                f"Mesh {nm!r}: triangles must be an integer array of shape (T, 3), got {f.shape} {f.dtype}"
            )
        f = f.astype(np.int64)
        if f.size and (f.min() < 0 or f.max() >= len(v)):
            raise InputError(f"Mesh {nm!r}: triangle indices must lie in [0, {len(v) - 1}]")
        self.vertices, self.triangles = v, f
        if self.uvs is not None:
            uv = np.asarray(self.uvs, dtype=np.float64)
            if uv.shape != (len(f), 3, 2):
                raise InputError(
                    f"Mesh {nm!r}: uvs must have shape (T, 3, 2) = ({len(f)}, 3, 2), got {uv.shape}"
                )
            if not np.isfinite(uv).all():
                raise InputError(f"Mesh {nm!r}: uvs must be finite")
            self.uvs = uv
        self.texture = _rgb_texture(self.texture, nm)
        if self.texture is not None and self.uvs is None:
            raise InputError(f"Mesh {nm!r}: a texture needs uvs (T, 3, 2)")
        c = tuple(int(x) for x in np.asarray(self.color).reshape(-1))
        if len(c) != 3 or min(c) < 0 or max(c) > 255:
            raise InputError(f"Mesh {nm!r}: color must be 3 integers in 0..255, got {self.color!r}")
        self.color = c  # type: ignore[assignment]
        self.semantic_id = int(self.semantic_id)
        if not 0 <= self.semantic_id <= 65535:
            raise InputError(f"Mesh {nm!r}: semantic_id must lie in 0..65535, got {self.semantic_id}")
        r = float(self.reflectivity)
        if not 0.0 <= r <= 1.0:
            raise InputError(f"Mesh {nm!r}: reflectivity must lie in [0, 1], got {r}")
        self.reflectivity = r

    @property
    def num_triangles(self) -> int:
        return len(self.triangles)

    def triangle_normals(self) -> np.ndarray:
        """Unit normals (T, 3) by the right-hand rule over each triangle's corner order."""
        p = self.vertices[self.triangles]
        n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(axis=0), self.vertices.max(axis=0)

    def transformed(self, T_world_obj: SE3) -> Mesh:
        """A copy with the vertices mapped by ``T_world_obj`` (this mesh's vertices are in frame ``obj``)."""
        return Mesh(
            T_world_obj.act(self.vertices),
            self.triangles.copy(),
            None if self.uvs is None else self.uvs.copy(),
            self.texture,
            self.color,
            self.semantic_id,
            self.name,
            self.reflectivity,
        )


@dataclass
class RayHits:
    """First hits of N rays. On a miss: ``hit`` False, ``t`` inf, ``point``/``uv`` NaN, ``normal`` 0, ids 0 /
    ``triangle`` -1, ``reflectivity`` 0."""

    hit: np.ndarray  # (N,) bool
    t: np.ndarray  # (N,) float64, in units of |direction|
    point: np.ndarray  # (N, 3) world frame
    normal: np.ndarray  # (N, 3) unit, facing the ray origin
    instance_id: np.ndarray  # (N,) int32, 1-based (0 = miss)
    semantic_id: np.ndarray  # (N,) int32
    triangle: np.ndarray  # (N,) int64 global triangle index (-1 = miss)
    uv: np.ndarray  # (N, 2) texture coordinate of the hit
    reflectivity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N,) of the mesh hit

    def __len__(self) -> int:
        return len(self.hit)


class World:
    """A set of :class:`Mesh` instances and the ray caster over them.

    Parameters
    ----------
    nthreads
        Threads Embree may use to build and cast (0: all cores).
    """

    def __init__(self, meshes: Iterable[Mesh] = (), *, nthreads: int = 0) -> None:
        if int(nthreads) < 0:
            raise InputError(f"World: nthreads must be >= 0, got {nthreads}")
        self.nthreads = int(nthreads)
        self.meshes: list[Mesh] = []
        self._built_for: tuple[int, int] | None = None
        self._version = 0
        self._cache: dict[str, tuple[tuple[int, int], Any]] = {}
        for m in meshes:
            self.add(m)

    # ------------------------------------------------------------------ contents
    def add(self, mesh: Mesh) -> int:
        """Add a mesh; returns its instance id (1-based)."""
        if not isinstance(mesh, Mesh):
            raise InputError(f"World.add: expected a Mesh, got {type(mesh).__name__}")
        self.meshes.append(mesh)
        self._version += 1
        return len(self.meshes)

    def extend(self, meshes: Iterable[Mesh]) -> list[int]:
        return [self.add(m) for m in meshes]

    def invalidate(self) -> None:
        """Forget the acceleration structure and caches (call after editing meshes in place)."""
        self._version += 1

    @property
    def version(self) -> tuple[int, int]:
        """Changes whenever meshes are added or :meth:`invalidate` is called."""
        return (self._version, len(self.meshes))

    def mesh(self, instance_id: int) -> Mesh:
        if not 1 <= instance_id <= len(self.meshes):
            raise InputError(f"World.mesh: instance_id must lie in 1..{len(self.meshes)}, got {instance_id}")
        return self.meshes[instance_id - 1]

    @property
    def num_triangles(self) -> int:
        return sum(m.num_triangles for m in self.meshes)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounds (min (3,), max (3,)) of all vertices."""
        if not self.meshes:
            raise InputError("World.bounds: the world is empty; add meshes first")
        lo = np.min([m.vertices.min(axis=0) for m in self.meshes if len(m.vertices)], axis=0)
        hi = np.max([m.vertices.max(axis=0) for m in self.meshes if len(m.vertices)], axis=0)
        return lo, hi

    def semantic_ids(self) -> np.ndarray:
        """Semantic id per instance id (index 0 = background, 0)."""
        return np.array([0] + [m.semantic_id for m in self.meshes], dtype=np.int32)

    def reflectivities(self) -> np.ndarray:
        """Reflectivity per instance id (index 0 = background, 0)."""
        return np.array([0.0] + [m.reflectivity for m in self.meshes], dtype=np.float64)

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """Value of ``build()`` memoised until the world changes (used by the renderers)."""
        entry = self._cache.get(key)
        if entry is None or entry[0] != self.version:
            entry = (self.version, build())
            self._cache[key] = entry
        return entry[1]

    # ------------------------------------------------------------------ acceleration structure
    def _build(self) -> None:
        if self._built_for == self.version:
            return
        import open3d as o3d
        import open3d.core as o3c

        meshes = self.meshes
        counts = np.array([m.num_triangles for m in meshes], dtype=np.int64)
        vcounts = np.array([len(m.vertices) for m in meshes], dtype=np.int64)
        voff = np.concatenate([[0], np.cumsum(vcounts)])[:-1]
        V = np.concatenate([m.vertices for m in meshes]) if meshes else np.zeros((0, 3))
        F = (
            np.concatenate([m.triangles + o for m, o in zip(meshes, voff, strict=True)])
            if meshes
            else np.zeros((0, 3), np.int64)
        )
        self._V, self._F = V, F
        self._tri_offset = np.concatenate([[0], np.cumsum(counts)])
        self._tri_instance = np.repeat(np.arange(1, len(meshes) + 1, dtype=np.int32), counts)
        self._semantic = self.semantic_ids()
        self._reflect = self.reflectivities()
        self._tri_uv = (
            np.concatenate(
                [m.uvs if m.uvs is not None else np.zeros((m.num_triangles, 3, 2)) for m in meshes]
            )
            if meshes
            else np.zeros((0, 3, 2))
        )
        P = V[F] if len(F) else np.zeros((0, 3, 3))
        self._tri_p0 = P[:, 0]
        self._tri_e1 = P[:, 1] - P[:, 0]
        self._tri_e2 = P[:, 2] - P[:, 0]
        n = np.cross(self._tri_e1, self._tri_e2)
        self._tri_area2 = np.linalg.norm(n, axis=1)
        self._tri_normal = n / np.maximum(self._tri_area2, 1e-300)[:, None]
        lo, hi = (V.min(axis=0), V.max(axis=0)) if len(V) else (np.zeros(3), np.zeros(3))
        self._shift = 0.5 * (lo + hi)
        scene = o3d.t.geometry.RaycastingScene(nthreads=self.nthreads)
        if len(F):
            scene.add_triangles(
                o3c.Tensor(np.ascontiguousarray(V - self._shift, dtype=np.float32)),
                o3c.Tensor(np.ascontiguousarray(F, dtype=np.uint32)),
            )
        self._scene = scene
        self._built_for = self.version
        logger.debug("built ray-casting scene: %d meshes, %d triangles", len(meshes), len(F))

    def triangle_data(self) -> dict[str, np.ndarray]:
        """Per-triangle arrays of the built scene (global triangle order = meshes in order of addition):
        ``instance`` (T,), ``uv`` (T,3,2), ``normal`` (T,3) right-hand unit normals, ``p0``, ``e1``, ``e2``
        (T,3) (corner 0 and the two edges from it), ``vertices`` (V,3), ``triangles`` (T,3)."""
        self._build()
        return {
            "instance": self._tri_instance,
            "uv": self._tri_uv,
            "normal": self._tri_normal,
            "p0": self._tri_p0,
            "e1": self._tri_e1,
            "e2": self._tri_e2,
            "vertices": self._V,
            "triangles": self._F,
        }

    def _cast32(self, origins: np.ndarray, directions: np.ndarray) -> dict[str, np.ndarray]:
        """Raw Embree cast (float32, shifted frame): t_hit (N,), primitive_ids (N,) uint32, primitive_uvs
        (N,2)."""
        import open3d.core as o3c

        self._build()
        rays = np.empty((len(origins), 6), dtype=np.float32)
        rays[:, :3] = origins - self._shift
        rays[:, 3:] = directions
        out = self._scene.cast_rays(o3c.Tensor(rays), nthreads=self.nthreads)
        return {k: out[k].numpy() for k in ("t_hit", "primitive_ids", "primitive_uvs")}

    # ------------------------------------------------------------------ ray casting
    def raycast(self, origins: Any, directions: Any, *, max_t: float = np.inf) -> RayHits:
        """First hit of each ray ``origins + t * directions`` (t > 0). Directions need not be unit; ``t`` is
        in units of their length. ``origins`` may be one point (3,) shared by all rays. Hits beyond ``max_t``
        count as misses."""
        d = np.asarray(directions, dtype=np.float64)
        if d.ndim != 2 or d.shape[1] != 3:
            raise InputError(f"World.raycast: directions must have shape (N, 3), got {d.shape}")
        o = np.asarray(origins, dtype=np.float64)
        if o.shape == (3,):
            o = np.broadcast_to(o, d.shape)
        if o.shape != d.shape:
            raise InputError(f"World.raycast: origins must have shape (3,) or {d.shape}, got {o.shape}")
        if not (np.isfinite(o).all() and np.isfinite(d).all()):
            raise InputError("World.raycast: origins and directions must be finite")
        if len(d) and (np.abs(d).max(axis=1) == 0).any():
            raise InputError("World.raycast: directions must be non-zero")
        if not (max_t > 0):
            raise InputError(f"World.raycast: max_t must be > 0, got {max_t}")
        n = len(d)
        out = RayHits(
            hit=np.zeros(n, bool),
            t=np.full(n, np.inf),
            point=np.full((n, 3), np.nan),
            normal=np.zeros((n, 3)),
            instance_id=np.zeros(n, np.int32),
            semantic_id=np.zeros(n, np.int32),
            triangle=np.full(n, -1, np.int64),
            uv=np.full((n, 2), np.nan),
            reflectivity=np.zeros(n),
        )
        if n == 0 or not self.meshes:
            return out
        raw = self._cast32(o, d)
        idx = np.flatnonzero(np.isfinite(raw["t_hit"]))
        tri = raw["primitive_ids"][idx].astype(np.int64)
        oi, di = o[idx], d[idx]
        t, bary = self._refine(oi, di, tri, raw["t_hit"][idx].astype(np.float64), raw["primitive_uvs"][idx])
        keep = (t > 0) & (t <= max_t)
        idx, tri, oi, di, t, bary = idx[keep], tri[keep], oi[keep], di[keep], t[keep], bary[keep]
        nrm = self._tri_normal[tri]
        flip = np.einsum("ij,ij->i", nrm, di) > 0
        nrm[flip] *= -1
        inst = self._tri_instance[tri]
        out.hit[idx] = True
        out.t[idx] = t
        out.point[idx] = oi + t[:, None] * di
        out.normal[idx] = nrm
        out.instance_id[idx] = inst
        out.semantic_id[idx] = self._semantic[inst]
        out.triangle[idx] = tri
        uvc = self._tri_uv[tri]
        out.uv[idx] = (
            (1 - bary[:, :1] - bary[:, 1:]) * uvc[:, 0] + bary[:, :1] * uvc[:, 1] + bary[:, 1:] * uvc[:, 2]
        )
        out.reflectivity[idx] = self._reflect[inst]
        return out

    def _refine(
        self, o: np.ndarray, d: np.ndarray, tri: np.ndarray, t32: np.ndarray, bary32: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Float64 re-intersection with the plane of the hit triangle: (t, barycentrics (b1, b2))."""
        p0, e1, e2, nrm = self._tri_p0[tri], self._tri_e1[tri], self._tri_e2[tri], self._tri_normal[tri]
        denom = np.einsum("ij,ij->i", nrm, d)
        dn = np.linalg.norm(d, axis=1)
        ok = np.abs(denom) > 1e-9 * dn
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.einsum("ij,ij->i", nrm, p0 - o) / denom
        # keep Embree's answer for (near-)grazing rays or if the plane solution is inconsistent with it
        ok &= np.isfinite(t) & (np.abs(t - t32) * dn <= 1e-3 + 1e-4 * np.abs(t32) * dn)
        t = np.where(ok, t, t32)
        # barycentrics of the float64 point: solve [e1 e2] b = p - p0 in the least-squares sense
        r = o + t[:, None] * d - p0
        a11 = np.einsum("ij,ij->i", e1, e1)
        a12 = np.einsum("ij,ij->i", e1, e2)
        a22 = np.einsum("ij,ij->i", e2, e2)
        r1 = np.einsum("ij,ij->i", e1, r)
        r2 = np.einsum("ij,ij->i", e2, r)
        det = a11 * a22 - a12 * a12
        good = ok & (det > 1e-300)
        with np.errstate(divide="ignore", invalid="ignore"):
            b1 = (a22 * r1 - a12 * r2) / det
            b2 = (a11 * r2 - a12 * r1) / det
        bary = np.where(good[:, None], np.stack([b1, b2], axis=1), bary32.astype(np.float64))
        return t, bary
