"""Keyframe selection by travelled distance, rotation angle and elapsed time, against analytic motion."""

from __future__ import annotations

import numpy as np
import pytest

from perception.errors import InputError
from perception.geometry import SE3
from perception.sim.trajectories import unicycle_trajectory, uniform_stamps
from slam.airground.keyframes import KeyframePolicy, select_keyframes

TWIST = np.array([0.0, 0.0, 0.5, 1.5, 0.0, 0.0])  # 0.5 rad/s yaw, 1.5 m/s forward


def test_distance_threshold() -> None:
    t = np.arange(0, 10, 0.1)
    kf = select_keyframes((t * 1e9).astype(np.int64), SE3.exp(np.outer(t, TWIST)),
                          KeyframePolicy(min_distance_m=0.9, min_angle_deg=90, max_interval_s=100))  # fmt: skip
    # the distance is the chord of the 3 m radius arc: the first 0.1 s multiple whose chord reaches 0.9 m
    chord = lambda dt: 2 * 3.0 * np.sin(0.5 * dt / 2)  # noqa: E731
    step = next(k for k in range(1, 20) if chord(0.1 * k) >= 0.9 - 1e-12) * 0.1
    assert kf[0] == 0 and np.allclose(np.diff(t[kf]), step)


def test_angle_threshold() -> None:
    t = np.arange(0, 10, 0.1)
    kf = select_keyframes((t * 1e9).astype(np.int64), SE3.exp(np.outer(t, TWIST)),
                          KeyframePolicy(min_distance_m=100, min_angle_deg=10, max_interval_s=100))  # fmt: skip
    # 10 deg at 0.5 rad/s = 0.349 s -> every 4th frame (0.4 s = 11.5 deg)
    assert np.allclose(np.diff(t[kf]), 0.4)


def test_time_threshold_and_min_interval() -> None:
    still = SE3.stack([SE3.identity()] * 50)
    stamps = (np.arange(50) * 1e8).astype(np.int64)
    assert list(select_keyframes(stamps, still, KeyframePolicy(max_interval_s=1.0))) == [0, 10, 20, 30, 40]
    # fast motion would want a keyframe every frame; min_interval_s caps the rate
    fast = SE3(np.broadcast_to(np.eye(3), (50, 3, 3)), np.outer(np.arange(50), [1.0, 0, 0]))
    assert list(select_keyframes(stamps, fast, KeyframePolicy(min_distance_m=0.5)))[:4] == [0, 1, 2, 3]
    assert list(select_keyframes(stamps, fast, KeyframePolicy(min_distance_m=0.5, min_interval_s=0.25)))[:4] == [
        0, 3, 6, 9]  # fmt: skip


def test_simulated_drive_spacing() -> None:
    """A perception.sim drive at 1 m/s, camera at 20 Hz: a 1 m threshold keyframes about every metre."""
    traj = unicycle_trajectory(20.0, 1.0, 0.05)
    s = uniform_stamps(traj.start_ns, traj.end_ns, 20.0)
    T = traj.pose(s)
    kf = select_keyframes(s, T, KeyframePolicy(min_distance_m=1.0, min_angle_deg=45, max_interval_s=10))
    gaps = np.linalg.norm(np.diff(T.t[kf], axis=0), axis=1)
    assert np.all((gaps >= 1.0) & (gaps < 1.06)) and 18 <= len(kf) <= 20


def test_errors() -> None:
    still = SE3.stack([SE3.identity()] * 5)
    with pytest.raises(InputError, match="3 stamps for 5 poses"):
        select_keyframes(np.arange(3), still)
    with pytest.raises(InputError, match="time order"):
        select_keyframes(np.array([0, 2, 1, 3, 4]), still)
    assert len(select_keyframes(np.zeros(0, np.int64), SE3(np.zeros((0, 3, 3)), np.zeros((0, 3))))) == 0


def test_incremental_keyframer_agrees_with_batch_selection(rng) -> None:
    from perception.geometry import so3_exp
    from slam.airground.keyframes import Keyframer

    n = 200
    stamps = np.cumsum(rng.integers(20_000_000, 120_000_000, n)).astype(np.int64)
    T = SE3(so3_exp(np.cumsum(rng.normal(0, 0.03, (n, 3)), axis=0)), np.cumsum(rng.normal(0, 0.1, (n, 3)), axis=0))
    pol = KeyframePolicy(0.5, 10.0, 2.0, 0.1)
    k = Keyframer(pol)
    inc = [i for i in range(n) if k.accept(int(stamps[i]), T[i])]
    assert inc == select_keyframes(stamps, T, pol).tolist() and 5 < len(inc) < n
