"""World ray casting, primitives and textures against analytic answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from perception.geometry import SE3, so3_exp
from perception.sim import textures as T
from perception.sim.primitives import box_mesh, cylinder_mesh, ground_plane, quad_mesh
from perception.sim.world import Mesh, World


def slab_intersect(o: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Reference ray / axis-aligned box intersection (slab method): (t_entry, normal) or (inf, None)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - o) / d
        t2 = (hi - o) / d
    tmin = np.minimum(t1, t2)
    tmax = np.maximum(t1, t2)
    t_in, t_out = tmin.max(), tmax.min()
    if t_out < max(t_in, 0):
        return np.inf, None
    if t_in > 0:  # from outside: entry face
        ax = int(np.argmax(tmin))
        n = np.zeros(3)
        n[ax] = -np.sign(d[ax])
        return t_in, n
    ax = int(np.argmin(tmax))  # from inside: exit face, normal towards the origin
    n = np.zeros(3)
    n[ax] = -np.sign(d[ax])
    return t_out, n


# ---------------------------------------------------------------------- World.raycast
def test_unit_box_hits_and_misses():
    world = World()
    iid = world.add(box_mesh([0, 0, 0], [1, 1, 1], semantic_id=5, reflectivity=0.7, name="unit"))
    assert iid == 1
    o = np.array([[-3.0, 0.1, 0.2], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0], [0.2, -4.0, 0.3]])
    d = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
    h = world.raycast(o, d)
    np.testing.assert_array_equal(h.hit, [True, True, False, True])
    # t is in units of |direction|: (3 - 0.5) / 2, 0.5 from the centre, (4 - 0.5) / 0.5
    np.testing.assert_allclose(h.t[[0, 1, 3]], [1.25, 0.5, 7.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(h.point[0], [-0.5, 0.1, 0.2], atol=1e-12)
    np.testing.assert_allclose(h.point[3], [0.2, -0.5, 0.3], atol=1e-12)
    np.testing.assert_allclose(h.normal[[0, 1, 3]], [[-1, 0, 0], [0, 0, -1], [0, -1, 0]], atol=1e-12)
    np.testing.assert_array_equal(h.instance_id, [1, 1, 0, 1])
    np.testing.assert_array_equal(h.semantic_id, [5, 5, 0, 5])
    np.testing.assert_allclose(h.reflectivity, [0.7, 0.7, 0.0, 0.7])
    # the miss
    assert h.t[2] == np.inf and h.triangle[2] == -1
    assert np.isnan(h.point[2]).all() and np.isnan(h.uv[2]).all()
    np.testing.assert_array_equal(h.normal[2], 0.0)
    assert (h.triangle[[0, 1, 3]] >= 0).all() and (h.triangle < 12).all()


def test_random_rays_match_slab_reference(rng):
    lo, hi = np.array([-0.7, -0.4, 0.1]), np.array([0.9, 0.6, 1.3])
    world = World([box_mesh(0.5 * (lo + hi), hi - lo)])
    o = rng.uniform(-3, 3, (400, 3))
    target = rng.uniform(lo - 0.2, hi + 0.2, (400, 3))
    d = (target - o) * rng.uniform(0.3, 3.0, (400, 1))  # not unit length
    h = world.raycast(o, d)
    n_hit = 0
    for k in range(len(o)):
        t_ref, n_ref = slab_intersect(o[k], d[k], lo, hi)
        if n_ref is None:
            assert not h.hit[k]
            continue
        # rays grazing an edge within float32 of Embree may go either way: skip those
        p = o[k] + t_ref * d[k]
        if np.sort(np.minimum(np.abs(p - lo), np.abs(p - hi)))[1] < 1e-5:
            continue
        n_hit += 1
        assert h.hit[k]
        assert abs(h.t[k] - t_ref) <= 1e-12 * max(1.0, t_ref)
        np.testing.assert_allclose(h.normal[k], n_ref, atol=1e-12)
    assert n_hit > 150


def test_precision_far_from_origin():
    """Float64 re-intersection: a box 20 km away is hit as accurately as one at the origin."""
    c = np.array([20000.0, -15000.0, 30.0])
    world = World([box_mesh(c, [2.0, 2.0, 2.0]), ground_plane((100, 100), c - [0, 0, 40])])
    o = c + np.array([-10.0, 0.123456789, 0.3])
    h = world.raycast(o[None], np.array([[1.0, 0.0, 0.0]]))
    assert abs(h.t[0] - 9.0) < 1e-9
    np.testing.assert_allclose(h.point[0], c + [-1.0, 0.123456789, 0.3], rtol=0, atol=1e-9)


def test_uv_at_corners_and_interior():
    uvs_given = np.array([[[0.1, 0.2], [0.9, 0.25], [0.7, 0.8]]])
    tri = Mesh(np.array([[0.0, 0, 0], [2.0, 0, 0], [0.0, 1.0, 0]]), np.array([[0, 1, 2]]), uvs_given)
    world = World([tri])
    eps = 1e-9
    corners = np.array([[eps, eps, 0], [2 - 3 * eps, eps, 0], [eps, 1 - 3 * eps, 0]])
    h = world.raycast(corners + [0, 0, 1], np.tile([0.0, 0.0, -1.0], (3, 1)))
    assert h.hit.all()
    np.testing.assert_allclose(h.uv, uvs_given[0], atol=1e-7)
    # interior: barycentric interpolation (b1, b2) = (0.25, 0.5) at p = p0 + b1 e1 + b2 e2
    p = np.array([0.5, 0.5, 0.0])
    h = world.raycast(p + [0.3, 0.2, 2.0], (-np.array([0.3, 0.2, 2.0]))[None])
    np.testing.assert_allclose(h.t, [1.0], atol=1e-12)
    expect = 0.25 * uvs_given[0, 0] + 0.25 * uvs_given[0, 1] + 0.5 * uvs_given[0, 2]
    np.testing.assert_allclose(h.uv[0], expect, atol=1e-12)


def test_instances_semantics_first_hit_and_max_t():
    world = World()
    a = world.add(quad_mesh([[-1, 1, 2], [1, 1, 2], [1, -1, 2], [-1, -1, 2]], semantic_id=3))
    b = world.add(quad_mesh([[-1, 1, 5], [1, 1, 5], [1, -1, 5], [-1, -1, 5]], semantic_id=9))
    c = world.add(box_mesh([3, 0, 4], [1, 1, 1], semantic_id=4))
    assert (a, b, c) == (1, 2, 3) and world.mesh(2).semantic_id == 9
    np.testing.assert_array_equal(world.semantic_ids(), [0, 3, 9, 4])
    o = np.array([[0.2, 0.1, 0.0], [0.2, 0.1, 10.0], [3.0, 0.0, 0.0]])
    d = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    h = world.raycast(o, d)
    np.testing.assert_array_equal(h.instance_id, [1, 2, 3])
    np.testing.assert_array_equal(h.semantic_id, [3, 9, 4])
    np.testing.assert_allclose(h.t, [2.0, 5.0, 3.5], atol=1e-12)
    h = world.raycast(o, d, max_t=3.0)
    np.testing.assert_array_equal(h.hit, [True, False, False])
    lo, hi = world.bounds()
    np.testing.assert_allclose(lo, [-1, -1, 2])
    np.testing.assert_allclose(hi, [3.5, 1, 5])
    # adding a mesh rebuilds the scene
    world.add(quad_mesh([[-1, 1, 1], [1, 1, 1], [1, -1, 1], [-1, -1, 1]], semantic_id=1))
    assert world.raycast(o[:1], d[:1]).instance_id[0] == 4


def test_empty_world_and_bad_input():
    h = World().raycast(np.zeros((2, 3)), np.ones((2, 3)))
    assert not h.hit.any() and (h.instance_id == 0).all()
    w = World([box_mesh([0, 0, 0], [1, 1, 1])])
    with pytest.raises(ValueError, match="directions"):
        w.raycast(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="non-zero"):
        w.raycast(np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="origins"):
        w.raycast(np.zeros((3, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="triangle indices"):
        Mesh(np.zeros((3, 3)), np.array([[0, 1, 3]]))
    with pytest.raises(ValueError, match="uvs"):
        Mesh(np.zeros((3, 3)), np.array([[0, 1, 2]]), texture=np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="reflectivity"):
        Mesh(np.zeros((3, 3)), np.array([[0, 1, 2]]), reflectivity=1.5)
    with pytest.raises(ValueError, match="size"):
        box_mesh([0, 0, 0], [1, -1, 1])
    with pytest.raises(ValueError, match="faces"):
        box_mesh([0, 0, 0], [1, 1, 1], faces=("+w",))
    with pytest.raises(ValueError, match="degenerate"):
        quad_mesh([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]])


# ---------------------------------------------------------------------- primitives
def _viewer_axes(front: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right, down) of a viewer looking at a face along -front, with up = +z (or +y for horizontal faces)."""
    up = np.array([0.0, 1.0, 0.0]) if abs(front[2]) > 0.5 else np.array([0.0, 0.0, 1.0])
    right = np.cross(up, front)
    return right, -up


@pytest.mark.parametrize("inward", [False, True])
def test_box_faces_read_unmirrored_from_their_front(inward):
    size = np.array([2.0, 3.0, 1.5])
    R = so3_exp([0.0, 0.0, 0.4])  # rotate about z so up stays +z
    box = box_mesh([1.0, -2.0, 0.5], size, R, texture=np.zeros((8, 8, 3), np.uint8), tile_size=0.5, inward=inward)
    world = World([box])
    normals = box.triangle_normals()
    for k, ax in enumerate([0, 0, 1, 1, 2, 2]):
        n_out = np.zeros(3)
        n_out[ax] = 1.0 if k % 2 == 0 else -1.0
        front = -n_out if inward else n_out
        # right-hand normals of the face's triangles point to its front
        np.testing.assert_allclose(normals[2 * k : 2 * k + 2], np.tile(R @ front, (2, 1)), atol=1e-12)
        right, down = _viewer_axes(front)
        centre = np.array([1.0, -2.0, 0.5]) + R @ (n_out * size[ax] / 2)
        eye = centre + R @ front * 0.25  # in front of the face (inside the box when inward)
        pts = centre + np.stack([np.zeros(3), 0.1 * right, 0.1 * down]) @ R.T
        h = world.raycast(eye, pts - eye)
        assert h.hit.all() and (h.triangle // 2 == k).all()
        # 0.1 m to the right -> u grows by 0.1 / 0.5; 0.1 m down -> v grows by 0.1 / 0.5 (square texels)
        np.testing.assert_allclose(h.uv[1] - h.uv[0], [0.2, 0.0], atol=1e-9)
        np.testing.assert_allclose(h.uv[2] - h.uv[0], [0.0, 0.2], atol=1e-9)


def test_quad_tiles_and_ground_plane():
    tex = np.zeros((50, 100, 3), np.uint8)  # aspect H/W = 0.5
    q = quad_mesh([[0, 0, 2], [4, 0, 2], [4, 0, 0], [0, 0, 0]], tex, tiles=2)
    np.testing.assert_allclose(q.uvs[0], [[0, 0], [2, 2], [2, 0]])  # 2 copies across 4 m: 2 m x 1 m each
    q = quad_mesh([[0, 0, 2], [4, 0, 2], [4, 0, 0], [0, 0, 0]], tex, tiles=(2, 3))
    np.testing.assert_allclose(q.uvs[1], [[0, 0], [0, 3], [2, 3]])
    np.testing.assert_allclose(q.triangle_normals(), [[0, -1, 0], [0, -1, 0]], atol=1e-12)
    g = ground_plane((10, 6), (1, 2, -0.5), tex, tile_size=2.0)
    h = World([g]).raycast(np.array([[1.0, 2.0, 3.0], [10.0, 2.0, 3.0]]), np.array([[0.0, 0.0, -1.0]] * 2))
    np.testing.assert_array_equal(h.hit, [True, False])
    np.testing.assert_allclose(h.t[0], 3.5)
    np.testing.assert_allclose(h.normal[0], [0, 0, 1])
    # top-left corner of the texture at (-4, 5) seen from above: the centre is 5 m right, 3 m down
    np.testing.assert_allclose(h.uv[0], [5.0 / 2.0, 3.0 / 1.0], atol=1e-12)


def test_cylinder_distances():
    cyl = cylinder_mesh([1.0, 2.0, 3.0], radius=0.5, height=2.0, segments=64, texture=np.zeros((8, 8), np.uint8))
    w = World([cyl])
    ang = np.linspace(0, 2 * np.pi, 37)[:-1]
    dirs = np.stack([np.cos(ang), np.sin(ang), np.zeros_like(ang)], axis=1)
    h = w.raycast(np.array([1.0, 2.0, 3.3]) + 5 * dirs, -dirs)
    r = 5 - h.t  # distance of the hit from the axis: between the inscribed and circumscribed radius
    assert h.hit.all() and (r <= 0.5 + 1e-12).all() and (r >= 0.5 * np.cos(np.pi / 64) - 1e-12).all()
    h = w.raycast(np.array([[1.1, 2.0, 10.0], [1.1, 2.0, -10.0]]), np.array([[0, 0, -1.0], [0, 0, 1.0]]))
    np.testing.assert_allclose(h.t, [6.0, 12.0], atol=1e-12)
    np.testing.assert_allclose(h.normal, [[0, 0, 1], [0, 0, -1]], atol=1e-12)
    n = cyl.triangle_normals()  # outward: radial on the side, +-z on the caps
    centroids = cyl.vertices[cyl.triangles].mean(axis=1) - [1.0, 2.0, 3.0]
    assert (np.einsum("ij,ij->i", n, centroids) > 0).all()


def test_mesh_transformed():
    m = box_mesh([0, 0, 0], [1, 2, 3], semantic_id=2)
    T_wo = SE3(so3_exp([0.1, -0.2, 0.3]), [1.0, 2.0, 3.0])
    mt = m.transformed(T_wo)
    np.testing.assert_allclose(mt.vertices, m.vertices @ T_wo.R.T + T_wo.t, atol=1e-12)
    assert mt.semantic_id == 2 and mt.uvs is not None


# ---------------------------------------------------------------------- textures
def test_bundled_images_load_offline():
    names = T.available_images()
    for n in ("astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera", "moon"):
        assert n in names
    img = T.load_image("astronaut")
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    assert T.load_image("camera").shape == (512, 512, 3)
    with pytest.raises(ValueError, match="unknown image"):
        T.load_image("lena")


def test_random_texture_deterministic_and_seamless():
    a = T.random_texture(np.random.default_rng(3), (96, 128))
    b = T.random_texture(np.random.default_rng(3), (96, 128))
    c = T.random_texture(np.random.default_rng(4), (96, 128))
    assert a.shape == (96, 128, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 5
    # seamless: the jump across the wrap is no bigger than a typical jump between neighbouring columns
    f = a.astype(float)
    interior = np.abs(np.diff(f, axis=1)).mean()
    wrap = np.abs(f[:, 0] - f[:, -1]).mean()
    wrap_v = np.abs(f[0] - f[-1]).mean()
    assert wrap < 2.0 * interior and wrap_v < 2.0 * np.abs(np.diff(f, axis=0)).mean()
    # and a photograph: hundreds of SIFT keypoints on a 256^2 crop
    tex = T.random_texture(np.random.default_rng(5), 256, image="astronaut")
    assert len(cv2.SIFT_create().detect(cv2.cvtColor(tex, cv2.COLOR_RGB2GRAY), None)) > 100


def test_repetitive_weak_and_mosaic(rng):
    r = T.repetitive_texture(rng, (200, 160), period=40)
    np.testing.assert_array_equal(r[:, :120], r[:, 40:160])  # periodic in both directions
    np.testing.assert_array_equal(r[:160], r[40:200])
    w = T.weak_texture(rng, 256, contrast=0.05)
    assert w.astype(float).std(axis=(0, 1)).max() < 0.05 * 255
    rich = T.random_texture(rng, 256, image="coffee")
    sift = cv2.SIFT_create()
    n_weak = len(sift.detect(cv2.cvtColor(w, cv2.COLOR_RGB2GRAY), None))
    n_rich = len(sift.detect(cv2.cvtColor(rich, cv2.COLOR_RGB2GRAY), None))
    assert n_weak < 0.25 * n_rich
    m = T.mosaic_texture(rng, (2, 3), 64)
    assert m.shape == (128, 192, 3)
    tiles = [m[i * 64 : (i + 1) * 64, j * 64 : (j + 1) * 64].astype(float) for i in range(2) for j in range(3)]
    diffs = [np.abs(tiles[i] - tiles[j]).mean() for i in range(6) for j in range(i + 1, 6)]
    assert min(diffs) > 5  # all tiles distinct
