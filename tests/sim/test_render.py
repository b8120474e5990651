"""Camera rendering: geometric consistency, SIFT, ids/depth, photometric controls, texture sampling."""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np
import pytest

from perception.camera import FisheyeCamera, OpenCVCamera, PinholeCamera
from perception.errors import InputError
from perception.geometry import SE3, so3_exp, so3_log
from perception.sim import textures as T
from perception.sim.primitives import box_mesh, quad_mesh
from perception.sim.render import Light, linear_to_srgb, render_camera, srgb_to_linear
from perception.sim.world import World

logger = logging.getLogger(__name__)
cv2.setNumThreads(1)


def srgb_decode_ref(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB decoding written out independently of perception.sim.render."""
    x = np.asarray(x, dtype=np.float64) / 255.0
    lo = x / 12.92
    hi = ((x + 0.055) / 1.055) ** 2.4
    return np.where(x <= 0.04045, lo, hi)


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> SE3:
    """Camera-to-world pose of an OpenCV camera at ``eye`` looking at ``target`` (z-up world)."""
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    return SE3(np.stack([x, np.cross(z, x), z], axis=1), eye)


@pytest.fixture(scope="module")
def room() -> World:
    """A 6 x 5 x 2.5 m room seen from inside: every surface a distinct photo mosaic (no tiling repeats), plus
    two textured boxes."""
    rng = np.random.default_rng(1)
    w = World()
    c, s = [0.0, 0.0, 1.25], [6.0, 5.0, 2.5]
    for face, grid, sem in (
        ("+x", (1, 4), 1),
        ("-x", (1, 4), 1),
        ("+y", (1, 5), 1),
        ("-y", (1, 5), 1),
        ("-z", (3, 3), 2),
        ("+z", (2, 2), 22),
    ):
        tex = T.mosaic_texture(rng, grid, 384)
        w.add(box_mesh(c, s, texture=tex, tiles=1, semantic_id=sem, inward=True, faces=(face,), name=face))
    w.add(
        box_mesh(
            [1.0, 0.8, 0.4],
            [0.8, 0.6, 0.8],
            texture=T.random_texture(rng),
            semantic_id=5,
            tile_size=2.0,
            rng=rng,
        )
    )
    w.add(
        box_mesh(
            [-1.2, -0.5, 0.5],
            [0.6, 0.9, 1.0],
            R=so3_exp([0, 0, 0.5]),
            texture=T.random_texture(rng),
            semantic_id=7,
            tile_size=2.0,
            rng=rng,
        )
    )
    return w


POSE_A = look_at([-2.0, -1.6, 1.5], [0.5, 0.6, 0.8])
POSE_B = look_at([-1.5, -1.9, 1.3], [0.8, 0.2, 0.9])


# ---------------------------------------------------------------------- 1. geometric consistency
@pytest.mark.parametrize(
    "camera",
    [
        PinholeCamera(320, 240, 260.0, 260.0, 159.5, 119.5),
        OpenCVCamera(320, 240, 250.0, 252.0, 161.2, 118.7, -0.28, 0.09, 0.0008, -0.0005, -0.012),
    ],
    ids=["pinhole", "opencv"],
)
def test_depth_reprojects_across_views(room, camera):
    fa = render_camera(room, camera, POSE_A, supersample=1)
    assert fa.valid.all()
    v, u = np.nonzero(fa.valid)
    uv_a = np.stack([u, v], axis=1).astype(np.float64)
    rays = camera.unproject(uv_a)  # z = 1
    P = POSE_A.act(rays * fa.depth[v, u, None].astype(np.float64))
    uv_b, ok = camera.project(POSE_B.inverse().act(P))
    ok &= camera.in_image(uv_b)
    # visibility from B: the first hit along B's ray towards P is P itself
    to_p = P - POSE_B.t
    dist = np.linalg.norm(to_p, axis=1)
    h = room.raycast(POSE_B.t, to_p / dist[:, None])
    vis = ok & h.hit & (np.abs(h.t - dist) < 1e-4 * dist)
    assert vis.mean() > 0.5  # the views overlap
    assert (ok & ~vis).sum() > 100  # and some points are occluded by the boxes
    # ray-cast correspondence: the ray through uv_b (B's unprojection) hits Q; Q must project back onto uv_a
    bearing = camera.unproject_bearing(uv_b[vis])
    q = room.raycast(POSE_B.t, bearing @ POSE_B.R.T)
    assert q.hit.all()
    uv_back, ok_back = camera.project(POSE_A.inverse().act(q.point))
    err = np.linalg.norm(uv_back - uv_a[vis], axis=1)
    assert ok_back.all()
    assert (err < 1.0).mean() >= 0.99
    assert np.median(err) < 0.01
    # the depth of B's render at the rounded pixel agrees with the point's z in B up to the rounding
    fb = render_camera(room, camera, POSE_B, supersample=1)
    ib = np.rint(uv_b[vis]).astype(int)
    z_b = POSE_B.inverse().act(P[vis])[:, 2]
    rel = np.abs(fb.depth[ib[:, 1], ib[:, 0]] - z_b) / z_b
    assert np.median(rel) < 0.01


def test_depth_is_z_of_the_ray_hit_fisheye(room):
    cam = FisheyeCamera(160, 120, 55.0, 55.0, 79.5, 59.5, 0.05, -0.01, 0.002, -0.0003)
    f = render_camera(room, cam, POSE_A, supersample=1)
    v, u = np.mgrid[0:120, 0:160]
    uv = np.stack([u, v], axis=-1).reshape(-1, 2).astype(float)
    b, ok = cam.unproject_bearing(uv, return_valid=True)
    ok = ok.reshape(120, 160)
    np.testing.assert_array_equal(f.valid, ok)  # pixels beyond the lens' range: no ray, no depth
    assert (~ok).sum() > 0 and (f.depth[~ok] == 0).all() and (f.instance[~ok] == 0).all()
    h = room.raycast(POSE_A.t, b[ok.reshape(-1)] @ POSE_A.R.T)
    z = POSE_A.inverse().act(h.point)[:, 2]
    np.testing.assert_allclose(f.depth[ok], z, rtol=1e-6)
    np.testing.assert_array_equal(f.instance[ok], h.instance_id)


# ---------------------------------------------------------------------- 2. SIFT on rendered frames
def test_sift_two_view_geometry(room):
    cam = PinholeCamera(640, 480, 525.0, 525.0, 319.5, 239.5)
    t0 = time.perf_counter()
    fa = render_camera(room, cam, POSE_A)
    t1 = time.perf_counter()
    fb = render_camera(room, cam, POSE_B)
    t2 = time.perf_counter()
    logger.info("640x480 supersample 2 render: %.2f s (cold) / %.2f s (warm)", t1 - t0, t2 - t1)
    sift = cv2.SIFT_create()
    ka, da = sift.detectAndCompute(cv2.cvtColor(fa.rgb, cv2.COLOR_RGB2GRAY), None)
    kb, db = sift.detectAndCompute(cv2.cvtColor(fb.rgb, cv2.COLOR_RGB2GRAY), None)
    assert len(ka) >= 300 and len(kb) >= 300
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
    good = [m for m, n in knn if m.distance < 0.8 * n.distance]
    assert len(good) >= 200
    pa = np.array([ka[m.queryIdx].pt for m in good], dtype=np.float64)
    pb = np.array([kb[m.trainIdx].pt for m in good], dtype=np.float64)
    na, nb = cam.unproject(pa)[:, :2], cam.unproject(pb)[:, :2]
    E, mask = cv2.findEssentialMat(na, nb, np.eye(3), method=cv2.RANSAC, prob=0.999, threshold=1.0 / cam.fx)
    inlier_ratio = float(mask.mean())
    _, R, t, _ = cv2.recoverPose(E, na, nb, np.eye(3), mask=mask.copy())
    T_ba = POSE_B.inverse() @ POSE_A  # maps camera A points into camera B, as recoverPose's (R, t)
    rot_err = np.degrees(np.linalg.norm(so3_log(R.T @ T_ba.R)))
    t_true = T_ba.t / np.linalg.norm(T_ba.t)
    t_err = np.degrees(np.arccos(np.clip(t.ravel() @ t_true, -1, 1)))
    logger.info(
        "SIFT: %d / %d keypoints, %d matches, inlier ratio %.2f, rotation error %.3f deg, "
        "translation %.2f deg",
        len(ka), len(kb), len(good), inlier_ratio, rot_err, t_err,
    )  # fmt: skip
    assert inlier_ratio >= 0.6
    assert rot_err < 1.0
    assert t_err < 5.0


# ---------------------------------------------------------------------- 3. ids and depth
def test_ids_and_depth_of_a_box():
    tex = T.random_texture(np.random.default_rng(2), 128)
    world = World()
    world.add(box_mesh([0.3, -0.2, 4.0], [1.0, 0.8, 0.6], texture=tex, semantic_id=5, tile_size=0.5))
    world.add(quad_mesh([[-9, -9, 9], [9, -9, 9], [9, 0, 9], [-9, 0, 9]], texture=tex, semantic_id=3))
    cam = PinholeCamera(200, 150, 180.0, 180.0, 99.5, 74.5)
    # camera at the origin looking along +z (world = camera frame); the far wall fills the upper half (y < 0)
    f = render_camera(world, cam, SE3.identity(), background=(10, 20, 30))
    corners = np.array([[x, y, z] for x in (-0.2, 0.8) for y in (-0.6, 0.2) for z in (3.7, 4.3)])
    uv, _ = cam.project(corners)
    front = uv[corners[:, 2] == 3.7]  # the face at z = 3.7 is fronto-parallel
    u0, v0 = front.min(axis=0)
    u1, v1 = front.max(axis=0)
    uu, vv = np.meshgrid(np.arange(200), np.arange(150))
    inside = (uu > u0 + 1) & (uu < u1 - 1) & (vv > v0 + 1) & (vv < v1 - 1)
    assert inside.sum() > 1000
    assert (f.instance[inside] == 1).all() and (f.semantic[inside] == 5).all()
    np.testing.assert_allclose(f.depth[inside], 3.7, rtol=1e-6)  # depth is z, not the ray length
    # the silhouette is the convex hull of all projected corners
    hull = cv2.convexHull(uv.astype(np.float32))
    dist = np.array(
        [cv2.pointPolygonTest(hull, (float(x), float(y)), True) for x, y in zip(uu.ravel(), vv.ravel(), strict=True)]
    )
    dist = dist.reshape(150, 200)
    assert (f.instance[dist > 1.0] == 1).all()
    outside = dist < -1.0
    assert not (f.instance[outside] == 1).any()
    wall = outside & (f.instance == 2)
    np.testing.assert_array_equal(f.semantic[wall], 3)
    np.testing.assert_allclose(f.depth[wall], 9.0, rtol=1e-6)
    # the rest hits nothing: depth 0, ids 0, invalid, background colour
    sky = outside & ~wall
    assert sky.sum() > 1000
    assert (f.depth[sky] == 0).all() and (f.instance[sky] == 0).all() and (f.semantic[sky] == 0).all()
    np.testing.assert_array_equal(f.valid, f.instance > 0)
    far = sky & (dist < -3) & (vv > 78)
    assert far.sum() > 1000
    np.testing.assert_array_equal(f.rgb[far], np.tile([10, 20, 30], (far.sum(), 1)))
    assert f.depth.dtype == np.float32 and f.instance.dtype == np.uint16 and f.semantic.dtype == np.uint16


# ---------------------------------------------------------------------- 4. photometric controls
@pytest.fixture(scope="module")
def small_cam() -> PinholeCamera:
    return PinholeCamera(160, 120, 130.0, 130.0, 79.5, 59.5)


def test_exposure_and_white_balance(room, small_cam):
    base = render_camera(room, small_cam, POSE_A, exposure=0.5)
    half = render_camera(room, small_cam, POSE_A, exposure=0.25)
    lb, lh = srgb_decode_ref(base.rgb), srgb_decode_ref(half.rgb)
    sel = (lb > 0.05) & (lb < 0.95)
    assert sel.mean() > 0.5
    # halving the exposure halves the linear intensity (up to 8-bit quantisation)
    ratio = lh[sel] / lb[sel]
    assert abs(np.median(ratio) - 0.5) < 0.005
    assert np.abs(lh[sel] - 0.5 * lb[sel]).max() < 0.006
    wb = (1.3, 1.0, 0.6)
    bal = render_camera(room, small_cam, POSE_A, exposure=0.5, white_balance=wb)
    lw = srgb_decode_ref(bal.rgb)
    for c in range(3):
        s = sel[..., c] & (lb[..., c] * wb[c] < 0.95)
        assert abs(np.median(lw[..., c][s] / lb[..., c][s]) - wb[c]) < 0.01 * wb[c]
    # the colour pipeline's own sRGB curves agree with the reference
    x = np.arange(256)
    np.testing.assert_allclose(srgb_to_linear(x / 255.0), srgb_decode_ref(x), atol=1e-12)
    np.testing.assert_allclose(255 * linear_to_srgb(srgb_decode_ref(x)), x, atol=1e-9)


def test_noise_and_determinism(room, small_cam):
    clean = render_camera(room, small_cam, POSE_A)
    again = render_camera(room, small_cam, POSE_A)
    np.testing.assert_array_equal(clean.rgb, again.rgb)
    a = render_camera(room, small_cam, POSE_A, noise_std=4.0, rng=np.random.default_rng(11))
    b = render_camera(room, small_cam, POSE_A, noise_std=4.0, rng=np.random.default_rng(11))
    c = render_camera(room, small_cam, POSE_A, noise_std=4.0, rng=12)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert not np.array_equal(a.rgb, c.rgb)
    np.testing.assert_array_equal(a.depth, clean.depth)
    mid = (clean.rgb > 20) & (clean.rgb < 235)  # away from clipping
    diff = a.rgb.astype(float)[mid] - clean.rgb.astype(float)[mid]
    # rounding both images adds at most 1/6 DN^2 of variance
    assert 3.9 < diff.std() < np.sqrt(16 + 1 / 6) + 0.1
    assert abs(diff.mean()) < 0.1


# ---------------------------------------------------------------------- texture sampling
def test_texels_reproduced_at_one_texel_per_pixel():
    """A fronto-parallel quad at one texel per pixel, lit only by ambient light 1: the image is the
    texture."""
    tex = T.random_texture(np.random.default_rng(7), (48, 64))
    f, Z = 80.0, 2.0
    cam = PinholeCamera(64, 48, f, f, 31.5, 23.5)
    w, h = 64 * Z / f, 48 * Z / f
    quad = quad_mesh([[-w / 2, -h / 2, Z], [w / 2, -h / 2, Z], [w / 2, h / 2, Z], [-w / 2, h / 2, Z]], tex, tiles=1)
    frame = render_camera(World([quad]), cam, SE3.identity(), light=Light(ambient=1.0, diffuse=0.0), supersample=1)
    assert np.abs(frame.rgb.astype(int) - tex.astype(int)).max() <= 1
    # shifted by a quarter texel to the right: bilinear interpolation of horizontal neighbours, in linear
    # light
    shifted = render_camera(
        World([quad]),
        cam,
        SE3(np.eye(3), [0.25 * Z / f, 0, 0]),
        light=Light(ambient=1.0, diffuse=0.0),
        supersample=1,
    )
    lin = srgb_decode_ref(tex)
    expect = 0.75 * lin + 0.25 * np.roll(lin, -1, axis=1)
    got = srgb_decode_ref(shifted.rgb)
    assert np.abs(got - expect).max() < 0.01


def test_minified_checkerboard_is_antialiased():
    """A one-texel checkerboard seen at ~3.3 texels per pixel must render as uniform mid-grey (linear 0.5),
    not as moire."""
    checker = (((np.arange(256)[:, None] + np.arange(256)[None, :]) % 2) * 255).astype(np.uint8)
    cam = PinholeCamera(80, 60, 100.0, 100.0, 39.5, 29.5)
    Z = 3.0
    tile = 256 / 3.3 * Z / 100.0  # metres covered by one copy of the texture: 3.3 texels per pixel
    R = so3_exp([0.0, 0.0, 0.3])  # not aligned with the pixel grid
    c = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]]) * 4.0
    quad = quad_mesh(c @ R.T + [0, 0, Z], checker, tile_size=tile)
    light = Light(ambient=1.0, diffuse=0.0)
    img = render_camera(World([quad]), cam, SE3.identity(), light=light).rgb[..., 0].astype(float)
    expect = 255 * linear_to_srgb(0.5)  # 187.5
    assert abs(img.mean() - expect) < 2.0
    assert img.std() < 3.0
    # mip-mapping alone (one sample per pixel) also filters it; point samples would be 0 or 255
    single = render_camera(World([quad]), cam, SE3.identity(), light=light, supersample=1).rgb[..., 0]
    assert abs(single.astype(float).mean() - expect) < 2.0
    assert single.astype(float).std() < 3.0


def test_lambertian_shading():
    """A grey quad: radiance = albedo * (ambient + diffuse * cos(angle to the light))."""
    tex = np.full((8, 8, 3), 200, np.uint8)
    quad = quad_mesh([[-1, -1, 2], [1, -1, 2], [1, 1, 2], [-1, 1, 2]], tex, tiles=1)  # front faces -z (camera)
    cam = PinholeCamera(40, 30, 40.0, 40.0, 19.5, 14.5)
    albedo = srgb_decode_ref(200)
    for direction, cosang in (((0, 0, -1), 1.0), ((0, 1, -1), np.sqrt(0.5)), ((0, 0, 1), 0.0)):
        img = render_camera(World([quad]), cam, SE3.identity(), light=Light(direction, ambient=0.3, diffuse=0.5))
        lin = srgb_decode_ref(img.rgb[img.valid])
        np.testing.assert_allclose(lin, albedo * (0.3 + 0.5 * cosang), atol=0.004)


def test_blinn_phong_highlights():
    """Glossy highlights on a grey quad facing the camera (normal -z): the headlight's follows the viewing angle,
    ``hs * cos(bearing)^n``; the directional light's peaks at the mirror direction of the light; a light behind the
    surface gives none, nor does a shadowed one (even without diffuse light)."""
    tex = np.full((8, 8, 3), 100, np.uint8)
    quad = quad_mesh([[-4, -4, 2], [4, -4, 2], [4, 4, 2], [-4, 4, 2]], tex, tiles=1)
    cam = PinholeCamera(80, 60, 40.0, 40.0, 39.5, 29.5)
    world = World([quad])
    albedo = srgb_decode_ref(100)
    f = render_camera(world, cam, SE3.identity(), light=Light(ambient=0.5, diffuse=0.0, headlight_specular=0.4,
                                                              shininess=8.0), supersample=1)  # fmt: skip
    v, u = np.nonzero(f.valid)
    cos_view = cam.unproject_bearing(np.stack([u, v], 1).astype(float))[:, 2]
    np.testing.assert_allclose(srgb_decode_ref(f.rgb[v, u, 1]), albedo * 0.5 + 0.4 * cos_view**8, atol=0.006)

    # the directional light's highlight: mirror direction b = l - 2 (n.l) n, at u = cx + f * b_x / b_z
    l_dir = np.array([0.3, 0.0, -1.0])
    lam = render_camera(world, cam, SE3.identity(), light=Light(l_dir, ambient=0.2, diffuse=0.5), supersample=1)
    glossy = render_camera(world, cam, SE3.identity(), supersample=1,
                           light=Light(l_dir, ambient=0.2, diffuse=0.5, specular=0.5, shininess=200.0))  # fmt: skip
    row = srgb_decode_ref(glossy.rgb[30, :, 1]) - srgb_decode_ref(lam.rgb[30, :, 1])
    assert abs(int(np.argmax(row)) - (39.5 + 40.0 * 0.3)) <= 1 and row.max() > 0.3 and row[:20].max() < 0.01
    behind = render_camera(world, cam, SE3.identity(), supersample=1,
                           light=Light((0.3, 0, 1), ambient=0.2, diffuse=0.5, specular=0.5))  # fmt: skip
    plain = render_camera(world, cam, SE3.identity(), light=Light((0.3, 0, 1), ambient=0.2, diffuse=0.5), supersample=1)
    np.testing.assert_array_equal(behind.rgb, plain.rgb)
    with pytest.raises(InputError, match="shininess"):
        Light(shininess=0.0)


def _box_on_ground(grey: int, light: Light, away_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small box on a grey ground plane seen obliquely: (linear red of the ground pixels, mask of those under the
    box, mask of those further than ``away_m`` from it)."""
    tex = np.full((8, 8, 3), grey, np.uint8)
    world = World()
    world.add(quad_mesh([[-3, 3, 0], [3, 3, 0], [3, -3, 0], [-3, -3, 0]], tex, tiles=1))
    world.add(box_mesh([0, 0, 1.0], [0.5, 0.5, 0.5], texture=tex, tile_size=1.0))
    cam = PinholeCamera(60, 60, 60.0, 60.0, 29.5, 29.5)
    pose = look_at([1.5, 0.2, 4.0], [0.0, 0.0, 0.0])
    f = render_camera(world, cam, pose, light=light, supersample=1)
    v, u = np.nonzero(f.instance == 1)
    b = cam.unproject_bearing(np.stack([u, v], 1).astype(float))
    p = pose.act(b * (f.depth[v, u] / b[:, 2])[:, None])  # ground points
    under = (np.abs(p[:, 0]) < 0.2) & (np.abs(p[:, 1]) < 0.2)
    away = np.hypot(p[:, 0], p[:, 1]) > away_m
    assert under.sum() > 5 and away.sum() > 100
    return srgb_decode_ref(f.rgb[v, u, 0]), under, away


def test_highlights_are_shadowed():
    """A glossy ground plane under a box, light and highlight from straight above: no highlight in the shadow,
    also when the light has no diffuse part (the shadow ray must still be cast)."""
    light = Light((0, 0, 1), ambient=0.2, diffuse=0.0, specular=0.5, shininess=1.0, shadows=True)
    lin, under, away = _box_on_ground(60, light, away_m=0.6)
    np.testing.assert_allclose(lin[under], srgb_decode_ref(60) * 0.2, atol=0.004)
    assert lin[away].min() > srgb_decode_ref(60) * 0.2 + 0.2  # lit ground carries the broad highlight


def test_shadows():
    """A small box on a ground plane, light from straight above: the ground under the box is in shadow."""
    lin, under, away = _box_on_ground(180, Light((0, 0, 1), ambient=0.2, diffuse=0.8, shadows=True), away_m=0.5)
    albedo = srgb_decode_ref(180)
    np.testing.assert_allclose(lin[under], albedo * 0.2, atol=0.004)
    np.testing.assert_allclose(lin[away], albedo * 1.0, atol=0.004)


def test_bad_arguments(room, small_cam):
    with pytest.raises(ValueError, match="supersample"):
        render_camera(room, small_cam, POSE_A, supersample=0)
    with pytest.raises(ValueError, match="white_balance"):
        render_camera(room, small_cam, POSE_A, white_balance=(1, 1))
    with pytest.raises(ValueError, match="T_world_cam"):
        render_camera(room, small_cam, np.eye(4))
    with pytest.raises(ValueError, match="direction"):
        Light((0, 0, 0))
