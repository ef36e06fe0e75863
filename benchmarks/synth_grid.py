"""Seeds x methods x initialisations on the synthetic benchmark, then one table of mean ± std.

    PYTHONPATH=. python benchmarks/synth_grid.py --out results/synth-grid            # the whole grid:
        # finetune, lstkc, dkp, pad from pretrained and random init, then pad-s0..pad-s4 from pretrained
    PYTHONPATH=. python benchmarks/synth_grid.py --out DIR --table-only              # table of what is done
    PYTHONPATH=. python benchmarks/synth_grid.py --out DIR --methods finetune --inits pretrained

Every run is a `pad-bench run --benchmark synth` subprocess with one thread (OMP_NUM_THREADS=1);
`--jobs` of them at a time (default 2, for a 2-core machine). A finished run is skipped, a killed
one resumed, so the script can be stopped and started again. The table (also written as
DIR/table.md) gives, per method and initialisation, the final Seen-Avg mAP, the final Unseen-Avg
mAP and the mean forgetting (mAP points) over the seeds that finished, as mean ± sample std.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

MAIN_METHODS = ["finetune", "lstkc", "dkp", "pad"]
ABLATIONS = ["pad-s0", "pad-s1", "pad-s2", "pad-s3", "pad-s4"]  # pad is pad-s5 (its default preset)
INITS = {"pretrained": "synth-pretrained", "random": "random"}
COLUMNS = (("Seen-Avg mAP", "seen_avg_final"), ("Unseen-Avg mAP", "unseen_avg_final"),
           ("forgetting", "forgetting_mean"))


def run_dir(out: Path, method: str, init: str, seed: int) -> Path:
    return out / "runs" / f"{method}-{init}-s{seed}"


def is_done(path: Path) -> bool:
    try:
        summary = json.loads((path / "summary.json").read_text())
        cfg = yaml.safe_load((path / "config.yaml").read_text())
    except (OSError, ValueError):
        return False
    return len(summary["mAP"]["seen_avg"]) == len(cfg["benchmark"]["domains"])


def run_one(out: Path, data_root: str, method: str, init: str, seed: int, extra: list[str]) -> str:
    path = run_dir(out, method, init, seed)
    if is_done(path):
        return f"{path.name}: done before"
    cmd = [sys.executable, "-m", "pad_bench.cli", "run", "--benchmark", "synth", "--strategy", method,
           "--seed", str(seed), "--data-root", data_root, "--out", str(path.parent), "--name", path.name,
           "--no-progress", "--set", f"model.weights={INITS[init]}", *extra]
    if (path / "config.yaml").exists():
        cmd.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.log", "a") as log:
        rc = subprocess.call(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    return f"{path.name}: rc={rc} in {time.perf_counter() - t0:.0f}s"


def table(out: Path, grid: list[tuple[str, str]], seeds: list[int]) -> str:
    head = "| method | init | seeds | " + " | ".join(c for c, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (3 + len(COLUMNS))]
    for method, init in grid:
        summaries = [json.loads((run_dir(out, method, init, s) / "summary.json").read_text())["mAP"]
                     for s in seeds if is_done(run_dir(out, method, init, s))]
        cells = []
        for _, key in COLUMNS:
            values = [m[key] for m in summaries]
            std = statistics.stdev(values) if len(values) > 1 else float("nan")
            cells.append(f"{statistics.mean(values):.1f} ± {std:.1f}" if values else "-")
        lines.append(f"| {method} | {init} | {len(summaries)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data-root", default=".cache/synth")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", help=f"comma-separated (default: {','.join(MAIN_METHODS + ABLATIONS)})")
    p.add_argument("--inits", default="pretrained,random", help="pretrained, random or both")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--runs", help="exactly these runs, in this order: METHOD:INIT:SEED,... (the table still "
                                  "covers the whole grid)")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to every run")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.methods:
        grid = [(m, i) for i in args.inits.split(",") for m in args.methods.split(",")]
    else:  # the main methods under every init first, then the ablation rows (pretrained only)
        grid = [(m, i) for i in args.inits.split(",") for m in MAIN_METHODS]
        grid += [(m, "pretrained") for m in ABLATIONS if "pretrained" in args.inits.split(",")]
    if not args.table_only:
        extra = [a for s in args.set for a in ("--set", s)]
        main_part = [(m, i, s) for s in seeds for m, i in grid if m in MAIN_METHODS]  # seed-major
        jobs = main_part + [(m, i, s) for s in seeds for m, i in grid if m not in MAIN_METHODS]
        if args.runs:
            jobs = [(m, i, int(s)) for m, i, s in (r.split(":") for r in args.runs.split(","))]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for line in pool.map(lambda j: run_one(args.out, args.data_root, *j, extra), jobs):
                print(line, flush=True)
    text = table(args.out, grid, seeds)
    (args.out / "table.md").parent.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
