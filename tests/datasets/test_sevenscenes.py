"""7-Scenes reader/writer: committed fixture with hand-known values, round trip, one-line errors naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from perception.camera import PinholeCamera
from perception.datasets.pairs import read_pairs, write_pairs
from perception.datasets.sevenscenes import (
    DEFAULT_CAMERA,
    SevenScenes,
    SevenScenesFrame,
    parse_frame_name,
    read_pgt,
    read_pose,
    read_rendered_depth,
    rendered_depth_name,
    write_frame,
    write_pgt,
    write_rendered_depth,
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


def test_pseudo_ground_truth_replaces_the_poses(tmp_path: Path, caplog) -> None:
    """The SfM pGT format of visloc_pseudo_gt_limitations: 'rgb_file qw qx qy qz tx ty tz f', world-to-camera."""
    pgt = tmp_path / "pgt"
    pgt.mkdir()
    c, h = np.cos(np.pi / 4), np.sin(np.pi / 4)
    # frame 0: identity rotation, t = (-1, -2, -3) -> camera centre (1, 2, 3); frame 1 is not listed
    (pgt / "chess_train.txt").write_text("seq-01/frame-000000.color.png 1 0 0 0 -1 -2 -3 526.0\n")
    # test frame: R_cam_world = Rz(90 deg), t = (1, 0, 0) -> T_world_cam = (Rz(-90), -Rz(-90) t)
    (pgt / "chess_test.txt").write_text(f"seq-02/frame-000000.color.png {c} 0 0 {h} 1 0 0 527.0\n")
    ds = SevenScenes(SAMPLES, "chess", pgt=pgt)
    with caplog.at_level("WARNING"):
        train = ds.frames("train")
    assert [f.name for f in train] == ["seq-01/frame-000000"] and "1 of 2 train frames" in caplog.text
    assert train[0].image_name == "seq-01/frame-000000.color.png"
    assert np.allclose(train[0].T_world_cam.matrix(), [[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]])
    Rwc = Rotation.from_euler("z", -90, degrees=True).as_matrix()
    T = ds.frames("test")[0].T_world_cam
    assert np.allclose(T.R, Rwc, atol=1e-12) and np.allclose(T.t, -Rwc @ [1, 0, 0], atol=1e-12)
    assert [f.name for f in ds.frames("all")] == ["seq-01/frame-000000", "seq-02/frame-000000"]
    assert ds.pgt_focal() == 526.0 and SevenScenes(SAMPLES, "chess").pgt_focal() is None
    # the dataset's own pose.txt files are untouched and still read without pgt
    assert np.allclose(SevenScenes(SAMPLES, "chess").frames("test")[0].T_world_cam.matrix(), FIXTURE_POSES[(2, 0)])

    # round trip of the writer (and hloc results: the same lines without f)
    rng = np.random.default_rng(0)
    poses = {f"seq-0{k}/frame-00000{k}.color.png": SE3.from_matrix(np.r_[np.c_[
        Rotation.random(random_state=k).as_matrix(), rng.normal(size=3)], [[0, 0, 0, 1]]])
        for k in range(3)}  # fmt: skip
    for focal in (525.5, None):
        back = read_pgt(write_pgt(tmp_path / "rt.txt", poses, focal))
        for name, T in poses.items():
            assert np.abs(back[name][0].matrix() - T.matrix()).max() < 1e-8 and back[name][1] == focal


def test_pseudo_ground_truth_errors_name_the_file_and_line(tmp_path: Path) -> None:
    pgt = tmp_path / "pgt"
    pgt.mkdir()
    f = pgt / "chess_train.txt"
    for text, msg in [
        ("seq-01/frame-000000.color.png 1 0 0 0 1 2 3\nbad 1 0 0\n", r"chess_train.txt line 2: .*\(4 fields\)"),
        ("seq-01/frame-000000.color.png 2 0 0 0 1 2 3 525\n", "quaternion norm 2.0000"),
        ("seq-01/frame-000000.color.png 1 0 0 0 1 2 nan 525\n", "non-finite"),
        ("seq-01/frame-000000.color.png 1 0 0 0 1 2 3 525\n" * 2, "listed twice"),
        ("# only a comment\n", "lists no poses"),
    ]:
        f.write_text(text)
        with pytest.raises(InputError, match=msg):
            read_pgt(f)
    f.write_text("seq-01/frame-000000.color.png 1 0 0 0 1 2 3 525\n")
    ds = SevenScenes(SAMPLES, "chess", pgt=pgt)
    with pytest.raises(InputError, match=r"missing .*chess_test\.txt; the pseudo ground truth folder needs"):
        ds.frames("test")
    f.write_text("seq-09/frame-000000.color.png 1 0 0 0 1 2 3 525\n")
    with pytest.raises(InputError, match="lists seq-09/frame-000000.color.png, which is not a train frame"):
        SevenScenes(SAMPLES, "chess", pgt=pgt).frames("train")
    for poses, focal, msg in [({"a b.png": SE3.identity()}, 525.0, "empty or has whitespace"),
                              ({"a.png": SE3.identity()}, {"b.png": 525.0}, "the focal of a.png is None"),
                              ({"a.png": SE3.identity()}, float("nan"), "the focal of a.png is nan")]:
        with pytest.raises(InputError, match=msg):
            write_pgt(tmp_path / "w.txt", poses, focal)
    assert not (tmp_path / "w.txt").exists()
    with pytest.raises(FileNotFoundError, match=r"missing folder .*nowhere \(pseudo ground truth with chess_train"):
        SevenScenes(SAMPLES, "chess", pgt=tmp_path / "nowhere")


def test_retrieval_pairs_and_frame_names(tmp_path: Path) -> None:
    """hloc pairs files (DenseVLAD / NetVLAD retrieval lists): per query, its database images in file order."""
    p = tmp_path / "chess_top10.txt"
    p.write_text("# DenseVLAD top 3\nseq-03/frame-000000.color.png seq-01/frame-000120.color.png\n"
                 "seq-03/frame-000000.color.png seq-02/frame-000007.color.png\n\n"
                 "seq-03/frame-000000.color.png seq-01/frame-000120.color.png\n"  # a repeat is kept once
                 "seq-05/frame-000010.color.png seq-04/frame-000999.color.png\n")  # fmt: skip
    pairs = read_pairs(p)
    assert list(pairs) == ["seq-03/frame-000000.color.png", "seq-05/frame-000010.color.png"]
    assert pairs["seq-03/frame-000000.color.png"] == ["seq-01/frame-000120.color.png", "seq-02/frame-000007.color.png"]
    assert pairs["seq-05/frame-000010.color.png"] == ["seq-04/frame-000999.color.png"]
    assert read_pairs(write_pairs(tmp_path / "w.txt", pairs)) == pairs
    with pytest.raises(InputError, match="names must be non-empty without whitespace"):
        write_pairs(tmp_path / "x.txt", {"a b": ["c"]})
    (tmp_path / "e.txt").write_text("# nothing\n")
    with pytest.raises(InputError, match="e.txt lists no pairs"):
        read_pairs(tmp_path / "e.txt")
    assert parse_frame_name("seq-03/frame-000012.color.png") == (None, 3, 12)
    assert parse_frame_name("seq-03/frame-000012") == (None, 3, 12)
    assert parse_frame_name("chess\\seq-11/frame-000001.color.png") == ("chess", 11, 1)
    assert parse_frame_name("data/7scenes/fire/seq-01/frame-000002.color.png") == ("fire", 1, 2)
    assert parse_frame_name("seq-03/frame-000012.depth.png") is None and parse_frame_name("xseq-03/frame-1") is None


def test_rendered_depth_maps_in_hlocs_layout(tmp_path: Path) -> None:
    """hloc's rendered depth: seqXX_frame-NNNNNN.pose.depth.tiff, millimetres, 0 and > 1000 m invalid."""
    f = SevenScenesFrame(3, 42, tmp_path / "c.png", tmp_path / "d.png", tmp_path / "p.txt")
    assert rendered_depth_name(f) == "seq03_frame-000042.pose.depth.tiff"
    g = SevenScenesFrame(12, 7, tmp_path / "c.png", tmp_path / "d.png", tmp_path / "p.txt")
    assert rendered_depth_name(g) == "seq12_frame-000007.pose.depth.tiff"  # hloc: "seq-12" -> "seq12"
    d = np.linspace(0.4, 4.0, 12 * 16).reshape(12, 16)
    d[0, 0], d[0, 1], d[0, 2] = np.nan, 0.0, -1.0
    path = write_rendered_depth(tmp_path, f, d)
    got = read_rendered_depth(path, invalid=np.nan)
    assert got.dtype == np.float32 and np.isnan(got[0, :3]).all()
    assert np.allclose(got.ravel()[3:], d.ravel()[3:], atol=1e-6)
    cv2.imwrite(str(tmp_path / "u16.tiff"), np.array([[0, 1500], [2_000, 65535]], np.uint16))  # integer mm too
    assert np.allclose(read_rendered_depth(tmp_path / "u16.tiff"), [[0.0, 1.5], [2.0, 65.535]])
    from PIL import Image  # hloc reads these with PIL, whose integer TIFFs are int32 (mode "I")

    Image.fromarray(np.array([[0, 2500]], np.int32)).save(tmp_path / "i32.tiff")
    assert np.allclose(read_rendered_depth(tmp_path / "i32.tiff"), [[0.0, 2.5]])
    cv2.imwrite(str(tmp_path / "far.tiff"), np.array([[2e6, 1000.0]], np.float32))  # > 1000 m: invalid
    assert np.allclose(read_rendered_depth(tmp_path / "far.tiff"), [[0.0, 1.0]])
    cv2.imwrite(str(tmp_path / "u8.tiff"), np.full((2, 2), 200, np.uint8))  # 8 bits cannot hold millimetres
    with pytest.raises(InputError, match="u8.tiff is uint8 with shape"):
        read_rendered_depth(tmp_path / "u8.tiff")
    (tmp_path / "bad.tiff").write_bytes(b"II*\x00 truncated")
    with pytest.raises(InputError, match="bad.tiff is unreadable; expected a single-channel"):
        read_rendered_depth(tmp_path / "bad.tiff")
    with pytest.raises(FileNotFoundError, match="missing file .*nothere.tiff"):
        read_rendered_depth(tmp_path / "nothere.tiff")
    with pytest.raises(FileNotFoundError, match="rendered depth maps of chess"):
        SevenScenes(SAMPLES, "chess", rendered_depth=tmp_path / "no_such_dir")
