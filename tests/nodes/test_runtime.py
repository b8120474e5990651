"""Node runtime over zenoh: CDR round trips of the standard types, raw payloads, names and remaps, parameters,
malformed messages, timers."""

from __future__ import annotations

import time

import numpy as np
import pytest

from apps.nodes.launch import NodeSpec
from apps.nodes.runtime import RAW, Node, open_session
from apps.nodes.supervisor import free_tcp_endpoint
from perception.datasets.ros.messages import ImageMsg, ImuMsg, OdometryMsg, PointCloudMsg, PoseCovMsg
from perception.errors import InputError
from perception.geometry import SE3, so3_exp


def _node(hub, name="n", ns="/", **kw) -> Node:
    return Node(NodeSpec("sparsepipe", "test", name, ns, **kw), open_session([hub]))


def _spin_until(nodes, cond, timeout=5.0) -> None:
    t0 = time.monotonic()
    while not cond() and time.monotonic() - t0 < timeout:
        for n in nodes:
            n.spin_once(0.01)


def test_standard_types_round_trip_as_cdr(hub) -> None:
    a, b = _node(hub, "a"), _node(hub, "b")
    got: dict[str, list] = {}
    T = SE3(so3_exp(np.array([0.1, -0.2, 0.3])), np.array([1.0, 2.0, 3.0]))
    C = np.diag(np.arange(1.0, 7.0))
    rng = np.random.default_rng(0)
    msgs = {
        "/odom": ("nav_msgs/msg/Odometry", OdometryMsg(5, "odom", "imu", T, np.arange(6.0))),
        "/pose": ("geometry_msgs/msg/PoseWithCovarianceStamped", PoseCovMsg(6, "ugv_odom", T, C)),
        "/img": ("sensor_msgs/msg/Image", ImageMsg(7, "cam", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))),
        "/imu": ("sensor_msgs/msg/Imu", ImuMsg(8, "imu", np.array([0.1, 0.2, 0.3]), np.array([0.0, 0.0, 9.81]))),
        "/cloud": ("sensor_msgs/msg/PointCloud2",
                   PointCloudMsg(9, "lidar", {"xyz": rng.normal(size=(50, 3)).astype(np.float32)}, 1, 50)),
        "/kf": (RAW, b"\x01\x02\x03"),
    }  # fmt: skip
    pubs = {t: a.create_publisher(t, mt) for t, (mt, _) in msgs.items()}
    for t, (mt, _) in msgs.items():
        b.create_subscription(t, mt, lambda m, t=t: got.setdefault(t, []).append(m))
    time.sleep(0.5)
    for t, (_, m) in msgs.items():
        pubs[t].publish(m)
    _spin_until([a, b], lambda: len(got) == len(msgs))
    assert set(got) == set(msgs)
    o = got["/odom"][0]
    assert o.stamp_ns == 5 and o.child_frame_id == "imu" and np.allclose(o.T_parent_child.matrix(), T.matrix())
    assert np.allclose(o.twist, np.arange(6.0))
    p = got["/pose"][0]
    assert p.frame_id == "ugv_odom" and np.allclose(p.covariance, C) and np.allclose(p.T.matrix(), T.matrix())
    assert np.array_equal(got["/img"][0].image, msgs["/img"][1].image)
    assert np.allclose(got["/imu"][0].accel, [0, 0, 9.81])
    assert np.allclose(got["/cloud"][0].xyz, msgs["/cloud"][1].xyz)
    assert got["/kf"][0] == b"\x01\x02\x03"
    assert pubs["/kf"].bytes == 3 and pubs["/img"].messages == 1
    a.close(), b.close()


def test_names_remaps_and_params(hub) -> None:
    n = Node(NodeSpec("sparsepipe", "x", "loc", "/ugv", params={"w": "10", "on": "true", "r": 2.5, "bad": "x"},
                      remaps=[("kf", "/uav/keyframes"), ("/ugv/pose", "out/pose")]), open_session([hub]))  # fmt: skip
    assert n.resolve("odom") == "/ugv/odom" and n.resolve("/abs/t") == "/abs/t"
    assert n.resolve("~/debug") == "/ugv/loc/debug"
    assert n.resolve("kf") == "/uav/keyframes"  # remap on the name as written
    assert n.resolve("pose") == "/ugv/out/pose"  # remap on the resolved name, relative target
    assert n.param("w", 1) == 10 and n.param("on", False) is True and n.param("r", 1.0) == 2.5
    assert n.param("missing", "d") == "d"
    with pytest.raises(InputError, match=r"parameter bad='x' is not a int"):
        n.param("bad", 0)
    with pytest.raises(InputError, match="invalid topic name 'a b'"):
        n.resolve("a b")
    with pytest.raises(InputError, match="unknown message type 'foo/msg/Bar'"):
        n.create_publisher("t", "foo/msg/Bar")
    n.close()


def test_malformed_payload_is_dropped_with_one_warning(hub, caplog) -> None:
    a, b = _node(hub, "a2"), _node(hub, "b2")
    raw = a.create_publisher("/odom2", RAW)  # the wrong kind of payload for b's Odometry subscription
    good = a.create_publisher("/odom2", "nav_msgs/msg/Odometry")
    got = []
    b.create_subscription("/odom2", "nav_msgs/msg/Odometry", got.append)
    time.sleep(0.5)
    with caplog.at_level("WARNING"):
        raw.publish(b"\x00garbage")
        raw.publish(b"\x01more garbage")
        good.publish(OdometryMsg(1, "o", "b", SE3.identity()))
        _spin_until([b], lambda: len(got) == 1 and b.dropped.get("/odom2", 0) == 2)
    assert len(got) == 1 and b.dropped["/odom2"] == 2
    warnings = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(warnings) == 1 and "/odom2" in warnings[0].getMessage()
    a.close(), b.close()


def test_timers_fire_at_their_period(hub) -> None:
    n = _node(hub, "t")
    ticks = []
    n.create_timer(0.05, lambda: ticks.append(time.monotonic()))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.6:
        n.spin_once(0.01)
    assert 8 <= len(ticks) <= 13
    with pytest.raises(InputError, match="period must be > 0"):
        n.create_timer(0.0, lambda: None)
    n.close()


def test_rerun_viz_node_logs_what_it_receives(hub, tmp_path) -> None:
    from rerun.chunk import RrdReader

    from apps.nodes.viz import RerunViz
    from perception.datasets.ros.messages import PoseCovMsg

    rrd = tmp_path / "live.rrd"
    topics = ("/odom3:nav_msgs/msg/Odometry,/pose3:geometry_msgs/msg/PoseWithCovarianceStamped,"
              "/img3:sensor_msgs/msg/Image")
    viz = RerunViz(NodeSpec("sparsepipe", "rerun_viz", "viz", params={"rerun": f"save:{rrd}", "topics": topics}),
                   open_session([hub]))  # fmt: skip
    a = _node(hub, "pub3")
    po = a.create_publisher("/odom3", "nav_msgs/msg/Odometry")
    pp = a.create_publisher("/pose3", "geometry_msgs/msg/PoseWithCovarianceStamped")
    pi = a.create_publisher("/img3", "sensor_msgs/msg/Image")
    time.sleep(0.5)
    for k in range(3):
        po.publish(OdometryMsg(k, "odom", "imu", SE3(np.eye(3), np.array([k, 0.0, 0.0]))))
    pp.publish(PoseCovMsg(5, "ugv_odom", SE3.identity(), np.eye(6)))
    pi.publish(ImageMsg(6, "cam", np.zeros((8, 8, 3), np.uint8)))
    _spin_until([viz], lambda: viz.count == 5)
    assert viz.count == 5
    viz.close(), a.close()
    paths = set(RrdReader(rrd).store().schema().entity_paths())
    assert {"/world/odom3", "/world/tracks/odom3", "/world/pose3", "/images/img3"} <= paths
    with pytest.raises(InputError, match="topic:msgtype pairs"):
        RerunViz(NodeSpec("sparsepipe", "rerun_viz", "v2", params={"topics": "/x"}), open_session([hub]))


def test_two_hubs_join_like_two_machines() -> None:
    """The UAV's launch listens, the UGV's connects to it (as with --listen / --connect): a node under one hub
    reaches a node under the other."""
    ep_uav, ep_ugv = free_tcp_endpoint(), free_tcp_endpoint()
    hub_uav = open_session(listen=[ep_uav])
    hub_ugv = open_session(connect=[ep_uav], listen=[ep_ugv])
    a, b = _node(ep_uav, "uav_side"), _node(ep_ugv, "ugv_side")
    got = []
    b.create_subscription("/uav/keyframes", RAW, got.append)
    pub = a.create_publisher("/uav/keyframes", RAW)
    time.sleep(1.0)
    for k in range(3):
        pub.publish(bytes([k]) * 1000)
    _spin_until([b], lambda: len(got) == 3)
    assert got == [bytes([k]) * 1000 for k in range(3)]
    a.close(), b.close()
    hub_ugv.close(), hub_uav.close()
