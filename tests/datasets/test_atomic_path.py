"""perception.fileio.atomic_path: writers that need a file name still publish atomically."""

from __future__ import annotations

import pytest

from perception.fileio import atomic_path


def test_atomic_path_replaces_on_success_and_leaves_the_old_file_on_error(tmp_path) -> None:
    target = tmp_path / "sub" / "points.ply"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".ply" and tmp.parent == target.parent and not tmp.exists()
        tmp.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer crashed")
    assert target.read_text() == "new" and sorted(p.name for p in target.parent.iterdir()) == ["points.ply"]
    with pytest.raises(OSError, match="nothing was written"), atomic_path(tmp_path / "x.c3d"):
        pass
    assert not (tmp_path / "x.c3d").exists()
