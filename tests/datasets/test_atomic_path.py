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


def test_atomic_write_json_is_standard_json(tmp_path) -> None:
    """NaN / Infinity (a failed run's median, the AP of a class without ground truth) are not JSON: written null."""
    import json

    import numpy as np

    from perception.fileio import atomic_write_json

    obj = {"median": float("inf"), "ap": [np.float32("nan"), 0.5], "arr": np.array([[np.nan, 2.0]]),
           "n": np.int64(3), "ok": (1.5, -np.inf)}  # fmt: skip
    path = atomic_write_json(tmp_path / "m.json", obj)

    def refuse(name: str):
        raise AssertionError(f"{name} written")

    assert json.loads(path.read_text(), parse_constant=refuse) == {
        "median": None, "ap": [None, 0.5], "arr": [[None, 2.0]], "n": 3, "ok": [1.5, None]}  # fmt: skip
