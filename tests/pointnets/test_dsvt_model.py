"""DSVT-P + CenterHead: config checks, VFE against a per-pillar loop, permutation invariance and key-padding of the
set attention, target -> decode round trip, gaussian radius, gradients, and a tiny overfit."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from perception.errors import InputError
from perception.pointnets.dsvt import (
    DSVT,
    CenterHead,
    DSVTConfig,
    DSVTDetector,
    DynamicPillarVFE,
    SetAttention,
    gaussian_radius,
)
from perception.pointnets.dsvt_sets import set_partition, window_index

torch.set_num_threads(1)

SMALL = dict(point_cloud_range=(0.0, -10.24, -3.0, 20.48, 10.24, 1.0))  # 64 x 64 pillars of 0.32 m


def _small(**kw) -> DSVTConfig:
    return DSVTConfig(**{**SMALL, **kw})


def _box_points(box, n: int, g: torch.Generator) -> torch.Tensor:
    """``n`` points on the four sides and the top of ``box`` (x y z l w h yaw), intensity 0.5."""
    x, y, z, l, w, h, yaw = box
    u = torch.rand(n, 3, generator=g) - 0.5
    face = torch.randint(0, 5, (n,), generator=g)
    u[face == 0, 0], u[face == 1, 0], u[face == 2, 1], u[face == 3, 1], u[face == 4, 2] = 0.5, -0.5, 0.5, -0.5, 0.5
    loc = u * torch.tensor([l, w, h])
    c, s = math.cos(yaw), math.sin(yaw)
    px = x + c * loc[:, 0] - s * loc[:, 1]
    py = y + s * loc[:, 0] + c * loc[:, 1]
    return torch.stack([px, py, z + loc[:, 2], torch.full((n,), 0.5)], 1)


def _random_coords(n: int, grid=(64, 64), batches: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    cells = torch.randperm(batches * grid[0] * grid[1], generator=g)[:n]
    b, rest = cells // (grid[0] * grid[1]), cells % (grid[0] * grid[1])
    return torch.stack([b, torch.zeros_like(b), rest // grid[0], rest % grid[0]], 1)


def test_grid_is_derived_and_bad_configs_are_rejected() -> None:
    cfg = DSVTConfig()
    assert cfg.grid_size == (216, 248, 1) and cfg.feature_stride == 1 and cfg.feature_size == (248, 216)
    assert _small().grid_size == (64, 64, 1)
    assert _small(voxel_size=(0.64, 0.32, 4.0)).grid_size == (32, 64, 1)
    with pytest.raises(InputError, match="along x .* not a multiple of voxel_size 0.3"):
        DSVTConfig(voxel_size=(0.3, 0.32, 4.0))
    with pytest.raises(InputError, match="pillars"):
        DSVTConfig(voxel_size=(0.32, 0.32, 2.0))
    with pytest.raises(InputError, match="total stride"):
        DSVTConfig(point_cloud_range=(0.0, -10.24, -3.0, 20.48 + 0.32, 10.24, 1.0))  # 65 pillars along x
    with pytest.raises(InputError, match="different strides"):
        _small(bev_upsample_strides=(1, 2, 2))


def test_vfe_matches_a_per_pillar_loop() -> None:
    torch.manual_seed(0)
    cfg = _small(d_model=16, nhead=4)
    vfe = DynamicPillarVFE(cfg).eval()
    for layer in vfe.pfn:  # non-trivial running statistics
        layer.norm.running_mean.uniform_(-0.5, 0.5)
        layer.norm.running_var.uniform_(0.5, 2.0)
        layer.norm.weight.data.uniform_(0.5, 1.5)
        layer.norm.bias.data.uniform_(-0.2, 0.2)
    g = torch.Generator().manual_seed(1)
    xyz = torch.rand(200, 3, generator=g) * torch.tensor([1.6, 1.6, 3.9]) + torch.tensor([3.0, -0.5, -2.95])
    pts = torch.cat([torch.randint(0, 2, (200, 1), generator=g).float(), xyz, torch.rand(200, 1, generator=g)], 1)
    pts = torch.cat([pts, torch.tensor([[0.0, -1.0, 0.0, 0.0, 0.1]])])  # outside the grid: ignored
    with torch.no_grad():
        feats, coords = vfe(pts)
    pts = pts[:-1]
    ix = torch.floor(pts[:, 1] / 0.32).long()
    iy = torch.floor((pts[:, 2] + 10.24) / 0.32).long()
    keys = sorted({(int(b), int(y), int(x)) for b, y, x in zip(pts[:, 0], iy, ix, strict=True)})
    assert coords.tolist() == [[b, 0, y, x] for b, y, x in keys]
    l1, l2 = vfe.pfn
    for p, (b, y, x) in enumerate(keys):
        sel = pts[(pts[:, 0] == b) & (iy == y) & (ix == x)]
        q = sel[:, 1:4]
        centre = torch.tensor([(x + 0.5) * 0.32, (y + 0.5) * 0.32 - 10.24, -1.0])
        f = torch.cat([sel[:, 1:5], q - q.mean(0), q - centre], 1)
        with torch.no_grad():
            h = torch.relu(l1.norm(l1.linear(f)))
            h = torch.cat([h, h.max(0).values.expand_as(h)], 1)
            ref = torch.relu(l2.norm(l2.linear(h))).max(0).values
        torch.testing.assert_close(feats[p], ref, atol=1e-5, rtol=1e-5)


def test_backbone_is_invariant_to_the_voxel_order() -> None:
    torch.manual_seed(0)
    cfg = _small()
    net = DSVT(cfg).eval()
    coords = _random_coords(700)
    x = torch.randn(len(coords), cfg.d_model)
    perm = torch.randperm(len(coords))
    with torch.no_grad():
        out = net(x, coords)
        out_p = net(x[perm], coords[perm])
    torch.testing.assert_close(out_p, out[perm], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, x, atol=1e-2)


def test_masked_set_attention_equals_attention_over_the_unique_voxels() -> None:
    torch.manual_seed(0)
    n, d = 10, 32
    layer = SetAttention(d, 4, 64).eval()
    coords = _random_coords(n, grid=(12, 12), batches=1, seed=3)  # one 12 x 12 window, n < L = 36
    wid, inw = window_index(coords, (12, 12, 1), (12, 12, 1))
    part = set_partition(wid, inw, (12, 12, 1), 36)
    assert part.voxel_inds.shape == (2, 1, 36) and part.mask.any()
    x, pos = torch.randn(n, d), torch.randn(n, d)
    with torch.no_grad():
        for o in range(2):
            out = layer(x, pos, part.voxel_inds[o], part.mask[o])
            q = (x + pos)[None]
            attn = layer.self_attn(q, q, x[None], need_weights=False)[0][0]
            ref = layer.norm1(x + attn)
            ref = layer.norm2(ref + layer.linear2(torch.nn.functional.gelu(layer.linear1(ref))))
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
            unmasked = layer(x, pos, part.voxel_inds[o], torch.zeros_like(part.mask[o]))
            assert (unmasked - ref).abs().max() > 1e-3  # the repeats would weigh in without the mask


def _wrap(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def test_targets_decode_back_to_the_boxes() -> None:
    cfg = _small()
    head = CenterHead(cfg, 8)
    boxes = [torch.tensor([[5.03, 1.27, -0.9, 4.2, 1.8, 1.6, 3.5],  # yaw beyond pi: decodes as 3.5 - 2 pi
                           [12.71, -6.66, -1.1, 0.7, 0.6, 1.75, -3.1],
                           [17.0, 8.0, -0.5, 1.8, 0.6, 1.7, 0.4]]),
             torch.tensor([[2.2, -9.9, -1.0, 3.9, 1.7, 1.5, -1.2]])]  # fmt: skip
    labels = [torch.tensor([0, 1, 2]), torch.tensor([0])]
    t = head.assign_targets(boxes, labels)
    hgt, wid = cfg.feature_size
    assert t["heatmap"].shape == (2, 3, hgt, wid) and t["mask"].tolist() == [[True] * 3, [True, False, False]]
    assert int((t["heatmap"] == 1).sum()) == 4
    # a perfect output: the target heatmap as logits, the regression code written at every centre cell
    code = torch.zeros(2, 8, hgt * wid)
    for b in range(2):
        for k in range(len(boxes[b])):
            code[b, :, t["inds"][b, k]] = t["box"][b, k]
    code = code.view(2, 8, hgt, wid)
    outputs = {"heatmap": torch.logit(t["heatmap"].clamp(1e-6, 1 - 1e-6)), "center": code[:, :2],
               "center_z": code[:, 2:3], "dim": code[:, 3:6], "rot": code[:, 6:8]}  # fmt: skip
    dets = head.decode(outputs, score_threshold=0.9, top_k=100)
    for b in range(2):
        pb, ps, pl = dets[b]
        assert len(pb) == len(boxes[b]) and (ps > 0.99).all()
        order = torch.argsort(pb[:, 0])
        gt_order = torch.argsort(boxes[b][:, 0])
        pb, pl = pb[order], pl[order]
        gt = boxes[b][gt_order]
        assert torch.equal(pl, labels[b][gt_order])
        assert (pb[:, :6] - gt[:, :6]).abs().max() < 1e-4
        assert _wrap(pb[:, 6] - gt[:, 6]).abs().max() < 1e-4
        assert (pb[:, 6].abs() <= math.pi).all()
    # the loss of the perfect maps: regression 0, heatmap small (probabilities are clamped to [1e-4, 1 - 1e-4])
    _, parts = head.loss(outputs, boxes, labels)
    _, parts_blank = head.loss({**outputs, "heatmap": torch.full_like(outputs["heatmap"], -2.19)}, boxes, labels)
    assert parts["regression"] < 1e-5 and parts["heatmap"] < 0.1 < parts_blank["heatmap"]


def test_gaussian_radius_by_hand() -> None:
    # 10 x 10 cells, overlap 0.1: r3 = (-4 + sqrt(16 + 4 * 0.4 * 90)) / 2 = (sqrt(160) - 4) / 2 is the smallest;
    # r1 = (20 + sqrt(400 - 4 * 90 / 1.1)) / 2, r2 = (40 + sqrt(1600 - 16 * 90)) / 2 are larger
    assert gaussian_radius(torch.tensor(10.0), torch.tensor(10.0), 0.1).item() == pytest.approx((160**0.5 - 4) / 2)
    # a car at 0.32 m cells (14.0625 x 5.9375), overlap 0.1
    h, w = 4.5 / 0.32, 1.9 / 0.32
    b3, c3 = -0.2 * (h + w), -0.9 * h * w
    r3 = (b3 + math.sqrt(b3 * b3 - 1.6 * c3)) / 2
    assert gaussian_radius(torch.tensor(h), torch.tensor(w), 0.1).item() == pytest.approx(r3)
    # a pedestrian's radius is clamped to min_radius = 2: a 5 x 5 blob
    cfg = _small()
    t = CenterHead(cfg, 8).assign_targets([torch.tensor([[5.0, 0.0, -1.0, 0.6, 0.6, 1.7, 0.0]])], [torch.tensor([1])])
    nz = t["heatmap"][0, 1].nonzero()
    assert (nz.max(0).values - nz.min(0).values).tolist() == [4, 4]


TINY = dict(point_cloud_range=(0.0, -5.12, -3.0, 10.24, 5.12, 1.0))  # 32 x 32 pillars


def _frame(seed: int = 0):
    """A car and a cyclist (surface points) on a ground plane, in the TINY range."""
    g = torch.Generator().manual_seed(seed)
    boxes = torch.tensor([[3.3, 1.9, -1.0, 4.2, 1.8, 1.6, 0.5], [7.6, -2.3, -1.1, 1.8, 0.7, 1.7, -2.0]])
    pts = [_box_points(b.tolist(), 300, g) for b in boxes]
    ground = torch.rand(400, 3, generator=g) * torch.tensor([10.2, 10.2, 0.05]) + torch.tensor([0.0, -5.1, -1.9])
    pts.append(torch.cat([ground, torch.full((400, 1), 0.1)], 1))
    return torch.cat(pts), boxes, torch.tensor([0, 2])


def test_loss_is_finite_and_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = DSVTDetector(DSVTConfig(**TINY))
    p0, b0, l0 = _frame(0)
    p1, b1, l1 = _frame(1)
    p1 = torch.cat([p1, torch.tensor([[-5.0, 0.0, 0.0, 0.1], [3.0, 0.0, 9.0, 0.1]])])  # outside: dropped
    out = model([p0, p1])
    assert out["heatmap"].shape == (2, 3, 32, 32)
    total, parts = model.loss(out, [b0, b1[:1]], [l0, l1[:1]])
    assert torch.isfinite(total) and set(parts) >= {"heatmap", "regression"}
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_tiny_overfit() -> None:
    torch.manual_seed(0)
    model = DSVTDetector(DSVTConfig(**TINY))
    pts, boxes, labels = _frame(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    losses = []
    for _ in range(40):
        out = model([pts])
        loss, _ = model.loss(out, [boxes], [labels])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5, losses
    with torch.no_grad():  # decode the train-mode maps (BN running statistics lag after 40 steps)
        dets = model.head.decode(model([pts]), score_threshold=0.0, top_k=20)
    pb, ps, pl = dets[0]
    for k in range(2):  # the top-scoring detection near each object (what NMS would keep)
        d = torch.linalg.norm(pb[:, :2] - boxes[k, :2], dim=1)
        near = (d < 2.0).nonzero().flatten()
        assert len(near), (pb, boxes)
        j = near[ps[near].argmax()]
        assert d[j] < 0.3 and pl[j] == labels[k] and _wrap(pb[j, 6] - boxes[k, 6]).abs() < 0.3, (pb[j], boxes[k])
    # predict() runs in eval mode and restores training mode
    res = model.predict([pts], score_threshold=0.0, top_k=5)
    assert model.training and res[0][0].shape == (5, 7)
    assert isinstance(model.head.heads["heatmap"][-1], nn.Conv2d)
