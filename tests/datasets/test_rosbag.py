"""ROS bag reading/writing (perception.datasets.ros): round trips in .mcap, .db3 and ROS 1 .bag, ordering,
filters, streaming, hand-built padded messages, CameraInfo vs OpenCV, corrupt bags, atomic writes, fixture."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

from perception.camera import FisheyeCamera, OpenCVCamera, PinholeCamera
from perception.datasets.ros import (
    BagReader,
    BagWriter,
    CameraInfoMsg,
    ImageMsg,
    ImuMsg,
    OdometryMsg,
    PointCloudMsg,
    PoseMsg,
    bag_topics,
    camera_from_ros,
    read_bag,
)
from perception.errors import InputError
from perception.geometry import SE3

FORMATS = [("mcap", "bag_mcap"), ("db3", "bag_db3"), ("ros1", "run.bag")]
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "rosbag" / "sample.mcap"

STAMP = 1_700_000_000_123_456_789  # header stamp; differs from the receive times below
CAM_CV = OpenCVCamera(640, 480, 500.0, 502.5, 319.5, 241.25, -0.28, 0.07, 1e-3, -2e-3, 0.01)
CAM_FE = FisheyeCamera(752, 480, 460.0, 459.0, 370.0, 240.5, 0.02, -0.01, 0.003, -0.0005)


def _gradient(h: int = 24, w: int = 32) -> np.ndarray:
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    return np.stack([u * 6, v * 8, np.full_like(u, 90)], axis=-1).astype(np.uint8)


def _make_all(path: Path, fmt: str, rng: np.random.Generator) -> dict:
    """One message of every supported type, with values kept for comparison."""
    ex = {
        "rgb": rng.integers(0, 256, (5, 7, 3), dtype=np.uint8),
        "mono16": rng.integers(0, 65536, (4, 6), dtype=np.uint16),
        "depth": rng.normal(size=(3, 5)).astype(np.float32),
        "smooth": _gradient(),
        "xyz": rng.normal(size=(9, 3)).astype(np.float32),
        "intensity": rng.random(9).astype(np.float32),
        "ring": rng.integers(0, 64, 9).astype(np.uint16),
        "T_odom": SE3.random(rng, trans_scale=5.0),
        "T_pose": SE3.random(rng, trans_scale=5.0),
        "twist": rng.normal(size=6),
        "cov": rng.normal(size=(6, 6)),
        "q": Rotation.random(random_state=1).as_quat(),
    }
    ex["q"] = ex["q"] * np.sign(ex["q"][3])
    with BagWriter(path, fmt) as w:
        w.write_image("/cam/rgb", ex["rgb"], 100, frame_id="cam", stamp_ns=STAMP)
        w.write_image("/cam/bgr", ex["rgb"], 101, encoding="bgr8")
        w.write_image("/cam/mono16", ex["mono16"], 102)
        w.write_image("/cam/depth", ex["depth"], 103)
        w.write_compressed_image("/cam/jpeg", ex["smooth"], 104, quality=95)
        w.write_compressed_image("/cam/png", ex["rgb"], 105, format="png")
        w.write_camera_info("/cam/info", CAM_CV, 106, frame_id="cam")
        w.write_camera_info("/fisheye/info", CAM_FE, 107)
        w.write_imu("/imu", [0.1, -0.2, 0.3], [0.5, 0.25, 9.81], 108, orientation=ex["q"], frame_id="imu",
                    gyro_covariance=np.diag([1e-4, 2e-4, 3e-4]))  # fmt: skip
        w.write_imu("/imu_noq", [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 109)
        w.write_pointcloud("/lidar", ex["xyz"], 110, intensity=ex["intensity"], fields={"ring": ex["ring"]},
                           frame_id="lidar")  # fmt: skip
        w.write_odometry("/odom", ex["T_odom"], 111, twist=ex["twist"], frame_id="odom", child_frame_id="base",
                         covariance=ex["cov"])  # fmt: skip
        w.write_pose("/pose", ex["T_pose"], 112, frame_id="map", stamp_ns=STAMP + 1)
    return ex


def _by_topic(path: Path) -> dict:
    return {m.topic: m for m in read_bag(path)}


@pytest.mark.parametrize("fmt,name", FORMATS)
def test_round_trip_every_type(tmp_path: Path, fmt: str, name: str, rng) -> None:
    path = tmp_path / name
    ex = _make_all(path, fmt, rng)
    assert not list(tmp_path.glob(".*partial*"))
    got = _by_topic(path)
    assert list(got) == sorted(got, key=lambda t: got[t].recv_ns)  # receive-time order
    assert [got[t].recv_ns for t in got] == list(range(100, 113))

    m = got["/cam/rgb"].msg
    assert isinstance(m, ImageMsg) and m.stamp_ns == STAMP and m.frame_id == "cam" and m.encoding == "rgb8"
    assert m.image.dtype == np.uint8 and np.array_equal(m.image, ex["rgb"])
    assert got["/cam/rgb"].msgtype == "sensor_msgs/msg/Image"
    assert got["/cam/bgr"].msg.stamp_ns == 101  # stamp defaults to the receive time
    assert np.array_equal(got["/cam/bgr"].msg.image, ex["rgb"])
    assert got["/cam/mono16"].msg.image.dtype == np.uint16
    assert np.array_equal(got["/cam/mono16"].msg.image, ex["mono16"])
    assert got["/cam/depth"].msg.image.dtype == np.float32
    assert np.array_equal(got["/cam/depth"].msg.image, ex["depth"])
    jpg = got["/cam/jpeg"].msg.image.astype(int)
    assert jpg.shape == ex["smooth"].shape
    assert np.abs(jpg - ex["smooth"]).mean() < 2.0 and np.abs(jpg - ex["smooth"]).max() < 24
    assert np.array_equal(got["/cam/png"].msg.image, ex["rgb"])

    ci = got["/cam/info"].msg
    assert isinstance(ci, CameraInfoMsg) and ci.camera == CAM_CV and ci.frame_id == "cam"
    assert np.array_equal(ci.R, np.eye(3)) and np.array_equal(ci.P, np.hstack([CAM_CV.K, np.zeros((3, 1))]))
    assert got["/fisheye/info"].msg.camera == CAM_FE

    imu = got["/imu"].msg
    assert isinstance(imu, ImuMsg) and imu.frame_id == "imu"
    assert np.array_equal(imu.gyro, [0.1, -0.2, 0.3]) and np.array_equal(imu.accel, [0.5, 0.25, 9.81])
    np.testing.assert_allclose(imu.orientation, ex["q"], atol=1e-15)
    assert np.array_equal(imu.gyro_covariance, np.diag([1e-4, 2e-4, 3e-4]))
    assert got["/imu_noq"].msg.orientation is None

    pc = got["/lidar"].msg
    assert isinstance(pc, PointCloudMsg) and pc.frame_id == "lidar" and (pc.height, pc.width) == (1, 9)
    assert pc.xyz.dtype == np.float32 and np.array_equal(pc.xyz, ex["xyz"]) and pc.is_dense
    assert np.array_equal(pc.fields["intensity"], ex["intensity"])
    assert pc.fields["ring"].dtype == np.uint16 and np.array_equal(pc.fields["ring"], ex["ring"])

    od = got["/odom"].msg
    assert isinstance(od, OdometryMsg) and (od.frame_id, od.child_frame_id) == ("odom", "base")
    np.testing.assert_allclose(od.T_parent_child.matrix(), ex["T_odom"].matrix(), atol=1e-12)
    assert np.array_equal(od.twist, ex["twist"]) and np.array_equal(od.covariance, ex["cov"])

    ps = got["/pose"].msg
    assert isinstance(ps, PoseMsg) and ps.frame_id == "map" and ps.stamp_ns == STAMP + 1
    np.testing.assert_allclose(ps.T.matrix(), ex["T_pose"].matrix(), atol=1e-12)

    # Independent check of the on-disk ROS layout with rosbags directly: header (sec, nanosec), the twist order
    # (ROS: linear first) and the pose covariance order (ROS: x y z rx ry rz).
    ts = get_typestore(Stores.ROS1_NOETIC if fmt == "ros1" else Stores.ROS2_HUMBLE)
    with AnyReader([path], default_typestore=ts) as r:
        raw = {c.topic: r.deserialize(d, c.msgtype) for c, _, d in r.messages(r.connections)}
    assert (raw["/cam/rgb"].header.stamp.sec, raw["/cam/rgb"].header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    lin = raw["/odom"].twist.twist.linear
    assert [lin.x, lin.y, lin.z] == list(ex["twist"][3:])
    ros_cov = np.asarray(raw["/odom"].pose.covariance).reshape(6, 6)
    assert ros_cov[0, 0] == ex["cov"][3, 3] and ros_cov[0, 3] == ex["cov"][3, 0]
    q_ros = raw["/pose"].pose.orientation
    q_ref = Rotation.from_matrix(ex["T_pose"].R).as_quat()
    np.testing.assert_allclose(np.abs(np.dot([q_ros.x, q_ros.y, q_ros.z, q_ros.w], q_ref)), 1.0, atol=1e-12)
    assert raw["/imu_noq"].orientation_covariance[0] == -1.0


@pytest.mark.parametrize("fmt,name", FORMATS)
def test_order_topics_and_time_filters(tmp_path: Path, fmt: str, name: str) -> None:
    path = tmp_path / name
    writes = [("/a", 50), ("/b", 40), ("/a", 10), ("/c", 35), ("/b", 20), ("/a", 30), ("/c", 5), ("/b", 60)]
    with BagWriter(path, fmt) as w:
        for topic, t in writes:
            w.write_pose(topic, SE3.exp(np.r_[0.0, 0.0, 0.0, t, 0.0, 0.0]), t)
    msgs = list(read_bag(path))
    assert [(m.topic, m.recv_ns) for m in msgs] == sorted(((t, s) for t, s in writes), key=lambda x: x[1])
    for m in msgs:  # each message is the one written at that time
        assert m.msg.T.t[0] == pytest.approx(m.recv_ns, abs=1e-12)
    assert [m.recv_ns for m in read_bag(path, topics=["/a", "/c"])] == [5, 10, 30, 35, 50]
    assert [m.recv_ns for m in read_bag(path, topics="/b")] == [20, 40, 60]
    assert [m.recv_ns for m in read_bag(path, start_ns=20, end_ns=50)] == [20, 30, 35, 40]
    assert [m.recv_ns for m in read_bag(path, "/a", start_ns=11)] == [30, 50]
    with BagReader(path) as bag:
        assert bag.topics == {t: "geometry_msgs/msg/PoseStamped" for t in ("/a", "/b", "/c")}
        assert (bag.message_count, bag.start_ns) == (8, 5)
    with pytest.raises(InputError, match=r"no topic '/nope'.*available: /a \(geometry_msgs/msg/PoseStamped\)"):
        read_bag(path, topics=["/a", "/nope"])
    with pytest.raises(InputError, match="end_ns"):
        read_bag(path, start_ns=10, end_ns=5)


@pytest.mark.parametrize("fmt,name", FORMATS)
def test_streaming_decodes_only_what_is_read(tmp_path: Path, fmt: str, name: str, monkeypatch) -> None:
    path = tmp_path / name
    with BagWriter(path, fmt) as w:
        for i in range(2000):
            w.write_imu("/imu", [i, 0, 0], [0, 0, 9.81], 1_000_000 * (i + 1))
    calls = {"n": 0}
    original = AnyReader.deserialize

    def counting(self, raw, typ):
        calls["n"] += 1
        return original(self, raw, typ)

    monkeypatch.setattr(AnyReader, "deserialize", counting)
    it = read_bag(path, "/imu")
    first = next(it)
    assert first.msg.gyro[0] == 0.0 and first.recv_ns == 1_000_000
    assert calls["n"] == 1
    second = next(it)
    assert second.msg.gyro[0] == 1.0 and calls["n"] == 2
    it.close()
    window = list(read_bag(path, start_ns=1_000_000_000, end_ns=1_005_000_000))
    assert [m.msg.gyro[0] for m in window] == [999.0, 1000.0, 1001.0, 1002.0, 1003.0]
    assert calls["n"] == 7
    with BagReader(path) as bag:
        it = bag.messages()
        next(it)
    with pytest.raises(RuntimeError, match="closed while its messages were being read"):
        next(it)


def _ros2_ts():
    return get_typestore(Stores.ROS2_HUMBLE)


def _header(ts, stamp_ns: int, frame: str):
    T = ts.types["builtin_interfaces/msg/Time"]
    return ts.types["std_msgs/msg/Header"](stamp=T(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame)


def test_padded_image_step_and_point_step(tmp_path: Path) -> None:
    ts = _ros2_ts()
    Image = ts.types["sensor_msgs/msg/Image"]
    PC2 = ts.types["sensor_msgs/msg/PointCloud2"]
    PF = ts.types["sensor_msgs/msg/PointField"]

    # rgb8 3x4 with 5 garbage bytes after each row
    rgb = np.arange(36, dtype=np.uint8).reshape(3, 4, 3) * 7
    step = 4 * 3 + 5
    data = b"".join(rgb[r].tobytes() + b"\xee" * 5 for r in range(3))
    img_rgb = Image(_header(ts, 7, "cam"), 3, 4, "rgb8", 0, step, np.frombuffer(data, np.uint8))
    # bgr8 with padding: decoded channels must come back as RGB
    data_bgr = b"".join(rgb[r, :, ::-1].tobytes() + b"\x01\x02" for r in range(3))
    img_bgr = Image(_header(ts, 8, "cam"), 3, 4, "bgr8", 0, 14, np.frombuffer(data_bgr, np.uint8))
    # mono16 big-endian 2x3, step 8 (2 pad bytes), packed with struct (independent of numpy byte order)
    vals = [[1, 258, 65535], [4096, 7, 513]]
    data16 = b"".join(struct.pack(">3H", *row) + b"\xab\xcd" for row in vals)
    img_16 = Image(_header(ts, 9, "depth"), 2, 3, "mono16", 1, 8, np.frombuffer(data16, np.uint8))
    # 32FC1 little-endian 2x2, step 12
    f32 = [[0.5, -1.25], [3.0e8, 7.0]]
    data32 = b"".join(struct.pack("<2f", *row) + b"\x00" * 4 for row in f32)
    img_32 = Image(_header(ts, 10, "depth"), 2, 2, "32FC1", 0, 12, np.frombuffer(data32, np.uint8))

    # Organised 2x3 cloud, point_step 32 (x y z float32 @0/4/8, intensity float32 @16, ring uint16 @20,
    # garbage elsewhere), row_step 3 * 32 + 8; and a big-endian float64 variant.
    pts = [[(1.0, 2.0, 3.0, 10.0, 1), (4.0, 5.0, 6.0, 20.0, 2), (np.nan, np.nan, np.nan, 0.0, 3)],
           [(-1.0, -2.0, -3.5, 30.0, 4), (0.25, 0.5, 0.75, 40.0, 5), (9.0, 8.0, 7.0, 50.0, 6)]]  # fmt: skip
    rows = []
    for row in pts:
        b = b""
        for x, y, z, it, ring in row:
            b += struct.pack("<3f", x, y, z) + b"\x99" * 4 + struct.pack("<fH", it, ring) + b"\x77" * 10
        rows.append(b + b"\x55" * 8)
    fields = [PF("x", 0, 7, 1), PF("y", 4, 7, 1), PF("z", 8, 7, 1), PF("intensity", 16, 7, 1), PF("ring", 20, 4, 1)]
    cloud = PC2(_header(ts, 11, "lidar"), 2, 3, fields, False, 32, 104, np.frombuffer(b"".join(rows), np.uint8), False)
    be = b"".join(struct.pack(">3d", *p) + struct.pack(">h", -p_i) + b"\x00" * 6
                  for p_i, p in enumerate([(1.5, -2.5, 3.25), (1e10, 0.0, -7.0)], start=1))  # fmt: skip
    fields_be = [PF("x", 0, 8, 1), PF("y", 8, 8, 1), PF("z", 16, 8, 1), PF("t", 24, 3, 1)]
    cloud_be = PC2(_header(ts, 12, "lidar"), 1, 2, fields_be, True, 32, 64, np.frombuffer(be, np.uint8), True)

    path = tmp_path / "hand.mcap"
    with BagWriter(path, "mcap", typestore=ts) as w:
        for i, (topic, msg) in enumerate(
            [
                ("/rgb", img_rgb),
                ("/bgr", img_bgr),
                ("/m16", img_16),
                ("/f32", img_32),
                ("/pc", cloud),
                ("/be", cloud_be),
            ]
        ):
            w.write(topic, msg, 100 + i)
    got = _by_topic(path)
    assert np.array_equal(got["/rgb"].msg.image, rgb)
    assert np.array_equal(got["/bgr"].msg.image, rgb)
    assert got["/m16"].msg.image.dtype == np.uint16 and got["/m16"].msg.image.tolist() == vals
    assert got["/f32"].msg.image.tolist() == f32 and got["/f32"].msg.stamp_ns == 10

    pc = got["/pc"].msg
    assert (pc.height, pc.width, pc.is_dense, len(pc)) == (2, 3, False, 6)
    flat = [p for row in pts for p in row]
    np.testing.assert_array_equal(pc.xyz, np.array([p[:3] for p in flat], dtype=np.float32))
    assert pc.fields["intensity"].tolist() == [p[3] for p in flat]
    assert pc.fields["ring"].dtype == np.uint16 and pc.fields["ring"].tolist() == [1, 2, 3, 4, 5, 6]
    assert pc.finite().tolist() == [True, True, False, True, True, True]
    assert pc.xyz.reshape(2, 3, 3)[1, 0].tolist() == [-1.0, -2.0, -3.5]
    pb = got["/be"].msg
    assert pb.xyz.dtype == np.float64 and pb.xyz.tolist() == [[1.5, -2.5, 3.25], [1e10, 0.0, -7.0]]
    assert pb.fields["t"].dtype == np.int16 and pb.fields["t"].tolist() == [-1, -2]

    # an unsupported encoding names the topic and the encoding
    yuv = Image(_header(ts, 1, "cam"), 2, 2, "yuv422", 0, 4, np.zeros(8, np.uint8))
    bad_jpeg = ts.types["sensor_msgs/msg/CompressedImage"](_header(ts, 2, "cam"), "jpeg", np.arange(50, dtype=np.uint8))
    short = Image(_header(ts, 3, "cam"), 4, 4, "rgb8", 0, 12, np.zeros(40, np.uint8))
    bad = tmp_path / "bad.mcap"
    with BagWriter(bad, "mcap", typestore=ts) as w:
        w.write("/cam/yuv", yuv, 1)
        w.write("/cam/bad_jpeg", bad_jpeg, 2)
        w.write("/cam/short", short, 3)
    with pytest.raises(InputError, match=r"/cam/yuv: unsupported image encoding 'yuv422'"):
        list(read_bag(bad, "/cam/yuv"))
    with pytest.raises(InputError, match=r"/cam/bad_jpeg: CompressedImage .* cannot be decoded"):
        list(read_bag(bad, "/cam/bad_jpeg"))
    with pytest.raises(InputError, match=r"/cam/short: Image data holds 40 bytes; 4x4 rgb8 with step 12 needs 48"):
        list(read_bag(bad, "/cam/short"))


def test_camera_info_models_match_opencv() -> None:
    rng = np.random.default_rng(3)
    p = np.c_[rng.uniform(-0.5, 0.5, (20, 2)), rng.uniform(1.0, 3.0, 20)]
    K = [600.0, 0.0, 320.0, 0.0, 610.0, 240.0, 0.0, 0.0, 1.0]
    Km = np.reshape(K, (3, 3))
    D = [-0.2, 0.05, 0.001, -0.002, 0.01]  # k1 k2 t1 t2 k3
    cam = camera_from_ros(640, 480, "plumb_bob", D, K)
    assert isinstance(cam, OpenCVCamera)
    ref = cv2.projectPoints(p, np.zeros(3), np.zeros(3), Km, np.array(D))[0].reshape(-1, 2)
    np.testing.assert_allclose(cam.project(p)[0], ref, atol=1e-9)
    Dfe = [0.03, -0.01, 0.004, -0.001]
    fe = camera_from_ros(640, 480, "equidistant", Dfe, K)
    assert isinstance(fe, FisheyeCamera)
    ref = cv2.fisheye.projectPoints(p.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), Km, np.array(Dfe))[0].reshape(-1, 2)
    np.testing.assert_allclose(fe.project(p)[0], ref, atol=1e-9)
    assert camera_from_ros(640, 480, "plumb_bob", [], K) == PinholeCamera(640, 480, 600.0, 610.0, 320.0, 240.0)
    assert camera_from_ros(640, 480, "plumb_bob", [0.0] * 5, K) == PinholeCamera(640, 480, 600.0, 610.0, 320.0, 240.0)
    assert isinstance(camera_from_ros(640, 480, "rational_polynomial", D + [0.0] * 3, K), OpenCVCamera)
    with pytest.raises(InputError, match="rational"):
        camera_from_ros(640, 480, "rational_polynomial", D + [0.1, 0.0, 0.0], K, where="/cam/info")
    with pytest.raises(InputError, match="unsupported distortion_model 'weird'"):
        camera_from_ros(640, 480, "weird", D, K)
    with pytest.raises(InputError, match="uncalibrated"):
        camera_from_ros(640, 480, "plumb_bob", D, [0.0] * 9)


@pytest.mark.parametrize("fmt,name", FORMATS)
def test_camera_info_round_trip(tmp_path: Path, fmt: str, name: str) -> None:
    pin = PinholeCamera(320, 240, 250.0, 251.0, 159.5, 119.5)
    R = Rotation.from_rotvec([0.01, -0.02, 0.03]).as_matrix()
    P = np.array([[240.0, 0, 160.0, -12.0], [0, 240.0, 120.0, 0], [0, 0, 1, 0]])
    with BagWriter(tmp_path / name, fmt) as w:
        w.write_camera_info("/left", CAM_CV, 1, R=R, P=P)
        w.write_camera_info("/fe", CAM_FE, 2)
        w.write_camera_info("/pin", pin, 3)
        w.write("/again", CameraInfoMsg(5, "cam2", CAM_FE), 4)
    got = _by_topic(tmp_path / name)
    assert got["/left"].msg.camera == CAM_CV
    assert np.array_equal(got["/left"].msg.R, R) and np.array_equal(got["/left"].msg.P, P)
    assert got["/fe"].msg.camera == CAM_FE and got["/pin"].msg.camera == pin
    assert (got["/again"].msg.camera, got["/again"].msg.stamp_ns, got["/again"].msg.frame_id) == (CAM_FE, 5, "cam2")


def test_write_dataclasses_copies_a_bag(tmp_path: Path, rng) -> None:
    src = tmp_path / "src.mcap"
    _make_all(src, "mcap", rng)
    with BagReader(src) as bag:
        types = bag.topics
    dst = tmp_path / "copy.bag"
    with BagWriter(dst, "ros1") as w:
        for topic, mt in types.items():
            w.add_topic(topic, mt)
        for m in read_bag(src):
            w.write(m.topic, m.msg, m.recv_ns)
    a, b = _by_topic(src), _by_topic(dst)
    assert bag_topics(dst) == types and list(a) == list(b)
    for t in a:
        ma, mb = a[t].msg, b[t].msg
        assert (type(ma), ma.stamp_ns, ma.frame_id) == (type(mb), mb.stamp_ns, mb.frame_id), t
    for t in ("/cam/rgb", "/cam/bgr", "/cam/mono16", "/cam/depth", "/cam/png"):
        assert np.array_equal(a[t].msg.image, b[t].msg.image), t
    assert np.abs(a["/cam/jpeg"].msg.image.astype(int) - b["/cam/jpeg"].msg.image).mean() < 2.0  # re-encoded
    for k in ("xyz", "intensity", "ring"):
        assert np.array_equal(a["/lidar"].msg.fields[k], b["/lidar"].msg.fields[k])
    np.testing.assert_allclose(
        a["/odom"].msg.T_parent_child.matrix(), b["/odom"].msg.T_parent_child.matrix(), atol=1e-15
    )
    assert np.array_equal(a["/odom"].msg.twist, b["/odom"].msg.twist)
    assert np.array_equal(a["/imu"].msg.orientation, b["/imu"].msg.orientation)
    assert b["/imu_noq"].msg.orientation is None and b["/cam/info"].msg.camera == CAM_CV
    # numpy arrays and SE3 go to declared topics
    arr = tmp_path / "arr.mcap"
    with BagWriter(arr) as w:
        w.add_topic("/img", "sensor_msgs/Image")
        w.add_topic("/pc", "sensor_msgs/msg/PointCloud2")
        w.write("/img", b["/cam/rgb"].msg.image, 1)
        w.write("/pc", b["/lidar"].msg.xyz, 2)
        w.write("/pose", SE3.identity(), 3)
        with pytest.raises(InputError, match="call add_topic"):
            w.write("/undeclared", np.zeros((2, 2)), 4)
        with pytest.raises(InputError, match="already has type sensor_msgs/msg/Image"):
            w.add_topic("/img", "sensor_msgs/msg/CompressedImage")
    c = _by_topic(arr)
    assert np.array_equal(c["/img"].msg.image, b["/cam/rgb"].msg.image) and c["/img"].msg.stamp_ns == 1
    assert np.array_equal(c["/pc"].msg.xyz, b["/lidar"].msg.xyz)
    assert np.array_equal(c["/pose"].msg.T.matrix(), np.eye(4))


def test_organised_cloud_and_bare_files(tmp_path: Path, rng) -> None:
    grid = rng.normal(size=(4, 5, 3))  # float64 organised cloud with a NaN hole
    grid[1, 2] = np.nan
    rgb = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    for fmt, name in (("mcap", "x.mcap"), ("db3", "x.db3")):
        with BagWriter(tmp_path / name, fmt) as w:
            w.write_pointcloud("/cloud", grid, 1, fields={"rgb": rgb.reshape(-1, 3)})
        assert (tmp_path / name).is_file()
        pc = next(read_bag(tmp_path / name)).msg
        assert (pc.height, pc.width, pc.is_dense) == (4, 5, False)
        np.testing.assert_array_equal(pc.xyz.reshape(4, 5, 3), grid)  # NaN positions compare equal
        assert pc.xyz.dtype == np.float64 and np.array_equal(pc.fields["rgb"], rgb.reshape(-1, 3))


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing .*nothing.mcap"):
        read_bag(tmp_path / "nothing.mcap")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="unknown suffix"):
        read_bag(tmp_path / "notes.txt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match="no metadata.yaml"):
        read_bag(tmp_path / "folder")
    good = tmp_path / "good.mcap"
    with BagWriter(good) as w:
        for i in range(300):
            w.write_imu("/imu", [i, 0, 0], [0, 0, 9.81], 1000 + i)
    data = good.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.mcap: cannot read ROS bag .*truncated or corrupt.*reindex") as ei:
        list(read_bag(cut))
    assert "\n" not in str(ei.value)
    dbdir = tmp_path / "db"
    with BagWriter(dbdir, "db3") as w:
        w.write_pose("/p", SE3.identity(), 1)
    db = dbdir / "db.db3"
    db.write_bytes(db.read_bytes()[:3000])
    with pytest.raises(InputError, match=r"db: cannot read ROS bag .*ros2 bag reindex"):
        list(read_bag(dbdir))
    # unsupported message types: skipped when reading everything, an error when asked for, raw on request
    ts = _ros2_ts()
    mixed = tmp_path / "mixed.mcap"
    with BagWriter(mixed) as w:
        w.write("/chatter", ts.types["std_msgs/msg/String"](data="hi"), 1)
        w.write_pose("/p", SE3.identity(), 2)
    assert [m.topic for m in read_bag(mixed)] == ["/p"]
    with pytest.raises(InputError, match="/chatter has type std_msgs/msg/String"):
        read_bag(mixed, "/chatter")
    assert [m.msg.data for m in read_bag(mixed, "/chatter", unsupported="raw")] == ["hi"]


def test_writer_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "run"
    with pytest.raises(RuntimeError, match="boom"):
        with BagWriter(path, "mcap") as w:
            w.write_pose("/p", SE3.identity(), 1)
            assert not path.exists()  # nothing at the final path while writing
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with BagWriter(path, "db3") as w:
        w.write_pose("/p", SE3.identity(), 1)
        assert not path.exists()
    assert sorted(p.name for p in path.iterdir()) == ["metadata.yaml", "run.db3"]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        BagWriter(path, "db3")
    with BagWriter(path, "mcap", overwrite=True) as w:
        w.write_pose("/q", SE3.identity(), 2)
    assert bag_topics(path) == {"/q": "geometry_msgs/msg/PoseStamped"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with pytest.raises(InputError, match=r"ROS 1 bags must be named \*\.bag"):
        BagWriter(tmp_path / "x.mcap", "ros1")
    with pytest.raises(InputError, match="format"):
        BagWriter(tmp_path / "x", "zip")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------- fixture
SAMPLE_RGB = np.arange(36, dtype=np.uint8).reshape(3, 4, 3) * 7  # 3 rows x 4 columns
SAMPLE_XYZ = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [-1.0, -2.0, -3.5]], dtype=np.float32)


def make_sample_bag(path: Path) -> None:
    """Regenerate data/samples/rosbag/sample.mcap: ``python tests/datasets/test_rosbag.py``."""
    q = [0.0, 0.0, 0.6, 0.8]
    with BagWriter(path, "mcap", overwrite=True) as w:
        w.write_imu("/imu", [0.01, -0.02, 0.03], [0.1, 0.2, 9.81], 1_700_000_000_100_000_000, orientation=q,
                    frame_id="imu_link")  # fmt: skip
        w.write_odometry("/odom", SE3.from_quat_t(q, [1.0, 2.0, 3.0]), 1_700_000_000_200_000_000,
                         twist=[0.0, 0.0, 0.1, 0.5, 0.0, 0.0], frame_id="odom", child_frame_id="base_link")  # fmt: skip
        w.write_image("/camera/image_raw", SAMPLE_RGB, 1_700_000_000_300_000_000, frame_id="camera")
        w.write_pointcloud("/lidar/points", SAMPLE_XYZ, 1_700_000_000_400_000_000,
                           intensity=np.array([10.0, 20.0, 30.0], dtype=np.float32), frame_id="lidar")  # fmt: skip


def test_committed_sample_bag() -> None:
    assert SAMPLE.is_file() and SAMPLE.stat().st_size < 16_000
    msgs = list(read_bag(SAMPLE))
    assert [(m.topic, m.recv_ns) for m in msgs] == [
        ("/imu", 1_700_000_000_100_000_000),
        ("/odom", 1_700_000_000_200_000_000),
        ("/camera/image_raw", 1_700_000_000_300_000_000),
        ("/lidar/points", 1_700_000_000_400_000_000),
    ]
    imu, odom, img, cloud = (m.msg for m in msgs)
    assert imu.stamp_ns == 1_700_000_000_100_000_000 and imu.frame_id == "imu_link"
    assert imu.gyro.tolist() == [0.01, -0.02, 0.03] and imu.accel.tolist() == [0.1, 0.2, 9.81]
    np.testing.assert_allclose(imu.orientation, [0.0, 0.0, 0.6, 0.8], atol=1e-15)
    # rotation about z by 2*atan2(0.6, 0.8): cos = 0.28, sin = 0.96
    R = np.array([[0.28, -0.96, 0.0], [0.96, 0.28, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(odom.T_parent_child.R, R, atol=1e-12)
    assert odom.T_parent_child.t.tolist() == [1.0, 2.0, 3.0]
    assert (odom.frame_id, odom.child_frame_id) == ("odom", "base_link")
    assert odom.linear_velocity.tolist() == [0.5, 0.0, 0.0] and odom.angular_velocity.tolist() == [0.0, 0.0, 0.1]
    assert img.image.shape == (3, 4, 3) and img.encoding == "rgb8" and img.frame_id == "camera"
    assert img.image[0, 0].tolist() == [0, 7, 14] and img.image[2, 3].tolist() == [231, 238, 245]
    assert img.image[1, 2].tolist() == [(18 * 7) % 256, (19 * 7) % 256, (20 * 7) % 256]
    assert cloud.xyz.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [-1.0, -2.0, -3.5]]
    assert cloud.fields["intensity"].tolist() == [10.0, 20.0, 30.0]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    make_sample_bag(SAMPLE)
    print(f"wrote {SAMPLE} ({SAMPLE.stat().st_size} bytes)")
