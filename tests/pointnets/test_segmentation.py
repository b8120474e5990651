"""Sparse residual U-Net, voxelisation, CPCM training (checkpoints, resumption) and full-cloud evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from apps.cli import main
from perception.datasets.scannet import IGNORE_LABEL, nyu40_to_labels20
from perception.errors import InputError
from perception.pointnets.segmentation import (
    Cloud,
    SegTrainConfig,
    _voxels,
    augment,
    evaluate,
    load_checkpoint,
    train,
    voxelize,
)
from perception.pointnets.sparse import sparse_tensor
from perception.pointnets.unet import ResUNet, ResUNetConfig
from perception.sim.scenarios.scannet import ScanNetSimConfig, build_furnished_room, sample_world


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def _cloud(seed: int, density: float = 40.0) -> Cloud:
    rng = np.random.default_rng(seed)
    world = build_furnished_room((5.0, 4.0, 2.6), rng, ScanNetSimConfig(furniture=(4, 5)))
    xyz, rgb, nyu40, _ = sample_world(world, density, rng)
    rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
    return Cloud(f"room{seed}", xyz.astype(np.float32), rgb, nyu40_to_labels20(nyu40))


def test_unet_output_follows_the_input_voxel_order() -> None:
    """Skip connections and inverse convolutions land on the right voxels: permuting the input permutes the output."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    coords = np.unique(rng.integers(0, 24, (1500, 3)), axis=0)
    feats = torch.randn(len(coords), 3)
    net = ResUNet(ResUNetConfig(num_classes=5)).eval()
    with torch.no_grad():
        out = net(sparse_tensor(feats, coords, (24, 24, 24)))
        perm = rng.permutation(len(coords))
        out_p = net(sparse_tensor(feats[perm], coords[perm], (24, 24, 24)))
    assert out.shape == (len(coords), 5)
    torch.testing.assert_close(out_p, out[perm], rtol=1e-4, atol=1e-5)
    # an odd extent: the last voxel layer keeps its deep context (the shape is padded to the total stride)
    edge = np.array([[0, 0, 0], [4, 1, 1], [3, 1, 1]])
    with torch.no_grad():
        a = net(sparse_tensor(torch.ones(3, 3), edge, (5, 2, 2)))
        b = net(sparse_tensor(torch.ones(3, 3), edge, (8, 4, 4)))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="len\\(decoder\\)"):
        ResUNet(ResUNetConfig(encoder=(8, 16, 32), decoder=(16,)))
    big = ResUNetConfig.res16unet34c()
    assert big.encoder == (32, 32, 64, 128, 256) and big.blocks == (2, 3, 4, 6, 2, 2, 2, 2)
    ResUNet(big)  # the upstream widths and depths build


def test_voxelize_maps_every_point_to_its_voxel_and_keeps_weak_labels() -> None:
    rng = np.random.default_rng(1)
    xyz = rng.uniform(-1, 2, (5000, 3))
    coords, inv, rep = voxelize(xyz, 0.1, rng)
    q = np.floor(xyz / 0.1).astype(int)
    assert np.array_equal(coords[inv], q - q.min(0))
    assert np.array_equal(inv[rep], np.arange(len(coords)))  # each representative lies in its voxel
    labels = np.full(len(xyz), IGNORE_LABEL)
    labels[::97] = 3
    v = _voxels(xyz, rng.integers(0, 255, (5000, 3)), labels, 0.1, rng)
    assert set(np.flatnonzero(v.labels == 3)) == set(v.inverse[labels == 3])  # no weak label lost to quantisation
    assert np.all(v.labels[v.labels != 3] == IGNORE_LABEL)
    full = rng.integers(0, 20, len(xyz))
    v = _voxels(xyz, rng.integers(0, 255, (5000, 3)), full, 0.1, rng)
    assert np.array_equal(v.labels, full[v.rep])  # full labels: the representative point's, not the largest id


def test_augment_is_a_similarity_without_elastic_distortion() -> None:
    rng = np.random.default_rng(2)
    xyz = rng.uniform(0, 3, (400, 3))
    rgb = rng.integers(0, 255, (400, 3))
    p, c = augment(xyz, rgb, rng, 0.05, elastic=False)
    d0 = np.linalg.norm(xyz[1:] - xyz[:-1], axis=1)
    ratio = np.linalg.norm(p[1:] - p[:-1], axis=1) / d0
    assert np.ptp(ratio) < 1e-9 and 0.9 <= ratio[0] <= 1.1
    assert c.min() >= 0 and c.max() <= 255
    q, _ = augment(xyz, rgb, rng, 0.05, elastic=True)
    moved = np.linalg.norm(q[1:] - q[:-1], axis=1) / d0
    assert np.ptp(moved) > 1e-3  # the elastic warp is not rigid


def test_evaluate_scores_full_clouds_through_the_inverse_voxel_map() -> None:
    """A 'model' that reads the label off the colour gives mIoU 1 on every point; a constant one gives wall-only."""
    cloud = _cloud(3)
    valid = cloud.labels != IGNORE_LABEL
    rgb = np.where(valid[:, None], cloud.labels[:, None] * 10, 0).astype(np.uint8).repeat(3, 1)
    c = Cloud("c", cloud.xyz, rgb, cloud.labels)

    class ColourModel(nn.Module):
        def forward(self, x):
            lab = torch.round((x.features[:, 0] + 0.5) * 255 / 10).long().clamp(0, 19)
            return nn.functional.one_hot(lab, 20).float()

    r = evaluate(ColourModel(), [c], 0.002)  # 2 mm voxels: one label per voxel
    assert r.miou == pytest.approx(1.0) and r.points == len(c.xyz)

    class Wall(nn.Module):
        def forward(self, x):
            return nn.functional.one_hot(torch.zeros(len(x.features), dtype=torch.long), 20).float()

    w = evaluate(Wall(), [c], 0.05)
    wall_share = np.mean(c.labels[valid] == 0)
    assert w.overall_accuracy == pytest.approx(wall_share)
    assert w.iou["wall"] == pytest.approx(wall_share) and w.iou["floor"] == 0.0


def test_training_resumes_exactly_and_learns(tmp_path) -> None:
    clouds = [_cloud(s) for s in range(3)]
    cfg = SegTrainConfig(method="cpcm", labels="0.01", steps=4, checkpoint_every=2, voxel_size=0.1)
    m_full, hist = train(clouds, cfg, tmp_path / "a", seed=5)
    assert (tmp_path / "a" / "last.pt").is_file() and (tmp_path / "a" / "step_000002.pt").is_file()
    assert {"ce1", "ce2", "js_mask", "ramp"} <= set(hist[-1]) and len(hist) == 4
    (tmp_path / "b").mkdir()  # a run stopped after step 2: its last checkpoint is step 2's
    (tmp_path / "b" / "last.pt").write_bytes((tmp_path / "a" / "step_000002.pt").read_bytes())
    m_res, hist_b = train(clouds, cfg, tmp_path / "b", seed=5, resume=True)
    assert [h["loss"] for h in hist_b] == pytest.approx([h["loss"] for h in hist], rel=1e-6)
    for (k, a), b in zip(m_full.state_dict().items(), m_res.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
    with pytest.raises(InputError, match="other settings"):
        train(clouds, SegTrainConfig(method="baseline", labels="0.01", steps=4, voxel_size=0.1), tmp_path / "b",
              seed=5, resume=True)  # fmt: skip
    # full labels for a few dozen steps already beat chance (13 classes) by far
    model, _ = train(clouds[:2], SegTrainConfig(labels="full", method="baseline", steps=40, voxel_size=0.1),
                     tmp_path / "c", seed=0)  # fmt: skip
    r = evaluate(model, clouds[2:], 0.1)
    assert r.overall_accuracy > 0.6 and r.miou > 0.2


def test_cli_train_eval_and_bad_inputs(tmp_path) -> None:
    root = tmp_path / "data"
    assert main(["sim", "scannet", "--out", str(root), "--rooms", "3", "--scenario.density", "40"]) == 0
    run = tmp_path / "run"
    assert main(["pointseg", "train", "--root", str(root), "--out", str(run), "--train.steps", "2",
                 "--train.voxel-size", "0.1", "--train.method", "baseline"]) == 0  # fmt: skip
    for f in ("last.pt", "history.json", "metrics.json", "config.yaml"):
        assert (run / f).is_file(), f
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["miou"] <= 1 and metrics["split"] == "val"
    out = tmp_path / "eval"
    assert main(["eval", "scannet", "--root", str(root), "--ckpt", str(run / "last.pt"), "--out", str(out),
                 "--json", str(tmp_path / "m.json"), "--write-ply"]) == 0  # fmt: skip
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["miou"] == pytest.approx(metrics["miou"]) and m["step"] == 2 and m["method"] == "baseline"
    assert (out / "pred" / "scene0002_00.ply").is_file() and (out / "config.yaml").is_file()
    assert (out / "run.rrd").stat().st_size > 10_000  # prediction and ground truth of every scene
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable pointseg checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    assert main(["pointseg", "eval", "--root", str(root), "--ckpt", str(bad), "--out", str(out)]) != 0
    with pytest.raises(InputError, match="labels"):
        SegTrainConfig(labels="lots").validate()


@pytest.mark.slow
def test_cpcm_beats_the_sparse_label_baseline_on_simulated_scannet(tmp_path) -> None:
    """Done-when: 24 train / 8 val rooms, 0.1 % labels, 400 steps: CPCM >= baseline + 3 mIoU over two seeds, with
    the full-label upper bound above both (about 15 CPU-minutes, two trainings side by side)."""
    root = tmp_path / "scannet"
    assert main(["sim", "scannet", "--out", str(root), "--rooms", "32", "--seed", "0"]) == 0
    out = tmp_path / "compare"
    assert main(["pointseg", "compare", "--root", str(root), "--out", str(out), "--seeds", "0", "1"]) == 0
    s = json.loads((out / "compare.json").read_text())["summary"]
    assert s["cpcm_minus_baseline"] >= 0.03, s
    assert s["baseline"]["miou_mean"] >= 0.3, s
    assert s["full_labels"] >= max(s["cpcm"]["miou_mean"], s["baseline"]["miou_mean"]), s


def test_mask_settings_follow_cpcm_per_label_share() -> None:
    assert (SegTrainConfig(labels="0.001").mask_grid, SegTrainConfig(labels="0.001").mask_weight) == (4, 5.0)
    assert (SegTrainConfig(labels="0.0001").mask_grid, SegTrainConfig(labels="0.0001").mask_weight) == (8, 10.0)
    assert SegTrainConfig(labels="0.0001", grid=6, lambda_mask=2.0).mask_grid == 6


def test_corrupt_or_missing_scenes_end_in_one_line_errors(tmp_path, capsys) -> None:
    root = tmp_path / "data"
    assert main(["sim", "scannet", "--out", str(root), "--rooms", "2", "--scenario.density", "20"]) == 0
    ply = root / "scans" / "scene0000_00" / "scene0000_00_vh_clean_2.labels.ply"
    ply.write_bytes(ply.read_bytes()[:200])  # truncated
    capsys.readouterr()
    assert main(["pointseg", "train", "--root", str(root), "--out", str(tmp_path / "r"), "--train.steps", "1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scene0000_00_vh_clean_2.labels.ply" in err[0], err
    ply.unlink()
    assert main(["pointseg", "train", "--root", str(root), "--out", str(tmp_path / "r"), "--train.steps", "1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "labels.ply" in err[0], err
