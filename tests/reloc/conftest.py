"""Shared by the FaVoR tests: one simulated room in the 7-Scenes layout and its map, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.cli import main

ROOM = ["--room.width", "320", "--room.height", "240", "--room.focal", "262.5", "--room.supersample", "1",
        "--room.frames-per-sequence", "24", "--room.test-frames-per-sequence", "6", "--rerun", "off"]  # fmt: skip


@pytest.fixture(scope="session")
def room(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("room7")
    assert main(["sim", "room", "--out", str(root), "--seed", "1", *ROOM]) == 0
    return root


@pytest.fixture(scope="session")
def built(room: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("map") / "room.favor.npz"
    assert main(["reloc", "build", "--root", str(room), "--scene", "room", "--out", str(out)]) == 0
    return out
