"""Time alignment of unsynchronised cameras from the keypoint motion itself, and resampling onto one time grid.

Each camera's clock is ``t_cam = t_world + offset``. The signal of a camera is the signed vertical image velocity
of every joint divided by the subject's box height (upright cameras all see a squat or a step as the same up/down
motion, whatever their viewpoint), on a uniform grid. For every pair of cameras the lag maximising the mean
normalised cross-correlation over joints is found on a coarse grid and refined on a fine one (parabolic peak), and
the offsets are solved jointly from all pairwise lags (weighted least squares, the reference camera fixed at 0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception.datasets.keypoints2d import Keypoints2D
from perception.errors import InputError

log = logging.getLogger(__name__)

__all__ = ["SyncResult", "estimate_offsets", "resample", "resample_at"]


@dataclass
class SyncResult:
    offsets_s: dict[str, float]
    """Clock offset of each camera relative to the reference (``t_cam = t_ref_world + offset``)."""
    pair_lags_s: dict[tuple[str, str], float]
    pair_scores: dict[tuple[str, str], float]
    """Peak normalised cross-correlation of each pair (0..1)."""


def _signal(kp: Keypoints2D, dt: float, min_conf: float = 0.3) -> tuple[float, np.ndarray]:
    """``(t0, (T, 17) signal)`` on a uniform grid of step ``dt`` in the camera's clock (NaN where unknown)."""
    t = kp.timestamp_ns.astype(np.float64) * 1e-9
    xy, c = kp.xy.astype(np.float64), kp.confidence.astype(np.float64)
    ok = (c >= min_conf) & np.all(np.isfinite(xy), axis=-1)
    y = np.where(ok, xy[..., 1], np.nan)
    h = np.nanmax(y, axis=1) - np.nanmin(y, axis=1) if len(y) else np.zeros(0)
    h = np.where(np.isfinite(h) & (h > 1), h, np.nan)
    vy = np.diff(y, axis=0) / np.diff(t)[:, None] / h[:-1, None]  # (F-1, 17), in box heights per second
    tm = 0.5 * (t[1:] + t[:-1])
    grid = np.arange(tm[0], tm[-1], dt) if len(tm) > 1 else np.zeros(0)
    out = np.full((len(grid), 17), np.nan)
    for j in range(17):
        v = vy[:, j]
        good = np.isfinite(v)
        if good.sum() < 2:
            continue
        out[:, j] = np.interp(grid, tm[good], v[good])
        # no value across gaps longer than 3 frame periods
        idx = np.searchsorted(tm[good], grid)
        lo = tm[good][np.clip(idx - 1, 0, good.sum() - 1)]
        hi = tm[good][np.clip(idx, 0, good.sum() - 1)]
        period = float(np.median(np.diff(t)))
        out[(hi - lo) > 3 * period, j] = np.nan
    return (float(grid[0]) if len(grid) else 0.0), out


def _ncc(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """Mean over joints of the normalised cross-correlation of ``a[t]`` and ``b[t - lag]`` on their overlap."""
    if lag >= 0:
        x, y = a[lag:], b
    else:
        x, y = a, b[-lag:]
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    m = np.isfinite(x) & np.isfinite(y)
    cnt = m.sum(axis=0)
    use = cnt > 20
    if not use.any():
        return -1.0
    xs = np.where(m, x, 0.0)
    ys = np.where(m, y, 0.0)
    mx = xs.sum(0) / np.maximum(cnt, 1)
    my = ys.sum(0) / np.maximum(cnt, 1)
    xc = np.where(m, x - mx, 0.0)
    yc = np.where(m, y - my, 0.0)
    num = (xc * yc).sum(0)
    den = np.sqrt((xc**2).sum(0) * (yc**2).sum(0))
    r = np.where(use & (den > 0), num / np.maximum(den, 1e-12), np.nan)
    w = cnt * use
    return float(np.nansum(r * w) / max(w[np.isfinite(r)].sum(), 1))


def _parabolic_peak(y: np.ndarray, i: int) -> float:
    """Sub-sample offset of the maximum ``y[i]`` from the parabola through its neighbours (0 at the ends, or when
    the three values do not form a finite peak)."""
    if not 0 < i < len(y) - 1:
        return 0.0
    y0, y1, y2 = y[i - 1 : i + 2]
    den = y0 - 2 * y1 + y2
    return float(0.5 * (y0 - y2) / den) if den < 0 else 0.0


def _pair_lag(sa: tuple[float, np.ndarray], sb: tuple[float, np.ndarray], dt: float,
              max_lag_s: float) -> tuple[float, float]:  # fmt: skip
    """Lag ``d`` (s) with ``signal_a(t) ~ signal_b(t - d)`` in the cameras' own clocks, and its peak correlation."""
    ta, a = sa
    tb, b = sb
    base = ta - tb  # a[i] is at camera time ta + i dt, b[k] at tb + k dt
    lags = np.arange(-int(max_lag_s / dt), int(max_lag_s / dt) + 1)
    scores = np.array([_ncc(a, b, int(k)) for k in lags])
    i = int(np.nanargmax(scores))
    frac = _parabolic_peak(scores, i)
    # a[i] ~ b[i - k]: camera time of a = ta + i dt, of b = tb + (i - k) dt; offset_a - offset_b = (ta - tb) + k dt
    return base + (lags[i] + frac) * dt, float(scores[i])


def estimate_offsets(keypoints: dict[str, Keypoints2D], reference: str | None = None, max_offset_s: float = 5.0,
                     coarse_dt: float = 1 / 30, fine_dt: float = 1 / 240) -> SyncResult:  # fmt: skip
    """Clock offsets of all cameras from the joints' vertical motion (see the module docstring)."""
    names = sorted(keypoints)
    ref = reference or names[0]
    if ref not in keypoints:
        raise InputError(f"sync: reference camera {ref!r} is not among {', '.join(names)}")
    coarse = {n: _signal(keypoints[n], coarse_dt) for n in names}
    fine = {n: _signal(keypoints[n], fine_dt) for n in names}
    lags, scores = {}, {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            d0, s0 = _pair_lag(coarse[a], coarse[b], coarse_dt, max_offset_s + 1.0)
            # refine on the fine grid within +-2 coarse steps of the coarse peak
            ta, fa = fine[a]
            tb, fb = fine[b]
            k0 = int(round((d0 - (ta - tb)) / fine_dt))
            span = int(round(2 * coarse_dt / fine_dt))
            ks = np.arange(k0 - span, k0 + span + 1)
            sc = np.array([_ncc(fa, fb, int(k)) for k in ks])
            j = int(np.nanargmax(sc))
            frac = _parabolic_peak(sc, j)
            lags[(a, b)] = (ta - tb) + (ks[j] + frac) * fine_dt  # offset_a - offset_b
            scores[(a, b)] = float(sc[j])
    # joint solution: offset_a - offset_b = lag_ab for all pairs, weighted by the peak correlation
    idx = {n: k for k, n in enumerate(names)}
    rows, rhs, w = [], [], []
    for (a, b), d in lags.items():
        r = np.zeros(len(names))
        r[idx[a]], r[idx[b]] = 1.0, -1.0
        rows.append(r)
        rhs.append(d)
        w.append(max(scores[(a, b)], 0.05))
    r = np.zeros(len(names))
    r[idx[ref]] = 1.0
    rows.append(r * 1e3)
    rhs.append(0.0)
    w.append(1.0)
    A, y, W = np.array(rows), np.array(rhs), np.sqrt(np.array(w))[:, None]
    o = np.linalg.lstsq(A * W, y * W[:, 0], rcond=None)[0]
    offsets = {n: float(o[idx[n]] - o[idx[ref]]) for n in names}
    weak = [f"{a}-{b}" for (a, b), s in scores.items() if s < 0.2]
    if weak:
        log.warning("sync: weak correlation for %s; offsets there may be wrong", ", ".join(weak))
    return SyncResult(offsets, lags, scores)


def read_audio(folder: str | Path, cameras: list[str]) -> dict[str, tuple[int, np.ndarray]]:
    """``{camera: (rate, mono float signal)}`` from ``folder/<camera>.wav`` (the camera's own clock, starting at its
    timestamp 0)."""
    from scipy.io import wavfile

    out = {}
    for n in cameras:
        path = Path(folder) / f"{n}.wav"
        if not path.is_file():
            raise InputError(f"sync: no audio track {path} for camera {n}; give every camera a <camera>.wav or drop "
                             "--mocap.audio-dir")  # fmt: skip
        try:
            rate, x = wavfile.read(path)
        except ValueError as e:
            raise InputError(f"sync: {path} is not a readable WAV file ({e})") from None
        x = np.asarray(x, np.float64)
        out[n] = (int(rate), x.mean(axis=1) if x.ndim == 2 else x)
    return out


def audio_offsets(tracks: dict[str, tuple[int, np.ndarray]], reference: str | None = None,
                  max_offset_s: float = 5.0) -> dict[str, float]:  # fmt: skip
    """Clock offsets from audio: the lag maximising the cross-correlation of the tracks' onset envelopes (log
    energy rises over 2 ms windows, computed by FFT), refined to a fraction of a window. Sound travel (distance / 343
    m/s) stays in the estimate (Kineo's bound: |d_i - d_j| / c); the BA refinement removes it."""
    names = sorted(tracks)
    ref = reference or names[0]
    rates = {tracks[n][0] for n in names}
    if len(rates) != 1:
        raise InputError(f"sync: audio tracks have different sample rates {sorted(rates)}; resample them first")
    sr = rates.pop()
    hop = max(1, int(0.002 * sr))

    def envelope(x: np.ndarray) -> np.ndarray:
        e = np.log1p(np.add.reduceat(x**2, np.arange(0, len(x) - hop, hop)) * 1e3)
        d = np.maximum(np.diff(e, prepend=e[0]), 0.0)
        return (d - d.mean()) / (d.std() + 1e-12)

    env = {n: envelope(tracks[n][1]) for n in names}
    a = env[ref]
    out = {ref: 0.0}
    for n in names:
        if n == ref:
            continue
        b = env[n]
        size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
        cc = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
        lags = np.r_[np.arange(0, len(b)), np.arange(-len(a) + 1, 0)]
        vals = np.r_[cc[: len(b)], cc[size - len(a) + 1 :]]
        maxlag = int(max_offset_s * sr / hop) + 1
        keep = np.abs(lags) <= maxlag
        lags, vals = lags[keep], vals[keep]
        i = int(np.argmax(vals))
        frac = 0.0
        if 0 < i < len(vals) - 1 and lags[i - 1] == lags[i] - 1 and lags[i + 1] == lags[i] + 1:
            frac = _parabolic_peak(vals, i)
        # b[k] ~ a[k - lag]: an event at camera-a time T appears at camera-b time T + lag * hop / sr
        out[n] = (lags[i] + frac) * hop / sr
    return out


def resample(keypoints: dict[str, Keypoints2D], offsets_s: dict[str, float], fps: float | None = None,
             max_gap_frames: float = 0.6) -> tuple[np.ndarray, dict[str, np.ndarray]]:  # fmt: skip
    """Keypoints of every camera on one world-time grid: ``(times (T,), {camera: (T, 17, 3)})``.

    Linear interpolation between the two camera frames around each grid time when both see the joint
    (confidence: the smaller one); otherwise the nearest frame within ``max_gap_frames`` periods; otherwise NaN and
    confidence 0. The grid spans the time all cameras cover, at ``fps`` (default: the fastest camera's rate)."""
    names = sorted(keypoints)
    t_world, periods = {}, {}
    for n in names:
        t = keypoints[n].timestamp_ns.astype(np.float64) * 1e-9
        t_world[n] = t - offsets_s[n]
        periods[n] = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    rate = fps or 1.0 / min(periods.values())
    start = max(t_world[n][0] for n in names)
    end = min(t_world[n][-1] for n in names)
    if end <= start:
        raise InputError("sync: after alignment the cameras share no common time span; check the offsets "
                         "(--max-offset-s) or the recordings")  # fmt: skip
    grid = start + np.arange(int(np.floor((end - start) * rate)) + 1) / rate
    return grid, {n: resample_at(keypoints[n], offsets_s[n], grid, max_gap_frames) for n in names}


def resample_at(kp: Keypoints2D, offset_s: float, grid: np.ndarray, max_gap_frames: float = 0.6) -> np.ndarray:
    """One camera's keypoints (T, 17, 3) at world times ``grid`` (see :func:`resample`)."""
    t = kp.timestamp_ns.astype(np.float64) * 1e-9
    period = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    tw, k = t - offset_s, kp.keypoints.astype(np.float64)
    i = np.clip(np.searchsorted(tw, grid, side="right") - 1, 0, len(tw) - 2)
    t0, t1 = tw[i], tw[i + 1]
    a = np.clip((grid - t0) / np.maximum(t1 - t0, 1e-12), 0.0, 1.0)[:, None]
    k0, k1 = k[i], k[i + 1]
    v0 = k0[..., 2] > 0
    v1 = k1[..., 2] > 0
    xy = (1 - a[..., None]) * k0[..., :2] + a[..., None] * k1[..., :2]
    conf = np.minimum(k0[..., 2], k1[..., 2])
    inside = ((grid >= t0) & (grid <= t1) & ((t1 - t0) < 1.5 * period))[:, None]
    both = v0 & v1 & inside
    # cubic (Catmull-Rom) where the two outer neighbours exist too and the four frames are evenly spaced
    im, ip = np.clip(i - 1, 0, len(tw) - 1), np.clip(i + 2, 0, len(tw) - 1)
    km, kp2 = k[im], k[ip]
    even = (np.abs((t0 - tw[im]) - (t1 - t0)) < 0.1 * period) & (np.abs((tw[ip] - t1) - (t1 - t0)) < 0.1 * period)
    cubic = both & (km[..., 2] > 0) & (kp2[..., 2] > 0) & (even & (i >= 1) & (i + 2 < len(tw)))[:, None]
    s_ = a[..., None]
    p0, p1, p2, p3 = km[..., :2], k0[..., :2], k1[..., :2], kp2[..., :2]
    cr = 0.5 * (2 * p1 + (-p0 + p2) * s_ + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s_**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * s_**3)
    xy = np.where(cubic[..., None], cr, xy)
    res = np.full((len(grid), 17, 3), np.nan)
    res[..., 2] = 0.0
    res[both, :2] = xy[both]
    res[both, 2] = conf[both]
    # the nearest real sample when only one side sees the joint
    near0 = ~both & v0 & (np.abs(grid - t0) <= max_gap_frames * period)[:, None]
    near1 = ~both & ~near0 & v1 & (np.abs(t1 - grid) <= max_gap_frames * period)[:, None]
    res[near0] = k0[near0]
    res[near1] = k1[near1]
    return res
