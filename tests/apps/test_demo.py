"""`sparsepipe demo` end to end: accuracy against ground truth, outputs read back by their real readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open3d as o3d
import pycolmap
import pytest
from rerun.chunk import RrdReader

from apps.cli import main
from slam.trajectory import read_tum

ARGS = ["--num-images", "8", "--num-points", "150"]


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "ba", "--out", str(out), "--seed", "3", *ARGS]) == 0
    return out


def test_accuracy_against_ground_truth_and_peer(demo_out: Path) -> None:
    m = json.loads((demo_out / "metrics.json").read_text())
    acc = m["accuracy"]
    assert m["scene"] == {
        "images": 8,
        "points": 150,
        "observations": m["scene"]["observations"],
        "outliers": m["scene"]["outliers"],
    }
    assert m["scene"]["outliers"] > 0
    init, ours, peer = acc["initial"], acc["gtsam"], acc["pycolmap"]
    assert init["rotation_deg_median"] > 0.5 and init["center_err_median"] > 0.05
    assert ours["rotation_deg_median"] < 0.05
    assert ours["center_err_median"] < 0.005
    assert ours["point_rmse"] < 0.005
    assert ours["inlier_reprojection_rmse_px"] < 0.8  # 0.5 px noise, 2 dof per observation absorbed
    for key in ("rotation_deg_median", "center_err_median", "point_rmse"):
        assert ours[key] <= 1.25 * peer[key] + 1e-4, key


def test_outputs_read_back_with_real_readers(demo_out: Path) -> None:
    rec = pycolmap.Reconstruction(str(demo_out / "sparse"))
    assert rec.num_reg_images() == 8 and rec.num_points3D() == 150
    traj = read_tum(demo_out / "trajectory.tum")
    assert len(traj) == 8
    T_world_cam = [
        np.linalg.inv(np.vstack([rec.images[i].cam_from_world().matrix(), [0, 0, 0, 1]])) for i in sorted(rec.images)
    ]
    assert np.allclose(traj.poses.matrix(), np.stack(T_world_cam), atol=1e-9)
    pcd = o3d.io.read_point_cloud(str(demo_out / "points.ply"))
    xyz = np.array([rec.points3D[p].xyz for p in sorted(rec.points3D)])
    assert np.allclose(np.asarray(pcd.points), xyz, atol=1e-6)
    schema = RrdReader(demo_out / "run.rrd").store().schema()
    paths = set(schema.entity_paths())
    for p in (
        "/world/ba/points",
        "/world/gt/points",
        "/world/ba/trajectory",
        "/world/camera",
        "/metrics/reprojection_px_median",
    ):
        assert p in paths, (p, sorted(paths))
    assert "rerun.archetypes.Pinhole" in schema.archetypes()
    assert not [p for p in demo_out.rglob("*") if "partial" in p.name]


def test_saved_config_reproduces_the_run(demo_out: Path, tmp_path: Path) -> None:
    args = ["demo", "ba", "--config", str(demo_out / "config.yaml"), "--out", str(tmp_path), "--rerun", "off"]
    assert main(args) == 0
    a = json.loads((demo_out / "metrics.json").read_text())["accuracy"]
    b = json.loads((tmp_path / "metrics.json").read_text())["accuracy"]
    for k in ("initial", "gtsam"):
        for key in ("rotation_deg_median", "center_err_median", "point_rmse"):
            assert a[k][key] == pytest.approx(b[k][key], rel=1e-9, abs=1e-12)
    assert not (tmp_path / "run.rrd").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--num-images", "2"], "num-images >= 3"), (["--rerun", "bogus"], "rerun")],
)
def test_bad_options_give_one_line(tmp_path: Path, capsys, args, message) -> None:
    assert main(["demo", "ba", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
    assert not (tmp_path / "metrics.json").exists()
