"""ScanNet v2 reader/writer: committed fixture with known values, 20-class mapping, exact round trip, one-line
errors naming the file.

Regenerate the fixture with ``python tests/datasets/test_scannet.py``: the PLY files are assembled byte by byte
(header text + numpy records) in ScanNet's layout, not with the module's writer (plyfile).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest

from perception.datasets.scannet import (
    CLASS_NAMES_20,
    IGNORE_LABEL,
    VALID_CLASS_IDS,
    ScanNet,
    nyu40_to_labels20,
    read_label_map,
    write_label_map,
    write_scene,
    write_split,
)
from perception.errors import InputError

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "scannet"

# scene0000_00: a 2 x 1.5 x 0.5 m box, 8 vertices, 12 triangles.
CUBE_XYZ = np.array(
    [[0, 0, 0], [2, 0, 0], [2, 1.5, 0], [0, 1.5, 0], [0, 0, 0.5], [2, 0, 0.5], [2, 1.5, 0.5], [0, 1.5, 0.5]],
    dtype=np.float32,
)
CUBE_RGB = np.array([[10 * i, 255 - 10 * i, 3 * i] for i in range(8)], dtype=np.uint8)
CUBE_FACES = np.array(
    [[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6],
     [3, 0, 4], [3, 4, 7]],
)  # fmt: skip
# wall, floor, otherfurniture, unannotated, NYU40 13 (pillow, not a benchmark class), otherprop, 50 (bad id), sink.
CUBE_NYU40 = np.array([1, 2, 39, 0, 13, 40, 50, 34])
CUBE_LABELS20 = np.array([0, 1, 19, 255, 255, 255, 255, 17])
# scene0011_00 (val): one triangle, all chairs but one window vertex.
TRI_XYZ = np.array([[0.25, -1.0, 3.0], [1.0, 0.5, -0.125], [-2.0, 0.0, 1.0]], dtype=np.float32)
TRI_RGB = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.uint8)
TRI_NYU40 = np.array([5, 5, 9])
TSV_ROWS = [("wall", 1), ("floor", 2), ("kitchen cabinets", 3), ("chair", 5), ("window", 9), ("pillow", 13),
            ("shower curtain", 28), ("object", 40)]  # fmt: skip
TSV_HEADER = ("id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class\teigen13class\tModelNet40\t"
              "ModelNet10\tShapeNetCore55\tsynsetoffset\twnsynsetid\twnsynsetkey\tmpcat40\tmpcat40index")  # fmt: skip


def _ply_bytes(xyz: np.ndarray, rgb: np.ndarray, faces: np.ndarray, labels: np.ndarray | None) -> bytes:
    props = ["float x", "float y", "float z", "uchar red", "uchar green", "uchar blue", "uchar alpha"]
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
    if labels is not None:
        props.append("ushort label")
        fields.append(("label", "<u2"))
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(xyz)}"]
    header += [f"property {p}" for p in props]
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    v = np.zeros(len(xyz), dtype=fields)
    v["x"], v["y"], v["z"] = xyz.T
    v["red"], v["green"], v["blue"] = rgb.T
    v["alpha"] = 255
    if labels is not None:
        v["label"] = labels
    f = np.zeros(len(faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    f["n"], f["i"] = 3, faces
    return ("\n".join(header) + "\n").encode("ascii") + v.tobytes() + f.tobytes()


def make_fixture(dst: Path) -> None:
    scenes = (
        ("scene0000_00", CUBE_XYZ, CUBE_RGB, CUBE_FACES, CUBE_NYU40),
        ("scene0011_00", TRI_XYZ, TRI_RGB, np.array([[0, 1, 2]]), TRI_NYU40),
    )
    for scene, xyz, rgb, faces, nyu in scenes:
        d = dst / "scans" / scene
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{scene}_vh_clean_2.ply").write_bytes(_ply_bytes(xyz, rgb, faces, None))
        (d / f"{scene}_vh_clean_2.labels.ply").write_bytes(_ply_bytes(xyz, rgb, faces, nyu))
    rows = [f"{i}\t{raw}\t{raw}\t{100 - i}\t{nyu}" + "\t" * 12 for i, (raw, nyu) in enumerate(TSV_ROWS, start=1)]
    (dst / "scannetv2-labels.combined.tsv").write_text(TSV_HEADER + "\n" + "\n".join(rows) + "\n")
    (dst / "scannetv2_train.txt").write_text("scene0000_00\n")
    (dst / "scannetv2_val.txt").write_text("scene0011_00\n")


def test_fixture_values(caplog: pytest.LogCaptureFixture) -> None:
    ds = ScanNet(SAMPLES)
    assert ds.scenes("train") == ["scene0000_00"] and ds.scenes("val") == ["scene0011_00"]
    assert ds.scenes("all") == ["scene0000_00", "scene0011_00"]
    with caplog.at_level(logging.WARNING, logger="perception.datasets.scannet"):
        s = ds.load_scene("scene0000_00")
    assert (
        "labels [50] outside the NYU40 ids 0..40" in caplog.text and "scene0000_00_vh_clean_2.labels.ply" in caplog.text
    )
    assert s.xyz.dtype == np.float32 and np.array_equal(s.xyz, CUBE_XYZ) and len(s) == 8
    assert s.rgb.dtype == np.uint8 and np.array_equal(s.rgb, CUBE_RGB)
    assert np.array_equal(s.faces, CUBE_FACES) and np.array_equal(s.nyu40, CUBE_NYU40)
    assert np.array_equal(s.labels20, CUBE_LABELS20)
    assert [CLASS_NAMES_20[i] for i in s.labels20[[0, 1, 2, 7]]] == ["wall", "floor", "otherfurniture", "sink"]
    t = ds.load_scene("scene0011_00")
    assert np.array_equal(t.xyz, TRI_XYZ) and t.labels20.tolist() == [4, 4, 8]  # chair, chair, window
    assert ds.load_scene("scene0011_00", labels=False).nyu40 is None
    assert ds.label_map == dict(TSV_ROWS)
    assert read_label_map(SAMPLES / "scannetv2-labels.combined.tsv", "count")["wall"] == 99


def test_fixture_readable_by_open3d_and_matches_generator(tmp_path: Path) -> None:
    mesh = o3d.t.io.read_triangle_mesh(str(SAMPLES / "scans/scene0000_00/scene0000_00_vh_clean_2.ply"))
    assert np.array_equal(mesh.vertex.positions.numpy(), CUBE_XYZ)
    assert np.array_equal(mesh.triangle.indices.numpy(), CUBE_FACES)
    make_fixture(tmp_path)
    for p in sorted(SAMPLES.rglob("*")):
        if p.is_file():
            assert (tmp_path / p.relative_to(SAMPLES)).read_bytes() == p.read_bytes(), p


def test_labels20_mapping() -> None:
    ids = np.arange(0, 70)
    expected = np.array([VALID_CLASS_IDS.index(i) if i in VALID_CLASS_IDS else 255 for i in ids])
    assert np.array_equal(nyu40_to_labels20(ids), expected)
    assert nyu40_to_labels20(np.array([65535, -1, 36], dtype=np.int32)).tolist() == [255, 255, 18]
    assert len(VALID_CLASS_IDS) == len(CLASS_NAMES_20) == 20 and IGNORE_LABEL == 255
    with pytest.raises(InputError, match=r"expected integer NYU40 ids, got dtype float64"):
        nyu40_to_labels20(np.array([1.0]))


def test_writer_reader_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    n, m = 500, 900
    xyz = rng.uniform(-5, 5, (n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    faces = rng.integers(0, n, (m, 3))
    nyu = rng.integers(0, 42, n)
    write_scene(tmp_path, "scene0123_04", xyz, rgb, faces, nyu)
    write_scene(tmp_path, "scene0707_00", xyz[:10], rgb[:10], faces[:0], test=True)
    write_split(tmp_path, "val", ["scene0123_04"])
    write_split(tmp_path, "test", ["scene0707_00"])
    write_label_map(tmp_path / "scannetv2-labels.combined.tsv", {"wall": 1, "tv stand": 39})
    ds = ScanNet(tmp_path)
    assert ds.scenes("val") == ["scene0123_04"] and ds.scenes("test") == ["scene0707_00"]
    s = ds.load_scene("scene0123_04")
    assert np.array_equal(s.xyz, xyz) and np.array_equal(s.rgb, rgb) and np.array_equal(s.faces, faces)
    assert np.array_equal(s.nyu40, nyu) and np.array_equal(s.labels20, nyu40_to_labels20(nyu))
    t = ds.load_scene("scene0707_00")  # a test scene: no labels file, none returned
    assert t.nyu40 is None and t.labels20 is None and t.faces.shape == (0, 3) and np.array_equal(t.xyz, xyz[:10])
    assert ds.label_map == {"wall": 1, "tv stand": 39}
    # Independent reader: open3d reads the same vertices, colours and triangles.
    mesh = o3d.t.io.read_triangle_mesh(str(tmp_path / "scans/scene0123_04/scene0123_04_vh_clean_2.labels.ply"))
    assert np.array_equal(mesh.vertex.positions.numpy(), xyz) and np.array_equal(mesh.triangle.indices.numpy(), faces)
    assert np.allclose(mesh.vertex.colors.numpy(), rgb / 255.0, atol=1e-6)
    assert not list(tmp_path.rglob(".*partial*"))


def test_errors_name_the_file(tmp_path: Path) -> None:
    root = tmp_path / "s"
    shutil.copytree(SAMPLES, root)
    d = root / "scans" / "scene0000_00"
    ds = ScanNet(root)
    with pytest.raises(FileNotFoundError, match=r"missing folder .*scans/scene0999_00"):
        ds.load_scene("scene0999_00")
    with pytest.raises(InputError, match=r"scene id 'room1' is not of the form sceneXXXX_XX"):
        ds.load_scene("room1")
    good = (d / "scene0000_00_vh_clean_2.labels.ply").read_bytes()
    (d / "scene0000_00_vh_clean_2.labels.ply").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing file .*scene0000_00_vh_clean_2\.labels\.ply \(labelled mesh"):
        ds.load_scene("scene0000_00")
    (d / "scene0000_00_vh_clean_2.labels.ply").write_bytes(good[:-7])
    with pytest.raises(InputError, match=r"labels\.ply is not a readable PLY mesh \(.*early end-of-file"):
        ds.load_scene("scene0000_00")
    (d / "scene0000_00_vh_clean_2.labels.ply").write_bytes((d / "scene0000_00_vh_clean_2.ply").read_bytes())
    with pytest.raises(InputError, match=r"labels\.ply vertex has no 'label' property; expected the NYU40 id"):
        ds.load_scene("scene0000_00")
    (d / "scene0000_00_vh_clean_2.labels.ply").write_bytes(
        _ply_bytes(TRI_XYZ, TRI_RGB, np.array([[0, 1, 2]]), TRI_NYU40)
    )
    with pytest.raises(InputError, match=r"labels\.ply has 3 vertices but scene0000_00_vh_clean_2\.ply has 8"):
        ds.load_scene("scene0000_00")
    tri = _ply_bytes(CUBE_XYZ, CUBE_RGB, CUBE_FACES[:1], None)  # one face: count byte + 3 int32 = last 13 bytes
    quad = tri[:-13] + np.array([4], "u1").tobytes() + np.array([0, 1, 2, 3], "<i4").tobytes()
    (d / "scene0000_00_vh_clean_2.ply").write_bytes(quad)
    with pytest.raises(InputError, match=r"vh_clean_2\.ply has non-triangular faces"):
        ds.load_scene("scene0000_00")
    (d / "scene0000_00_vh_clean_2.ply").write_bytes(b"solid stl\n")
    with pytest.raises(InputError, match=r"vh_clean_2\.ply is not a readable PLY mesh \(line 1: expected 'ply'"):
        ds.load_scene("scene0000_00")
    (root / "scannetv2_val.txt").write_text("scene0011_00\nscene11\n")
    with pytest.raises(InputError, match=r"scannetv2_val\.txt entry 2 'scene11' is not a scene id"):
        ds.scenes("val")
    with pytest.raises(FileNotFoundError, match=r"missing file .*scannetv2_test\.txt \(split file"):
        ds.scenes("test")
    (root / "bad.tsv").write_text("id\tcategory\n1\twall\n")
    with pytest.raises(InputError, match=r"bad\.tsv header .* lacks 'raw_category' or 'nyu40id'"):
        read_label_map(root / "bad.tsv")
    with pytest.raises(InputError, match=r"write_scene\(scene0000_00\): rgb must be \(8, 3\) uint8"):
        write_scene(root, "scene0000_00", CUBE_XYZ, CUBE_RGB.astype(np.int32), CUBE_FACES)
    with pytest.raises(InputError, match=r"face indices must lie in \[0, 7\]"):
        write_scene(root, "scene0000_00", CUBE_XYZ, CUBE_RGB, CUBE_FACES + 1)


if __name__ == "__main__":
    make_fixture(SAMPLES)
    print(f"wrote {SAMPLES}")
