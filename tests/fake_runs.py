"""Fake run directories (config.yaml, metrics.csv, summary.json) with known, formula-made results.

Seen mAP of a sequential run over T domains, with `level` and `drop` chosen by the caller:
    R[t][j] = 10 + j                       before domain j is trained (t < j)
    R[t][j] = level + j - drop * (t - j)   once it is trained (t >= j)
so R[T][j] = level + j - drop * (T - j) and forgetting F_j = drop * (T - j).
Unseen mAP: U[t][u] = unseen_level + 2 t + u (u = 1, 2, ...). Every R1 is its mAP + 10.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pad_bench.metrics.lifelong import RESULT_COLUMNS, lifelong_summary

DOMAINS = ["market1501", "cuhk_sysu", "msmt17"]
UNSEEN = ["viper", "grid"]
PROTOCOL = {"ids_per_domain": 500, "unseen_protocol": "single_split", "cuhk03_mode": "labeled", "image_size": [256, 128]}
R1_OFFSET = 10.0


def seen_matrix(level: float, drop: float, n_domains: int, joint: bool = False) -> list[list[float]]:
    """R[t][j-1] by the module's formula; a joint run has steps 0 and 1, every domain trained at 1."""
    js = range(1, n_domains + 1)
    if joint:
        return [[10.0 + j for j in js], [level + j for j in js]]
    return [[level + j - drop * (t - j) if t >= j else 10.0 + j for j in js] for t in range(n_domains + 1)]


def unseen_matrix(unseen_level: float, n_steps: int, n_unseen: int) -> list[list[float]]:
    return [[unseen_level + 2 * t + u for u in range(1, n_unseen + 1)] for t in range(n_steps + 1)]


def results_table(seen: list[list[float]], unseen: list[list[float]], domains: list[str], unseen_names: list[str], joint: bool = False) -> pd.DataFrame:
    """The long metrics table for mAP matrices seen[t][j] and unseen[t][u]."""
    rows = []
    for t, (r_row, u_row) in enumerate(zip(seen, unseen)):
        trained = "" if t == 0 else ("joint" if joint else domains[t - 1])
        for eval_set, names, values in (("seen", domains, r_row), ("unseen", unseen_names, u_row)):
            for name, v in zip(names, values):
                rows.append({
                    "step": t, "trained_domain": trained, "eval_domain": name, "eval_set": eval_set,
                    "mAP": v, "mINP": v / 2, "R1": v + R1_OFFSET, "R5": v + 15, "R10": v + 20,
                })
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def write_fake_run(
    root: Path,
    name: str,
    *,
    strategy: str = "finetune",
    model: str = "resnet50",
    seed: int = 0,
    level: float = 50.0,
    drop: float = 4.0,
    unseen_level: float = 30.0,
    joint: bool = False,
    benchmark: str = "fake-order1",
    domains: list[str] | None = None,
    unseen_names: list[str] | None = None,
    protocol: dict[str, Any] | None = None,
    strategy_settings: dict[str, Any] | None = None,
) -> Path:
    """Write root/name with config.yaml, metrics.csv and summary.json as the run store writes them."""
    domains = list(DOMAINS if domains is None else domains)
    unseen_names = list(UNSEEN if unseen_names is None else unseen_names)
    seen = seen_matrix(level, drop, len(domains), joint)
    table = results_table(seen, unseen_matrix(unseen_level, len(seen) - 1, len(unseen_names)), domains, unseen_names, joint)
    config = {
        "seed": seed,
        "benchmark": {"name": benchmark, "domains": domains, "unseen": unseen_names},
        "strategy": {"name": strategy, **(strategy_settings or {})},
        "model": {"name": model},
        "protocol": dict(PROTOCOL if protocol is None else protocol),
    }
    summary = {
        "run": name, "strategy": strategy, "benchmark": benchmark, "model": model, "seed": seed,
        "mAP": lifelong_summary(table, domains), "R1": lifelong_summary(table, domains, metric="R1"),
        "timing": {"total_s": 1.0}, "params": [],
    }
    run_dir = Path(root) / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    table.to_csv(run_dir / "metrics.csv", index=False)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return run_dir
