"""Training checkpoints shared by the point-cloud trainers: one atomic ``torch.save`` per file and one reader with
one-line errors.

A checkpoint is a dict with at least ``model`` (state dict), ``optimizer``, ``step``, ``config`` (the trainer's
config as a dict), ``seed``, and the random states ``numpy_rng`` / ``torch_rng`` that make a resumed run continue
exactly where the interrupted one stopped. Trainers write ``last.pt`` (resume point) and ``step_XXXXXX.pt``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from perception.errors import InputError
from perception.fileio import atomic_path

__all__ = ["read_checkpoint", "require_same_run", "restore_rng", "rng_state", "save_training_state", "write_checkpoint"]


def rng_state(rng: np.random.Generator) -> dict:
    """The random states a checkpoint stores (numpy generator + torch's global generator)."""
    return {"numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}


def restore_rng(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])


def write_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """``torch.save`` to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    p = Path(path)
    with atomic_path(p) as tmp:
        torch.save(state, tmp)
    return p


def read_checkpoint(path: str | os.PathLike, command: str, required: tuple[str, ...] = ("model", "config")) -> dict:
    """The checkpoint dict; a one-line :class:`InputError` naming the file when it is missing, unreadable or lacks
    ``required`` entries (``command`` names the tool that writes such files)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{command}: checkpoint {p} not found; train one with `sparsepipe {command} train`")
    try:
        state = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        why = type(e).__name__
        raise InputError(f"{command}: {p} is not a readable {command} checkpoint ({why}); retrain") from None
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise InputError(f"{command}: {p} is not a {command} checkpoint (no {', '.join(missing)}); retrain")
    return state


def save_training_state(out: str | os.PathLike, state: dict, step: int, every: int) -> None:
    """``out/last.pt`` (the resume point) and, when ``step`` is a multiple of ``every``, ``out/step_XXXXXX.pt``."""
    write_checkpoint(Path(out) / "last.pt", state)
    if step % every == 0:
        write_checkpoint(Path(out) / f"step_{step:06d}.pt", state)


def require_same_run(state: dict, config: dict, seed: int, path: str | os.PathLike, command: str,
                     ignore: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Refuse to resume a checkpoint trained with another seed or other settings (``ignore``: keys that may change,
    e.g. thread counts), with a one-line error naming the settings."""
    was = state["config"]
    differ = [k for k in config if k not in ignore and was.get(k) != config[k]]
    if differ or state.get("seed") != seed:
        raise InputError(f"{command}: {path} was trained with other settings ({', '.join(differ) or 'seed'}); "
                         "resume with the same config (its config.yaml) or use another --out")  # fmt: skip
