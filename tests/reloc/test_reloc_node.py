"""The live FaVoR node: ``favor_relocalizer`` in-process over zenoh (poses against the simulated room's ground
truth, images it cannot take, latest-only skipping) and ``launch/reloc_bag.yaml`` end to end on a recording."""

from __future__ import annotations

import io
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from apps.nodes.launch import NodeSpec, load_launch
from apps.nodes.reloc import POSE, FavorRelocalizer
from apps.nodes.runtime import Node, open_session
from apps.nodes.supervisor import Supervisor, free_tcp_endpoint
from perception.datasets.ros import BagReader, BagWriter
from perception.datasets.ros.messages import ImageMsg
from perception.datasets.sevenscenes import SevenScenes
from perception.errors import InputError
from perception.metrics.pose import pose_errors
from slam.reloc import FavorMap

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "sensor_msgs/msg/Image"


def _spin_until(nodes, cond, timeout: float) -> None:
    t0 = time.monotonic()
    while not cond() and time.monotonic() - t0 < timeout:
        for n in nodes:
            n.spin_once(0.01)


@pytest.fixture
def sessions():
    """zenoh sessions the test's nodes use (a node closes only a session it opened itself)."""
    opened: list = []
    yield opened
    for s in opened:
        s.close()


def _session(hub: str, sessions: list):
    sessions.append(open_session([hub]))
    return sessions[-1]


def _relocalizer(hub: str, built: Path, sessions: list, **params) -> FavorRelocalizer:
    p = {"map": str(built), "image_type": IMAGE, "threads": 1, **params}
    spec = NodeSpec("sparsepipe", "favor_relocalizer", "reloc", "/robot", params=p, remaps=[("image", "/cam/image")])
    return FavorRelocalizer(spec, _session(hub, sessions))


def _probe(hub: str, name: str, sessions: list):
    """A node publishing images on /cam/image and collecting the poses the relocalizer publishes."""
    probe = Node(NodeSpec("sparsepipe", "probe", name), _session(hub, sessions))
    poses: list = []
    probe.create_subscription("/robot/pose", POSE, poses.append)
    pub = probe.create_publisher("/cam/image", IMAGE)
    time.sleep(0.5)  # let the subscriptions meet
    return probe, pub, poses


def _all_done(node: FavorRelocalizer, poses: list, n: int):
    """Condition: ``n`` images received and handled, and every published pose arrived."""
    return lambda: node.counts["received"] == n and node.idle and len(poses) == node.counts["localised"]


def _errors(poses: list, stamp_to_frame: dict) -> np.ndarray:
    return np.array([pose_errors(m.T, stamp_to_frame[m.stamp_ns].T_world_cam)[0] for m in poses])


def test_node_publishes_camera_poses_and_drops_images_it_cannot_take(room: Path, built: Path, hub: str,
                                                                     sessions: list, caplog) -> None:  # fmt: skip
    node = _relocalizer(hub, built, sessions, latest_only="false")
    probe, pub, poses = _probe(hub, "probe", sessions)
    ds = SevenScenes(room, "room")
    frames = ds.frames("test")
    first = ds.load_color(frames[0])
    caplog.set_level(logging.INFO)
    pub.publish(ImageMsg(1, "cam", first[::2, ::2].copy()))  # another camera: rejected, once in the log
    pub.publish(ImageMsg(2, "cam", first[1::2, 1::2].copy()))  # the same again: counted only
    pub.publish(ImageMsg(3, "cam", np.full((240, 320), 1000, np.uint16)))  # depth on the colour topic
    stamps = {}
    for k, f in enumerate(frames):
        stamps[1000 + k] = f
        pub.publish(ImageMsg(1000 + k, "cam", ds.load_color(f)))
    gray = ds.load_color(frames[1]).mean(axis=2).astype(np.uint8)  # a mono camera: repeated to RGB
    stamps[2000] = frames[1]
    pub.publish(ImageMsg(2000, "cam", gray))
    n = 3 + len(frames) + 1
    _spin_until([node, probe], _all_done(node, poses, n), timeout=120)
    assert node.counts["received"] == n and node.counts["rejected"] == 3 and node.counts["skipped"] == 0
    assert node.counts["localised"] >= 0.9 * (len(frames) + 1)
    assert all(m.frame_id == "map" for m in poses) and 2000 in {m.stamp_ns for m in poses}
    t = _errors(poses, stamps)
    assert np.median(t) <= 0.03 and np.mean(t < 0.05) >= 0.8  # the accuracy bar of `reloc query`
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == "node.robot.reloc"]
    assert len(errors) == 2, errors  # one per kind of bad image
    assert any("is 160x120, the map's camera is 320x240" in e for e in errors)
    assert any("uint16 pixels" in e for e in errors)
    node.close()
    assert any("images: " in r.getMessage() and "3 rejected" in r.getMessage() for r in caplog.records)
    probe.close()


def test_latest_only_skips_waiting_images_for_the_newest(room: Path, built: Path, hub: str, sessions: list) -> None:
    node = _relocalizer(hub, built, sessions)  # latest_only defaults to true
    probe, pub, poses = _probe(hub, "probe2", sessions)
    ds = SevenScenes(room, "room")
    frames = ds.frames("test")[:6]
    for k, f in enumerate(frames):  # a burst: far faster than one localisation
        pub.publish(ImageMsg(100 + k, "cam", ds.load_color(f)))
    c = node.counts
    _spin_until([node, probe], _all_done(node, poses, 6), 60)
    assert c["received"] == 6 and c["skipped"] >= 1
    assert c["localised"] + c["failed"] + c["skipped"] == 6
    assert poses and poses[-1].stamp_ns == 105  # the newest image is the one localised last
    node.close()
    probe.close()


def test_node_tracks_the_camera_and_relocalises_when_lost(room: Path, built: Path, hub: str, sessions: list) -> None:
    """Images 0.1 s apart start from the previous pose (track_s 1 s); a camera carried across the room is lost and
    relocalised from retrieval; track_s 0 relocalises every image."""
    ds = SevenScenes(room, "room")
    train = ds.frames("train")
    frames = [train[i] for i in (0, 1, 2, 3, 12)]  # 15 degrees apart, then the other side of the room
    stamps = {5_000_000_000 + k * 100_000_000: f for k, f in enumerate(frames)}
    for track_s, tracked, lost in (("1.0", 3, 1), ("0", 0, 0)):
        node = _relocalizer(hub, built, sessions, latest_only="false", track_s=track_s)
        probe, pub, poses = _probe(hub, f"probe_t{track_s}", sessions)
        for t, f in stamps.items():
            pub.publish(ImageMsg(t, "cam", ds.load_color(f)))
        _spin_until([node, probe], _all_done(node, poses, 5), 60)
        c = node.counts
        assert c["localised"] == 5 and (c["tracked"], c["relocalised"], c["lost"]) == (tracked, lost, lost), c
        assert np.max(_errors(poses, stamps)) < 0.03
        node.close()
        probe.close()
    for bad in ("-1", "inf", "nan"):
        with pytest.raises(InputError, match="track_s must be a finite number of seconds >= 0"):
            _relocalizer(hub, built, sessions, track_s=bad)


def test_node_parameters_are_checked(built: Path, hub: str, sessions: list, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="parameter 'map'"):
        _relocalizer(hub, built, sessions, map="")
    with pytest.raises(InputError, match="method must be favor or baseline"):
        _relocalizer(hub, built, sessions, method="depth")
    with pytest.raises(InputError, match="image_type must be one of"):
        _relocalizer(hub, built, sessions, image_type="sensor_msgs/msg/PointCloud2")
    # a map retrieving with NetVLAD needs its checkpoint: the error names the node's parameter
    fmap = FavorMap.load(built)
    fmap.vocabulary = None
    fmap.save(tmp_path / "netvlad.favor.npz")
    with pytest.raises(InputError, match="retrieves with NetVLAD; set the parameter netvlad_weights"):
        _relocalizer(hub, built, sessions, map=str(tmp_path / "netvlad.favor.npz"))
    # an earlier run's config.yaml sets the method unless the launch does
    (tmp_path / "config.yaml").write_text("query:\n  method: baseline\n  iterations: 2\n")
    node = _relocalizer(hub, built, sessions, config=str(tmp_path / "config.yaml"))
    assert node.reloc.cfg.method == "baseline" and node.reloc.cfg.iterations == 2
    node.close()
    node = _relocalizer(hub, built, sessions, config=str(tmp_path / "config.yaml"), method="favor")
    assert node.reloc.cfg.method == "favor"
    node.close()


def test_launch_with_a_missing_map_stops_with_one_line(tmp_path: Path) -> None:
    """The relocalizer refuses its configuration at start-up: not respawned, and being required, the launch ends
    non-zero instead of waiting for images that will never be localised."""
    nodes = load_launch(ROOT / "launch" / "reloc.yaml", {"map": str(tmp_path / "nothere.npz")})
    log = io.StringIO()
    assert Supervisor(nodes, listen=[free_tcp_endpoint()], out=log, grace_s=3.0).run(install_signal_handlers=False) == 1
    text = log.getvalue()
    assert "[/relocalizer] /relocalizer: error: " in text and "nothere.npz" in text
    assert "not respawned" in text and text.count("[/relocalizer] started") == 1


def test_reloc_bag_launch_localises_a_recording(room: Path, built: Path, tmp_path: Path) -> None:
    """launch/reloc_bag.yaml: player -> relocalizer (launch/reloc.yaml) -> recorder and rerun_viz, as processes."""
    ds = SevenScenes(room, "room")
    frames = ds.frames("test")
    bag = tmp_path / "rec.mcap"
    t0 = 1_700_000_000_000_000_000
    stamps = {t0 + k * 500_000_000: f for k, f in enumerate(frames)}  # 2 Hz
    with BagWriter(bag, format="mcap") as w:
        for t, f in stamps.items():
            w.write_compressed_image("/camera/image_raw/compressed", ds.load_color(f), t, quality=95)
    out = tmp_path / "out"
    ep = free_tcp_endpoint()
    nodes = load_launch(ROOT / "launch" / "reloc_bag.yaml", {"map": str(built), "bag": str(bag), "out": str(out),
                                                             "rate": "2.0"})  # fmt: skip
    assert {n.exec for n in nodes} == {"bag_player", "favor_relocalizer", "recorder", "rerun_viz"}
    log = io.StringIO()
    sup = Supervisor(nodes, listen=[ep], out=log, grace_s=5.0)
    th = threading.Thread(target=sup.run, kwargs={"install_signal_handlers": False}, daemon=True)
    th.start()
    session = open_session([ep])
    probe = Node(NodeSpec("sparsepipe", "probe", "probe3"), session)
    poses: list = []
    probe.create_subscription("/camera/pose_map", POSE, lambda m: poses.append((time.monotonic(), m)))
    start = time.monotonic()
    while time.monotonic() - start < 180:
        probe.spin_once(0.05)
        if "[/player] exited with 0" in log.getvalue() and (
            len(poses) == len(frames) or poses and time.monotonic() - poses[-1][0] > 15
        ):
            break
    sup.stop()
    th.join(20)
    probe.close()
    session.close()
    assert not th.is_alive()
    text = log.getvalue()
    assert len(poses) >= 0.9 * len(frames), text[-3000:]
    t = _errors([m for _, m in poses], stamps)
    assert np.median(t) <= 0.03 and np.max(t) < 0.05  # tracked or relocalised, never a confidently wrong pose
    with BagReader(out / "poses.mcap") as rec:  # the recorder's bag, closed on shutdown
        assert rec.topics.get("/camera/pose_map") == POSE
    assert (out / "live.rrd").is_file()
