"""Shared dataset helpers: image IO round trips and one-line errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.datasets.common import read_matrix_txt, read_png16, read_rgb, require_file, write_png16, write_rgb
from perception.errors import InputError


def test_rgb_and_png16_round_trip(tmp_path: Path, rng) -> None:
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    write_rgb(tmp_path / "a.png", rgb)
    assert np.array_equal(read_rgb(tmp_path / "a.png"), rgb)
    gray = rgb[:, :, 0]
    write_rgb(tmp_path / "g.png", gray)
    assert np.array_equal(read_rgb(tmp_path / "g.png"), np.repeat(gray[:, :, None], 3, axis=2))
    d = rng.integers(0, 65536, (6, 8), dtype=np.uint16)
    write_png16(tmp_path / "d.png", d)
    assert np.array_equal(read_png16(tmp_path / "d.png"), d)
    u, v = np.meshgrid(np.arange(0, 256, 8), np.arange(0, 256, 8))
    smooth = np.stack([u, v, np.full_like(u, 90)], -1)
    write_rgb(tmp_path / "a.jpg", smooth.astype(np.uint8), jpeg_quality=95)
    assert np.abs(read_rgb(tmp_path / "a.jpg").astype(int) - smooth).mean() < 2.0
    assert not list(tmp_path.glob(".*partial*"))


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"7-Scenes: missing file .*nope\.png \(colour frame\)"):
        require_file(tmp_path / "nope.png", "7-Scenes", "colour frame")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    with pytest.raises(InputError, match=r"bad\.png is not a readable image"):
        read_rgb(bad)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.png is not a readable image"):
        read_png16(tmp_path / "empty.png")
    write_rgb(tmp_path / "rgb.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InputError, match=r"rgb\.png is uint8.*single-channel 16-bit"):
        read_png16(tmp_path / "rgb.png")
    m = tmp_path / "pose.txt"
    m.write_text("1 0 0\n0 1 0\n")
    with pytest.raises(InputError, match=r"pose\.txt holds a 2x3 matrix; expected 4x4"):
        read_matrix_txt(m, (4, 4), "7-Scenes")
    m.write_text("1 0 0 nan\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    with pytest.raises(InputError, match=r"pose\.txt contains NaN"):
        read_matrix_txt(m, (4, 4), "7-Scenes")
    m.write_text("1 0 0 x\n")
    with pytest.raises(InputError, match=r"pose\.txt is not a numeric matrix"):
        read_matrix_txt(m, (4, 4), "7-Scenes")
    with pytest.raises(InputError, match="cannot encode"):
        write_rgb(tmp_path / "a.xyz", np.zeros((2, 2, 3), np.uint8))
