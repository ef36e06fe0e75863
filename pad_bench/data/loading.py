"""Data-loader settings resolved from the run's config."""
from __future__ import annotations

import os

MAX_DEFAULT_WORKERS = 8


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # platforms without sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def loader_workers(train_cfg: dict) -> int:
    """`train.num_workers`, or by default (null) one loader process per available CPU, at most 8.

    The cached data path decodes nothing per sample, so its default is 0 (no worker processes).
    """
    value = train_cfg["num_workers"]
    if value is not None:
        return int(value)
    if train_cfg.get("data_path", "pil") == "cached":
        return 0
    return min(MAX_DEFAULT_WORKERS, available_cpus())
