"""`sparsepipe sim airground` (tiny preset): recording topics, stamps, drift, ground truth and rig read back."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from apps.cli import main
from perception.datasets.ros import BagReader, read_bag
from perception.geometry import SE3
from slam.airground.recording import image_stamps, read_odometry
from slam.trajectory import read_tum


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ag")
    assert main(["sim", "airground", "--out", str(out), "--seed", "1", "--tiny", "--rerun", "off"]) == 0
    return out


def test_recording_topics_stamps_and_drift(rec: Path) -> None:
    rig = yaml.safe_load((rec / "rig.yaml").read_text())
    topics = rig["topics"]
    with BagReader(rec / "recording.mcap") as bag:
        assert set(topics.values()) <= set(bag.topics)
        lio = read_odometry(bag, topics["ugv_odometry"])
        cam = image_stamps(bag, topics["ugv_image"])
    assert np.all(np.diff(lio.stamps_ns) == 100_000_000)  # 10 Hz, stamped at scan end
    phase = (cam - lio.stamps_ns[0]) % 100_000_000
    assert np.all(phase == 25_000_000)  # the configured camera-LIO phase offset
    gt = read_tum(rec / "gt" / "ugv_imu.tum")
    est = lio.T_world_body_at(gt.stamps_ns)
    err = np.linalg.norm(est.t - gt.poses.t, axis=1)
    assert err[0] < 0.01 and 0.001 < err.max() < 1.0  # drift: present, bounded
    T = SE3.from_matrix(
        np.array(json.loads((rec / "gt" / "T_ugvworld_uavworld.json").read_text())["T_ugvworld_uavworld"])
    )
    assert np.isclose(np.degrees(np.arctan2(T.R[1, 0], T.R[0, 0])), 69.0)
    # the UAV's SLAM poses are the ground truth moved into its own frame by T
    uav_gt = read_tum(rec / "gt" / "uav_cam.tum")
    T_body_cam = SE3.from_matrix(np.array(rig["uav"]["T_body_cam"]))
    slam = [m.msg.T_parent_child for m in read_bag(rec / "recording.mcap", [topics["uav_odometry"]])]
    mapped = T @ SE3.stack(slam) @ T_body_cam
    assert np.abs(mapped.t - uav_gt.poses.t).max() < 1e-9


def test_images_are_textured(rec: Path) -> None:
    sift = cv2.SIFT_create()
    for topic in ("/ugv/camera/image_raw", "/uav/camera/image_raw"):
        img = next(iter(read_bag(rec / "recording.mcap", [topic]))).msg.image
        kps = sift.detect(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), None)
        assert len(kps) >= 100, topic
