"""Optimizers built from param groups that name their own kind (PAEMA: SGD for the network, Adam
for its prompt), stepped as one."""
from __future__ import annotations

from typing import Any

import torch

from ..errors import UserError

KINDS = ("adam", "sgd")


def build_optimizer(groups: list[dict], default_kind: str, momentum: float = 0.9):
    """One torch optimizer per kind among the groups (a group's 'optimizer' key, else default_kind);
    a MultiOptimizer when the groups ask for more than one."""
    by_kind: dict[str, list[dict]] = {}
    for g in groups:
        kind = g.get("optimizer", default_kind)
        if kind not in KINDS:
            raise UserError(f"optimizer must be adam or sgd, got {kind!r} (param group '{g.get('name', '?')}')")
        by_kind.setdefault(kind, []).append(g)
    opts = [torch.optim.Adam(gs) if kind == "adam" else torch.optim.SGD(gs, momentum=momentum)
            for kind, gs in by_kind.items()]
    return opts[0] if len(opts) == 1 else MultiOptimizer(opts)


def scaled(loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> torch.Tensor:
    """The loss to call backward() on: scaled up under fp16 so that small gradients do not underflow."""
    return loss if scaler is None else scaler.scale(loss)


def step(optimizer, scaler: torch.amp.GradScaler | None) -> None:
    """optimizer.step(), through the fp16 scaler when there is one (it unscales the gradients and skips
    a step whose gradients overflowed)."""
    if scaler is None:
        optimizer.step()
        return
    scaler.step(optimizer)
    scaler.update()


class MultiOptimizer:
    """Several optimizers behind the part of the torch.optim interface a training loop uses;
    `param_groups` lists every group (the same dicts, so LR schedules write through)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = list(optimizers)

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None) -> None:
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for o, s in zip(self.optimizers, state["optimizers"], strict=True):
            o.load_state_dict(s)
