"""`pad-bench sweep --dry-run` on specs of 1 and N runs: wall time and peak memory of each, and the time
per extra run. The difference between the two is what expanding and checking the runs costs; the
1-run figure is mostly imports (torch, Avalanche: a strategy class is loaded to check its settings).

    PYTHONPATH=. python benchmarks/perf/sweep_dry_run.py --runs 10000
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def spec_text(runs: int) -> str:
    """A fine-tune spec of `runs` runs: a grid of triplet weights times up to 100 seeds."""
    seeds = min(runs, 100)
    points = runs // seeds
    if points * seeds != runs:
        raise SystemExit(f"--runs {runs}: give at most 100 or a multiple of 100")
    weights = ", ".join(f"{0.01 * (i + 1):.2f}" for i in range(points))
    return (f"benchmarks: [synth]\nstrategies: [finetune]\nseeds: [{', '.join(map(str, range(seeds)))}]\n"
            f"set: {{benchmark.data_root: /data/synth}}\ngrid: {{strategy.triplet_weight: [{weights}]}}\n")


def dry_run(spec: Path, out: Path) -> tuple[float, float]:
    """(seconds, peak resident MiB) of one `pad-bench sweep --dry-run` process (the peak is the largest
    of every child so far: run the smaller spec first)."""
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    cmd = [sys.executable, "-m", "pad_bench.cli", "sweep", str(spec), "--out", str(out), "--dry-run"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000, help="runs of the large spec (default 10000)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sweep-dry-run-"))
    figures = {}
    for n in (1, args.runs):
        spec = work / f"runs{n}.yaml"
        spec.write_text(spec_text(n))
        figures[n] = dry_run(spec, work / f"out{n}")
        print(f"{n:>6} runs: {figures[n][0]:6.1f} s, peak {figures[n][1]:7.0f} MiB", flush=True)
    (t1, m1), (tn, mn) = figures[1], figures[args.runs]
    print(f"per extra run: {(tn - t1) / (args.runs - 1) * 1e3:.2f} ms, {(mn - m1) / (args.runs - 1) * 1024:.1f} KiB")


if __name__ == "__main__":
    main()
