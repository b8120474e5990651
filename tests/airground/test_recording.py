"""Reading air-ground recordings: odometry as trajectories, images streamed, one-line errors for bad bags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.datasets.ros import BagReader, BagWriter
from perception.errors import InputError
from perception.geometry import SE3
from slam.airground.recording import RecordingTopics, check_topics, image_stamps, iter_images, read_odometry

TOP = RecordingTopics()


def _bag(path: Path, n=5, nan_at=None, gray=False) -> Path:
    rng = np.random.default_rng(0)
    poses = SE3.exp(rng.normal(0, 0.3, (n, 6)))
    with BagWriter(path, format="mcap") as w:
        for i in range(n):
            T = poses[i]
            if nan_at == i:
                T = SE3(T.R, np.array([np.nan, 0, 0]))
            w.write_odometry(
                TOP.ugv_odometry, T, 1_000_000_000 + i * 100_000_000, frame_id="odom", child_frame_id="imu"
            )
            img = rng.integers(0, 255, (4, 6) if gray else (4, 6, 3), dtype=np.uint8)
            w.write_image(TOP.ugv_image, img, 1_000_000_000 + i * 100_000_000 + 25_000_000)
    return path


def test_odometry_and_images(tmp_path: Path) -> None:
    p = _bag(tmp_path / "rec.mcap")
    with BagReader(p) as bag:
        traj = read_odometry(bag, TOP.ugv_odometry)
        assert len(traj) == 5 and traj.frame_id == "odom" and traj.child_frame_id == "imu"
        assert traj.stamps_ns[1] - traj.stamps_ns[0] == 100_000_000
        stamps = image_stamps(bag, TOP.ugv_image)
        assert np.array_equal(stamps - traj.stamps_ns, np.full(5, 25_000_000))
        imgs = list(iter_images(bag, TOP.ugv_image))
        assert imgs[0][1].shape == (4, 6, 3) and imgs[0][1].dtype == np.uint8
        check_topics(p, bag.topics, {"lio": TOP.ugv_odometry})
        with pytest.raises(InputError, match=r"missing topic\(s\) uav images \(/uav/camera/image_raw\).*rig file"):
            check_topics(p, bag.topics, {"lio": TOP.ugv_odometry, "uav images": TOP.uav_image})


def test_grayscale_images_become_three_channels(tmp_path: Path) -> None:
    p = _bag(tmp_path / "gray.mcap", gray=True)
    with BagReader(p) as bag:
        _, img = next(iter_images(bag, TOP.ugv_image))
    assert img.shape == (4, 6, 3) and np.array_equal(img[:, :, 0], img[:, :, 2])


def test_bad_odometry_is_one_line(tmp_path: Path) -> None:
    p = _bag(tmp_path / "nan.mcap", nan_at=2)
    with BagReader(p) as bag, pytest.raises(InputError, match=r"NaN/inf pose at 1\.200000000 s"):
        read_odometry(bag, TOP.ugv_odometry)
    p = _bag(tmp_path / "one.mcap", n=1)
    with BagReader(p) as bag, pytest.raises(InputError, match="has 1 odometry message"):
        read_odometry(bag, TOP.ugv_odometry)
    with BagReader(p) as bag, pytest.raises(InputError, match="expected nav_msgs/msg/Odometry"):
        read_odometry(bag, TOP.ugv_image)
