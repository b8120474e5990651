"""Thin, typed helpers that log numpy data to an explicit :class:`rerun.RecordingStream`.

Every function takes the recording first (from :func:`apps.viz.sink.open_recording`; a recording opened with
``off`` makes them no-ops after validating the inputs) and an entity path, and logs at the recording's current
time (:func:`set_time`) unless ``static=True``.

Conventions (see ``perception.geometry``): poses ``T_world_x`` are 4x4 matrices (or (N,4,4)) or any object
with a ``.matrix()`` method such as ``perception.geometry.SE3`` / ``Sim3``; they are logged as
``Transform3D`` with relation ParentFromChild (the entity's frame is ``x``, its parent's frame is
``world``). Camera frames are OpenCV's (x right, y down, z forward = Rerun's RDF). Pixel coordinates use the
OpenCV convention (pixel (0,0) is the centre of the first pixel); Rerun puts pixel centres at +0.5
(rerun-io/rerun#3896), so keypoints, match lines and the principal point are shifted by :data:`PIXEL_OFFSET`
when logged. Timelines: ``frame`` (sequence) and ``time`` (timestamp; int64 ns in, shown as date-time).
"""

from __future__ import annotations

import colorsys
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import rerun as rr
from scipy.spatial.transform import Rotation

from apps.viz.sink import is_off
from perception.errors import InputError

TIMELINE_FRAME = "frame"
TIMELINE_TIME = "time"
PIXEL_OFFSET = 0.5  # OpenCV pixel-centre coordinates -> Rerun image coordinates

COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
"""COCO-17 keypoint names, in COCO's order."""

COCO17_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 2), (1, 3), (2, 4),  # face
    (3, 5), (4, 6),  # ears to shoulders
    (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),  # shoulders, arms
    (5, 11), (6, 12), (11, 12),  # torso
    (11, 13), (13, 15), (12, 14), (14, 16),  # legs
)  # fmt: skip
"""The 19 limbs of COCO's ``skeleton`` field, 0-based."""

_AXIS_COLORS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
_WORLD_UP = {
    "+z": rr.ViewCoordinates.RIGHT_HAND_Z_UP,
    "+y": rr.ViewCoordinates.RIGHT_HAND_Y_UP,
    "-y": rr.ViewCoordinates.RIGHT_HAND_Y_DOWN,
    "-z": rr.ViewCoordinates.RIGHT_HAND_Z_DOWN,
}
# (rec -> {path: key}) so a static AnnotationContext is logged once per path and class table.
_ANNOTATIONS_LOGGED: weakref.WeakKeyDictionary[rr.RecordingStream, dict[str, Any]] = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------------------------------------------
# Input conversion


def _active(rec: rr.RecordingStream) -> bool:
    if not isinstance(rec, rr.RecordingStream):
        raise InputError(
            f"rec: expected a rerun.RecordingStream (apps.viz.sink.open_recording), got {type(rec).__name__}"
        )
    return not is_off(rec)


def as_pose_matrices(poses: Any, name: str = "poses") -> np.ndarray:
    """Poses as float64 (N,4,4): (4,4)/(N,4,4)/(N,3,4) arrays, objects with ``.matrix()``, or lists of those.

    Checks that each is a rigid or similarity transform (bottom row 0 0 0 1, rotation part s*R with s > 0).
    """

    def unwrap(p: Any) -> Any:
        m = getattr(p, "matrix", None)
        if m is None or isinstance(p, np.ndarray):
            return p
        return m() if callable(m) else m

    if isinstance(poses, list | tuple) and poses and hasattr(poses[0], "matrix"):
        poses = np.concatenate([np.asarray(unwrap(p), dtype=np.float64).reshape(-1, 4, 4) for p in poses])
    T = np.asarray(unwrap(poses), dtype=np.float64)
    if T.ndim == 2:
        T = T[None]
    if T.ndim != 3 or T.shape[1:] not in ((4, 4), (3, 4)):
        raise InputError(f"{name}: expected (4,4), (N,4,4) or (N,3,4) pose matrices, got shape {T.shape}")
    if T.shape[1] == 3:
        bottom = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), (len(T), 1, 4))
        T = np.concatenate([T, bottom], axis=1)
    if not np.all(np.isfinite(T)):
        raise InputError(f"{name}: pose matrices contain NaN or inf")
    if not np.allclose(T[:, 3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise InputError(f"{name}: the bottom row of a pose matrix must be [0, 0, 0, 1]")
    return T


def _decompose(T: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(t (N,3), q_xyzw (N,4) with qw >= 0, R (N,3,3), scale (N,)) of (N,4,4) rigid/similarity transforms."""
    A = T[:, :3, :3]
    det = np.linalg.det(A)
    if np.any(det <= 0):
        raise InputError(f"{name}: rotation part has det <= 0 (a reflection or degenerate matrix)")
    s = np.cbrt(det)
    R = A / s[:, None, None]
    err = np.abs(np.einsum("nji,njk->nik", R, R) - np.eye(3)).max() if len(R) else 0.0
    if err > 1e-4:
        raise InputError(f"{name}: rotation part is not a (scaled) rotation matrix (|R^T R - I| = {err:.2g})")
    q = Rotation.from_matrix(R).as_quat(canonical=True) if len(R) else np.zeros((0, 4))
    return T[:, :3, 3].copy(), q, R, s


def _array(x: Any, name: str, shape_tail: tuple[int, ...], n: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 + len(shape_tail) or a.shape[1:] != shape_tail or (n is not None and len(a) != n):
        want = ("N" if n is None else str(n),) + tuple(str(d) for d in shape_tail)
        raise InputError(f"{name}: expected shape ({', '.join(want)}), got {a.shape}")
    return a


def _colors(colors: Any, n: int, name: str = "colors") -> np.ndarray | None:
    """None, one colour (3,)/(4,) or per-item (n,3)/(n,4); floats in [0,1] or ints in [0,255] -> uint8."""
    if colors is None:
        return None
    c = np.asarray(colors)
    if c.ndim == 1:
        c = c[None]
    if c.ndim != 2 or c.shape[1] not in (3, 4) or len(c) not in (1, n):
        raise InputError(f"{name}: expected one RGB(A) colour or {n} of them, got shape {c.shape}")
    if np.issubdtype(c.dtype, np.floating):
        if not np.all(np.isfinite(c)) or c.min() < 0 or c.max() > 1:
            raise InputError(f"{name}: float colours must lie in [0, 1]")
        return np.round(c * 255).astype(np.uint8)
    if not np.issubdtype(c.dtype, np.integer) or c.min(initial=0) < 0 or c.max(initial=0) > 255:
        raise InputError(f"{name}: integer colours must lie in [0, 255]")
    return c.astype(np.uint8)


def _radii(radii: Any, n: int, name: str = "radii") -> np.ndarray | None:
    if radii is None:
        return None
    r = np.atleast_1d(np.asarray(radii, dtype=np.float32))
    if r.ndim != 1 or len(r) not in (1, n):
        raise InputError(f"{name}: expected a scalar or {n} values, got shape {r.shape}")
    return r


def _labels(labels: Sequence[str] | None, n: int, name: str = "labels") -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        labels = [labels]
    out = [str(x) for x in labels]
    if len(out) not in (1, n):
        raise InputError(f"{name}: expected 1 or {n} labels, got {len(out)}")
    return out


def _int_array(x: Any, name: str, ndim: int | tuple[int, ...]) -> np.ndarray:
    a = np.asarray(x)
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if a.ndim not in ndims or not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool or a.size == 0):
        raise InputError(f"{name}: expected an integer array with ndim in {ndims}, got {a.dtype} {a.shape}")
    return a.astype(np.int64)


def default_palette(n: int) -> np.ndarray:
    """``n`` well-separated RGB colours (uint8), deterministic (golden-ratio hue steps)."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    rgb = [colorsys.hsv_to_rgb(h, 0.75 if i % 2 else 0.95, 0.95) for i, h in enumerate(hues)]
    return np.round(np.array(rgb, dtype=np.float64).reshape(n, 3) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------
# Time


def set_time(rec: rr.RecordingStream, frame: int | None = None, stamp_ns: int | None = None) -> None:
    """Set the ``frame`` (sequence) and/or ``time`` (timestamp from int64 ns, kept exact) timelines."""
    if frame is None and stamp_ns is None:
        raise InputError("set_time: give frame and/or stamp_ns")
    if frame is not None and (not isinstance(frame, int | np.integer) or isinstance(frame, bool)):
        raise InputError(f"set_time: frame must be an int, got {type(frame).__name__}")
    if stamp_ns is not None and (not isinstance(stamp_ns, int | np.integer) or isinstance(stamp_ns, bool)):
        raise InputError(f"set_time: stamp_ns must be int nanoseconds, got {type(stamp_ns).__name__}")
    if not _active(rec):
        return
    if frame is not None:
        rec.set_time(TIMELINE_FRAME, sequence=int(frame))
    if stamp_ns is not None:
        rec.set_time(TIMELINE_TIME, timestamp=np.datetime64(int(stamp_ns), "ns"))


def log_world(rec: rr.RecordingStream, path: str = "world", up: str = "+z") -> None:
    """Log the world's up axis (static ``ViewCoordinates``): "+z" (robotics), "-y" (OpenCV/COLMAP), ..."""
    if up not in _WORLD_UP:
        raise InputError(f"log_world: up must be one of {sorted(_WORLD_UP)}, got {up!r}")
    if _active(rec):
        rec.log(path, _WORLD_UP[up], static=True)


# ----------------------------------------------------------------------------------------------------
# Poses, trajectories, cameras


def _transform(t: np.ndarray, q: np.ndarray, s: float) -> rr.Transform3D:
    return rr.Transform3D(
        translation=t,
        quaternion=rr.Quaternion(xyzw=q),
        scale=float(s),
        relation=rr.TransformRelation.ParentFromChild,
    )


def log_pose(
    rec: rr.RecordingStream,
    path: str,
    T_world_x: Any,
    *,
    axis_length: float | None = None,
    static: bool = False,
) -> None:
    """Log one pose as ``Transform3D`` (ParentFromChild, quaternion xyzw; a Sim3's scale as ``scale``).

    ``axis_length`` also draws the frame's axes (``TransformAxes3D``).
    """
    T = as_pose_matrices(T_world_x, "T_world_x")
    if len(T) != 1:
        raise InputError(f"log_pose: T_world_x must be a single pose, got {len(T)}")
    t, q, _, s = _decompose(T, "T_world_x")
    if not _active(rec):
        return
    rec.log(path, _transform(t[0], q[0], s[0]), static=static)
    if axis_length is not None:
        rec.log(path, rr.TransformAxes3D(float(axis_length)), static=static)


def log_trajectory(
    rec: rr.RecordingStream,
    path: str,
    stamps_ns: Any | None,
    poses: Any,
    color: Any = (255, 160, 0),
    *,
    radius: float | None = None,
    axes_every: int = 0,
    axis_length: float = 0.1,
    static: bool = False,
) -> None:
    """Log a trajectory: its positions as one ``LineStrips3D`` at ``path``.

    ``axes_every=k`` adds the axes of every k-th pose (``Arrows3D`` at ``path/axes``, x red, y green,
    z blue). With ``stamps_ns`` (N int64 ns) the poses are also sent as a ``Transform3D`` column on the
    ``time`` timeline at ``path/pose`` (with ``TransformAxes3D``): the current pose follows the time cursor.
    """
    T = as_pose_matrices(poses)
    n = len(T)
    if n == 0:
        raise InputError("log_trajectory: poses is empty")
    t, q, R, s = _decompose(T, "poses")
    col = _colors(color, 1, "color")
    if axes_every < 0:
        raise InputError(f"log_trajectory: axes_every must be >= 0, got {axes_every}")
    stamps = None
    if stamps_ns is not None:
        stamps = _int_array(stamps_ns, "stamps_ns", 1)
        if len(stamps) != n:
            raise InputError(f"log_trajectory: {len(stamps)} stamps_ns for {n} poses")
    if not _active(rec):
        return
    rec.log(path, rr.LineStrips3D([t], colors=col, radii=_radii(radius, 1, "radius")), static=static)
    if axes_every > 0:
        idx = np.arange(0, n, axes_every)
        vectors = np.swapaxes(R[idx], 1, 2).reshape(-1, 3) * axis_length  # rows: x, y, z axis of each pose
        origins = np.repeat(t[idx], 3, axis=0)
        colors = np.tile(_AXIS_COLORS, (len(idx), 1))
        rec.log(f"{path}/axes", rr.Arrows3D(origins=origins, vectors=vectors, colors=colors), static=static)
    if stamps is not None:
        columns = rr.Transform3D.columns(
            translation=t,
            quaternion=q,
            scale=np.repeat(s[:, None], 3, axis=1),
            relation=[rr.TransformRelation.ParentFromChild] * n,
        )
        rec.send_columns(
            f"{path}/pose",
            indexes=[rr.TimeColumn(TIMELINE_TIME, timestamp=stamps.astype("datetime64[ns]"))],
            columns=columns,
        )
        rec.log(f"{path}/pose", rr.TransformAxes3D(float(axis_length)), static=True)


def _intrinsics(camera: Any, width: int | None, height: int | None) -> tuple[np.ndarray, int | None, int | None]:
    if hasattr(camera, "K"):
        K = camera.K() if callable(camera.K) else camera.K
        width = width if width is not None else getattr(camera, "width", None)
        height = height if height is not None else getattr(camera, "height", None)
    else:
        K = camera
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise InputError(f"camera: expected a 3x3 K matrix or an object with .K, got shape {K.shape}")
    if not np.allclose(K[2], [0.0, 0.0, 1.0]) or K[1, 0] != 0 or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError("camera: K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0")
    return K, width, height


def log_camera(
    rec: rr.RecordingStream,
    path: str,
    T_world_cam: Any,
    camera: Any,
    width: int | None = None,
    height: int | None = None,
    image: np.ndarray | None = None,
    *,
    image_plane_distance: float | None = None,
    static: bool = False,
) -> None:
    """Log a camera: ``Transform3D`` + ``Pinhole`` (camera_xyz RDF) at ``path``, the image at ``path/image``.

    ``camera`` is a 3x3 K (OpenCV pixel-centre convention) or an object with ``.K``, ``.width``, ``.height``
    (``perception.camera`` models). ``width``/``height`` default to the model's, then to the image's size.
    """
    K, width, height = _intrinsics(camera, width, height)
    img = None
    if image is not None:
        img = np.asarray(image)
        if img.ndim not in (2, 3):
            raise InputError(f"log_camera: image must be HxW or HxWxC, got shape {img.shape}")
        width = img.shape[1] if width is None else width
        height = img.shape[0] if height is None else height
        if (img.shape[1], img.shape[0]) != (width, height):
            raise InputError(f"log_camera: image is {img.shape[1]}x{img.shape[0]}, camera is {width}x{height}")
    if width is None or height is None or int(width) <= 0 or int(height) <= 0:
        raise InputError("log_camera: width and height (> 0) are needed when the camera has none and no image")
    T = as_pose_matrices(T_world_cam, "T_world_cam")
    if len(T) != 1:
        raise InputError(f"log_camera: T_world_cam must be a single pose, got {len(T)}")
    t, q, _, s = _decompose(T, "T_world_cam")
    if not _active(rec):
        return
    K_rr = K.copy()
    K_rr[0, 2] += PIXEL_OFFSET
    K_rr[1, 2] += PIXEL_OFFSET
    rec.log(path, _transform(t[0], q[0], s[0]), static=static)
    rec.log(
        path,
        rr.Pinhole(
            image_from_camera=K_rr,
            resolution=[int(width), int(height)],
            camera_xyz=rr.ViewCoordinates.RDF,
            image_plane_distance=image_plane_distance,
        ),
        static=static,
    )
    if img is not None:
        log_image(rec, f"{path}/image", img, static=static)


# ----------------------------------------------------------------------------------------------------
# Images


def _image_array(image: Any, name: str) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)) or img.size == 0:
        raise InputError(f"{name}: expected an HxW, HxWx3 or HxWx4 image, got shape {img.shape}")
    if img.dtype == np.float64:
        img = img.astype(np.float32)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    return img


def log_image(
    rec: rr.RecordingStream,
    path: str,
    image: np.ndarray,
    *,
    bgr: bool = False,
    jpeg_quality: int | None = None,
    static: bool = False,
) -> None:
    """Log an image (HxW grey, HxWx3 RGB, HxWx4 RGBA; ``bgr=True`` for OpenCV's order).

    ``jpeg_quality`` (uint8 images only) JPEG-compresses it to keep recordings small.
    """
    img = _image_array(image, "image")
    if img.ndim == 2:
        model = "L"
    else:
        model = ("BGR" if bgr else "RGB") + ("A" if img.shape[2] == 4 else "")
    if jpeg_quality is not None and (img.dtype != np.uint8 or not 1 <= jpeg_quality <= 100):
        raise InputError("log_image: jpeg_quality (1..100) needs a uint8 image")
    if not _active(rec):
        return
    archetype: Any = rr.Image(img, color_model=model)
    if jpeg_quality is not None:
        archetype = archetype.compress(jpeg_quality=int(jpeg_quality))
    rec.log(path, archetype, static=static)


def log_depth(rec: rr.RecordingStream, path: str, depth_m: np.ndarray, *, static: bool = False) -> None:
    """Log a depth map in metres as ``DepthImage`` (meter=1); NaN, inf and values <= 0 become 0 (no data)."""
    d = np.asarray(depth_m)
    if d.ndim != 2 or d.size == 0 or not np.issubdtype(d.dtype, np.floating):
        raise InputError(
            f"log_depth: depth_m must be an HxW float array in metres (convert mm with /1000), got {d.dtype} {d.shape}"
        )
    if not _active(rec):
        return
    d = d.astype(np.float32)
    d = np.where(np.isfinite(d) & (d > 0), d, np.float32(0.0))
    rec.log(path, rr.DepthImage(d, meter=1.0), static=static)


def log_keypoints(
    rec: rr.RecordingStream,
    path: str,
    uv: Any,
    colors: Any = None,
    *,
    radii: Any = None,
    labels: Sequence[str] | None = None,
    static: bool = False,
) -> None:
    """Log (N,2) pixel keypoints (OpenCV convention) as ``Points2D``."""
    p = _array(uv, "uv", (2,))
    n = len(p)
    c, r, lab = _colors(colors, n), _radii(radii, n), _labels(labels, n)
    if not _active(rec):
        return
    rec.log(path, rr.Points2D(p + PIXEL_OFFSET, colors=c, radii=r, labels=lab), static=static)


def side_by_side(image0: np.ndarray, image1: np.ndarray) -> tuple[np.ndarray, int]:
    """Put two images side by side (top-aligned, zero padded); returns (canvas, x offset of image1)."""
    a, b = _image_array(image0, "image0"), _image_array(image1, "image1")
    if a.dtype != b.dtype:
        raise InputError(f"side_by_side: images have different dtypes {a.dtype} and {b.dtype}")
    channels = max(x.shape[2] if x.ndim == 3 else 1 for x in (a, b))

    def to_channels(x: np.ndarray) -> np.ndarray:
        if channels == 1:
            return x
        if x.ndim == 2:
            x = np.repeat(x[:, :, None], 3, axis=2)
        if x.shape[2] < channels:  # add an opaque alpha channel
            alpha = np.full(x.shape[:2] + (1,), 255 if x.dtype == np.uint8 else 1, dtype=x.dtype)
            x = np.concatenate([x, alpha], axis=2)
        return x

    a, b = to_channels(a), to_channels(b)
    h = max(a.shape[0], b.shape[0])
    canvas = np.zeros((h, a.shape[1] + b.shape[1]) + a.shape[2:], dtype=a.dtype)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] :] = b
    return canvas, int(a.shape[1])


def log_matches(
    rec: rr.RecordingStream,
    path: str,
    uv0: Any,
    uv1: Any,
    offset_x: float,
    *,
    colors: Any = None,
    radius: float | None = None,
    image: np.ndarray | None = None,
    static: bool = False,
) -> None:
    """Log N matches as ``LineStrips2D`` at ``path`` from ``uv0`` to ``uv1 + (offset_x, 0)``.

    Meant to be drawn over a side-by-side image (:func:`side_by_side`); pass it as ``image`` to log it at
    ``path/image``, so a 2D view on ``path`` shows both.
    """
    a = _array(uv0, "uv0", (2,))
    b = _array(uv1, "uv1", (2,), len(a))
    n = len(a)
    c = _colors(colors, n)
    r = _radii(radius, 1, "radius")
    if not _active(rec):
        return
    strips = np.stack([a, b + np.array([float(offset_x), 0.0])], axis=1) + PIXEL_OFFSET
    rec.log(path, rr.LineStrips2D(strips, colors=c, radii=r, draw_order=10.0), static=static)
    if image is not None:
        log_image(rec, f"{path}/image", image, static=static)


# ----------------------------------------------------------------------------------------------------
# 3D primitives


def log_points(
    rec: rr.RecordingStream,
    path: str,
    xyz: Any,
    colors: Any = None,
    radii: Any = None,
    *,
    labels: Sequence[str] | None = None,
    class_ids: Any = None,
    static: bool = False,
) -> None:
    """Log an (N,3) point cloud as ``Points3D``."""
    p = _array(xyz, "xyz", (3,))
    n = len(p)
    c, r, lab = _colors(colors, n), _radii(radii, n), _labels(labels, n)
    ids = None if class_ids is None else _int_array(class_ids, "class_ids", 1)
    if ids is not None and len(ids) != n:
        raise InputError(f"log_points: {len(ids)} class_ids for {n} points")
    if not _active(rec):
        return
    rec.log(path, rr.Points3D(p, colors=c, radii=r, labels=lab, class_ids=ids), static=static)


def log_lines3d(
    rec: rr.RecordingStream,
    path: str,
    starts: Any,
    ends: Any,
    *,
    colors: Any = None,
    radius: float | None = None,
    static: bool = False,
) -> None:
    """Log N 3D segments ``starts[i] -> ends[i]`` as ``LineStrips3D`` (e.g. a camera's 2D-3D matches)."""
    a = _array(starts, "starts", (3,))
    b = _array(ends, "ends", (3,), len(a))
    c = _colors(colors, len(a))
    r = _radii(radius, 1, "radius")
    if not _active(rec):
        return
    rec.log(path, rr.LineStrips3D(np.stack([a, b], axis=1), colors=c, radii=r), static=static)


def log_skeleton(
    rec: rr.RecordingStream,
    path: str,
    joints: Any,
    edges: Sequence[tuple[int, int]] = COCO17_EDGES,
    labels: Sequence[str] | None = None,
    *,
    color: Any = (0, 200, 255),
    radius: float | None = None,
    static: bool = False,
) -> None:
    """Log a skeleton: joints (J,3) (or (J,2) pixels) at ``path/joints`` and bones at ``path/bones``.

    Joints with NaN coordinates are missing: they and their bones are left out (``keypoint_ids`` keep the
    joint index). ``edges`` default to :data:`COCO17_EDGES`; ``labels`` e.g. :data:`COCO17_NAMES`.
    """
    J = np.asarray(joints, dtype=np.float64)
    if J.ndim != 2 or J.shape[1] not in (2, 3):
        raise InputError(f"log_skeleton: joints must be (J,3) or (J,2), got shape {J.shape}")
    nj = len(J)
    E = np.asarray(edges)
    if E.size == 0:
        E = np.zeros((0, 2), np.int64)
    elif E.ndim != 2 or E.shape[1] != 2 or not np.issubdtype(E.dtype, np.integer):
        raise InputError(f"log_skeleton: edges must be (E,2) joint index pairs, got {E.dtype} {E.shape}")
    E = E.astype(np.int64)
    if E.size and (E.min() < 0 or E.max() >= nj):
        raise InputError(f"log_skeleton: edges index joints 0..{nj - 1}, got {E.min()}..{E.max()}")
    lab = _labels(labels, nj)
    if lab is not None and len(lab) != nj:
        raise InputError(f"log_skeleton: {len(lab)} labels for {nj} joints")
    col = _colors(color, 1, "color")
    if not _active(rec):
        return
    valid = np.all(np.isfinite(J), axis=1)
    ids = np.flatnonzero(valid)
    keep = valid[E[:, 0]] & valid[E[:, 1]] if len(E) else np.zeros(0, bool)
    bones = J[E[keep]]  # (B, 2, D)
    jl = None if lab is None else [lab[i] for i in ids]
    r = _radii(radius, 1, "radius")
    if J.shape[1] == 3:
        rec.log(f"{path}/joints", rr.Points3D(J[valid], keypoint_ids=ids, labels=jl, colors=col, radii=r),
                static=static)  # fmt: skip
        rec.log(f"{path}/bones", rr.LineStrips3D(bones, colors=col, radii=r), static=static)
    else:
        P = J + PIXEL_OFFSET
        rec.log(f"{path}/joints", rr.Points2D(P[valid], keypoint_ids=ids, labels=jl, colors=col, radii=r),
                static=static)  # fmt: skip
        rec.log(f"{path}/bones", rr.LineStrips2D(P[E[keep]], colors=col, radii=r), static=static)


def _annotation_context(rec: rr.RecordingStream, path: str, names: list[str], colors: np.ndarray, extra: bool) -> None:
    key = (tuple(names), colors.tobytes(), extra)
    logged = _ANNOTATIONS_LOGGED.setdefault(rec, {})
    if logged.get(path) == key:
        return
    infos = [rr.AnnotationInfo(id=i, label=nm, color=colors[i]) for i, nm in enumerate(names)]
    if extra:  # the ignore label: transparent
        infos.append(rr.AnnotationInfo(id=len(names), label="ignore", color=[0, 0, 0, 0]))
    rec.log(path, rr.AnnotationContext(infos), static=True)
    logged[path] = key


def log_segmentation(
    rec: rr.RecordingStream,
    path: str,
    labels: Any,
    class_names: Sequence[str],
    colors: Any = None,
    *,
    xyz: Any = None,
    radii: Any = None,
    ignore_label: int | None = None,
    static: bool = False,
) -> None:
    """Log semantic labels with a class table (``AnnotationContext``, logged static once per path).

    ``labels`` (N,) per point needs ``xyz`` (N,3) -> ``Points3D`` with class_ids; ``labels`` (H,W) ->
    ``SegmentationImage``. Labels must lie in [0, len(class_names)); ``ignore_label`` marks unlabelled items
    (points dropped, pixels transparent). ``colors`` (K,3) default to :func:`default_palette`.
    """
    names = [str(x) for x in class_names]
    k = len(names)
    if k == 0:
        raise InputError("log_segmentation: class_names is empty")
    pal = default_palette(k) if colors is None else _colors(colors, k, "colors")
    if pal is None or len(pal) != k:
        raise InputError(f"log_segmentation: expected {k} colours (one per class)")
    lab = _int_array(labels, "labels", (1, 2))
    ignore = np.zeros(lab.shape, bool) if ignore_label is None else lab == ignore_label
    bad = ~ignore & ((lab < 0) | (lab >= k))
    if bad.any():
        raise InputError(f"log_segmentation: labels must lie in [0, {k}) (or equal ignore_label), got {lab[bad][0]}")
    if lab.ndim == 1:
        if xyz is None:
            raise InputError("log_segmentation: per-point labels need xyz (N,3)")
        p = _array(xyz, "xyz", (3,), len(lab))
        r = _radii(radii, len(lab))
        if not _active(rec):
            return
        _annotation_context(rec, path, names, pal, False)
        keep = ~ignore
        r = r if r is None or len(r) == 1 else r[keep]
        rec.log(path, rr.Points3D(p[keep], class_ids=lab[keep], radii=r), static=static)
    else:
        if xyz is not None:
            raise InputError("log_segmentation: xyz is only for per-point labels, not for a label image")
        if not _active(rec):
            return
        _annotation_context(rec, path, names, pal, ignore_label is not None)
        img = np.where(ignore, k, lab).astype(np.uint16)
        rec.log(path, rr.SegmentationImage(img), static=static)


def log_boxes3d(
    rec: rr.RecordingStream,
    path: str,
    centers: Any,
    sizes: Any,
    yaws: Any = None,
    labels: Sequence[str] | None = None,
    *,
    colors: Any = None,
    class_ids: Any = None,
    static: bool = False,
) -> None:
    """Log N boxes as ``Boxes3D``: centres (N,3), full sizes (N,3) (dx, dy, dz), yaw (rad) about +z."""
    c = _array(centers, "centers", (3,))
    n = len(c)
    sz = _array(sizes, "sizes", (3,), n)
    if np.any(sz < 0):
        raise InputError("log_boxes3d: sizes must be >= 0")
    yaw = np.zeros(n) if yaws is None else np.asarray(yaws, dtype=np.float64).reshape(-1)
    if len(yaw) != n:
        raise InputError(f"log_boxes3d: {len(yaw)} yaws for {n} boxes")
    col, lab = _colors(colors, n), _labels(labels, n)
    ids = None if class_ids is None else _int_array(class_ids, "class_ids", 1)
    if not _active(rec):
        return
    q = np.zeros((n, 4))
    q[:, 2] = np.sin(yaw / 2)
    q[:, 3] = np.cos(yaw / 2)
    rec.log(
        path,
        rr.Boxes3D(centers=c, sizes=sz, quaternions=q, colors=col, labels=lab, class_ids=ids),
        static=static,
    )


def log_scalars(rec: rr.RecordingStream, path: str, value: Any, *, static: bool = False) -> None:
    """Log one scalar (or a 1-D batch, one series each) as ``Scalars`` at the current time."""
    v = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if v.ndim != 1:
        raise InputError(f"log_scalars: value must be a scalar or 1-D, got shape {v.shape}")
    if _active(rec):
        rec.log(path, rr.Scalars(v), static=static)
