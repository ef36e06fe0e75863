"""What PAD's plugins read about the run, instead of attributes of the strategy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ContextManager

from torch import Tensor

from .prompts import PADNet, VAPromptPool


@dataclass
class PADContext:
    """Shared by the PAD strategy and its plugins. The strategy keeps it current: `exp_index` and
    `kd_active` when an experience starts (before any plugin callback), `text_bank` once stage 1 has
    fixed this domain's bank (None before the first)."""

    model: PADNet
    seed: int
    autocast: Callable[[], ContextManager]
    exp_index: int = -1
    kd_active: bool = False  # distillation applies in this domain (the per-domain `kd` table)
    text_bank: Tensor | None = None  # (C, D) of the current domain

    @property
    def prompt_pool(self) -> VAPromptPool:
        return self.model.va_prompt
