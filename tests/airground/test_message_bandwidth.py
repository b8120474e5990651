"""The UAV keyframe message (round trip, corruption) and the 0.3 Mbit/s rate controller, on serialised bytes."""

from __future__ import annotations

import numpy as np
import pytest

from perception.errors import InputError
from perception.geometry import SE3
from slam.airground.bandwidth import BandwidthMeter, RateController
from slam.airground.message import KeyframeMessage, decode, encode, message_size


def _msg(rng, n=300, d=64, g=128) -> KeyframeMessage:
    desc = rng.normal(size=(n, d)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    kp = rng.uniform(0, [1279.9, 719.9], (n, 2))
    pose = SE3.random(rng, trans_scale=50.0)
    return KeyframeMessage(2, 17, 1_700_000_000_123_456_789, pose, kp, desc, rng.normal(size=g).astype(np.float32), 3)


@pytest.mark.parametrize("kind", ["uint8", "fp16"])
def test_round_trip(rng, kind) -> None:
    m = _msg(rng)
    data = encode(m, kind)
    assert len(data) == message_size(300, 64, 128, kind)
    assert message_size(1, 64, 0, "uint8") - message_size(0, 64, 0, "uint8") == 68  # bytes per XFeat keypoint
    r = decode(data)
    assert (r.robot_id, r.keyframe_id, r.stamp_ns, r.camera_id) == (2, 17, m.stamp_ns, 3)
    assert np.abs(r.T_world_cam.t - m.T_world_cam.t).max() < 1e-12
    assert np.abs(r.T_world_cam.R - m.T_world_cam.R).max() < 1e-6  # float32 quaternion
    assert np.abs(r.keypoints - m.keypoints).max() <= 1 / 32 + 1e-12
    step = 1e-3 if kind == "fp16" else np.abs(m.descriptors).max() / 127  # one uint8 quantisation step
    assert np.abs(r.descriptors - m.descriptors).max() < step * 1.5
    # matching is unchanged: nearest neighbours of decoded descriptors are the originals
    nn = np.argmax(r.descriptors @ m.descriptors.T, axis=1)
    assert (nn == np.arange(300)).mean() > 0.99
    assert np.abs(r.global_descriptor - m.global_descriptor).max() < 1e-2


def test_corrupt_and_truncated_payloads(rng) -> None:
    data = encode(_msg(rng, n=10))
    with pytest.raises(InputError, match="truncated"):
        decode(data[:-7])
    with pytest.raises(InputError, match="truncated"):
        decode(data[:20])
    flipped = bytearray(data)
    flipped[100] ^= 0xFF
    with pytest.raises(InputError, match="CRC mismatch"):
        decode(bytes(flipped))
    with pytest.raises(InputError, match="not a sparsepipe keyframe message"):
        decode(b"XXXX" + data[4:])
    bad = bytearray(data)
    bad[4] = 9
    with pytest.raises(InputError, match="unsupported version 9"):
        decode(bytes(bad))
    m = _msg(rng, n=2)
    m.keypoints[0] = [5000.0, 1.0]
    with pytest.raises(InputError, match=r"\[0, 4096\)"):
        encode(m)


def test_rate_controller_keeps_every_window_under_budget(rng) -> None:
    ctrl = RateController(300_000, window_s=1.0, max_keypoints=1024)
    meter = BandwidthMeter()
    sent_kpts = []
    for i in range(100):  # 10 s at 10 Hz of 1024-keypoint XFeat keyframes
        stamp = 1_000_000_000 + i * 100_000_000 + int(rng.integers(0, 5_000_000))
        m = _msg(rng, n=1024, g=128)
        n = ctrl.allow(stamp, lambda k: message_size(k, 64, 128), len(m.keypoints))
        if n == 0:
            continue
        sub = KeyframeMessage(m.robot_id, i, stamp, m.T_world_cam, m.keypoints[:n], m.descriptors[:n],
                              m.global_descriptor)  # fmt: skip
        data = encode(sub)
        ctrl.spend(stamp, len(data))
        meter.record(stamp, len(data))
        sent_kpts.append(n)
    s = meter.summary(duration_s=10.0, window_s=1.0)
    assert s["max_window_bits_per_s"] <= 300_000
    assert s["mean_bits_per_s"] >= 0.8 * 300_000  # the budget is used, not wasted
    assert sum(sent_kpts) > 0.8 * 300_000 / 8 * 10 / 68  # keypoints per second allowed by the budget
