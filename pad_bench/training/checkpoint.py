"""State-dict checkpoints at experience boundaries: atomic writes, clear errors on corrupt files.

A model may name state it never changes (`constant_state_keys()`, e.g. PAD's frozen text tower):
checkpoints then hold a SHA-256 of those tensors instead of the tensors, and loading checks that the
freshly built model has exactly them (a run rebuilds its model from the same weights and seed).
"""
from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

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


CONSTANT_SHA = "_constant_sha256"  # key of the checksum that stands in for the constant tensors


def constant_keys(model: nn.Module) -> list[str]:
    return list(model.constant_state_keys()) if hasattr(model, "constant_state_keys") else []


def tensors_sha256(tensors: dict[str, Tensor], keys: list[str]) -> str:
    h = hashlib.sha256()
    for k in sorted(keys):
        t = tensors[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_state(model: nn.Module) -> dict:
    """The model's state dict without its constant tensors, plus their checksum."""
    sd = model.state_dict()
    keys = constant_keys(model)
    out = {k: v for k, v in sd.items() if k not in set(keys)}
    if keys:
        out[CONSTANT_SHA] = tensors_sha256(sd, keys)
    return out


def load_model_state(model: nn.Module, state: dict, *, check_constant: bool = True) -> None:
    """Load a model_state() into `model` (sized by its resize_for_state_dict when it has one); with
    check_constant, the model's own constant tensors must match the stored checksum."""
    state = dict(state)
    stored = state.pop(CONSTANT_SHA, None)
    if hasattr(model, "resize_for_state_dict"):
        model.resize_for_state_dict(state)
    keys = constant_keys(model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    absent = set(missing) - set(keys)
    if absent or unexpected:
        raise UserError(f"checkpoint does not fit this model: {len(absent)} missing and {len(unexpected)} "
                        f"unexpected tensors (e.g. {sorted(absent or unexpected)[0]})")
    if check_constant and stored is not None and stored != tensors_sha256(model.state_dict(), keys):
        raise UserError("the frozen weights differ from those the run started with (weights file or "
                        "model.weights changed?); resume with the original weights")
