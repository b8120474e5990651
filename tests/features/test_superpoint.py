"""SuperPoint: checkpoint layouts, network against a numpy forward pass, post-processing against hand-computed
keypoints, descriptor sampling against numpy bilinear interpolation, and shift-equivariance."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from perception.errors import InputError
from perception.features import make_extractor
from perception.features.superpoint import SuperPointExtractor, SuperPointNet

torch.set_num_threads(1)

H, W = 48, 64  # crafted-logits image: 6 x 8 cells


def _net(seed: int = 0) -> SuperPointNet:
    """A random network with He-initialised weights and zero biases (the default init is nearly constant)."""
    torch.manual_seed(seed)
    net = SuperPointNet()
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            torch.nn.init.zeros_(m.bias)
    return net.eval()


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    net = _net()
    path = tmp_path_factory.mktemp("sp") / "superpoint_v1.pth"
    torch.save(net.state_dict(), path)
    return path, net


# --------------------------------------------------------------------------------------------- checkpoints


def test_architecture_matches_published_layout() -> None:
    net = SuperPointNet()
    names = ["conv1a", "conv1b", "conv2a", "conv2b", "conv3a", "conv3b", "conv4a", "conv4b"]
    names += ["convPa", "convPb", "convDa", "convDb"]
    assert list(net.state_dict()) == [f"{n}.{p}" for n in names for p in ("weight", "bias")]
    assert sum(p.numel() for p in net.parameters()) == 1_300_865  # superpoint_v1.pth, counted by hand
    assert tuple(net.convPb.weight.shape) == (65, 256, 1, 1) and tuple(net.convDb.weight.shape) == (256, 256, 1, 1)
    logits, desc = net(torch.zeros(2, 1, 24, 40))
    assert tuple(logits.shape) == (2, 65, 3, 5) and tuple(desc.shape) == (2, 256, 3, 5)


def _np_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))  # (C, H, W, k, k)
    return np.einsum("chwij,ocij->ohw", win, w) + b[:, None, None]


def test_forward_matches_numpy_reference() -> None:
    net = _net(3)
    p = {k: v.double().numpy() for k, v in net.state_dict().items()}
    img = _texture(16, 24, seed=3).astype(np.float64) / 255.0

    def conv(x, name, relu=True):
        y = _np_conv(x, p[f"{name}.weight"], p[f"{name}.bias"])
        return np.maximum(y, 0) if relu else y

    def pool(x):
        c, h, w = x.shape
        return x.reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))

    x = img[None]
    for a, b in (("conv1a", "conv1b"), ("conv2a", "conv2b"), ("conv3a", "conv3b")):
        x = pool(conv(conv(x, a), b))
    x = conv(conv(x, "conv4a"), "conv4b")
    ref_logits = conv(conv(x, "convPa"), "convPb", relu=False)
    ref_desc = conv(conv(x, "convDa"), "convDb", relu=False)
    with torch.no_grad():
        logits, desc = net(torch.from_numpy(img).float()[None, None])
    scale = np.abs(ref_logits).max()
    assert (ref_logits < 0).any()  # heads have no ReLU
    np.testing.assert_allclose(logits[0].numpy(), ref_logits, atol=1e-4 * scale)
    np.testing.assert_allclose(desc[0].numpy(), ref_desc, atol=1e-4 * np.abs(ref_desc).max())


def _layouts(state: dict) -> dict:
    prefixed = {f"module.{k}": v for k, v in state.items()}
    return {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 7},
        "model": {"model": state, "optimizer": {"lr": 1e-3}},
        "module_prefix": prefixed,
        "wrapped_prefixed": {"state_dict": prefixed},
    }


def test_checkpoint_layouts_load_identically(ckpt, tmp_path) -> None:
    path, net = ckpt
    img = _texture(40, 56, seed=1)
    ref = SuperPointExtractor(path)(img)
    assert len(ref) > 20
    with torch.no_grad():
        ref_out = net(torch.from_numpy(img.astype(np.float32) / 255.0)[None, None])
    for name, obj in _layouts(net.state_dict()).items():
        p = tmp_path / f"{name}.pth"
        torch.save(obj, p)
        if name == "plain":  # superpoint_v1.pth (2018) predates torch's zip format: check the legacy one too
            p = tmp_path / "legacy.pth"
            torch.save(obj, p, _use_new_zipfile_serialization=False)
        ex = SuperPointExtractor(p)
        for k, v in net.state_dict().items():
            assert torch.equal(ex.net.state_dict()[k], v), (name, k)
        with torch.no_grad():
            out = ex.net(torch.from_numpy(img.astype(np.float32) / 255.0)[None, None])
        assert torch.equal(out[0], ref_out[0]) and torch.equal(out[1], ref_out[1]), name
        f = ex(img)
        assert np.array_equal(f.keypoints, ref.keypoints) and np.array_equal(f.descriptors, ref.descriptors), name


def test_bad_checkpoints_raise_input_error(ckpt, tmp_path) -> None:
    _, net = ckpt
    state = net.state_dict()
    missing = {k: v for k, v in state.items() if k != "convDb.bias"}
    wrong = dict(state, **{"convPb.weight": torch.zeros(64, 256, 1, 1)})
    extra = dict(state, **{"extra.weight": torch.zeros(3)})
    cases = {"missing": (missing, "convDb.bias"), "shape": (wrong, "convPb.weight"), "extra": (extra, "extra.weight")}
    cases["list"] = ([1, 2, 3], "state_dict")
    cases["nontensor"] = (dict(state, **{"conv1a.bias": 3}), "conv1a.bias")
    for name, (obj, what) in cases.items():
        p = tmp_path / f"bad_{name}.pth"
        torch.save(obj, p)
        with pytest.raises(InputError, match=what) as e:
            SuperPointExtractor(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(InputError, match="junk.pth"):
        SuperPointExtractor(junk)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        SuperPointExtractor(tmp_path / "nope.pth")


def test_make_extractor(ckpt, tmp_path) -> None:
    path, _ = ckpt
    with pytest.raises(InputError, match="--weights"):
        make_extractor("superpoint")
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        make_extractor("superpoint", weights=str(tmp_path / "absent.pth"))
    ex = make_extractor("superpoint", max_keypoints=7, weights=str(path))
    assert isinstance(ex, SuperPointExtractor) and ex.max_keypoints == 7 and ex.dim == 256
    f = ex(np.dstack([_texture(40, 56, seed=2)] * 3))
    assert len(f) == 7 and f.descriptors.shape == (7, 256) and f.kind == "superpoint" and f.image_size == (56, 40)


def test_bad_images(ckpt) -> None:
    ex = SuperPointExtractor(ckpt[0])
    bad = [
        np.zeros((32, 32, 3), np.float32),
        np.zeros((32, 32, 4), np.uint8),
        np.zeros((32, 32, 1), np.uint8),
        np.zeros(32, np.uint8),
        np.zeros((4, 32), np.uint8),
    ]
    for img in bad:
        with pytest.raises(InputError, match="SuperPoint"):
            ex(img)


def test_gray_and_rgb_agree(ckpt) -> None:
    ex = SuperPointExtractor(ckpt[0])
    rng = np.random.default_rng(5)
    rgb = np.dstack([_texture(40, 48, seed=s) for s in (5, 6, 7)])
    gray = (rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).round().astype(np.uint8)  # ITU-R 601, as OpenCV
    assert np.abs(gray.astype(int) - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).max() <= 1
    a, b = ex(rgb), ex(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    assert np.array_equal(a.keypoints, b.keypoints) and np.array_equal(a.descriptors, b.descriptors)
    g = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    c, d = ex(g), ex(np.dstack([g, g, g]))
    assert np.array_equal(c.keypoints, d.keypoints)


# --------------------------------------------------------------------------------------- post-processing

BASE_DUSTBIN = 8.0  # background: p = 1 / (64 + e^8) ~ 3.3e-4 < threshold


def _crafted_logits(peaks, hc: int, wc: int) -> np.ndarray:
    logits = np.zeros((1, 65, hc, wc), np.float32)
    logits[0, 64] = BASE_DUSTBIN
    for x, y, v in peaks:
        logits[0, (y % 8) * 8 + x % 8, y // 8, x // 8] = v
    return logits


def _np_prob(logits: np.ndarray, x: int, y: int) -> float:
    """Softmax probability of pixel (x, y), computed by hand from the cell's 65 logits."""
    cell = logits[0, :, y // 8, x // 8].astype(np.float64)
    e = np.exp(cell - cell.max())
    return float(e[(y % 8) * 8 + x % 8] / e.sum())


def _np_descriptors(desc: np.ndarray, kp: np.ndarray) -> np.ndarray:
    """Direct bilinear interpolation of the per-cell-normalised coarse map, SuperGlue's pixel->cell mapping."""
    d = desc[0].astype(np.float64)
    d = d / np.linalg.norm(d, axis=0, keepdims=True)
    _, hc, wc = d.shape
    out = []
    for x, y in kp.astype(np.float64):
        u = (x - 3.5) * (wc - 1) / (8 * wc - 4.5)
        v = (y - 3.5) * (hc - 1) / (8 * hc - 4.5)
        u0, v0 = int(np.floor(u)), int(np.floor(v))
        fu, fv = u - u0, v - v0
        u1, v1 = min(u0 + 1, wc - 1), min(v0 + 1, hc - 1)
        s = (1 - fu) * (1 - fv) * d[:, v0, u0] + fu * (1 - fv) * d[:, v0, u1]
        s += (1 - fu) * fv * d[:, v1, u0] + fu * fv * d[:, v1, u1]
        out.append(s / np.linalg.norm(s))
    return np.array(out)


def _patch(ex: SuperPointExtractor, logits: np.ndarray, desc: np.ndarray, expect_shape=None) -> list:
    seen = []

    def fake_forward(x):
        seen.append(x.clone())
        if expect_shape is not None:
            assert tuple(x.shape) == expect_shape
        return torch.from_numpy(logits), torch.from_numpy(desc)

    ex.net.forward = fake_forward
    return seen


PEAKS = [
    (20, 20, 12.0),  # kept, strongest in its window
    (22, 24, 11.0),  # 4 px (Chebyshev) from (20, 20): suppressed
    (26, 27, 10.5),  # 7 px from (20, 20), only dominated by the suppressed (22, 24): recovered, kept
    (2, 30, 13.0),  # x < border 4: removed
    (60, 10, 13.0),  # x >= W - 4: removed
    (59, 30, 9.5),  # x = W - 5: kept
    (30, 44, 12.0),  # y >= H - 4: removed
    (40, 40, 9.0),  # kept
    (45, 8, 11.5),  # kept
]
KEPT = [(20, 20), (26, 27), (59, 30), (40, 40), (45, 8)]


def test_crafted_logits_keypoints_nms_border_topk(ckpt) -> None:
    logits = _crafted_logits(PEAKS, H // 8, W // 8)
    desc = np.random.default_rng(0).normal(size=(1, 256, H // 8, W // 8)).astype(np.float32)
    expected = sorted(KEPT, key=lambda p: -_np_prob(logits, *p))
    exp_scores = np.array([_np_prob(logits, *p) for p in expected])
    assert np.all(np.diff(exp_scores) < 0) and exp_scores.min() > 0.005

    ex = SuperPointExtractor(ckpt[0])
    seen = _patch(ex, logits, desc, expect_shape=(1, 1, H, W))
    f = ex(_texture(H, W))
    assert len(seen) == 1
    np.testing.assert_array_equal(f.keypoints, np.array(expected, np.float32))
    np.testing.assert_allclose(f.scores, exp_scores, rtol=1e-5)
    np.testing.assert_allclose(f.descriptors, _np_descriptors(desc, f.keypoints), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(f.descriptors, axis=1), 1.0, atol=1e-6)
    assert f.image_size == (W, H) and f.descriptors.dtype == np.float32

    ex3 = SuperPointExtractor(ckpt[0], max_keypoints=3)
    _patch(ex3, logits, desc)
    np.testing.assert_array_equal(ex3(_texture(H, W)).keypoints, np.array(expected[:3], np.float32))

    # no NMS and no border: every peak above threshold comes back
    ex0 = SuperPointExtractor(ckpt[0], nms_radius=0, border=0)
    _patch(ex0, logits, desc)
    got = {tuple(k) for k in ex0(_texture(H, W)).keypoints.astype(int)}
    assert got == {(x, y) for x, y, _ in PEAKS}

    # a threshold above the weakest kept score drops exactly the weaker ones
    thr = 0.5 * (exp_scores[1] + exp_scores[2])
    ext = SuperPointExtractor(ckpt[0], detection_threshold=thr)
    _patch(ext, logits, desc)
    np.testing.assert_array_equal(ext(_texture(H, W)).keypoints, np.array(expected[:2], np.float32))


def test_padding_keeps_coordinates_and_does_not_suppress(ckpt) -> None:
    h, w = 50, 67  # padded to 56 x 72: 7 x 9 cells
    peaks = [(65, 20, 10.0), (68, 20, 12.0), (66, 49, 10.0), (30, 52, 12.0), (10, 5, 11.0)]
    logits = _crafted_logits(peaks, 7, 9)
    desc = np.random.default_rng(1).normal(size=(1, 256, 7, 9)).astype(np.float32)
    ex = SuperPointExtractor(ckpt[0], border=0)
    seen = _patch(ex, logits, desc, expect_shape=(1, 1, 56, 72))
    img = _texture(h, w, seed=4)
    f = ex(img)
    x = seen[0][0, 0].numpy()
    np.testing.assert_array_equal(x[:h, :w], img.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(x[h:, :w], np.repeat(x[h - 1 : h, :w], 56 - h, axis=0))  # edge replication
    np.testing.assert_array_equal(x[:, w:], np.repeat(x[:, w - 1 : w], 72 - w, axis=1))
    # (68, 20) and (30, 52) lie in the padding: gone, and (68, 20) does not suppress (65, 20) 3 px away
    expected = sorted([(65, 20), (66, 49), (10, 5)], key=lambda p: -_np_prob(logits, *p))
    np.testing.assert_array_equal(f.keypoints, np.array(expected, np.float32))
    np.testing.assert_allclose(f.descriptors, _np_descriptors(desc, f.keypoints), atol=1e-5)
    assert f.image_size == (w, h)


# ------------------------------------------------------------------------------------------- geometry


def test_shift_by_one_cell_is_equivariant(ckpt) -> None:
    _, net = ckpt
    big = _texture(232, 232, seed=11)
    a, b = big[8:, 8:], big[:-8, :-8]  # a(x, y) = b(x + 8, y + 8)
    ex = SuperPointExtractor(ckpt[0], max_keypoints=100_000)
    fa, fb = ex(a), ex(b)
    lo, hi = 64, 224 - 64  # away from the zero-padded borders, in b's frame

    def inside(kp):
        return np.all((kp >= lo) & (kp < hi), axis=1)

    ka, kb = fa.keypoints + 8, fb.keypoints
    sa, sb = inside(ka), inside(kb)
    assert sa.sum() >= 40
    set_a = {tuple(k) for k in ka[sa].astype(int)}
    set_b = {tuple(k) for k in kb[sb].astype(int)}
    assert set_a == set_b
    ia = {tuple(k): i for i, k in enumerate(ka.astype(int))}
    pairs = [(ia[tuple(k)], j) for j, k in enumerate(kb.astype(int)) if sb[j]]
    cos = np.array([fa.descriptors[i] @ fb.descriptors[j] for i, j in pairs])
    assert cos.min() > 0.99
    # random deep ReLU nets give correlated descriptors everywhere, so compare angles: matched pairs must be far
    # closer than pairs of different keypoints
    other = np.array([fa.descriptors[i] @ fb.descriptors[pairs[(n + 1) % len(pairs)][1]] for n, (i, _) in
                      enumerate(pairs)])  # fmt: skip
    assert (1 - cos).max() < 0.02 * np.median(1 - other)
    np.testing.assert_allclose(fa.scores[[i for i, _ in pairs]], fb.scores[[j for _, j in pairs]], rtol=1e-4)
