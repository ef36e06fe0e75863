"""Where the project's data files live (strategy and benchmark YAMLs, model configs)."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STRATEGIES_DIR = PROJECT_ROOT / "strategies"
BENCHMARKS_DIR = PROJECT_ROOT / "benchmarks"
MODEL_CONFIGS_DIR = Path(__file__).resolve().parent / "models" / "configs"


def strategy_dirs() -> list[Path]:
    """The built-in strategies folder plus any in PAD_BENCH_STRATEGY_PATH (os.pathsep-separated)."""
    extra = [Path(p) for p in os.environ.get("PAD_BENCH_STRATEGY_PATH", "").split(os.pathsep) if p]
    return extra + [STRATEGIES_DIR]
