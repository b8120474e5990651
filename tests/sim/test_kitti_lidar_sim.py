"""`sparsepipe sim kitti-lidar`: street LiDAR sweeps in the KITTI object layout, read back by the KITTI reader.

Checks: labels round-trip to the simulated boxes, labelled objects have their returns inside their boxes, hits
lie exactly on the surfaces (noise off), the ray culling loses no hits, determinism, config errors, the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from apps.cli import main
from perception.datasets.kitti_object import KittiObject
from perception.errors import InputError
from perception.sim.scenarios.kitti_lidar import (
    CLASSES,
    IMAGE_SIZE,
    STATIC_IDS,
    KittiLidarSimConfig,
    LidarCaster,
    Primitive,
    kitti_calib,
    make_kitti_lidar,
    simulate_frame,
)

H = 1.73


def _local(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Points in the box frame (centre at the origin, length along x)."""
    c, s = np.cos(box[6]), np.sin(box[6])
    d = points[:, :3].astype(np.float64) - box[:3]
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)


def _in_box(points: np.ndarray, box: np.ndarray, margin: float) -> np.ndarray:
    return np.all(np.abs(_local(points, box)) <= 0.5 * box[3:6] + margin, axis=1)


def _surface_distance(points: np.ndarray, obj: dict) -> np.ndarray:
    """Distance of points (near the object) to its surface: box faces or the cylinder's side and caps."""
    box = np.asarray(obj["box"])
    q, half = _local(points, box), 0.5 * box[3:6]
    if obj["shape"] == "box":
        return np.abs(np.abs(q) - half).min(axis=1)
    radial = np.abs(np.hypot(q[:, 0], q[:, 1]) - half[0])
    return np.minimum(radial, np.abs(np.abs(q[:, 2]) - half[2]))


def test_frames_read_back_with_labels_matching_the_ground_truth(tmp_path) -> None:
    cfg = KittiLidarSimConfig(frames=4)
    split = make_kitti_lidar(tmp_path, cfg, seed=1)
    ds = KittiObject(tmp_path)
    assert ds.frames() == ["000000", "000001", "000002", "000003"]
    assert ds.frames("train") == split["train"] == ["000000", "000001", "000002"]
    assert ds.frames("val") == split["val"] == ["000003"]
    gt = json.loads((tmp_path / "gt" / "objects.json").read_text())
    n_labels = dict.fromkeys(CLASSES, 0)
    for fid in ds.frames():
        g, pts, calib = gt["frames"][fid], ds.load_points(fid), ds.load_calib(fid)
        assert pts.dtype == np.float32 and pts.shape == (g["points"], 4) and 40_000 < len(pts) < 60_000
        assert 0.0 <= pts[:, 3].min() and pts[:, 3].max() <= 1.0 and np.isfinite(pts).all()
        np.testing.assert_allclose(calib.P[2], kitti_calib().P[2])
        inst = np.fromfile(tmp_path / "gt" / "instance" / f"{fid}.bin", dtype="<i2")
        assert len(inst) == len(pts)
        ground = inst == STATIC_IDS["ground"]
        assert ground.mean() > 0.3 and np.percentile(np.abs(pts[ground, 2] + H), 99) < 0.03

        labels = ds.load_labels(fid)
        boxes, types = ds.load_lidar_boxes(fid)
        objs = g["objects"]
        labelled = [o for o in objs if o["label"] in CLASSES]
        assert types == [o["type"] for o in labelled] and len(labelled) >= 2
        assert sum(lab.type == "DontCare" for lab in labels) == sum(o["label"] == "DontCare" for o in objs)
        for box, o in zip(boxes, labelled, strict=True):
            ref = np.asarray(o["box"])
            assert np.abs(box[:6] - ref[:6]).max() < 0.01
            assert abs((box[6] - ref[6] + np.pi) % (2 * np.pi) - np.pi) < 0.01
        for lab in labels:
            assert 0 <= lab.bbox[0] <= lab.bbox[2] <= IMAGE_SIZE[0] - 1 and 0 <= lab.bbox[1] <= lab.bbox[3] <= 374
            if lab.type != "DontCare":
                assert lab.occluded in (0, 1, 2) and 0.0 <= lab.truncated < 1.0
                n_labels[lab.type] += 1
        for k, o in enumerate(objs):
            box = np.asarray(o["box"])
            own = inst == k
            assert own.sum() == o["points"] and o["rays_visible"] <= o["rays_alone"]
            assert _in_box(pts[own], box, 0.1).all()  # the object's returns (2 cm range noise) lie in its box
            if o["label"] in CLASSES:
                assert _in_box(pts, box, 0.1).sum() >= cfg.min_points
                assert np.percentile(_surface_distance(pts[own], o), 95) < 0.05
            elif o["label"] == "DontCare":
                assert o["points"] < cfg.min_points and o["in_view"] and o["rays_visible"] > 0
            else:
                assert not o["in_view"] or o["rays_visible"] == 0  # out of view or hidden: no label line
    assert n_labels["Car"] >= 8 and n_labels["Pedestrian"] >= 2 and n_labels["Cyclist"] >= 1


def test_hits_lie_exactly_on_the_surfaces_without_noise() -> None:
    cfg = KittiLidarSimConfig(frames=1, columns=900, range_noise_m=0.0, dropout=0.0, intensity_noise=0.0)
    f = simulate_frame(cfg, np.random.default_rng(7))
    pts, inst = f["points"], f["instance"]
    assert np.abs(pts[inst == STATIC_IDS["ground"], 2] + H).max() < 1e-5
    assert len(f["objects"]) >= 8
    for k, o in enumerate(f["objects"]):
        own = inst == k
        assert own.sum() == o["rays_visible"] == o["points"]  # no dropout, no noise: every visible ray returns
        if own.any():
            assert _surface_distance(pts[own], o).max() < 1e-4
            assert _in_box(pts[own], np.asarray(o["box"]), 1e-4).all()


def test_ray_culling_keeps_every_hit() -> None:
    caster = LidarCaster(32, (-25.0, 3.0), 720)
    rng = np.random.default_rng(0)
    for k in range(30):
        shape = ("box", "cylinder", "sphere")[k % 3]
        centre = np.array([*rng.uniform(-30, 30, 2), rng.uniform(-1.5, 1.0)])
        size = rng.uniform(0.3, 5.0, 3)
        if shape != "box":
            size[1] = size[0]
        if shape == "sphere":
            size[2] = size[0]
        prim = Primitive(shape, centre, size, float(rng.uniform(-np.pi, np.pi)), 0.5, 0)
        t_all, _ = caster.intersect(prim, caster.dirs)
        idx = caster.candidates(prim)
        hit = np.flatnonzero(np.isfinite(t_all))
        assert np.isin(hit, idx).all(), shape
        t_sub, n_sub = caster.intersect(prim, caster.dirs[idx])
        np.testing.assert_array_equal(t_sub, t_all[idx])
        ok = np.isfinite(t_sub)
        np.testing.assert_allclose(np.linalg.norm(n_sub[ok], axis=1), 1.0, atol=1e-9)
        assert (np.einsum("ij,ij->i", n_sub[ok], caster.dirs[idx][ok]) <= 1e-9).all()  # normals face the sensor


def test_same_seed_same_bytes(tmp_path) -> None:
    cfg = KittiLidarSimConfig(frames=2, columns=600)
    make_kitti_lidar(tmp_path / "a", cfg, seed=5)
    make_kitti_lidar(tmp_path / "b", cfg, seed=5)
    make_kitti_lidar(tmp_path / "c", replace(cfg, frames=1), seed=6)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 2 * 4 + 3
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    velo = Path("training/velodyne/000000.bin")
    assert (tmp_path / "a" / velo).read_bytes() != (tmp_path / "c" / velo).read_bytes()


@pytest.mark.parametrize("bad", [dict(frames=0), dict(val_fraction=1.0), dict(vertical_fov_deg=(5.0, -5.0)),
                                 dict(dropout=1.0), dict(range_noise_m=-0.1), dict(cars=(5, 2)),
                                 dict(min_range_m=90.0), dict(size_jitter=0.6), dict(min_points=0),
                                 dict(columns=4)])  # fmt: skip
def test_bad_config_is_an_input_error(bad, tmp_path) -> None:
    with pytest.raises(InputError, match="sim kitti-lidar") as e:
        make_kitti_lidar(tmp_path, KittiLidarSimConfig(**bad))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "training").exists()


def test_cli(tmp_path, capsys) -> None:
    help_ = subprocess.run([sys.executable, "-m", "apps.cli", "sim", "kitti-lidar", "--help"], capture_output=True,
                           text=True, cwd=Path(__file__).resolve().parents[2], timeout=120)  # fmt: skip
    assert help_.returncode == 0 and "--scenario.min-points" in help_.stdout
    args = ["sim", "kitti-lidar", "--out", str(tmp_path), "--frames", "2", "--seed", "4", "--scenario.columns", "600"]
    assert main(args) == 0
    assert "wrote 2 LiDAR frames (1 train / 1 val)" in capsys.readouterr().out
    assert (tmp_path / "config.yaml").is_file() and "frames: 2" in (tmp_path / "config.yaml").read_text()
    assert KittiObject(tmp_path).frames() == ["000000", "000001"]
    assert main(["sim", "kitti-lidar", "--out", str(tmp_path / "bad"), "--scenario.dropout", "1.5"]) == 2
    assert "dropout" in capsys.readouterr().err
