"""Shared test set-up: deterministic, single-threaded numerics on a shared 2-core machine."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("RERUN_STRICT", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def hub():
    """A zenoh hub peer on a free loopback port (what `sparsepipe launch` starts); yields its endpoint."""
    from apps.nodes.runtime import open_session
    from apps.nodes.supervisor import free_tcp_endpoint

    ep = free_tcp_endpoint()
    s = open_session(listen=[ep])
    yield ep
    s.close()
