"""Keeping the UAV-to-UGV stream under its budget (0.3 Mbit/s by default), measured on serialised bytes.

:class:`RateController` is a sliding-window limiter: a keyframe at time ``t`` may use the bytes that the messages
sent in ``(t - window_s, t]`` left of ``budget * window_s``. Every window of ``window_s`` seconds, wherever it starts,
therefore carries at most the budget. It returns how many keypoints (the strongest first) fit; when not even
``min_keypoints`` fit, the keyframe is skipped. :class:`BandwidthMeter` records what was actually sent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from perception.errors import InputError


@dataclass
class RateController:
    budget_bits_per_s: float = 300_000.0
    window_s: float = 1.0
    min_keypoints: int = 32
    max_keypoints: int = 1024
    _sent: deque = field(default_factory=deque, init=False)

    def __post_init__(self) -> None:
        if self.budget_bits_per_s <= 0 or self.window_s <= 0:
            raise InputError("rate controller: budget_bits_per_s and window_s must be > 0")

    def available_bytes(self, stamp_ns: int) -> float:
        w = int(self.window_s * 1e9)
        while self._sent and self._sent[0][0] <= stamp_ns - w:
            self._sent.popleft()
        return self.budget_bits_per_s / 8 * self.window_s - sum(b for _, b in self._sent)

    def allow(self, stamp_ns: int, size_of: Callable[[int], int], available: int) -> int:
        """Keypoints to send for a keyframe at ``stamp_ns`` (0: skip it); ``size_of(n)`` = bytes for n keypoints."""
        tokens = self.available_bytes(stamp_ns)
        n = min(available, self.max_keypoints)
        if n < self.min_keypoints or size_of(self.min_keypoints) > tokens:
            return 0
        lo, hi = self.min_keypoints, n  # the largest n whose message fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if size_of(mid) <= tokens:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def spend(self, stamp_ns: int, nbytes: int) -> None:
        self._sent.append((int(stamp_ns), int(nbytes)))


@dataclass
class BandwidthMeter:
    stamps_ns: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def record(self, stamp_ns: int, nbytes: int) -> None:
        self.stamps_ns.append(int(stamp_ns))
        self.sizes.append(int(nbytes))

    def summary(self, duration_s: float | None = None, window_s: float = 1.0) -> dict:
        """Total bytes, mean rate over the stream (or ``duration_s``), and the worst ``window_s`` window."""
        t = np.asarray(self.stamps_ns, dtype=np.int64)
        b = np.asarray(self.sizes, dtype=np.int64)
        if len(t) == 0:
            return {"messages": 0, "bytes": 0, "mean_bits_per_s": 0.0, "max_window_bits_per_s": 0.0}
        dur = duration_s if duration_s is not None else max((t[-1] - t[0]) / 1e9, window_s)
        w = int(window_s * 1e9)
        ends = np.searchsorted(t, t + w, side="left")  # messages in [t_i, t_i + w)
        csum = np.concatenate([[0], np.cumsum(b)])
        worst = float((csum[ends] - csum[np.arange(len(t))]).max()) * 8 / window_s
        return {
            "messages": len(t),
            "bytes": int(b.sum()),
            "mean_bits_per_s": float(b.sum()) * 8 / dur,
            "max_window_bits_per_s": worst,
            "window_s": window_s,
        }
