"""`pad-bench demo`: the synthetic stream once (cached), the headline methods (or all) at their tiny budget, then compare."""
from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from .config import demo_flag, list_strategies, resolve_config
from .registry import METHODS
from .synthetic.assets import DEFAULT_SYNTH
from .synthetic.domains import SynthConfig


def demo_strategies(every: bool = False) -> list[str]:
    """The methods whose YAML says `demo: headline` (chosen to fit the demo's 15-minute CPU budget),
    or (every) each method: the YAML named like its method folder (presets/variants excluded)."""
    methods = [n for n in list_strategies() if n in METHODS]
    return methods if every else [n for n in methods if demo_flag(n) == "headline"]


def run_demo(*, out: Path, data_root: Path, seed: int = 0, only: list[str] | None = None,
             every: bool = False, jobs: int | None = None, sets: dict | None = None,
             synth: SynthConfig = DEFAULT_SYNTH) -> list[Path]:
    """Generate `synth` into data_root unless it holds it, then run the methods `jobs` at a time
    (default: one per available CPU), each on an equal share of the CPUs: the tiny models use one
    core far better than two, so parallel runs finish sooner."""
    from .data.loading import available_cpus
    from .results.compare import compare_runs
    from .run.runner import run_name
    from .synthetic.assets import ensure_synthetic, make_assets

    t0 = time.perf_counter()
    names = only or demo_strategies(every)
    cfgs = [resolve_config(benchmark="synth", strategy=name,  # every config refused before any data is written
                           sets={**(sets or {}), "benchmark.data_root": str(data_root), "seed": seed})
            for name in names]
    print("asset step: the synthetic domains and pretrained models the runs start from", flush=True)
    ensure_synthetic(data_root, synth)
    for cfg in cfgs:  # pretrain each model once here, with every CPU, before the runs share them
        make_assets(cfg)
    runs = [out / run_name(cfg, sets) for cfg in cfgs]
    jobs = max(1, min(jobs or available_cpus(), len(cfgs)))
    threads = max(1, available_cpus() // jobs)
    print(f"\nrunning {len(cfgs)} methods, {jobs} at a time with {threads} thread(s) each", flush=True)
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_run_one, cfg, run_dir, threads, f"[{name}] ")
                   for name, cfg, run_dir in zip(names, cfgs, runs)]
        try:
            for future in futures:
                future.result()  # the first failure (e.g. a UserError) ends the demo with its message
        except BaseException:
            pool.shutdown(cancel_futures=True)  # lets the runs in progress end, starts no more
            raise
    written = compare_runs(runs, out / "compare")
    print(f"\ndemo finished in {(time.perf_counter() - t0) / 60:.1f} min")
    for key, path in written.items():
        print(f"  {key}: {path}")
    md = written.get("table.md")
    if md and Path(md).is_file():
        print("\n" + Path(md).read_text())
    return runs


class _Prefixed:
    """stdout whose every line starts with the run's name, so parallel runs' lines stay readable."""

    def __init__(self, stream, prefix: str):
        self.stream, self.prefix, self.at_line_start = stream, prefix, True

    def write(self, text: str) -> int:
        for part in text.splitlines(keepends=True):
            self.stream.write((self.prefix if self.at_line_start else "") + part)
            self.at_line_start = part.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def prefix_stdout(prefix: str) -> None:
    """Every later line of this process's stdout starts with `prefix` (replacing an earlier one: a
    worker process runs several methods one after another)."""
    sys.stdout = _Prefixed(sys.__stdout__, prefix)


def _run_one(cfg: dict, run_dir: Path, threads: int, prefix: str) -> None:
    import torch

    from .run.runner import execute

    torch.set_num_threads(threads)
    prefix_stdout(prefix)
    t0 = time.perf_counter()
    print(f"started -> {run_dir}", flush=True)
    execute(cfg, run_dir, resume=(run_dir / "config.yaml").exists(), progress=False)
    print(f"finished in {time.perf_counter() - t0:.0f}s", flush=True)
