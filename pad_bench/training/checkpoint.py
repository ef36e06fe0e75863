"""State-dict checkpoints: atomic writes, safe loading (weights_only), clear errors on bad files.

Two kinds, both in RUN/checkpoints/:
  step<K>.pt            after experience K (and its evaluation) finished;
  step<K>-epoch<E>.pt   inside experience K, after E of its epochs (train.checkpoint_every_epochs).
Checkpoints hold plain tensors, dicts, lists and numbers only (RNG states as tensors and lists), so
they load with torch.load(weights_only=True): a crafted file cannot run code on resume or export.

A model may name state it never changes (`constant_state_keys()`, e.g. PAD's frozen text tower):
checkpoints then hold a SHA-256 of those tensors instead of the tensors, and loading checks that the
freshly built model has exactly them (a run rebuilds its model from the same weights and seed).
"""
from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import UserError
from ..io import atomic_write
from ..models.zoo import torch_load_refusal

KEEP = 2  # boundary checkpoints kept: the newest and the previous good one
_NAME = re.compile(r"step(\d{3,})(?:-epoch(\d{3,}))?\.pt")


def checkpoint_path(folder: Path, step: int, epoch: int | None = None) -> Path:
    """step = experiences finished; with epoch, a checkpoint inside experience step + 1."""
    if epoch is None:
        return folder / f"step{step:03d}.pt"
    return folder / f"step{step + 1:03d}-epoch{epoch:03d}.pt"


def _position(path: Path) -> tuple[int, int, int] | None:
    """(experiences finished, epochs into the next one, boundary last) for ordering; None if not ours."""
    m = _NAME.fullmatch(path.name)
    if not m:
        return None
    if m.group(2) is None:
        return int(m.group(1)), 0, 1
    return int(m.group(1)) - 1, int(m.group(2)), 0


def list_checkpoints(folder: Path) -> list[Path]:
    """Every checkpoint in training order, oldest first."""
    found = [(pos, p) for p in folder.glob("step*.pt") if (pos := _position(p)) is not None]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: Path) -> Path | None:
    ckpts = list_checkpoints(folder)
    return ckpts[-1] if ckpts else None


def is_mid_experience(path: Path) -> bool:
    pos = _position(path)
    return pos is not None and pos[2] == 0


def rng_state() -> dict:
    """Every RNG the run draws from, as tensors and lists (weights_only-loadable)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "python": [version, list(internal), gauss_next]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_torch(path: Path, obj: Any) -> None:
    """torch.save atomically, through a Python file object. A failed write is a one-line UserError:
    torch turns the file's OSError (a full disk) into a RuntimeError of its zip writer ("unexpected
    pos ...", "PytorchStreamWriter failed writing file ..."), with the OSError as its context."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            try:
                torch.save(obj, f)
            except RuntimeError as e:
                cause = _os_error_in(e)
                if cause is not None:
                    raise cause from None  # atomic_write names the path and the cause
                if not any(mark in str(e) for mark in _TORCH_WRITER_ERRORS):
                    raise
                raise UserError(f"cannot write {path} ({str(e).strip().splitlines()[0]}); if the disk is full, "
                                "free some space, then continue with --resume") from None

    atomic_write(path, write)


_TORCH_WRITER_ERRORS = ("inline_container", "PytorchStreamWriter")


def _os_error_in(e: BaseException) -> OSError | None:
    """The OSError an exception was raised from or while handling, if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def save_checkpoint(folder: Path, step: int, state: dict, epoch: int | None = None) -> Path:
    """Write a boundary (epoch None) or mid-experience checkpoint atomically, then prune.

    After a boundary checkpoint every mid-experience one before it goes and KEEP boundaries stay;
    after a mid-experience one, the two newest of that experience stay (resuming one needs the
    boundary before it, which is always kept)."""
    path = checkpoint_path(folder, step, epoch)
    save_torch(path, state)
    ckpts = list_checkpoints(folder)
    boundaries = [p for p in ckpts if not is_mid_experience(p)]
    mids = [p for p in ckpts if is_mid_experience(p)]
    if epoch is None:
        drop = boundaries[:-KEEP] + [p for p in mids if _position(p) < _position(path)]
    else:
        drop = [p for p in mids if _position(p)[0] == step][:-2]
    for old in drop:
        old.unlink()
    return path


def load_checkpoint(path: Path) -> dict:
    """One checkpoint, loaded safely; UserError naming the file when it is corrupt or not ours."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated, corrupt or unsafe archives
        raise UserError(f"checkpoint {path} cannot be loaded ({torch_load_refusal(e)})") from None


def load_latest_checkpoint(folder: Path) -> dict | None:
    """The newest checkpoint's state, or None when there is none."""
    ckpts = list_checkpoints(folder)
    if not ckpts:
        return None
    try:
        return load_checkpoint(ckpts[-1])
    except UserError as e:
        prev = f"; the previous checkpoint {ckpts[-2].name} is kept: delete {ckpts[-1].name} to resume from it" \
            if len(ckpts) > 1 else ""
        raise UserError(f"{e}{prev}") from None


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


def load_model_state(model: nn.Module, state: dict, source: Path | str = "checkpoint", *,
                     check_constant: bool = True) -> None:
    """Load a model_state() into `model` (sized by its resize_for_state_dict when it has one); with
    check_constant, the model's own constant tensors must match the stored checksum. A checkpoint of
    another model is a one-line UserError naming `source`, not a traceback."""
    state = dict(state)
    stored = state.pop(CONSTANT_SHA, None)
    keys = constant_keys(model)
    try:
        if hasattr(model, "resize_for_state_dict"):
            model.resize_for_state_dict(state)
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (RuntimeError, KeyError, ValueError, AttributeError, IndexError) as e:
        first = str(e).strip().splitlines()[-1][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"checkpoint {source} was written by a different model than the run's config "
                        f"describes ({first})") from None
    absent = set(missing) - set(keys)
    if absent or unexpected:
        raise UserError(f"checkpoint {source} was written by a different model than the run's config describes "
                        f"({len(absent)} missing and {len(unexpected)} unexpected tensors, e.g. "
                        f"{sorted(absent or unexpected)[0]})")
    if check_constant and stored is not None and stored != tensors_sha256(model.state_dict(), keys):
        raise UserError("the frozen weights differ from those the run started with (weights file or "
                        "model.weights changed?); resume with the original weights")
