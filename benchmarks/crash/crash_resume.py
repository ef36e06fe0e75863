"""Crash test: SIGKILL a tiny synthetic run N times, resume it after each kill, and check that the
final metrics.csv and summary.json (timing aside) equal those of an uninterrupted run.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/crash/crash_resume.py --strategy finetune --kills 8
    ... --strategy pad --kills 8 --mid     # also checkpoints (and kills) inside experiences

Kills land at random moments (start-up, training, evaluation, checkpoint and results writes), plus
aimed ones: right after the final checkpoint appears (the window before metrics.csv / summary.json
/ plots are written) and, with --mid, right after a mid-experience checkpoint appears. Every restart
is the same command with --resume, also when the kill came before config.yaml existed. Prints one
line per kill and the verdict; exit status 0 when the results are equal. Slow: not part of the
test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYNTH = dict(seed=3, n_train_domains=2, n_unseen_domains=1, train_ids=8, test_ids=6, images_per_id=5,
             query_per_id=1, gallery_per_id=2, distractors=3, height=64, width=32)


def run_command(out: Path, data: Path, name: str, strategy: str, epochs: int, mid: bool) -> list[str]:
    sets = {"benchmark.data_root": str(data), "benchmark.domains": ["synth_d1", "synth_d2"],
            "benchmark.unseen": ["synth_u1"], "train.epochs": epochs, "train.batch_p": 4, "train.batch_k": 2,
            "train.eval_batch_size": 32, "train.num_workers": 0,
            "train.checkpoint_every_epochs": 1 if mid else 0}
    cmd = [sys.executable, "-m", "pad_bench.cli", "run", "-b", "synth", "-s", strategy, "--out", str(out),
           "--name", name, "--no-progress", "--resume"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={json.dumps(v)}"]
    return cmd


def results(run_dir: Path) -> tuple[str, dict]:
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("run", "timing"):
        summary.pop(key, None)
    return (run_dir / "metrics.csv").read_text(), summary


def checkpoints(run_dir: Path) -> list[str]:
    folder = run_dir / "checkpoints"
    return sorted(p.name for p in folder.glob("step*.pt")) if folder.is_dir() else []


def phase(run_dir: Path, n_steps: int) -> str:
    """Where the run was when it was killed, read off the files it had written."""
    if not (run_dir / "config.yaml").exists():
        return "start-up (no config.yaml)"
    ckpts = checkpoints(run_dir)
    final = f"step{n_steps:03d}.pt"
    if final in ckpts:
        done = (run_dir / "summary.json").exists() and results_complete(run_dir, n_steps)
        return "after the run" if done else "final window (checkpoint written, results not yet)"
    return f"training (latest checkpoint: {ckpts[-1] if ckpts else 'none'})"


def results_complete(run_dir: Path, n_steps: int) -> bool:
    text = (run_dir / "metrics.csv").read_text() if (run_dir / "metrics.csv").exists() else ""
    return any(line.startswith(f"{n_steps},") for line in text.splitlines())


def launch(cmd: list[str], log) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def wait_for(proc: subprocess.Popen, condition, timeout: float) -> bool:
    """Poll condition() every 10 ms until it holds (True) or the process ends / times out (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.01)
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategy", default="finetune")
    ap.add_argument("--kills", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--mid", action="store_true", help="checkpoint every epoch inside experiences, aim kills there")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill schedule")
    ap.add_argument("--work", type=Path, help="folder to work in (default: a temp folder, removed)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from pad_bench.data.synth import SynthConfig, generate

    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="crash-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    log = open(work / "log.txt", "a")
    data = work / "data"
    if not data.exists():
        generate(data, SynthConfig(**SYNTH))
    n_steps = 2
    ref_cmd = run_command(work, data, "reference", args.strategy, args.epochs, args.mid)
    t0 = time.monotonic()
    if launch(ref_cmd, log).wait() != 0:
        print(f"the uninterrupted run failed; see {work / 'log.txt'}")
        return 1
    t_ref = time.monotonic() - t0
    print(f"uninterrupted run: {t_ref:.1f} s")

    killed = work / "killed"
    cmd = run_command(work, data, "killed", args.strategy, args.epochs, args.mid)
    targets = ["time"] * args.kills
    if args.kills >= 2:
        targets[-1] = "final"
    if args.mid:
        for i in range(1, args.kills - 1, 2):
            targets[i] = "mid"
    hits: list[str] = []
    for i, target in enumerate(targets):
        before = set(checkpoints(killed))
        proc = launch(cmd, log)
        if target == "time":
            hit = not wait_for(proc, lambda: False, rng.uniform(0.0, t_ref))
        elif target == "mid":
            hit = wait_for(proc, lambda: any("-epoch" in c for c in set(checkpoints(killed)) - before), t_ref * 3)
        else:
            hit = wait_for(proc, lambda: f"step{n_steps:03d}.pt" in checkpoints(killed), t_ref * 3)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            where = phase(killed, n_steps)
        else:
            where = f"not killed: the process ended first (rc {proc.returncode})"
            if proc.returncode != 0:
                print(f"kill {i + 1}: a resume failed (rc {proc.returncode}); see {work / 'log.txt'}")
                return 1
        hits.append(where)
        print(f"kill {i + 1}/{len(targets)} [{target}{'' if hit or target == 'time' else ', target missed'}]: {where}")

    rc = launch(cmd, log).wait()
    if rc != 0:
        print(f"the final --resume failed (rc {rc}); see {work / 'log.txt'}")
        return 1
    leftovers = [p for p in killed.rglob("*.tmp")]
    same = results(killed) == results(work / "reference")
    n_kills = sum(not h.startswith("not killed") for h in hits)
    print(f"{args.strategy}{' (mid-experience checkpoints)' if args.mid else ''}: {n_kills} SIGKILLs, "
          f"{sum(h.startswith('final window') for h in hits)} in the final window, "
          f"{sum('-epoch' in h for h in hits)} after a mid-experience checkpoint; metrics.csv and summary.json "
          f"{'EQUAL' if same else 'DIFFER'} to the uninterrupted run; temp files left: {len(leftovers)}")
    if args.work is None and same:
        shutil.rmtree(work)
    return 0 if same and not leftovers else 1


if __name__ == "__main__":
    sys.exit(main())
