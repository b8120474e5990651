"""The compact binary UAV keyframe message: all the UGV receives from the UAV.

Layout (little-endian), version 1::

    header   magic b"SPKF" | u8 version | u8 desc_kind (0 fp16, 1 uint8) | u16 robot_id | u32 keyframe_id
             | i64 stamp_ns | f64[3] t | f32[4] q (xyzw)   -- the UAV's SLAM pose T_uavworld_cam
             | u16 camera_id | u16 num_keypoints | u16 desc_dim | u16 global_dim | f32 desc_scale
    global   global_dim x f16                                   (global descriptor, may be 0-length)
    kpts     num_keypoints x 2 x u16                            (pixels in 1/16 px fixed point: up to 4096 px)
    desc     num_keypoints x desc_dim x (f16 | u8)             (u8: round(d / desc_scale * 127) + 128)
    trailer  u32 CRC32 of everything before it

Per keypoint that is 4 bytes of position plus ``desc_dim`` bytes (uint8) or ``2 * desc_dim`` (fp16): 68 bytes for
XFeat's 64-D descriptors in uint8. Positions are exact to 1/32 px; the rotation to float32 precision (~1e-7 rad).
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
VERSION = 1
KPT_SCALE = 16.0
_HEADER = struct.Struct("<4sBBHIq3d4fHHHHf")
_KINDS = {"fp16": 0, "uint8": 1}


@dataclass
class KeyframeMessage:
    robot_id: int
    keyframe_id: int
    stamp_ns: int
    T_world_cam: SE3
    """The sender's own SLAM pose of the camera."""
    keypoints: np.ndarray
    """(N, 2) pixels, OpenCV convention, in [0, 4096)."""
    descriptors: np.ndarray
    """(N, D) float32, L2-normalised."""
    global_descriptor: np.ndarray | None = None
    camera_id: int = 0


def _fail(msg: str) -> InputError:
    return InputError(f"keyframe message: {msg}")


def encode(msg: KeyframeMessage, descriptors: Literal["fp16", "uint8"] = "uint8") -> bytes:
    kp = np.asarray(msg.keypoints, dtype=np.float64).reshape(-1, 2)
    desc = np.asarray(msg.descriptors, dtype=np.float32)
    if desc.ndim != 2 or len(desc) != len(kp):
        raise _fail(f"{len(kp)} keypoints but descriptors of shape {desc.shape}")
    if len(kp) > 65535 or desc.shape[1] > 65535:
        raise _fail("at most 65535 keypoints and descriptor dimensions")
    if len(kp) and (np.any(kp < 0) or np.any(kp * KPT_SCALE > 65535) or not np.all(np.isfinite(kp))):
        raise _fail("keypoints must be finite pixels in [0, 4096)")
    if descriptors not in _KINDS:
        raise _fail(f"descriptors must be 'fp16' or 'uint8', got {descriptors!r}")
    g = np.zeros(0, np.float16) if msg.global_descriptor is None else np.asarray(msg.global_descriptor, np.float16)
    q, t = msg.T_world_cam.as_quat_t()
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))):
        raise _fail("the SLAM pose contains NaN/inf")
    scale = float(np.abs(desc).max()) if desc.size else 1.0
    scale = scale if scale > 0 else 1.0
    header = _HEADER.pack(MAGIC, VERSION, _KINDS[descriptors], msg.robot_id, msg.keyframe_id, msg.stamp_ns, *t, *q,
                          msg.camera_id, len(kp), desc.shape[1], len(g), scale)  # fmt: skip
    kpts = np.round(kp * KPT_SCALE).astype("<u2").tobytes()
    if descriptors == "fp16":
        body = desc.astype("<f2").tobytes()
    else:
        body = (np.round(desc / scale * 127.0) + 128).clip(0, 255).astype(np.uint8).tobytes()
    payload = header + g.astype("<f2").tobytes() + kpts + body
    return payload + struct.pack("<I", zlib.crc32(payload))


def decode(data: bytes) -> KeyframeMessage:
    if len(data) < _HEADER.size + 4:
        raise _fail(f"truncated: {len(data)} bytes, the header alone needs {_HEADER.size + 4}")
    payload, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if data[:4] != MAGIC:
        raise _fail(f"not a sparsepipe keyframe message (magic {data[:4]!r})")
    (_, version, kind, robot, kf, stamp, tx, ty, tz, qx, qy, qz, qw, cam, n, d, gd, scale) = _HEADER.unpack_from(data)
    if version != VERSION:
        raise _fail(f"unsupported version {version} (this reader speaks {VERSION})")
    if kind not in (0, 1):
        raise _fail(f"unknown descriptor kind {kind}")
    bpd = 2 if kind == 0 else 1
    need = _HEADER.size + 2 * gd + 4 * n + bpd * n * d + 4
    if len(data) != need:
        raise _fail(f"truncated or padded: {len(data)} bytes, the header announces {need}")
    if zlib.crc32(payload) != crc:
        raise _fail("CRC mismatch: the payload is corrupt")
    off = _HEADER.size
    g = np.frombuffer(data, "<f2", gd, off).astype(np.float32)
    off += 2 * gd
    kp = np.frombuffer(data, "<u2", 2 * n, off).reshape(n, 2).astype(np.float64) / KPT_SCALE
    off += 4 * n
    if kind == 0:
        desc = np.frombuffer(data, "<f2", n * d, off).reshape(n, d).astype(np.float32)
    else:
        desc = (np.frombuffer(data, np.uint8, n * d, off).reshape(n, d).astype(np.float32) - 128.0) / 127.0 * scale
    norms = np.linalg.norm(desc, axis=1, keepdims=True)
    desc = desc / np.where(norms > 0, norms, 1.0)
    T = SE3.from_quat_t(np.array([qx, qy, qz, qw]), np.array([tx, ty, tz]))
    return KeyframeMessage(robot, kf, stamp, T, kp, desc, g if gd else None, cam)


def message_size(num_keypoints: int, desc_dim: int, global_dim: int = 0, descriptors: str = "uint8") -> int:
    """Bytes of an encoded message (to plan a bandwidth budget without encoding)."""
    bpd = 2 if descriptors == "fp16" else 1
    return _HEADER.size + 2 * global_dim + num_keypoints * (4 + bpd * desc_dim) + 4
