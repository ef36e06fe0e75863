"""State-dict checkpoints at experience boundaries: atomic writes, clear errors on corrupt files."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..io import atomic_write

KEEP = 2  # checkpoints kept: the newest and the previous good one


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step{step:03d}.pt"


def list_checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob("step*.pt"))


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, step: int, state: dict) -> Path:
    """Write step<k>.pt atomically, then drop all but the newest KEEP checkpoints."""
    path = checkpoint_path(folder, step)
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    for old in list_checkpoints(folder)[:-KEEP]:
        old.unlink()
    return path


def load_latest_checkpoint(folder: Path) -> dict | None:
    """The newest checkpoint, or None when there is none. A corrupt one is an error naming it."""
    ckpts = list_checkpoints(folder)
    if not ckpts:
        return None
    path = ckpts[-1]
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises several types for truncated/corrupt archives
        prev = f"; the previous checkpoint {ckpts[-2].name} is kept: delete {path.name} to resume from it" \
            if len(ckpts) > 1 else ""
        raise UserError(f"checkpoint {path} is corrupt ({type(e).__name__}){prev}") from None
