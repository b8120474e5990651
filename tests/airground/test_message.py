"""The UAV keyframe message (round trip, sizes, corruption) and the 0.3 Mbit/s rate controller on serialised bytes."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from perception.errors import InputError
from perception.geometry import SE3
from slam.airground.bandwidth import BandwidthMeter, RateController
from slam.airground.message import (
    HEADER_BYTES,
    KeyframeMessage,
    bytes_per_keypoint,
    decode,
    encode,
    message_size,
)


def _msg(rng, n=300, d=64, g=128, scores=False, width=4095.9) -> KeyframeMessage:
    desc = rng.normal(size=(n, d)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    kp = rng.uniform(0, [width, 0.75 * width], (n, 2))
    q = Rotation.random(random_state=int(rng.integers(1 << 31))).as_quat()
    pose = SE3.from_quat_t(q, rng.normal(scale=300.0, size=3))
    sc = rng.uniform(0, 3.0, n).astype(np.float32) if scores else None
    glob = rng.normal(size=g).astype(np.float32) if g else None
    return KeyframeMessage(7, 123_456, 1_700_000_000_123_456_789, pose, kp, desc, glob, 5, sc)


def test_sizes_per_keypoint_and_header() -> None:
    # hand-computed: 4 bytes of uint16 x/y + 1 (uint8) or 2 (fp16) bytes per descriptor dimension (+1 score byte)
    assert bytes_per_keypoint(64, "uint8") == 68  # XFeat
    assert bytes_per_keypoint(64, "fp16") == 132
    assert bytes_per_keypoint(256, "fp16") == 516  # SuperPoint, as in the research note's table
    assert bytes_per_keypoint(64, "uint8", scores=True) == 69
    # header: magic 4 + 4 x u8 + 2 x u16 + u32 + i64 + 3 f64 + 4 f32 + 3 x u16 + 2 f32 = 78, CRC 4
    assert HEADER_BYTES == 4 + 4 + 4 + 4 + 8 + 24 + 16 + 6 + 8 + 4 == 82
    assert message_size(1024, 64, 128, "uint8") == 82 + 256 + 1024 * 68
    with pytest.raises(InputError, match="'fp16' or 'uint8'"):
        bytes_per_keypoint(64, "int4")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind,scores", [("uint8", False), ("fp16", False), ("uint8", True), ("fp16", True)])
def test_round_trip(rng, kind, scores) -> None:
    m = _msg(rng, scores=scores)
    data = encode(m, kind)
    assert len(data) == message_size(300, 64, 128, kind, scores)
    r = decode(data)
    assert (r.robot_id, r.keyframe_id, r.stamp_ns, r.camera_id) == (7, 123_456, 1_700_000_000_123_456_789, 5)
    # pose: translation float64 exact, rotation from a float32 quaternion (< 1e-6 rad, checked with scipy)
    assert np.array_equal(r.T_world_cam.t, m.T_world_cam.t)
    dR = Rotation.from_matrix(r.T_world_cam.R.T @ m.T_world_cam.R).magnitude()
    assert dR < 1e-6
    # keypoints: 1/16 px fixed point -> within 1/32 px, up to 4096 px images
    assert np.abs(r.keypoints - m.keypoints).max() <= 1 / 32 + 1e-12
    assert m.keypoints.max() > 4000
    if kind == "fp16":
        assert np.abs(r.descriptors - m.descriptors).max() < 1e-3
    else:
        step = np.abs(m.descriptors).max() / 127  # one uint8 quantisation step of this message
        assert np.abs(r.descriptors - m.descriptors).max() < step
    np.testing.assert_allclose(np.linalg.norm(r.descriptors, axis=1), 1.0, atol=1e-5)
    # nearest neighbours are unchanged by the quantisation
    assert (np.argmax(r.descriptors @ m.descriptors.T, axis=1) == np.arange(300)).all()
    np.testing.assert_allclose(r.global_descriptor, m.global_descriptor, rtol=2**-11, atol=1e-7)
    if scores:
        assert np.abs(r.scores - m.scores).max() <= m.scores.max() / 510 + 1e-6
        assert np.argmax(r.scores) == np.argmax(m.scores)
    else:
        assert r.scores is None


def test_empty_message_and_no_global_descriptor(rng) -> None:
    m = KeyframeMessage(1, 0, -5, SE3.identity(), np.zeros((0, 2)), np.zeros((0, 64), np.float32))
    data = encode(m)
    assert len(data) == HEADER_BYTES
    r = decode(data)
    assert r.keypoints.shape == (0, 2) and r.descriptors.shape == (0, 64)
    assert r.global_descriptor is None and r.stamp_ns == -5
    np.testing.assert_allclose(r.T_world_cam.matrix(), np.eye(4), atol=1e-12)


def test_corrupt_truncated_and_foreign_payloads(rng) -> None:
    data = encode(_msg(rng, n=10, scores=True))
    for cut in (len(data) - 7, 40, 3):
        with pytest.raises(InputError, match="truncated"):
            decode(data[:cut])
    with pytest.raises(InputError, match="3 trailing bytes"):
        decode(data + b"\0\0\0")
    flipped = bytearray(data)
    flipped[HEADER_BYTES + 50] ^= 0x10  # a single bit in the body
    with pytest.raises(InputError, match="CRC mismatch"):
        decode(bytes(flipped))
    trailer = bytearray(data)
    trailer[-1] ^= 0xFF
    with pytest.raises(InputError, match="CRC mismatch"):
        decode(bytes(trailer))
    with pytest.raises(InputError, match="not a sparsepipe keyframe message"):
        decode(b"XXXX" + data[4:])
    old = bytearray(data)
    old[4] = 1
    with pytest.raises(InputError, match="unsupported version 1 .*speaks 2"):
        decode(bytes(old))
    # a corrupt descriptor-kind byte with a CRC that matches still fails cleanly
    bad = bytearray(data[:-4])
    bad[5] = 9
    with pytest.raises(InputError, match="unknown descriptor kind 9"):
        decode(bytes(bad) + struct.pack("<I", zlib.crc32(bytes(bad))))
    # every truncation fails with InputError, never struct.error / IndexError
    for cut in range(len(data)):
        with pytest.raises(InputError):
            decode(data[:cut])


def test_encode_rejects_what_the_format_cannot_carry(rng) -> None:
    m = _msg(rng, n=3, g=0)
    m.keypoints[0] = [4096.0, 1.0]
    with pytest.raises(InputError, match=r"\[0, 4096\)"):
        encode(m)
    m = _msg(rng, n=3, g=0)
    m.keypoints[1] = [-0.5, 1.0]
    with pytest.raises(InputError, match=r"\[0, 4096\)"):
        encode(m)
    m = _msg(rng, n=3, g=0)
    m.descriptors = m.descriptors[:2]
    with pytest.raises(InputError, match="3 keypoints but descriptors of shape"):
        encode(m)
    m = _msg(rng, n=3, g=0, scores=True)
    m.scores[0] = -1.0
    with pytest.raises(InputError, match="scores must be 3 finite values >= 0"):
        encode(m)
    m = _msg(rng, n=3, g=0)
    m.robot_id = 70_000
    with pytest.raises(InputError, match="robot_id must fit in 16 unsigned bits"):
        encode(m)


def _simulate(ctrl: RateController, rng, seconds: float = 10.0, hz: float = 10.0, g: int = 128):
    """A 10 Hz UAV stream of 1024-keypoint XFeat-like keyframes (64-D, uint8) through the controller."""
    meter = BandwidthMeter()
    template = _msg(rng, n=1024, g=g, width=1000.0)
    for i in range(int(seconds * hz)):
        stamp = 1_000_000_000 + int(i * 1e9 / hz) + int(rng.integers(0, 5_000_000))
        n = ctrl.allow(stamp, lambda k: message_size(k, 64, g), len(template.keypoints))
        if n == 0:
            continue
        sub = KeyframeMessage(template.robot_id, i, stamp, template.T_world_cam, template.keypoints[:n],
                              template.descriptors[:n], template.global_descriptor)  # fmt: skip
        data = encode(sub)
        assert len(data) == message_size(n, 64, g)
        ctrl.spend(stamp, len(data))
        meter.record(stamp, len(data), n)
    return meter


def _brute_force_max_window(meter: BandwidthMeter, window_ns: int) -> float:
    t = np.asarray(meter.stamps_ns)
    b = np.asarray(meter.sizes)
    return max(b[(t >= s) & (t < s + window_ns)].sum() for s in t) * 8 / (window_ns / 1e9)


@pytest.mark.parametrize("max_share", [1.0, 0.25])
def test_rate_controller_keeps_every_window_under_budget_and_uses_it(rng, max_share, tmp_path) -> None:
    budget = 300_000
    ctrl = RateController(budget, window_s=1.0, max_keypoints=1024, max_share=max_share)
    meter = _simulate(ctrl, rng)
    s = meter.summary(duration_s=10.0, window_s=1.0, budget_bits_per_s=budget)
    # every 1 s window (brute force over windows starting at each message) is under the budget
    assert _brute_force_max_window(meter, 1_000_000_000) == pytest.approx(s["max_window_bits_per_s"])
    assert s["max_window_bits_per_s"] <= budget and s["within_budget"]
    # and the budget is used: >= 80 % of 0.3 Mbit/s, i.e. >= 0.8 * 37500 B/s / 68 B keypoints
    assert s["budget_used"] >= 0.8
    assert s["keypoints"] >= 0.8 * budget / 8 * 10 / 68
    # no message exceeds the per-keyframe share
    assert s["max_bytes_per_message"] <= max_share * budget / 8
    if max_share < 1:  # spreading the budget sends more keyframes
        assert s["messages"] >= 30
    out = meter.write_json(tmp_path / "bandwidth.json", duration_s=10.0, budget_bits_per_s=budget)
    assert json.loads(out.read_text()) == s


def test_rate_controller_sliding_window_and_deferral() -> None:
    ctrl = RateController(80_000, window_s=1.0, min_keypoints=1, max_keypoints=10_000)  # 10 000 B per window
    size = lambda k: 100 + 10 * k  # noqa: E731
    assert ctrl.allow(0, size, 10_000) == 990  # largest k with 100 + 10 k <= 10 000
    ctrl.spend(0, 6_000)
    assert ctrl.available_bytes(500_000_000) == 4_000
    assert ctrl.allow(500_000_000, size, 10_000) == 390
    ctrl.spend(500_000_000, 3_000)
    assert ctrl.wait_ns(600_000_000, 1_000) == 0
    assert ctrl.wait_ns(600_000_000, 5_000) == 400_000_000  # the t=0 message frees its bytes at t=1 s
    assert ctrl.wait_ns(600_000_000, 10_000) == 900_000_000
    assert ctrl.wait_ns(600_000_000, 10_001) is None
    assert ctrl.available_bytes(1_000_000_000) == 7_000  # window (0, 1 s]: the t=0 message has left it
    with pytest.raises(InputError, match="must not decrease"):
        ctrl.allow(900_000_000, size, 10)
    with pytest.raises(InputError, match="max_share"):
        RateController(max_share=0.0)


def test_bandwidth_meter_summary_numbers() -> None:
    m = BandwidthMeter()
    for t, b in [(0, 1000), (400_000_000, 2000), (900_000_000, 500), (1_500_000_000, 4000)]:
        m.record(t, b)
    s = m.summary(duration_s=2.0, window_s=1.0, budget_bits_per_s=32_000)
    assert s["bytes"] == 7500 and s["messages"] == 4
    assert s["mean_bits_per_s"] == 7500 * 8 / 2.0
    # [t, t + 1 s) windows: from 0 -> 3500 B, 0.4 s -> 2500 B (1.5 s is out), 0.9 s -> 4500 B, 1.5 s -> 4000 B
    assert s["max_window_bits_per_s"] == 4500 * 8
    # the mean rate is under the budget but the worst window is over it
    assert s["within_budget"] is False and s["budget_used"] == pytest.approx(30_000 / 32_000)
    assert BandwidthMeter().summary()["messages"] == 0
