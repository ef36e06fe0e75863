"""`pad-bench demo`: the synthetic stream once (cached), the headline methods (or all) at their tiny budget, then compare."""
from __future__ import annotations

import time
from pathlib import Path

from .config import list_strategies, resolve_config
from .registry import METHODS


# The methods `pad-bench demo` runs by default, within its 15-minute CPU budget; `--all` runs every method.
HEADLINE = ("finetune", "joint", "lstkc", "dkp", "pad")


def demo_strategies(every: bool = False) -> list[str]:
    """The headline methods, or (every) each method: the YAML named like its method folder
    (presets/variants excluded)."""
    methods = [n for n in list_strategies() if n in METHODS]
    return methods if every else [n for n in methods if n in HEADLINE]


def run_demo(*, out: Path, data_root: Path, seed: int = 0, only: list[str] | None = None,
             every: bool = False) -> list[Path]:
    from .data.synth_cache import ensure_synthetic
    from .results.compare import compare_runs
    from .run.runner import execute, run_name

    t0 = time.perf_counter()
    ensure_synthetic(data_root)
    names = only or demo_strategies(every)
    runs = []
    for i, name in enumerate(names, 1):
        cfg = resolve_config(benchmark="synth", strategy=name,
                             sets={"benchmark.data_root": str(data_root), "seed": seed})
        run_dir = out / run_name(cfg)
        print(f"\n[{i}/{len(names)}] {name} on {cfg['model']['name']} -> {run_dir}", flush=True)
        execute(cfg, run_dir, resume=(run_dir / "config.yaml").exists())
        runs.append(run_dir)
    written = compare_runs(runs, out / "compare")
    print(f"\ndemo finished in {(time.perf_counter() - t0) / 60:.1f} min")
    for key, path in written.items():
        print(f"  {key}: {path}")
    md = written.get("table.md")
    if md and Path(md).is_file():
        print("\n" + Path(md).read_text())
    return runs
