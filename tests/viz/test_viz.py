"""apps.viz: every log function round-trips through an .rrd read back with rerun's own reader; sink specs,
fallbacks (no hang), the atomic save, `off`, `serve` on 127.0.0.1, and the per-pipeline blueprints."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import rerun as rr
import rerun.blueprint as rrb
from rerun.chunk import RrdReader
from scipy.spatial.transform import Rotation

from apps.viz import (
    COCO17_EDGES,
    COCO17_NAMES,
    PIPELINES,
    VIEWS_2D,
    RerunSpec,
    add_rerun_argument,
    as_pose_matrices,
    blueprint_for,
    close_recording,
    is_off,
    log_boxes3d,
    log_camera,
    log_depth,
    log_image,
    log_keypoints,
    log_matches,
    log_points,
    log_pose,
    log_scalars,
    log_segmentation,
    log_skeleton,
    log_trajectory,
    log_world,
    open_recording,
    parse_rerun_spec,
    recording,
    set_time,
    side_by_side,
    sink_of,
)
from apps.viz.sink import free_port, port_open, server_of, viewer_executable
from perception.geometry import SE3, Sim3

F32 = 1e-6  # rerun stores positions, quaternions and matrices as float32


# -- read-back


def _chunks(path: Path, entity: str) -> list[dict]:
    """All rows logged at `entity` (static and temporal), as dicts column -> value."""
    rows = []
    for chunk in RrdReader(path).stream().to_chunks():
        if chunk.entity_path == entity:
            rb = chunk.to_record_batch()
            cols = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in rb.columns]
            rows.extend(pa.RecordBatch.from_arrays(cols, names=rb.schema.names).to_pylist())
    return rows


def _values(path: Path, entity: str, column: str) -> list:
    return [r[column] for r in _chunks(path, entity) if r.get(column) is not None]


def _rgba(c) -> int:
    r, g, b, a = (int(x) for x in c)
    return (r << 24) | (g << 16) | (b << 8) | a


def _pose(q_xyzw, t, scale: float = 1.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = scale * Rotation.from_quat(q_xyzw).as_matrix()
    T[:3, 3] = t
    return T


def _same_quat(a, b) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bool(np.allclose(a, b, atol=F32) or np.allclose(a, -b, atol=F32))


# -- round trip


def test_every_log_function_round_trips(tmp_path: Path, rng: np.random.Generator) -> None:
    rrd = tmp_path / "out" / "run.rrd"
    stamp0 = 1_400_000_000_123_456_789  # needs exact int64 handling (float seconds would lose the ns)
    q = np.array([0.1, -0.2, 0.3, 0.9])
    q /= np.linalg.norm(q)
    t = np.array([1.0, -2.0, 0.5])
    q_sim = Rotation.from_rotvec([0.0, 0.4, 0.0]).as_quat()
    n_traj = 6
    rots = Rotation.random(n_traj, random_state=3)
    traj = np.tile(np.eye(4), (n_traj, 1, 1))
    traj[:, :3, :3] = rots.as_matrix()
    traj[:, :3, 3] = np.cumsum(rng.normal(size=(n_traj, 3)), axis=0)
    stamps = stamp0 + np.arange(n_traj, dtype=np.int64) * 50_000_000
    K = np.array([[500.0, 0.0, 319.5], [0.0, 480.0, 239.5], [0.0, 0.0, 1.0]])
    img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 4.0, (48, 64))
    depth[0, 0], depth[1, 1], depth[2, 2] = np.nan, np.inf, -1.0
    uv = rng.uniform(0, 60, (7, 2))
    uv0, uv1 = rng.uniform(0, 40, (5, 2)), rng.uniform(0, 25, (5, 2))
    xyz = rng.normal(size=(50, 3))
    colors = rng.uniform(0, 1, (50, 3))
    joints = rng.normal(size=(17, 3))
    joints[4] = np.nan  # right_ear missing
    seg_labels = rng.integers(0, 3, 40)
    seg_xyz = rng.normal(size=(40, 3))
    seg_img = rng.integers(0, 3, (12, 16))
    yaws = np.array([0.0, 0.7, -2.0])
    centers, sizes = rng.normal(size=(3, 3)), rng.uniform(0.5, 4.0, (3, 3))

    class Cam:  # duck-typed camera model: .K, .width, .height
        def __init__(self) -> None:
            self.K, self.width, self.height = K, 640, 480

    with recording("viz_test", f"save:{rrd}", blueprint_for("demo")) as rec:
        assert isinstance(rec, rr.RecordingStream) and rec is not rr.get_global_data_recording()
        assert not rrd.exists() and rrd.with_name("run.rrd.partial").exists()  # atomic: final name on close
        log_world(rec)
        set_time(rec, frame=7, stamp_ns=stamp0)
        log_pose(rec, "world/pose_np", _pose(q, t), axis_length=0.3)
        log_pose(rec, "world/pose_se3", SE3.from_quat_t(q, t))
        log_pose(rec, "world/pose_sim3", Sim3(2.0, Rotation.from_quat(q_sim).as_matrix(), t))
        log_trajectory(rec, "world/traj", stamps, traj, (255, 0, 0), axes_every=2, axis_length=0.5)
        log_camera(rec, "world/camera", _pose(q, t), K, 640, 480)
        log_camera(rec, "world/cam_model", SE3.from_quat_t(q, t), Cam())
        log_camera(rec, "world/cam_img", np.eye(4), K / 10 + np.diag([0, 0, 0.9]), image=img)
        log_image(rec, "images/bgr", img, bgr=True)
        log_depth(rec, "world/camera/depth", depth)
        log_keypoints(rec, "world/camera/keypoints", uv, colors=(0, 255, 0))
        canvas, off = side_by_side(img, img[:30, :50])
        log_matches(rec, "matches", uv0, uv1, off, image=canvas)
        log_points(rec, "world/points", xyz, colors, 0.02)
        log_skeleton(rec, "world/person", joints, COCO17_EDGES, COCO17_NAMES)
        log_segmentation(rec, "world/seg", seg_labels, ["floor", "wall", "chair"], xyz=seg_xyz)
        log_segmentation(rec, "world/seg", seg_labels, ["floor", "wall", "chair"], xyz=seg_xyz)  # ctx once
        log_segmentation(rec, "seg_image", seg_img, ["a", "b", "c"], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])
        log_boxes3d(rec, "world/boxes", centers, sizes, yaws, ["car", "van", "ped"])
        for i, v in enumerate([0.5, 0.25]):
            set_time(rec, frame=8 + i)
            log_scalars(rec, "metrics/loss", v)
        assert sink_of(rec) == RerunSpec("save", rrd)

    assert rrd.exists() and not rrd.with_name("run.rrd.partial").exists()
    reader = RrdReader(rrd)
    schema = reader.store().schema()
    assert set(schema.entity_paths()) >= {
        "/world", "/world/pose_np", "/world/pose_se3", "/world/pose_sim3", "/world/traj", "/world/traj/axes",
        "/world/traj/pose", "/world/camera", "/world/cam_model", "/world/cam_img", "/world/cam_img/image",
        "/images/bgr", "/world/camera/depth", "/world/camera/keypoints", "/matches", "/matches/image",
        "/world/points", "/world/person/joints", "/world/person/bones", "/world/seg", "/seg_image",
        "/world/boxes", "/metrics/loss",
    }  # fmt: skip
    assert {a.rsplit(".", 1)[-1] for a in schema.archetypes()} >= {
        "ViewCoordinates", "Transform3D", "TransformAxes3D", "LineStrips3D", "Arrows3D", "Pinhole", "Image",
        "DepthImage", "Points2D", "LineStrips2D", "Points3D", "AnnotationContext", "SegmentationImage",
        "Boxes3D", "Scalars",
    }  # fmt: skip
    assert [b.application_id for b in reader.blueprints()] == ["viz_test"]

    # timelines: frame sequence and exact nanosecond timestamps
    row = _chunks(rrd, "/world/pose_np")[0]
    assert row["frame"] == 7
    assert row["time"] == stamp0  # int64 ns

    # poses: numpy, SE3 and Sim3 give the same translation/quaternion (qw >= 0) as the reference
    for ent in ("/world/pose_np", "/world/pose_se3", "/world/camera", "/world/cam_model"):
        (tr,) = _values(rrd, ent, "Transform3D:translation")
        (qq,) = _values(rrd, ent, "Transform3D:quaternion")
        np.testing.assert_allclose(tr[0], t, atol=F32)
        assert _same_quat(qq[0], q) and qq[0][3] >= 0
        assert _values(rrd, ent, "Transform3D:relation") == [[1]]  # ParentFromChild
    (scale,) = _values(rrd, "/world/pose_sim3", "Transform3D:scale")
    (qs,) = _values(rrd, "/world/pose_sim3", "Transform3D:quaternion")
    np.testing.assert_allclose(scale[0], [2.0, 2.0, 2.0], atol=F32)
    assert _same_quat(qs[0], q_sim)
    assert _values(rrd, "/world/pose_np", "TransformAxes3D:axis_length") == [[pytest.approx(0.3)]]

    # trajectory: line through the positions, per-pose axes = rotated unit vectors, timed pose column
    (strips,) = _values(rrd, "/world/traj", "LineStrips3D:strips")
    np.testing.assert_allclose(np.array(strips[0]), traj[:, :3, 3], atol=1e-5)
    assert _values(rrd, "/world/traj", "LineStrips3D:colors") == [[_rgba((255, 0, 0, 255))]]
    (vec,) = _values(rrd, "/world/traj/axes", "Arrows3D:vectors")
    (org,) = _values(rrd, "/world/traj/axes", "Arrows3D:origins")
    expected_vec = np.concatenate([rots[i].apply(0.5 * np.eye(3)) for i in (0, 2, 4)])
    np.testing.assert_allclose(np.array(vec), expected_vec, atol=1e-5)
    np.testing.assert_allclose(np.array(org), np.repeat(traj[[0, 2, 4], :3, 3], 3, axis=0), atol=1e-5)
    timed = [r for r in _chunks(rrd, "/world/traj/pose") if r.get("Transform3D:translation") is not None]
    assert len(timed) == n_traj
    assert sorted(r["time"] for r in timed) == stamps.tolist()
    for r in timed:
        i = int(np.flatnonzero(stamps == r["time"])[0])
        np.testing.assert_allclose(r["Transform3D:translation"][0], traj[i, :3, 3], atol=1e-5)
        assert _same_quat(r["Transform3D:quaternion"][0], rots[i].as_quat(canonical=True))

    # pinhole: K in Rerun's pixel-corner convention (principal point + 0.5), RDF, resolution
    (kk,) = _values(rrd, "/world/camera", "Pinhole:image_from_camera")
    K_rr = np.array(kk[0]).reshape(3, 3).T  # stored column-major
    np.testing.assert_allclose(K_rr, K + np.array([[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]]), atol=1e-4)
    assert _values(rrd, "/world/camera", "Pinhole:resolution") == [[[640.0, 480.0]]]
    assert _values(rrd, "/world/cam_model", "Pinhole:resolution") == [[[640.0, 480.0]]]
    assert _values(rrd, "/world/cam_img", "Pinhole:resolution") == [[[64.0, 48.0]]]  # from the image
    # ViewDir codes: Up=1, Down=2, Right=3, Left=4, Forward=5, Back=6 -> RDF = [3, 2, 5]
    assert _values(rrd, "/world/camera", "Pinhole:camera_xyz") == [[[3, 2, 5]]]

    # images: pixels and colour model survive; depth has meter=1 and invalid values -> 0
    (buf,) = _values(rrd, "/world/cam_img/image", "Image:buffer")
    np.testing.assert_array_equal(np.array(buf[0], dtype=np.uint8).reshape(48, 64, 3), img)
    (fmt,) = _values(rrd, "/images/bgr", "Image:format")
    assert fmt[0]["color_model"] == rr.ColorModel.BGR.value
    (dbuf,) = _values(rrd, "/world/camera/depth", "DepthImage:buffer")
    d = np.frombuffer(bytes(dbuf[0]), dtype=np.float32).reshape(48, 64)
    ref = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
    np.testing.assert_array_equal(d, ref)
    assert _values(rrd, "/world/camera/depth", "DepthImage:meter") == [[1.0]]

    # 2D: keypoints and match lines at OpenCV pixel centre + 0.5; match image is the side-by-side canvas
    (kp,) = _values(rrd, "/world/camera/keypoints", "Points2D:positions")
    np.testing.assert_allclose(np.array(kp), uv + 0.5, atol=1e-4)
    assert off == 64 and canvas.shape == (48, 114, 3)
    np.testing.assert_array_equal(canvas[:30, 64:], img[:30, :50])
    assert not canvas[30:, 64:].any()
    (ml,) = _values(rrd, "/matches", "LineStrips2D:strips")
    ml = np.array(ml)
    np.testing.assert_allclose(ml[:, 0], uv0 + 0.5, atol=1e-4)
    np.testing.assert_allclose(ml[:, 1], uv1 + [off + 0.5, 0.5], atol=1e-4)

    # points: positions, float colours -> RGBA8, radii
    (pos,) = _values(rrd, "/world/points", "Points3D:positions")
    np.testing.assert_allclose(np.array(pos), xyz, atol=1e-6)
    (col,) = _values(rrd, "/world/points", "Points3D:colors")
    rgb8 = np.round(colors * 255).astype(int)
    assert col == [_rgba((*c, 255)) for c in rgb8]
    assert _values(rrd, "/world/points", "Points3D:radii") == [[pytest.approx(0.02)]]

    # skeleton: the missing joint and the 2 bones touching it are left out
    (kid,) = _values(rrd, "/world/person/joints", "Points3D:keypoint_ids")
    assert kid == [i for i in range(17) if i != 4]
    (jl,) = _values(rrd, "/world/person/joints", "Points3D:labels")
    assert jl == [n for i, n in enumerate(COCO17_NAMES) if i != 4]
    (bones,) = _values(rrd, "/world/person/bones", "LineStrips3D:strips")
    kept = [e for e in COCO17_EDGES if 4 not in e]
    assert len(bones) == len(kept) == 17
    np.testing.assert_allclose(np.array(bones), joints[np.array(kept)], atol=1e-6)

    # segmentation: class ids per point; the class table is static and logged once per path
    ctx = [r for r in _chunks(rrd, "/world/seg") if r.get("AnnotationContext:context") is not None]
    assert len(ctx) == 1
    table = ctx[0]["AnnotationContext:context"][0]
    assert [c["class_id"] for c in table] == [0, 1, 2]
    assert [c["class_description"]["info"]["label"] for c in table] == ["floor", "wall", "chair"]
    assert _values(rrd, "/world/seg", "Points3D:class_ids") == [seg_labels.tolist()] * 2
    (img_ctx,) = _values(rrd, "/seg_image", "AnnotationContext:context")
    assert [c["class_description"]["info"]["color"] for c in img_ctx[0]] == [
        _rgba((255, 0, 0, 255)), _rgba((0, 255, 0, 255)), _rgba((0, 0, 255, 255))]  # fmt: skip
    (sbuf,) = _values(rrd, "/seg_image", "SegmentationImage:buffer")
    np.testing.assert_array_equal(np.frombuffer(bytes(sbuf[0]), np.uint16).reshape(12, 16), seg_img)

    # boxes: half sizes and a rotation of `yaw` about +z
    (hs,) = _values(rrd, "/world/boxes", "Boxes3D:half_sizes")
    np.testing.assert_allclose(np.array(hs), sizes / 2, atol=1e-6)
    (bq,) = _values(rrd, "/world/boxes", "Boxes3D:quaternions")
    for qb, yaw in zip(bq, yaws, strict=True):
        rv = Rotation.from_quat(qb).as_rotvec()
        np.testing.assert_allclose(rv, [0.0, 0.0, yaw], atol=1e-6)
    assert _values(rrd, "/world/boxes", "Boxes3D:labels") == [["car", "van", "ped"]]

    # scalars on the frame timeline
    rows = [r for r in _chunks(rrd, "/metrics/loss") if r.get("Scalars:scalars") is not None]
    assert sorted((r["frame"], r["Scalars:scalars"][0]) for r in rows) == [(8, 0.5), (9, 0.25)]


def test_coco17_constants_match_coco_annotation_format() -> None:
    # COCO person_keypoints "skeleton", 1-based, as published in the annotation files
    coco_skeleton = [
        [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
        [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
    ]  # fmt: skip
    assert {tuple(sorted((a - 1, b - 1))) for a, b in coco_skeleton} == {
        tuple(sorted(e)) for e in COCO17_EDGES
    }
    assert len(COCO17_EDGES) == 19 and len(COCO17_NAMES) == 17
    assert (
        COCO17_NAMES[0] == "nose" and COCO17_NAMES[5] == "left_shoulder" and COCO17_NAMES[16] == "right_ankle"
    )


def test_segmentation_image_ignore_label_is_transparent(tmp_path: Path) -> None:
    rrd = tmp_path / "seg.rrd"
    labels = np.array([[0, 1, 255], [255, 2, 0]])
    with recording("seg", f"save:{rrd}") as rec:
        log_segmentation(rec, "seg", labels, ["a", "b", "c"], ignore_label=255)
        log_segmentation(rec, "pts", np.array([0, 255, 2]), ["a", "b", "c"], xyz=np.eye(3), ignore_label=255)
    (buf,) = _values(rrd, "/seg", "SegmentationImage:buffer")
    np.testing.assert_array_equal(
        np.frombuffer(bytes(buf[0]), np.uint16).reshape(2, 3), [[0, 1, 3], [3, 2, 0]]
    )
    (ctx,) = _values(rrd, "/seg", "AnnotationContext:context")
    assert ctx[0][3]["class_id"] == 3 and ctx[0][3]["class_description"]["info"]["color"] == 0  # RGBA 0,0,0,0
    (pos,) = _values(rrd, "/pts", "Points3D:positions")
    np.testing.assert_allclose(pos, np.eye(3)[[0, 2]])


def test_pose_inputs_are_equivalent() -> None:
    poses = SE3.random(np.random.default_rng(1), shape=(4,))
    ref = poses.matrix()
    np.testing.assert_array_equal(as_pose_matrices(poses), ref)
    np.testing.assert_array_equal(as_pose_matrices([poses[i] for i in range(4)]), ref)
    np.testing.assert_array_equal(as_pose_matrices(ref[:, :3, :]), ref)
    np.testing.assert_array_equal(as_pose_matrices(ref[2]), ref[2:3])


def test_bad_inputs_raise_value_error(tmp_path: Path) -> None:
    with recording("bad", "off") as rec:
        shear = np.eye(4)
        shear[0, 1] = 0.3
        with pytest.raises(ValueError, match="rotation"):
            log_pose(rec, "p", shear)
        with pytest.raises(ValueError, match="bottom row"):
            log_pose(rec, "p", np.ones((4, 4)))
        with pytest.raises(ValueError, match="shape"):
            log_points(rec, "p", np.zeros((5, 2)))
        with pytest.raises(ValueError, match="width and height"):
            log_camera(rec, "c", np.eye(4), np.diag([100.0, 100.0, 1.0]))
        with pytest.raises(ValueError, match="labels must lie"):
            log_segmentation(rec, "s", np.array([0, 3]), ["a", "b", "c"], xyz=np.zeros((2, 3)))
        with pytest.raises(ValueError, match="colours"):
            log_points(rec, "p", np.zeros((2, 3)), colors=[[0, 0, 300], [0, 0, 0]])
        with pytest.raises(ValueError, match="edges"):
            log_skeleton(rec, "s", np.zeros((3, 3)), [(0, 5)])
        with pytest.raises(ValueError, match="stamps_ns"):
            log_trajectory(rec, "t", [1, 2], np.tile(np.eye(4), (3, 1, 1)))
        with pytest.raises(ValueError, match="frame"):
            set_time(rec, frame=1.5)
    with pytest.raises(ValueError, match="RecordingStream"):
        log_points(None, "p", np.zeros((2, 3)))  # type: ignore[arg-type]


# -- specs


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("save", RerunSpec("save", Path("OUT/run.rrd"))),
        ("save:runs/a.rrd", RerunSpec("save", Path("runs/a.rrd"))),
        (" SAVE:/tmp/x.rrd ", RerunSpec("save", Path("/tmp/x.rrd"))),
        ("spawn", RerunSpec("spawn", Path("OUT/run.rrd"))),
        ("serve", RerunSpec("serve", Path("OUT/run.rrd"))),
        ("connect", RerunSpec("connect", Path("OUT/run.rrd"), "rerun+http://127.0.0.1:9876/proxy")),
        ("connect:rerun+http://10.0.0.2:9000/proxy",
         RerunSpec("connect", Path("OUT/run.rrd"), "rerun+http://10.0.0.2:9000/proxy")),
        ("off", RerunSpec("off")),
    ],
)  # fmt: skip
def test_parse_rerun_spec(spec: str, expected: RerunSpec) -> None:
    assert parse_rerun_spec(spec, Path("OUT")) == expected


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "empty"),
        ("view", "unknown mode"),
        ("save:", "empty path"),
        ("save:out.txt", r"\.rrd"),
        ("connect:", "empty URL"),
        ("connect:http://127.0.0.1:9876/proxy", "scheme"),
        ("connect:rerun+http://127.0.0.1:9876/", "/proxy"),
        ("connect:rerun+http://127.0.0.1:notaport/proxy", "bad URL"),
        ("off:now", "takes no argument"),
        ("spawn:9876", "takes no argument"),
    ],
)
def test_parse_rerun_spec_errors(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_rerun_spec(spec, Path("OUT"))


def test_add_rerun_argument() -> None:
    parser = argparse.ArgumentParser()
    add_rerun_argument(parser)
    assert parser.parse_args([]).rerun == "save"
    assert parser.parse_args(["--rerun", "connect"]).rerun == "connect"
    with pytest.raises(SystemExit):
        parser.parse_args(["--rerun", "bogus"])


# -- sinks


def test_connect_to_closed_port_falls_back_to_file_quickly(tmp_path: Path, caplog) -> None:
    port = free_port()
    assert not port_open("127.0.0.1", port)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="apps.viz.sink"):
        with recording("fb", f"connect:rerun+http://127.0.0.1:{port}/proxy", out_dir=tmp_path) as rec:
            assert sink_of(rec) == RerunSpec("save", tmp_path / "run.rrd")
            log_points(rec, "world/points", np.zeros((3, 3)))
    elapsed = time.monotonic() - t0
    assert elapsed < 10.0, f"fallback took {elapsed:.1f} s"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "saving to" in warnings[0].getMessage()
    assert RrdReader(tmp_path / "run.rrd").store().schema().entity_paths() == ["/world/points"]


def test_spawn_without_display_falls_back(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="apps.viz.sink"):
        with recording("fb", "spawn", out_dir=tmp_path) as rec:
            assert sink_of(rec).mode == "save"
            log_scalars(rec, "metrics/x", 1.0)
    assert time.monotonic() - t0 < 10.0
    assert "no display" in caplog.text
    assert (tmp_path / "run.rrd").exists()


@pytest.mark.filterwarnings("ignore:RRD file has no footer")  # the live server's file is still being written
def test_connect_streams_to_a_live_server(tmp_path: Path) -> None:
    exe = viewer_executable()
    assert exe is not None, "the rerun binary ships with rerun-sdk"
    port = free_port()
    live = tmp_path / "live.rrd"
    server = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", str(live)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RERUN_APP_ONLY": "true"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port, 0.1):
            assert time.monotonic() < deadline and server.poll() is None, "rerun server did not start"
            time.sleep(0.05)
        with recording("live", f"connect:rerun+http://127.0.0.1:{port}/proxy", out_dir=tmp_path) as rec:
            assert sink_of(rec).mode == "connect"
            log_points(rec, "world/points", np.arange(6.0).reshape(2, 3))
        paths: list[str] = []
        while time.monotonic() < deadline and "/world/points" not in paths:
            time.sleep(0.1)
            if live.exists() and live.stat().st_size:
                paths = RrdReader(live).stream().collect().schema().entity_paths()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
    assert "/world/points" in paths
    assert not (tmp_path / "run.rrd").exists()  # no fallback happened


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets listening on `port`."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            addr, hexport = f[1].rsplit(":", 1)
            if int(hexport, 16) == port and f[3] == "0A":  # 0A = LISTEN
                out.append(addr)
    return out


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's /proc/net/tcp")
def test_serve_binds_localhost_only(tmp_path: Path) -> None:
    rec = open_recording("srv", "serve", out_dir=tmp_path)
    proc = server_of(rec)
    try:
        spec = sink_of(rec)
        assert spec.mode == "serve" and proc is not None and proc.poll() is None
        port = int(spec.url.rsplit(":", 1)[1].split("/")[0])
        assert spec.url == f"rerun+http://127.0.0.1:{port}/proxy"
        assert _listeners(port) == ["0100007F"]  # 127.0.0.1 only, not 0.0.0.0 / ::
        log_points(rec, "world/points", np.zeros((2, 3)))
    finally:
        close_recording(rec, stop_server=True)
    assert proc.poll() is not None
    assert not port_open("127.0.0.1", port)  # the server itself is gone, not just a wrapper process
    assert not list(tmp_path.iterdir())


def test_off_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with recording("off", "off", blueprint_for("demo"), out_dir=tmp_path) as rec:
        assert is_off(rec) and sink_of(rec) == RerunSpec("off")
        set_time(rec, frame=0, stamp_ns=1)
        log_points(rec, "world/points", np.zeros((3, 3)))
        log_pose(rec, "world/pose", np.eye(4))
        log_image(rec, "img", np.zeros((4, 4), np.uint8))
        rec.log("raw", rr.Points3D(np.zeros((2, 3))))  # even direct logging goes nowhere
    assert list(tmp_path.iterdir()) == []


def test_exception_keeps_partial_and_no_rrd(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with recording("crash", "save", out_dir=tmp_path) as rec:
            log_points(rec, "world/points", np.zeros((3, 3)))
            raise RuntimeError("boom")
    assert not (tmp_path / "run.rrd").exists()
    partial = tmp_path / "run.rrd.partial"
    assert partial.exists()  # kept for inspection: the data up to the failure
    assert RrdReader(partial).store().schema().entity_paths() == ["/world/points"]
    # a later successful run replaces it with the real file
    with recording("ok", "save", out_dir=tmp_path) as rec:
        log_scalars(rec, "metrics/x", 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.rrd"]


# -- blueprints


def _views(node) -> list:
    if isinstance(node, rrb.Blueprint):
        return _views(node.root_container)
    if isinstance(node, rrb.Container):
        return [v for child in node.contents for v in _views(child)]
    return [node]


@pytest.mark.parametrize("name", PIPELINES)
def test_blueprint_for(name: str) -> None:
    views = _views(blueprint_for(name))
    kinds = [(type(v).__name__, str(v.origin)) for v in views]
    assert ("TimeSeriesView", "/metrics") in kinds
    assert any(k == "Spatial3DView" and o == "/world" for k, o in kinds)
    assert [o for k, o in kinds if k == "Spatial2DView"] == list(VIEWS_2D[name])
    custom = _views(blueprint_for(name, cameras=("/world/a", "/world/b", "/world/c")))
    cams = ["/world/a", "/world/b", "/world/c"]
    assert [str(v.origin) for v in custom if isinstance(v, rrb.Spatial2DView)] == cams


def test_blueprint_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="demo, airground, reloc, mocap, pointseg, detect3d, camopt, splat"):
        blueprint_for("slam")
