"""`pad-bench demo`: the synthetic stream once (cached), every method on clip-tiny, then compare."""
from __future__ import annotations

import time
from pathlib import Path

from .config import list_strategies, resolve_config
from .registry import METHODS


def demo_strategies() -> list[str]:
    """Every method: the YAML named like its method folder (presets/variants excluded)."""
    return [n for n in list_strategies() if n in METHODS]


def run_demo(*, out: Path, data_root: Path, seed: int = 0, only: list[str] | None = None) -> list[Path]:
    from .data.synth_cache import ensure_synthetic
    from .results.compare import compare_runs
    from .training.runner import execute, run_name

    t0 = time.perf_counter()
    ensure_synthetic(data_root)
    names = only or demo_strategies()
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
