"""Ray's overhead: N tiny runs through `pad-bench sweep` (local Ray) against the same runs one after another.

Prints wall-clock seconds for
  serial-process  the runs one after another in one Python process (runner.execute), imports paid once
  serial-cli      one `pad-bench run` process per run, one after another (how runs are started by hand)
  sweep-cpusK     `pad-bench sweep` on a local Ray instance with K CPUs, one CPU per run (for each K)
and checks that every sweep run's metrics.csv equals the serial one. Everything uses one thread per run.

    PYTHONPATH=. python benchmarks/perf/sweep_overhead.py --runs 8 --cpus 1 2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8, help="number of runs (seeds of the tiny fine-tune run)")
    ap.add_argument("--cpus", type=int, nargs="+", default=[1, 2], help="local Ray instance sizes to time")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)

    import torch
    import yaml

    from conftest import TINY_SYNTH, tiny_sets  # the test suite's tiny synthetic stream
    from pad_bench.config import resolve_config
    from pad_bench.synthetic.domains import generate
    from pad_bench.run.runner import execute

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="sweep-overhead-"))
    generate(work / "synth", TINY_SYNTH)
    sets = tiny_sets(work / "synth")
    seeds = list(range(args.runs))
    times: dict[str, float] = {}

    t0 = time.perf_counter()
    for s in seeds:
        execute(resolve_config(benchmark="synth", strategy="finetune", sets={**sets, "seed": s}),
                work / "serial" / f"s{s}", progress=False)
    times["serial-process"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for s in seeds:
        cmd = [sys.executable, "-m", "pad_bench.cli", "run", "-b", "synth", "-s", "finetune", "--seed", str(s),
               "--out", str(work / "cli"), "--name", f"s{s}", "--no-progress"]
        cmd += [a for k, v in sets.items() for a in ("--set", f"{k}={json.dumps(v)}")]
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    times["serial-cli"] = time.perf_counter() - t0

    spec = work / "spec.yaml"
    spec.write_text(yaml.safe_dump({"benchmarks": ["synth"], "strategies": ["finetune"], "seeds": seeds,
                                    "set": sets, "resources": {"cpus": 1}}))
    for k in args.cpus:
        out = work / f"sweep-cpus{k}"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pad_bench.cli", "sweep", str(spec), "--out", str(out),
                        "--cpus", str(k), "--no-progress"], check=True, capture_output=True, cwd=ROOT)
        times[f"sweep-cpus{k}"] = time.perf_counter() - t0
        for s in seeds:
            same = (out / f"finetune-synth-s{s}" / "metrics.csv").read_text() == (work / "serial" / f"s{s}" / "metrics.csv").read_text()
            assert same, f"seed {s}: the sweep's metrics.csv differs from the serial run's"

    base = times["serial-process"]
    print(f"{args.runs} tiny fine-tune runs (2 domains, 1 epoch), one thread each, os.cpu_count()={os.cpu_count()}")
    for name, secs in times.items():
        print(f"  {name:<16} {secs:7.1f} s   ({secs / base:.2f} x serial-process, {secs / args.runs:.1f} s/run)")
    print(f"  metrics.csv of every sweep run == serial run: yes   (work dir {work})")


if __name__ == "__main__":
    main()
