"""The compact binary UAV keyframe message: all the UGV receives from the UAV.

Layout (little-endian, no padding), version 2::

    header   magic b"SPKF" | u8 version | u8 desc_kind (0 fp16, 1 uint8) | u8 flags (bit 0: scores present)
             | u8 reserved (0) | u16 robot_id | u16 camera_id | u32 keyframe_id | i64 stamp_ns
             | f64[3] t | f32[4] q (qx qy qz qw)              -- the UAV's SLAM pose T_uavworld_cam
             | u16 num_keypoints | u16 desc_dim | u16 global_dim | f32 desc_scale | f32 score_scale   (78 bytes)
    global   global_dim x f16                                  (global descriptor, may be 0-length)
    kpts     num_keypoints x 2 x u16                           (x, y in 1/16 px fixed point)
    desc     num_keypoints x desc_dim x (f16 | u8)
    scores   num_keypoints x u8                                (only with flags bit 0)
    trailer  u32 CRC32 (zlib) of everything before it

Quantisation (and the round-trip precision the tests check):

- keypoints: ``round(16 * x)`` as uint16, so pixels in [0, 4096) (65535 / 16 = 4095.94) to within 1/32 px.
- pose: translation float64 (exact); quaternion float32, i.e. the rotation to ~1e-7 rad (~1e-6 per matrix entry).
- descriptors fp16: relative error 2^-11 (< 1e-3 absolute for unit vectors).
- descriptors uint8: ``round(d / desc_scale * 127) + 128`` with ``desc_scale = max |d|`` of this message, so each
  component is within half a step (``desc_scale / 254``) before :func:`decode` re-normalises to unit length.
- scores uint8: ``round(s / score_scale * 255)`` with ``score_scale = max s`` (scores must be >= 0); within
  ``score_scale / 510``.

Per keypoint that is 4 bytes of position plus ``desc_dim`` (uint8) or ``2 * desc_dim`` (fp16) bytes, plus 1 with
scores: 68 bytes for XFeat's 64-D descriptors in uint8 (:func:`bytes_per_keypoint`). The fixed overhead is
``HEADER_BYTES`` = 82 (header + CRC) plus 2 bytes per global-descriptor dimension.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from perception.errors import InputError
from perception.geometry import SE3

MAGIC = b"SPKF"
VERSION = 2
KPT_SCALE = 16.0
"""Keypoint fixed-point scale: 1/16 px steps."""
MAX_PIXEL = 65535 / KPT_SCALE
_HEADER = struct.Struct("<4sBBBBHHIq3d4fHHHff")
_CRC = struct.Struct("<I")
HEADER_BYTES = _HEADER.size + _CRC.size
"""Fixed bytes per message (header + CRC trailer)."""
_KINDS = {"fp16": 0, "uint8": 1}
_BYTES_PER_DIM = {0: 2, 1: 1}
_FLAG_SCORES = 1

DescriptorKind = Literal["fp16", "uint8"]


@dataclass
class KeyframeMessage:
    robot_id: int
    keyframe_id: int
    stamp_ns: int
    T_world_cam: SE3
    """The sender's own SLAM pose of the camera (T_uavworld_cam)."""
    keypoints: np.ndarray
    """(N, 2) pixels, OpenCV convention, in [0, 4096)."""
    descriptors: np.ndarray
    """(N, D) float32, L2-normalised."""
    global_descriptor: np.ndarray | None = None
    camera_id: int = 0
    scores: np.ndarray | None = None
    """(N,) float32 >= 0, optional (sent as uint8 relative to the message's maximum)."""


def _fail(msg: str) -> InputError:
    return InputError(f"keyframe message: {msg}")


def _kind_code(descriptors: str) -> int:
    if descriptors not in _KINDS:
        raise _fail(f"descriptors must be 'fp16' or 'uint8', got {descriptors!r}")
    return _KINDS[descriptors]


def bytes_per_keypoint(desc_dim: int, descriptors: DescriptorKind = "uint8", scores: bool = False) -> int:
    """Serialised bytes per keypoint: 4 (position) + descriptor (+ 1 score byte), e.g. 68 for 64-D uint8."""
    return 4 + _BYTES_PER_DIM[_kind_code(descriptors)] * int(desc_dim) + (1 if scores else 0)


def message_size(
    num_keypoints: int, desc_dim: int, global_dim: int = 0, descriptors: DescriptorKind = "uint8", scores: bool = False
) -> int:
    """Bytes of an encoded message (to plan a bandwidth budget without encoding)."""
    return HEADER_BYTES + 2 * int(global_dim) + int(num_keypoints) * bytes_per_keypoint(desc_dim, descriptors, scores)


def _check_uint(value: int, bits: int, name: str) -> int:
    v = int(value)
    if not 0 <= v < (1 << bits):
        raise _fail(f"{name} must fit in {bits} unsigned bits, got {value}")
    return v


def encode(msg: KeyframeMessage, descriptors: DescriptorKind = "uint8") -> bytes:
    """Serialise ``msg`` (layout in the module docstring); raises InputError for values the format cannot carry."""
    code = _kind_code(descriptors)
    kp = np.asarray(msg.keypoints, dtype=np.float64).reshape(-1, 2)
    desc = np.asarray(msg.descriptors, dtype=np.float32)
    n = len(kp)
    if desc.ndim != 2 or len(desc) != n:
        raise _fail(f"{n} keypoints but descriptors of shape {desc.shape}")
    if n > 65535 or desc.shape[1] > 65535:
        raise _fail(f"at most 65535 keypoints and descriptor dimensions, got {n} x {desc.shape[1]}")
    if n and (not np.all(np.isfinite(kp)) or np.any(kp < 0) or np.any(np.round(kp * KPT_SCALE) > 65535)):
        raise _fail(f"keypoints must be finite pixels in [0, 4096) (max {MAX_PIXEL:.4f})")
    if not np.all(np.isfinite(desc)):
        raise _fail("descriptors contain NaN/inf")
    g = np.zeros(0, np.float32) if msg.global_descriptor is None else np.asarray(msg.global_descriptor, np.float32)
    if g.ndim != 1 or len(g) > 65535 or not np.all(np.isfinite(g)) or np.any(np.abs(g) > 65504):
        raise _fail(f"global descriptor must be a finite 1-D vector within fp16 range, got shape {g.shape}")
    if code == 0 and np.any(np.abs(desc) > 65504):
        raise _fail("descriptors exceed the fp16 range")
    flags = 0
    score_scale = 1.0
    sc = b""
    if msg.scores is not None:
        s = np.asarray(msg.scores, dtype=np.float64).reshape(-1)
        if len(s) != n or not np.all(np.isfinite(s)) or np.any(s < 0):
            raise _fail(f"scores must be {n} finite values >= 0, got shape {s.shape}")
        flags |= _FLAG_SCORES
        score_scale = float(s.max()) if n and s.max() > 0 else 1.0
        sc = np.round(s / score_scale * 255.0).clip(0, 255).astype(np.uint8).tobytes()
    q, t = msg.T_world_cam.as_quat_t()
    q, t = np.asarray(q, float).reshape(-1), np.asarray(t, float).reshape(-1)
    if q.shape != (4,) or not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))):
        raise _fail("the SLAM pose must be one finite SE3")
    desc_scale = float(np.abs(desc).max()) if desc.size else 1.0
    desc_scale = desc_scale if desc_scale > 0 else 1.0
    stamp = int(msg.stamp_ns)
    if not -(1 << 63) <= stamp < (1 << 63):
        raise _fail(f"stamp_ns {stamp} does not fit in int64")
    header = _HEADER.pack(
        MAGIC, VERSION, code, flags, 0,
        _check_uint(msg.robot_id, 16, "robot_id"), _check_uint(msg.camera_id, 16, "camera_id"),
        _check_uint(msg.keyframe_id, 32, "keyframe_id"), stamp, *t, *q,
        n, desc.shape[1], len(g), desc_scale, score_scale,
    )  # fmt: skip
    kpts = np.round(kp * KPT_SCALE).astype("<u2").tobytes()
    if code == 0:
        body = desc.astype("<f2").tobytes()
    else:
        body = (np.round(desc / desc_scale * 127.0) + 128).clip(0, 255).astype(np.uint8).tobytes()
    payload = header + g.astype("<f2").tobytes() + kpts + body + sc
    return payload + _CRC.pack(zlib.crc32(payload))


def decode(data: bytes | bytearray | memoryview) -> KeyframeMessage:
    """Parse a message; raises InputError (never struct.error) for truncated, corrupt or foreign payloads."""
    data = bytes(data)
    if len(data) >= 4 and data[:4] != MAGIC:
        raise _fail(f"not a sparsepipe keyframe message (magic {data[:4]!r}, expected {MAGIC!r})")
    if len(data) >= 5 and data[4] != VERSION:
        raise _fail(f"unsupported version {data[4]} (this reader speaks {VERSION})")
    if len(data) < HEADER_BYTES:
        raise _fail(f"truncated: {len(data)} bytes, the header and CRC alone need {HEADER_BYTES}")
    (_, _, kind, flags, _, robot, cam, kf, stamp, tx, ty, tz, qx, qy, qz, qw, n, d, gd, desc_scale,
     score_scale) = _HEADER.unpack_from(data)  # fmt: skip
    if kind not in _BYTES_PER_DIM:
        raise _fail(f"unknown descriptor kind {kind} (header corrupt?)")
    if flags & ~_FLAG_SCORES:
        raise _fail(f"unknown flags {flags:#04x} (header corrupt?)")
    has_scores = bool(flags & _FLAG_SCORES)
    need = HEADER_BYTES + 2 * gd + n * (4 + _BYTES_PER_DIM[kind] * d + (1 if has_scores else 0))
    if len(data) < need:
        raise _fail(f"truncated: {len(data)} bytes, the header announces {need}")
    if len(data) > need:
        raise _fail(f"{len(data) - need} trailing bytes: {len(data)} bytes, the header announces {need}")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[: -_CRC.size]) != crc:
        raise _fail("CRC mismatch: the payload is corrupt")
    if not (np.isfinite(desc_scale) and desc_scale > 0 and np.isfinite(score_scale) and score_scale > 0):
        raise _fail("invalid descriptor/score scale in the header")
    off = _HEADER.size
    g = np.frombuffer(data, "<f2", gd, off).astype(np.float32)
    off += 2 * gd
    kp = np.frombuffer(data, "<u2", 2 * n, off).reshape(n, 2).astype(np.float64) / KPT_SCALE
    off += 4 * n
    if kind == 0:
        desc = np.frombuffer(data, "<f2", n * d, off).reshape(n, d).astype(np.float32)
    else:
        desc = (np.frombuffer(data, np.uint8, n * d, off).reshape(n, d).astype(np.float32) - 128.0) / 127.0
        desc *= np.float32(desc_scale)
    off += _BYTES_PER_DIM[kind] * n * d
    norms = np.linalg.norm(desc, axis=1, keepdims=True)
    desc = desc / np.where(norms > 0, norms, 1.0)
    scores = None
    if has_scores:
        scores = np.frombuffer(data, np.uint8, n, off).astype(np.float32) * np.float32(score_scale / 255.0)
    quat = np.array([qx, qy, qz, qw], dtype=np.float64)
    if not (np.all(np.isfinite(quat)) and np.linalg.norm(quat) > 0.5):
        raise _fail("invalid pose quaternion")
    T = SE3.from_quat_t(quat, np.array([tx, ty, tz]))
    return KeyframeMessage(robot, kf, stamp, T, kp, desc, g if gd else None, cam, scores)
