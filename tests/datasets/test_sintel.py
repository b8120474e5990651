"""MPI-Sintel .cam/.dpt: fixture bytes vs the SDK's numpy reading, round trip, projection x = M N X, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from perception.camera import PinholeCamera
from perception.datasets.sintel import (
    CAM_BYTES,
    TAG_FLOAT,
    SintelSequence,
    read_cam,
    read_dpt,
    write_cam,
    write_dpt,
)
from perception.errors import InputError
from perception.geometry import SE3

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "sintel"
CAMS = SAMPLES / "training" / "camdata_left" / "alley_1"
M_FIXTURE = np.array([[1120.0, 0, 511.5], [0, 1120.0, 217.5], [0, 0, 1]])


def _sdk_cam_read(path: Path) -> tuple[float, np.ndarray, np.ndarray]:
    """The Sintel SDK's cam_read: float32 tag, 9 float64, 12 float64 via np.fromfile."""
    with open(path, "rb") as f:
        tag = np.fromfile(f, dtype=np.float32, count=1)[0]
        M = np.fromfile(f, dtype="float64", count=9).reshape((3, 3))
        N = np.fromfile(f, dtype="float64", count=12).reshape((3, 4))
    return float(tag), M, N


def test_fixture_values() -> None:
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    expected_N = {
        1: np.array([[1.0, 0, 0, 0.5], [0, 1, 0, -0.25], [0, 0, 1, 2.0]]),
        2: np.array([[c, 0, s, 1.0], [0, 1, 0, 0.0], [-s, 0, c, -3.0]]),
    }
    for i, N_ref in expected_N.items():
        path = CAMS / f"frame_{i:04d}.cam"
        assert path.stat().st_size == CAM_BYTES == 172
        tag, M, N = _sdk_cam_read(path)
        assert tag == TAG_FLOAT
        cam = read_cam(path)
        assert np.array_equal(cam.K, M) and np.array_equal(cam.K, M_FIXTURE)
        assert np.allclose(cam.T_cam_world.matrix()[:3], N, atol=1e-15)
        assert np.allclose(N, N_ref, atol=1e-15)
        # T_world_cam is the inverse of the extrinsic: camera centre C = -R^T t
        assert np.allclose(cam.T_world_cam.t, -N_ref[:3, :3].T @ N_ref[:, 3], atol=1e-12)
        # x = M N X equals the project's projection of T_world_cam^-1 X with the camera from K
        X = np.array([[0.3, -0.2, 4.0], [1.0, 0.5, 6.0]])
        h = (M @ N @ np.c_[X, np.ones(2)].T).T
        uv, ok = cam.camera().project(cam.T_world_cam.inverse().act(X))
        assert ok.all() and np.allclose(uv, h[:, :2] / h[:, 2:], atol=1e-9)
    assert read_cam(CAMS / "frame_0001.cam").camera() == PinholeCamera(1024, 436, 1120.0, 1120.0, 511.5, 217.5)

    seq = SintelSequence(SAMPLES, "alley_1")
    frames = seq.frames()
    assert [f.index for f in frames] == [1, 2]
    assert np.allclose(seq.poses()[1].matrix(), np.linalg.inv(np.vstack([expected_N[2], [0, 0, 0, 1]])), atol=1e-12)
    img = seq.load_image(frames[1])  # generator: R = 10 u + 2, G = 20 v + 7, B = 109
    assert img.shape == (6, 8, 3) and img[3, 2].tolist() == [22, 67, 109]

    d = seq.load_depth(frames[0])
    assert d.dtype == np.float32 and d.shape == (6, 8)
    assert d[2, 4] == np.float32(1.5 + 0.25 * 2 + 0.125 * 4)
    with open(frames[0].depth_path, "rb") as f:  # the SDK's depth_read
        assert f.read(4) == b"PIEH"
        w, h = np.fromfile(f, dtype=np.int32, count=2)
        ref = np.fromfile(f, dtype=np.float32, count=-1).reshape((h, w))
    assert np.array_equal(d, ref)


def test_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    K = np.array([[rng.uniform(300, 1500), 0, 511.5], [0, rng.uniform(300, 1500), 217.5], [0, 0, 1]])
    for k, T in enumerate(SE3.random(rng, 5, trans_scale=10.0)):
        p = write_cam(tmp_path / f"frame_{k + 1:04d}.cam", K, T)
        assert p.stat().st_size == 172
        cam = read_cam(p)
        assert np.array_equal(cam.K, K)
        assert np.abs(cam.T_world_cam.matrix() - T.matrix()).max() < 1e-12
        tag, M, N = _sdk_cam_read(p)
        assert tag == TAG_FLOAT and np.array_equal(M, K) and np.array_equal(N, T.inverse().matrix()[:3])
        # byte-identical to the SDK's cam_write (np.float32 tag + float64 tofile)
        ref = tmp_path / "sdk.cam"
        with open(ref, "wb") as f:
            np.array(TAG_FLOAT).astype(np.float32).tofile(f)
            M.astype("float64").tofile(f)
            N.astype("float64").tofile(f)
        assert ref.read_bytes() == p.read_bytes()
    depth = rng.uniform(0.1, 100.0, (5, 7)).astype(np.float32)
    write_dpt(tmp_path / "d.dpt", depth)
    assert np.array_equal(read_dpt(tmp_path / "d.dpt"), depth)
    assert (tmp_path / "d.dpt").stat().st_size == 12 + 4 * 35


def test_errors_name_the_file(tmp_path: Path) -> None:
    shutil.copytree(SAMPLES, tmp_path / "s")
    cam = tmp_path / "s" / "training" / "camdata_left" / "alley_1" / "frame_0001.cam"
    good = cam.read_bytes()

    cam.write_bytes(np.array([1.0], np.float32).tobytes() + good[4:])
    with pytest.raises(InputError, match=r"frame_0001\.cam is not a Sintel \.cam file: tag 1\.0"):
        read_cam(cam)
    cam.write_bytes(good[:100])
    with pytest.raises(InputError, match=r"frame_0001\.cam is truncated: 100 bytes, expected 172"):
        read_cam(cam)
    cam.write_bytes(b"")
    with pytest.raises(InputError, match=r"frame_0001\.cam has 0 bytes"):
        read_cam(cam)
    vals = np.frombuffer(good, np.float64, 21, offset=4).copy()
    vals[12] = np.nan
    cam.write_bytes(good[:4] + vals.tobytes())
    with pytest.raises(InputError, match=r"frame_0001\.cam contains NaN"):
        read_cam(cam)
    vals = np.frombuffer(good, np.float64, 21, offset=4).copy()
    vals[9] = 2.0  # N[0, 0]: not a rotation
    cam.write_bytes(good[:4] + vals.tobytes())
    with pytest.raises(InputError, match=r"frame_0001\.cam: the extrinsic is not a rigid"):
        read_cam(cam)
    cam.unlink()
    with pytest.raises(FileNotFoundError, match=r"MPI-Sintel: missing file .*frame_0001\.cam"):
        read_cam(cam)

    dpt = tmp_path / "s" / "training" / "depth" / "alley_1" / "frame_0001.dpt"
    dpt.write_bytes(dpt.read_bytes()[:-4])
    with pytest.raises(InputError, match=r"frame_0001\.dpt header says 8x6 but holds 188 data bytes"):
        read_dpt(dpt)
    dpt.write_bytes(b"XXXX" + bytes(8))
    with pytest.raises(InputError, match=r"frame_0001\.dpt is not a Sintel \.dpt file: tag"):
        read_dpt(dpt)
    with pytest.raises(FileNotFoundError, match=r"missing folder .*camdata_left/cave_2"):
        SintelSequence(tmp_path / "s", "cave_2")
    with pytest.raises(InputError, match="K must be a finite 3x3"):
        write_cam(tmp_path / "x.cam", np.eye(2), SE3.identity())
