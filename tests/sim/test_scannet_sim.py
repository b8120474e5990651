"""`sparsepipe sim scannet`: procedural rooms as labelled point clouds, read back by the ScanNet reader."""

from __future__ import annotations

import numpy as np

from apps.cli import main
from perception.datasets.scannet import IGNORE_LABEL, ScanNet
from perception.sim.scenarios.scannet import NYU40_ROOM as NYU40


def test_rooms_read_back_with_consistent_labels(tmp_path) -> None:
    assert main(["sim", "scannet", "--out", str(tmp_path), "--rooms", "4", "--seed", "3"]) == 0
    ds = ScanNet(tmp_path)
    assert ds.scenes("train") == ["scene0000_00", "scene0001_00", "scene0002_00"]
    assert ds.scenes("val") == ["scene0003_00"]
    for sid in ds.scenes("all"):
        sc = ds.load_scene(sid)
        assert 10_000 < len(sc) < 80_000 and len(sc.faces) == 0
        assert set(np.unique(sc.nyu40)) <= set(NYU40.values())  # no ceiling in scans (22 not in the room classes)
        assert np.mean(sc.labels20 != IGNORE_LABEL) > 0.99  # every room class is a benchmark class
        lo, hi = np.percentile(sc.xyz, 0.5, axis=0), np.percentile(sc.xyz, 99.5, axis=0)  # 5 mm jitter aside
        floor = sc.nyu40 == NYU40["floor"]
        assert np.percentile(np.abs(sc.xyz[floor, 2] - np.median(sc.xyz[floor, 2])), 99) < 0.02
        assert abs(np.median(sc.xyz[floor, 2]) - lo[2]) < 0.02  # the floor is the lowest plane
        wall = sc.nyu40 == NYU40["wall"]
        d = np.minimum.reduce([np.abs(sc.xyz[wall, 0] - lo[0]), np.abs(sc.xyz[wall, 0] - hi[0]),
                               np.abs(sc.xyz[wall, 1] - lo[1]), np.abs(sc.xyz[wall, 1] - hi[1])])  # fmt: skip
        assert np.percentile(d, 99) < 0.025  # wall points on the room's vertical boundary planes
        furniture = ~(floor | wall | (sc.nyu40 == NYU40["picture"]))
        assert furniture.sum() > 500 and len(np.unique(sc.rgb, axis=0)) > 1000  # noisy colours, not flat ones
        assert len(set(np.unique(sc.nyu40)) - {1, 2, 8, 9, 11}) >= 3  # several kinds of furniture per room
    again = tmp_path / "again"
    assert main(["sim", "scannet", "--out", str(again), "--rooms", "1", "--seed", "3"]) == 0
    a, b = ScanNet(tmp_path).load_scene("scene0000_00"), ScanNet(again).load_scene("scene0000_00")
    assert np.array_equal(a.xyz, b.xyz) and np.array_equal(a.nyu40, b.nyu40)  # deterministic per seed
