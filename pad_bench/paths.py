"""Where the project's data files live (strategy and benchmark YAMLs, model configs).

`strategies/` and `benchmarks/` sit at the top of the repository; `pad_bench/strategies` and
`pad_bench/benchmarks` link to them, so the same paths hold in a checkout and in an installed wheel
(which ships the method folders as the `pad_bench.strategies` package).
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
STRATEGIES_DIR = PACKAGE_DIR / "strategies"
BENCHMARKS_DIR = PACKAGE_DIR / "benchmarks"
CONFIGS_DIR = PACKAGE_DIR / "configs"
MODEL_CONFIGS_DIR = CONFIGS_DIR / "models"
RECIPES_DIR = CONFIGS_DIR / "recipes"
DEFAULTS_FILE = CONFIGS_DIR / "defaults.yaml"


def strategy_dirs() -> list[Path]:
    """Folders holding method folders: any in PAD_BENCH_STRATEGY_PATH (os.pathsep-separated), then the built-in one."""
    extra = [Path(p) for p in os.environ.get("PAD_BENCH_STRATEGY_PATH", "").split(os.pathsep) if p]
    return extra + [STRATEGIES_DIR]

