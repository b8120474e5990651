"""Keeping the UAV-to-UGV stream under its budget (0.3 Mbit/s by default), measured on serialised bytes.

:class:`RateController` is a token bucket whose tokens are the budget of the current sliding window: a keyframe at
time ``t`` may use ``budget * window_s`` bytes minus what the messages sent in ``(t - window_s, t]`` used, and the
bytes of a message come back exactly ``window_s`` after it was sent. (A classic bucket refilled continuously at
the budget rate with depth ``budget * window_s`` would allow up to twice the budget in some windows; this one
bounds every window of ``window_s`` seconds, wherever it starts, by the budget.) Per keyframe it returns how many
keypoints (the caller's first ones: sort them strongest first) fit, capped by ``max_keypoints`` and by
``max_share`` of the window budget; when not even ``min_keypoints`` fit the keyframe is dropped (return 0), or
the caller defers it by :meth:`RateController.wait_ns`. :class:`BandwidthMeter` records what was actually sent
and summarises it (mean rate, worst sliding window) as JSON.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perception.errors import InputError
from perception.fileio import atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class RateController:
    budget_bits_per_s: float = 300_000.0
    window_s: float = 1.0
    min_keypoints: int = 32
    """Fewer keypoints than this are not worth a message: the keyframe is dropped instead."""
    max_keypoints: int = 1024
    max_share: float = 1.0
    """Largest fraction of one window's budget a single keyframe may use (< 1 spreads it over more keyframes)."""
    _sent: deque = field(default_factory=deque, init=False, repr=False)
    _last_ns: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.budget_bits_per_s > 0 and self.window_s > 0):
            raise InputError("rate controller: budget_bits_per_s and window_s must be > 0")
        if not 0 < self.max_share <= 1:
            raise InputError(f"rate controller: max_share must be in (0, 1], got {self.max_share}")
        if not 0 <= self.min_keypoints <= self.max_keypoints:
            raise InputError("rate controller: need 0 <= min_keypoints <= max_keypoints")

    @property
    def window_ns(self) -> int:
        return int(round(self.window_s * 1e9))

    @property
    def capacity_bytes(self) -> float:
        """Bytes one window may carry."""
        return self.budget_bits_per_s / 8.0 * self.window_s

    def _advance(self, stamp_ns: int) -> None:
        stamp_ns = int(stamp_ns)
        if self._last_ns is not None and stamp_ns < self._last_ns:
            raise InputError(f"rate controller: stamps must not decrease ({stamp_ns} after {self._last_ns})")
        self._last_ns = stamp_ns
        while self._sent and self._sent[0][0] <= stamp_ns - self.window_ns:
            self._sent.popleft()

    def available_bytes(self, stamp_ns: int) -> float:
        """Bytes a message sent at ``stamp_ns`` may have without any window exceeding the budget."""
        self._advance(stamp_ns)
        return self.capacity_bytes - sum(b for _, b in self._sent)

    def allow(self, stamp_ns: int, size_of: Callable[[int], int], available: int) -> int:
        """Keypoints to send for a keyframe at ``stamp_ns`` (0: drop or defer it).

        ``size_of(n)`` is the serialised size in bytes with ``n`` keypoints (non-decreasing in ``n``, e.g.
        :func:`slam.airground.message.message_size`); ``available`` is how many keypoints the keyframe has.
        """
        tokens = min(self.available_bytes(stamp_ns), self.max_share * self.capacity_bytes)
        n = min(int(available), self.max_keypoints)
        lo = max(self.min_keypoints, 1)
        if n < lo or size_of(lo) > tokens:
            return 0
        hi = n  # the largest count whose message fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if size_of(mid) <= tokens:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def wait_ns(self, stamp_ns: int, nbytes: int) -> int | None:
        """How long after ``stamp_ns`` a message of ``nbytes`` would fit (0: now; None: never, it exceeds a window)."""
        if nbytes > self.max_share * self.capacity_bytes:
            return None
        free = self.available_bytes(stamp_ns)
        if nbytes <= free:
            return 0
        for t, b in self._sent:  # oldest first: each frees its bytes window_ns after it was sent
            free += b
            if nbytes <= free:
                return t + self.window_ns - int(stamp_ns)
        return None  # unreachable: the capacity check above guarantees a fit once the window is empty

    def spend(self, stamp_ns: int, nbytes: int) -> None:
        """Record a message of ``nbytes`` sent at ``stamp_ns``."""
        left = self.available_bytes(stamp_ns) - int(nbytes)
        if left < 0:
            log.warning("rate controller: a %d-byte message at %d ns exceeds the window budget by %d bytes",
                        nbytes, stamp_ns, -left)  # fmt: skip
        self._sent.append((int(stamp_ns), int(nbytes)))


@dataclass
class BandwidthMeter:
    stamps_ns: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    keypoints: list[int] = field(default_factory=list)

    def record(self, stamp_ns: int, nbytes: int, num_keypoints: int | None = None) -> None:
        self.stamps_ns.append(int(stamp_ns))
        self.sizes.append(int(nbytes))
        if num_keypoints is not None:
            self.keypoints.append(int(num_keypoints))

    def max_window_bits_per_s(self, window_s: float = 1.0) -> float:
        """The worst rate over any window ``[t, t + window_s)`` (the worst one starts at a message)."""
        if not self.stamps_ns:
            return 0.0
        order = np.argsort(np.asarray(self.stamps_ns, dtype=np.int64), kind="stable")
        t = np.asarray(self.stamps_ns, dtype=np.int64)[order]
        b = np.asarray(self.sizes, dtype=np.int64)[order]
        ends = np.searchsorted(t, t + int(round(window_s * 1e9)), side="left")
        csum = np.concatenate([[0], np.cumsum(b)])
        return float((csum[ends] - csum[np.arange(len(t))]).max()) * 8 / window_s

    def summary(
        self, duration_s: float | None = None, window_s: float = 1.0, budget_bits_per_s: float | None = None
    ) -> dict:
        """Counts, bytes, the mean rate over ``duration_s`` (default: the span of the stamps, at least one window)
        and the worst ``window_s`` window; with a budget also ``within_budget`` and ``budget_used``."""
        if duration_s is not None and not duration_s > 0:
            raise InputError(f"bandwidth summary: duration_s must be > 0, got {duration_s}")
        if not window_s > 0:
            raise InputError(f"bandwidth summary: window_s must be > 0, got {window_s}")
        t = np.asarray(self.stamps_ns, dtype=np.int64)
        b = np.asarray(self.sizes, dtype=np.int64)
        if len(t) == 0:
            dur = float(duration_s) if duration_s is not None else 0.0
            out = {"messages": 0, "bytes": 0, "duration_s": dur, "mean_bits_per_s": 0.0,
                   "max_window_bits_per_s": 0.0, "window_s": window_s}  # fmt: skip
        else:
            dur = float(duration_s) if duration_s is not None else max((t.max() - t.min()) / 1e9, window_s)
            out = {
                "messages": len(t),
                "bytes": int(b.sum()),
                "duration_s": dur,
                "mean_bits_per_s": float(b.sum()) * 8 / dur,
                "max_window_bits_per_s": self.max_window_bits_per_s(window_s),
                "window_s": window_s,
                "mean_bytes_per_message": float(b.mean()),
                "max_bytes_per_message": int(b.max()),
            }
        if self.keypoints and len(self.keypoints) == len(t):
            out["keypoints"] = int(sum(self.keypoints))
            out["mean_keypoints_per_message"] = float(np.mean(self.keypoints))
        if budget_bits_per_s is not None:
            out["budget_bits_per_s"] = float(budget_bits_per_s)
            out["within_budget"] = bool(out["max_window_bits_per_s"] <= budget_bits_per_s)
            out["budget_used"] = out["mean_bits_per_s"] / float(budget_bits_per_s)
        return out

    def write_json(self, path: str | os.PathLike, **summary_kwargs) -> Path:
        """Write :meth:`summary` to ``path`` atomically."""
        return atomic_write_json(path, self.summary(**summary_kwargs))
