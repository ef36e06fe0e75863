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


def strategy_module(folder: Path, method: str) -> Path | None:
    """The module defining `method` in a strategies folder: <method>/__init__.py (one folder per
    method) or <method>.py; None if there is neither."""
    for path in (folder / method / "__init__.py", folder / f"{method}.py"):
        if path.is_file():
            return path
    return None


def strategy_yamls(folder: Path) -> list[Path]:
    """The strategy YAMLs of a strategies folder: top-level ones and those inside method folders."""
    return sorted([*folder.glob("*.yaml"), *folder.glob("*/*.yaml")]) if folder.is_dir() else []
