"""What the perf scripts share: bf16 autocast and synchronisation on CUDA, and an images/s timer."""
from __future__ import annotations

import contextlib
import time
from typing import Callable

import torch


def autocast(device: torch.device):
    """bf16 autocast on CUDA, nothing on CPU (the harness's training setting)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it counts that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(step: Callable[[], object], device: torch.device, batch: int, steps: int,
                      warmup: int = 0) -> float:
    """batch * steps / the seconds of `steps` calls of `step`, after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch * steps / (time.perf_counter() - t0)
