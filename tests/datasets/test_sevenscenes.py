"""7-Scenes reader/writer: committed fixture with hand-known values, round trip, one-line errors naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from perception.camera import PinholeCamera
from perception.datasets.sevenscenes import (
    DEFAULT_CAMERA,
    SevenScenes,
    read_pose,
    write_frame,
    write_splits,
)
from perception.errors import InputError
from perception.geometry import SE3

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "sevenscenes"

# The poses written into the fixture (generator: Rz(90 deg) / Rx(90 deg) / identity with these translations).
FIXTURE_POSES = {
    (1, 0): np.array([[0, -1, 0, 1.0], [1, 0, 0, 2.0], [0, 0, 1, 3.0], [0, 0, 0, 1]]),
    (1, 1): np.array([[1, 0, 0, -0.5], [0, 0, -1, 0.25], [0, 1, 0, 1.5], [0, 0, 0, 1]]),
    (2, 0): np.array([[1, 0, 0, 0.1], [0, 1, 0, -0.2], [0, 0, 1, 0.3], [0, 0, 0, 1]]),
}


def test_fixture_layout_and_values() -> None:
    ds = SevenScenes(SAMPLES, "chess")
    assert ds.sequences("train") == [1] and ds.sequences("test") == [2] and ds.sequences("all") == [1, 2]
    train = ds.frames("train")
    assert [(f.seq, f.index) for f in train] == [(1, 0), (1, 1)]
    assert train[1].name == "seq-01/frame-000001"
    assert train[1].color_path == SAMPLES / "chess" / "seq-01" / "frame-000001.color.png"
    for f in ds.frames("all"):
        T = f.T_world_cam.matrix()
        assert np.allclose(T, FIXTURE_POSES[(f.seq, f.index)], atol=1e-12)
        assert np.allclose(T, np.loadtxt(f.pose_path), atol=1e-12)  # independent parse of the same file
        assert np.array_equal(ds.load_pose(f).matrix(), T)
    # Rz(90): the camera x axis points along world y (camera-to-world).
    assert np.allclose(train[0].T_world_cam.act([1.0, 0.0, 0.0]), [1.0, 3.0, 3.0], atol=1e-12)
    assert ds.poses("all").shape == (3,)

    f = ds.frames("test")[0]
    rgb = ds.load_color(f)
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    # generator: R = 10 u + seq, G = 20 v + index, B = 100 + seq + index
    assert rgb[4, 3].tolist() == [32, 80, 102]
    assert np.array_equal(rgb[:, :, ::-1], cv2.imread(str(f.color_path)))

    d = ds.load_depth_m(train[1])
    assert d.dtype == np.float32 and d.shape == (6, 8)
    assert d[0, 0] == 0.0  # raw 65535: invalid
    assert d[5, 7] == 0.0  # raw 0: invalid
    assert d[2, 3] == np.float32(1.213)  # raw 1000 + 100 v + u + 10 index = 1213 mm
    raw = cv2.imread(str(train[1].depth_path), cv2.IMREAD_UNCHANGED)
    assert raw[0, 0] == 65535 and raw.dtype == np.uint16
    ok = (raw != 65535) & (raw != 0)
    assert np.allclose(d[ok], raw[ok] / 1000.0, atol=1e-6)
    dn = ds.load_depth_m(train[1], invalid=np.nan)
    assert np.isnan(dn[0, 0]) and np.isnan(dn[5, 7]) and np.count_nonzero(np.isnan(dn)) == 2


def test_default_camera() -> None:
    cam = SevenScenes(SAMPLES, "chess").camera
    assert cam == DEFAULT_CAMERA == PinholeCamera(640, 480, 525.0, 525.0, 320.0, 240.0)
    # A point on the optical axis projects to (320, 240) (OpenCV convention, used as is).
    uv, _ = cam.project(np.array([0.0, 0.0, 2.0]))
    assert np.allclose(uv, [320.0, 240.0])
    other = PinholeCamera(640, 480, 585.0, 585.0, 320.0, 240.0)
    assert SevenScenes(SAMPLES, "chess", camera=other).camera is other


def test_write_read_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    poses = SE3.random(rng, 3, trans_scale=2.0)
    rgbs = rng.integers(0, 256, (3, 6, 8, 3), dtype=np.uint8)
    mm = rng.integers(1, 65535, (3, 6, 8))
    depth = mm / 1000.0
    depth[0, 0, 0] = np.nan
    depth[0, 0, 1] = -1.0
    depth[0, 0, 2] = 70.0  # beyond 65.534 m: not representable
    depth[0, 0, 3] = np.inf
    for k, (seq, idx) in enumerate([(3, 0), (3, 7), (4, 2)]):
        write_frame(tmp_path, "room", seq, idx, rgbs[k], depth[k], poses[k])
    write_splits(tmp_path, "room", [3], [4])
    assert (tmp_path / "room" / "TrainSplit.txt").read_text() == "sequence3\n"
    assert not list(tmp_path.rglob(".*partial*"))

    ds = SevenScenes(tmp_path, "room")
    frames = ds.frames("all")
    assert [(f.seq, f.index) for f in frames] == [(3, 0), (3, 7), (4, 2)]
    for k, f in enumerate(frames):
        assert np.array_equal(ds.load_color(f), rgbs[k])
        assert np.abs(f.T_world_cam.matrix() - poses[k].matrix()).max() < 1e-12
        raw = cv2.imread(str(f.depth_path), cv2.IMREAD_UNCHANGED)
        expected_raw = mm[k].astype(np.uint16)
        if k == 0:
            expected_raw[0, :4] = 65535  # NaN, negative, beyond range, inf -> invalid
        assert np.array_equal(raw, expected_raw)  # exact millimetres in the PNG
        d = ds.load_depth_m(f, invalid=np.nan)
        ok = expected_raw != 65535
        assert np.all(np.isnan(d[~ok]))
        assert np.allclose(d[ok], mm[k][ok] / 1000.0, rtol=1e-7, atol=0)
    # The written pose file parses independently to the same matrix (17 significant digits: exact).
    assert np.array_equal(np.loadtxt(frames[1].pose_path), poses[1].matrix())
    # A 4x4 numpy matrix is accepted too, and depth may be skipped.
    write_frame(tmp_path, "room", 5, 0, rgbs[0], None, np.eye(4))
    assert not (tmp_path / "room" / "seq-05" / "frame-000000.depth.png").exists()
    assert np.array_equal(read_pose(tmp_path / "room" / "seq-05" / "frame-000000.pose.txt").matrix(), np.eye(4))


def _copy_fixture(tmp_path: Path) -> Path:
    shutil.copytree(SAMPLES, tmp_path / "s")
    return tmp_path / "s" / "chess" / "seq-01"


def test_errors_name_the_file(tmp_path: Path) -> None:
    seq = _copy_fixture(tmp_path)
    ds = SevenScenes(tmp_path / "s", "chess")
    pose = seq / "frame-000000.pose.txt"

    pose.write_text("1 0 0 nan\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    with pytest.raises(InputError, match=r"frame-000000\.pose\.txt contains NaN"):
        ds.load_pose(ds.frames("train")[0])
    pose.write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n")
    with pytest.raises(InputError, match=r"frame-000000\.pose\.txt holds a 3x4 matrix; expected 4x4"):
        read_pose(pose)
    R = Rotation.from_rotvec([0.1, 0.2, 0.3]).as_matrix() * 1.1  # scaled: not a rotation
    pose.write_text("\n".join(" ".join(map(str, r)) for r in np.vstack([np.c_[R, np.zeros(3)], [0, 0, 0, 1]])))
    with pytest.raises(InputError, match=r"7-Scenes: .*frame-000000\.pose\.txt is not a rigid 4x4"):
        read_pose(pose)
    pose.write_text("-1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")  # reflection
    with pytest.raises(InputError, match=r"frame-000000\.pose\.txt is not a rigid"):
        read_pose(pose)

    (seq / "frame-000001.color.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(InputError, match=r"frame-000001\.color\.png is not a readable image"):
        ds.load_color(ds.frames("train")[1])
    (seq / "frame-000001.depth.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"frame-000001\.depth\.png is not a readable image"):
        ds.load_depth_m(ds.frames("train")[1])
    shutil.copy(seq / "frame-000000.color.png", seq / "frame-000001.depth.png")  # 8-bit RGB, not 16-bit
    with pytest.raises(InputError, match=r"frame-000001\.depth\.png is uint8.*16-bit"):
        ds.load_depth_m(ds.frames("train")[1])

    (seq / "frame-000001.pose.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"7-Scenes: missing file .*frame-000001\.pose\.txt \(4x4"):
        ds.frames("train")
    (seq.parent / "TestSplit.txt").write_text("sequence2\nseq3\n")
    with pytest.raises(InputError, match=r"TestSplit\.txt line 2 is 'seq3'; expected 'sequenceN'"):
        ds.sequences("test")
    (seq.parent / "TestSplit.txt").write_text("sequence9\n")
    with pytest.raises(FileNotFoundError, match=r"missing folder .*seq-09 .*unzip seq-09\.zip"):
        ds.frames("test")
    (seq.parent / "TrainSplit.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing file .*TrainSplit\.txt"):
        ds.sequences("all")
    with pytest.raises(FileNotFoundError, match=r"missing folder .*kitchen"):
        SevenScenes(tmp_path / "s", "kitchen")
    with pytest.raises(InputError, match="split must be"):
        ds.sequences("val")  # type: ignore[arg-type]


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    rgb = np.zeros((6, 8, 3), np.uint8)
    bad = np.eye(4)
    bad[0, 3] = np.nan
    with pytest.raises(InputError, match="T_world_cam"):
        write_frame(tmp_path, "x", 1, 0, rgb, None, bad)
    with pytest.raises(InputError, match="depth shape"):
        write_frame(tmp_path, "x", 1, 0, rgb, np.ones((5, 8)), np.eye(4))
    with pytest.raises(InputError, match="expected an SE3 or a 4x4"):
        write_frame(tmp_path, "x", 1, 0, rgb, None, np.eye(3))
    with pytest.raises(InputError, match="TrainSplit.txt needs a non-empty"):
        write_splits(tmp_path, "x", [], [2])
    assert not (tmp_path / "x" / "seq-01").exists() or not list((tmp_path / "x" / "seq-01").iterdir())
