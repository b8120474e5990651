"""2D keypoint files: committed fixture with known values, exact round trip, validation, one-line errors naming
the file.

Regenerate the fixture with ``python tests/datasets/test_keypoints2d.py`` (written with plain ``np.savez``, not
with the module's writer, so the reader is checked against an independent producer of the documented format).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from perception.datasets.keypoints2d import (
    COCO17_KEYPOINTS,
    Keypoints2D,
    read_keypoints2d,
    read_keypoints2d_dir,
    validate_keypoints2d,
    write_keypoints2d,
)
from perception.errors import InputError

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "keypoints2d"

FRAMES = np.array([0, 1, 3], dtype=np.int64)
STAMPS = np.array([0, 33_333_333, 100_000_000], dtype=np.int64)


def fixture_keypoints() -> np.ndarray:
    """x = 10 j + f, y = 20 + j + 0.5, confidence = (j + 1) / 17; joint 9 of frame 1 missing (NaN, 0)."""
    f, j = np.meshgrid(np.arange(3), np.arange(17), indexing="ij")
    k = np.stack([10.0 * j + f, 20.0 + j + 0.5, (j + 1) / 17.0], axis=-1).astype(np.float32)
    k[1, 9] = [np.nan, np.nan, 0.0]
    return k


def make_fixture(dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    np.savez(
        dst / "cam01.npz",
        format_version=np.int64(1),
        camera=np.str_("cam01"),
        image_size=np.array([64, 48], dtype=np.int64),
        keypoint_convention=np.str_("coco17"),
        pixel_convention=np.str_("opencv-centre"),
        joint_names=np.array(COCO17_KEYPOINTS),
        frame_index=FRAMES,
        timestamp_ns=STAMPS,
        keypoints=fixture_keypoints(),
    )


def _kp(rng: np.random.Generator, n: int = 5) -> Keypoints2D:
    k = np.concatenate([rng.uniform(0, 640, (n, 17, 2)), rng.uniform(0, 1, (n, 17, 1))], axis=-1)
    return Keypoints2D("cam07", (640, 480), np.arange(n) * 2, 1_000 + np.arange(n) * 33_000_000, k.astype(np.float32))


def test_fixture_values() -> None:
    kp = read_keypoints2d(SAMPLES / "cam01.npz")
    assert kp.camera == "cam01" and kp.image_size == (64, 48) and len(kp) == 3
    assert kp.frame_index.dtype == np.int64 and np.array_equal(kp.frame_index, FRAMES)
    assert np.array_equal(kp.timestamp_ns, STAMPS)
    assert kp.keypoints.dtype == np.float32 and kp.keypoints.shape == (3, 17, 3)
    assert kp.xy[2, 4].tolist() == [42.0, 24.5]  # x = 10*4 + 2, y = 20 + 4 + 0.5
    assert kp.confidence[0, 16] == np.float32(1.0) and kp.confidence[0, 0] == np.float32(1 / 17)
    assert np.isnan(kp.xy[1, 9]).all() and kp.confidence[1, 9] == 0.0
    with np.load(SAMPLES / "cam01.npz") as z:  # self-describing: joint names and conventions travel with the file
        assert tuple(z["joint_names"].tolist()) == COCO17_KEYPOINTS and str(z["pixel_convention"]) == "opencv-centre"
    assert set(read_keypoints2d_dir(SAMPLES)) == {"cam01"}


def test_fixture_matches_generator(tmp_path: Path) -> None:
    make_fixture(tmp_path)
    with np.load(tmp_path / "cam01.npz") as a, np.load(SAMPLES / "cam01.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            assert np.array_equal(a[key], b[key], equal_nan=a[key].dtype.kind == "f"), key


def test_round_trip_exact_and_nan_normalised(tmp_path: Path, rng: np.random.Generator) -> None:
    kp = _kp(rng)
    kp.keypoints[2, 5, 0] = np.nan  # x missing, confidence still 0.7: becomes a missing joint (NaN, NaN, 0)
    kp.keypoints[2, 5, 2] = 0.7
    kp.keypoints[3, 1, 2] = np.nan  # confidence NaN: missing joint too
    path = write_keypoints2d(tmp_path / "kp" / "cam07.npz", kp)
    back = read_keypoints2d(path)
    expected = kp.keypoints.copy()
    expected[2, 5] = [np.nan, np.nan, 0.0]
    expected[3, 1] = [np.nan, np.nan, 0.0]
    assert back.camera == "cam07" and back.image_size == (640, 480)
    assert np.array_equal(back.frame_index, kp.frame_index) and np.array_equal(back.timestamp_ns, kp.timestamp_ns)
    assert np.array_equal(back.keypoints, expected, equal_nan=True)
    assert np.isnan(back.keypoints).sum() == 4  # only the x, y of the two missing joints
    assert not list((tmp_path / "kp").glob(".*partial*"))
    both = read_keypoints2d_dir(tmp_path / "kp")
    assert list(both) == ["cam07"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda k: k.timestamp_ns.__setitem__(3, k.timestamp_ns[2]), r"timestamp_ns must strictly increase.*entry 3"),
        (lambda k: k.frame_index.__setitem__(1, 0), r"frame_index must strictly increase"),
        (lambda k: k.keypoints.__setitem__((1, 3, 2), 1.5), r"confidence 1\.5 of joint left_ear at frame_index 2"),
        (lambda k: k.keypoints.__setitem__((0, 0, 2), -0.1), r"confidence -0\.1 of joint nose .*outside \[0, 1\]"),
        (lambda k: k.keypoints.__setitem__((4, 2, 0), np.inf), r"keypoints\[4, 2, 0\] is infinite"),
    ],
)
def test_validation_on_write(tmp_path: Path, rng: np.random.Generator, change, message: str) -> None:
    kp = _kp(rng)
    change(kp)
    out = tmp_path / "bad.npz"
    with pytest.raises(InputError, match=rf"write_keypoints2d\(.*bad\.npz\): {message}"):
        write_keypoints2d(out, kp)
    assert not out.exists()


def test_validation_shapes_and_types(rng: np.random.Generator) -> None:
    kp = _kp(rng)
    with pytest.raises(InputError, match=r"keypoints has shape \(5, 16, 3\); expected \(5, 17, 3\)"):
        validate_keypoints2d(Keypoints2D("c", (4, 4), kp.frame_index, kp.timestamp_ns, kp.keypoints[:, :16]))
    with pytest.raises(InputError, match=r"timestamp_ns has dtype float64; expected integers"):
        validate_keypoints2d(Keypoints2D("c", (4, 4), kp.frame_index, kp.timestamp_ns * 1e-9, kp.keypoints))
    with pytest.raises(InputError, match=r"timestamp_ns has shape \(4,\); expected \(5,\)"):
        validate_keypoints2d(Keypoints2D("c", (4, 4), kp.frame_index, kp.timestamp_ns[:4], kp.keypoints))
    with pytest.raises(InputError, match=r"image_size must be two positive integers"):
        validate_keypoints2d(Keypoints2D("c", (0, 4), kp.frame_index, kp.timestamp_ns, kp.keypoints))
    with pytest.raises(InputError, match=r"camera name must be a non-empty string"):
        validate_keypoints2d(Keypoints2D(" ", (4, 4), kp.frame_index, kp.timestamp_ns, kp.keypoints))


def test_read_errors_name_the_file(tmp_path: Path, rng: np.random.Generator) -> None:
    with pytest.raises(FileNotFoundError, match=r"2D keypoints: missing file .*nope\.npz"):
        read_keypoints2d(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"junk\.npz is not a readable NPZ archive"):
        read_keypoints2d(tmp_path / "junk.npz")
    good = write_keypoints2d(tmp_path / "g.npz", _kp(rng))
    with np.load(good) as z:
        data = {k: z[k] for k in z.files}
    np.savez(tmp_path / "nokp.npz", **{k: v for k, v in data.items() if k != "keypoints"})
    with pytest.raises(InputError, match=r"nokp\.npz lacks the entries keypoints"):
        read_keypoints2d(tmp_path / "nokp.npz")
    np.savez(tmp_path / "conv.npz", **{**data, "keypoint_convention": np.str_("halpe26")})
    with pytest.raises(InputError, match=r"conv\.npz has keypoint_convention 'halpe26'; expected 'coco17'"):
        read_keypoints2d(tmp_path / "conv.npz")
    stamps = data["timestamp_ns"].copy()
    stamps[-1] = stamps[0]
    np.savez(tmp_path / "stamps.npz", **{**data, "timestamp_ns": stamps})
    with pytest.raises(InputError, match=r"2D keypoints: .*stamps\.npz: timestamp_ns must strictly increase"):
        read_keypoints2d(tmp_path / "stamps.npz")
    np.savez(tmp_path / "obj.npz", **{**data, "camera": np.array(["a", 1], dtype=object)})
    with pytest.raises(InputError, match=r"obj\.npz holds an entry that is not a plain array"):
        read_keypoints2d(tmp_path / "obj.npz")
    with zipfile.ZipFile(tmp_path / "g.npz") as zf:
        assert "keypoints.npy" in zf.namelist()
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \*\.npz keypoint files in .*empty_dir"):
        read_keypoints2d_dir(tmp_path / "empty_dir")
    write_keypoints2d(tmp_path / "dup" / "a.npz", _kp(rng))
    write_keypoints2d(tmp_path / "dup" / "b.npz", _kp(rng))
    with pytest.raises(InputError, match=r"b\.npz repeats camera 'cam07'"):
        read_keypoints2d_dir(tmp_path / "dup")


if __name__ == "__main__":
    make_fixture(SAMPLES)
    print(f"wrote {SAMPLES}")
