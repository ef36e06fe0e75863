"""Crash test: SIGKILL a tiny synthetic run N times, resume it after each kill, and check that the
final metrics.csv and summary.json (timing aside) equal those of an uninterrupted run.

    PYTHONPATH=. OMP_NUM_THREADS=1 nice -n 5 python benchmarks/crash/crash_resume.py --strategy finetune --kills 6
    ... --strategy pad --kills 6 --mid     # also checkpoints inside experiences (every epoch)

Kill times are counted from the moment a launch has finished its start-up (it holds the run's lock,
config.yaml exists and, resuming, run.log says it loaded its checkpoint), not from process start,
and in CPU seconds of the process, so that neither the imports nor the machine's load move them.
First an uninterrupted run is timed up to the moment its results files are written; each random
kill is then drawn uniformly over what is left of that window (set-up, training, evaluation,
checkpoint and results writes) given the checkpoint the launch resumes from. Two kills are aimed
(three with --mid): the first launch is killed after it took the lock and before config.yaml exists
(a half-made directory; the whole start-up is run in slices for it); with --mid, the second right
after it wrote a checkpoint inside an experience; the last one between the final checkpoint and the
results files (metrics.csv / summary.json). An aimed kill lets the process run in 1 ms slices
(SIGSTOP / SIGCONT) and looks at its files while it is stopped; one that misses is tried again.

Every restart is the same command with --resume. When the killed run finishes (a kill came too late,
or landed after its results), it is resumed once more, compared, and a fresh run takes the next kills.
Prints one line per kill (where it landed, read off the files the run had written) and a verdict;
exit status 0 when every killed run ends equal to the uninterrupted one. Slow: not part of the suite.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pad_bench.training.checkpoint import is_mid_experience, latest_checkpoint  # noqa: E402

SYNTH = dict(seed=3, n_train_domains=2, n_unseen_domains=1, train_ids=8, test_ids=6, images_per_id=5,
             query_per_id=1, gallery_per_id=2, distractors=3, height=64, width=32)
N_STEPS = 2  # training domains of the stream below
POLL = 0.01  # seconds between looks at a freely running process
SLICE = 0.001  # how long a process runs between two looks while a kill is aimed at a narrow window
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def run_command(out: Path, data: Path, name: str, strategy: str, epochs: int, mid: bool) -> list[str]:
    sets = {"benchmark.data_root": str(data), "benchmark.domains": ["synth_d1", "synth_d2"],
            "benchmark.unseen": ["synth_u1"], "train.epochs": epochs, "train.batch_p": 4, "train.batch_k": 2,
            "train.eval_batch_size": 32, "train.num_workers": 0,
            "train.checkpoint_every_epochs": 1 if mid else 0,
            "model.weights": "random"}  # no synthetic pretraining: the kills are what is tested
    cmd = [sys.executable, "-m", "pad_bench.cli", "run", "-b", "synth", "-s", strategy, "--out", str(out),
           "--name", name, "--no-progress", "--resume"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={json.dumps(v)}"]
    return cmd


class Launch:
    """One start of the run command, with the wall-clock moment its start-up ended (None before)."""

    def __init__(self, cmd: list[str], run_dir: Path, log):
        env = dict(os.environ, OMP_NUM_THREADS="1",
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.run_dir = run_dir
        self.resumes = latest(run_dir) is not None  # it will continue from a checkpoint
        self.resumed_lines = resumed_lines(run_dir)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.started: float | None = None  # time.time() when start-up was seen to be over
        self.cpu_started = 0.0  # its CPU seconds then

    def alive(self) -> bool:
        return self.proc.poll() is None

    def holds_lock(self) -> bool:
        try:
            return (self.run_dir / ".lock").read_text().startswith(f"pid {self.proc.pid} ")
        except OSError:
            return False

    def started_up(self) -> bool:
        """Start-up is over: this process holds the lock and config.yaml exists; resuming, it has
        also loaded its checkpoint (run.log says "resumed ...")."""
        if not (self.holds_lock() and (self.run_dir / "config.yaml").exists()):
            return False
        return not self.resumes or resumed_lines(self.run_dir) > self.resumed_lines

    def wait_start_up(self) -> bool:
        """Until start-up is over (False if the process ended first)."""
        while self.started is None and self.alive():
            if self.started_up():
                self.started, self.cpu_started = time.time(), self.cpu()
                return True
            time.sleep(POLL)
        return self.started is not None

    def stat(self) -> list[str]:
        """/proc/PID/stat after the command name: state, ppid, ... (empty once the process is gone)."""
        try:
            return Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return []

    def cpu(self) -> float:
        """CPU seconds (user + system) the process has used so far; 0 once it is gone."""
        fields = self.stat()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS if fields else 0.0

    def cpu_since_start_up(self) -> float:
        return self.cpu() - self.cpu_started

    def wait_cpu(self, seconds: float) -> bool:
        """Until the process has used `seconds` of CPU since its start-up; True if it is still running."""
        while self.alive() and self.cpu_since_start_up() < seconds:
            time.sleep(POLL)
        return self.alive()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        """SIGSTOP, and wait until the kernel shows the process stopped (or gone)."""
        self.proc.send_signal(signal.SIGSTOP)
        while (fields := self.stat()) and fields[0] not in ("T", "t", "Z", "X"):
            time.sleep(0.0001)

    def step_until(self, in_window, too_late) -> bool:
        """Run the process in SLICE-long slices, stopped in between; SIGKILL it (True) as soon as
        in_window() holds while it is stopped. False if too_late() holds first or it ended."""
        while self.alive():
            self.stop()
            if in_window():
                self.kill()
                return True
            if too_late():
                break
            self.proc.send_signal(signal.SIGCONT)
            time.sleep(SLICE)
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
        return False


def resumed_lines(run_dir: Path) -> int:
    try:
        return (run_dir / "run.log").read_text().count(" resumed ")
    except OSError:
        return 0


def read_results(run_dir: Path) -> tuple[str, dict]:
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("run", "timing"):
        summary.pop(key, None)
    return (run_dir / "metrics.csv").read_text(), summary


def metrics_steps(run_dir: Path) -> set[int]:
    try:
        with open(run_dir / "metrics.csv", newline="") as f:
            return {int(r["step"]) for r in csv.DictReader(f)}
    except OSError:
        return set()


def summary_steps(run_dir: Path) -> int:
    try:
        return len(json.loads((run_dir / "summary.json").read_text())["timing"])
    except (OSError, ValueError, KeyError):
        return 0


def results_written(run_dir: Path) -> bool:
    return N_STEPS in metrics_steps(run_dir) and summary_steps(run_dir) == N_STEPS


def final_checkpoint(run_dir: Path) -> bool:
    return (run_dir / "checkpoints" / f"step{N_STEPS:03d}.pt").exists()


def in_final_window(run_dir: Path) -> bool:
    return final_checkpoint(run_dir) and not results_written(run_dir)


def latest(run_dir: Path) -> Path | None:
    folder = run_dir / "checkpoints"
    return latest_checkpoint(folder) if folder.is_dir() else None


def steps_done(ckpt: Path | None) -> int:
    """Experiences finished at checkpoint `ckpt`."""
    if ckpt is None:
        return 0
    return int(ckpt.name[4:7]) - (1 if is_mid_experience(ckpt) else 0)


def written_mid_checkpoint(run_dir: Path, launch: Launch) -> bool:
    """The newest checkpoint is one inside an experience, written by this launch."""
    ckpt = latest(run_dir)
    try:
        return (launch.started is not None and ckpt is not None and is_mid_experience(ckpt)
                and ckpt.stat().st_mtime >= launch.started)
    except OSError:
        return False


def trained_this_launch(run_dir: Path, launch: Launch, experience: int) -> bool:
    """losses.csv (rewritten when an experience's training ends) shows `experience`, written by this launch."""
    path = run_dir / "losses.csv"
    try:
        if launch.started is None or path.stat().st_mtime < launch.started:
            return False
        with open(path, newline="") as f:
            return any(int(r["experience"]) == experience for r in csv.DictReader(f))
    except OSError:
        return False


def landed(run_dir: Path, launch: Launch) -> tuple[str, str]:
    """(category, detail) of where a killed run was, read off the files it had written."""
    if not (run_dir / "config.yaml").exists():
        held = ", ".join(sorted(p.name for p in run_dir.iterdir())) if run_dir.is_dir() else "nothing"
        return "start-up", f"before config.yaml (a half-made directory holding {held})"
    if final_checkpoint(run_dir):
        if results_written(run_dir):
            return "after results", "metrics.csv and summary.json complete"
        if N_STEPS not in metrics_steps(run_dir):
            return "final window", "final checkpoint written, metrics.csv and summary.json not yet"
        return "final window", "final checkpoint and metrics.csv written, summary.json not yet"
    ckpt = latest(run_dir)
    if ckpt is None and not metrics_steps(run_dir):
        return "set-up", "strategy built / step-0 evaluation running"
    k = steps_done(ckpt) + 1  # the experience in progress (1-based)
    if trained_this_launch(run_dir, launch, k):
        return "evaluation", f"experience {k} trained, its evaluation or checkpoint not finished"
    if ckpt is not None and is_mid_experience(ckpt):
        return "mid-experience", f"experience {k} after its mid checkpoint {ckpt.name}"
    return "training", f"experience {k}, no checkpoint inside it yet"


def reference_timeline(cmd: list[str], run_dir: Path, log) -> tuple[float, dict[str, float]]:
    """Run uninterrupted; return the CPU seconds it used after its start-up until its results were
    written, and until each checkpoint appeared (CPU time: the machine's load barely changes it)."""
    launch = Launch(cmd, run_dir, log)
    if not launch.wait_start_up():
        raise SystemExit(f"the uninterrupted run failed (rc {launch.proc.returncode}); see {log.name}")
    seen, written = {}, None
    while launch.alive():
        cpu = launch.cpu_since_start_up()
        folder = run_dir / "checkpoints"
        for p in folder.glob("step*.pt") if folder.is_dir() else ():
            seen.setdefault(p.name, cpu)
        if written is None and results_written(run_dir):
            written = cpu
        time.sleep(POLL)
    if launch.proc.returncode != 0 or written is None:
        raise SystemExit(f"the uninterrupted run failed (rc {launch.proc.returncode}); see {log.name}")
    return written, seen


def kill_at(target: str, launch: Launch, window: float, at: dict[str, float], rng: random.Random) -> tuple[bool, str]:
    """Kill `launch` at `target` (see the module docstring); (whether it was killed there, a label).
    A process left running missed its window."""
    run_dir = launch.run_dir
    if target == "start-up":  # after the lock, before config.yaml
        return launch.step_until(lambda: launch.holds_lock() and not (run_dir / "config.yaml").exists(),
                                 lambda: (run_dir / "config.yaml").exists()), target
    if target == "random":
        ckpt = latest(run_dir)
        delay = rng.uniform(0.0, max(window - (at.get(ckpt.name, 0.0) if ckpt else 0.0), POLL))
        if launch.wait_start_up() and launch.wait_cpu(delay):
            launch.kill()
        return True, f"random +{delay:.2f} CPU s"
    if target == "mid-experience":  # right after a mid-experience checkpoint of this launch
        launch.wait_start_up()
        return launch.step_until(lambda: written_mid_checkpoint(run_dir, launch),
                                 lambda: final_checkpoint(run_dir)), target
    # the final window: once the last experience has trained, in slices
    while launch.wait_start_up() and launch.alive() and not trained_this_launch(run_dir, launch, N_STEPS):
        time.sleep(POLL)
    return launch.step_until(lambda: in_final_window(run_dir), lambda: results_written(run_dir)), target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategy", default="finetune")
    ap.add_argument("--kills", type=int, default=6, help="SIGKILLs that land (at least 3: two are aimed)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--mid", action="store_true", help="checkpoint every epoch inside experiences")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill schedule")
    ap.add_argument("--work", type=Path, help="folder to work in (default: a temp folder, removed if all is well)")
    args = ap.parse_args()
    if args.kills < 3 + args.mid:
        ap.error(f"--kills must be at least {3 + args.mid}{' with --mid' if args.mid else ''}")
    from pad_bench.synthetic.domains import SynthConfig, generate

    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="crash-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    log = open(work / "log.txt", "a")
    data = work / "data"
    if not data.exists():
        generate(data, SynthConfig(**SYNTH))

    def command(name: str) -> list[str]:
        return run_command(work, data, name, args.strategy, args.epochs, args.mid)

    window, at = reference_timeline(command("reference"), work / "reference", log)
    print(f"uninterrupted run, CPU seconds after its start-up: "
          + ", ".join(f"{n} {t:.2f}" for n, t in sorted(at.items(), key=lambda kv: kv[1]))
          + f", results written {window:.2f}", flush=True)
    reference = read_results(work / "reference")

    rounds: list[tuple[str, bool, int]] = []  # (run name, equal to the reference, temp files left)

    def finish(run_dir: Path) -> None:
        """Resume the killed run to its end and compare it with the reference."""
        launch = Launch(command(run_dir.name), run_dir, log)
        if launch.proc.wait() != 0:
            raise SystemExit(f"the final --resume of {run_dir.name} failed (rc {launch.proc.returncode}); see {log.name}")
        leftovers = len(list(run_dir.rglob("*.tmp")))
        rounds.append((run_dir.name, read_results(run_dir) == reference, leftovers))

    aimed_mid = ["mid-experience"] if args.mid else []
    targets = ["start-up"] + aimed_mid + ["random"] * (args.kills - 2 - len(aimed_mid)) + ["final window"]
    run_dir = work / "killed-1"
    hits: list[str] = []
    launches, max_launches = 0, 4 * args.kills
    while len(hits) < len(targets) and launches < max_launches:
        target = targets[len(hits)]
        if final_checkpoint(run_dir) or (target == "start-up" and run_dir.exists()):
            finish(run_dir)  # nothing left to kill in this run but the results writes: take a fresh one
            run_dir = work / f"killed-{len(rounds) + 1}"
        launches += 1
        launch = Launch(command(run_dir.name), run_dir, log)
        aimed, label = kill_at(target, launch, window, at, rng)
        if launch.alive():  # an aimed kill that missed its window: kill it where it is
            launch.kill()
        rc = launch.proc.returncode
        if rc == 0:
            print(f"  ({target} kill not taken: the launch of {run_dir.name} ended first; trying again)", flush=True)
            continue
        if rc != -signal.SIGKILL:
            print(f"a launch of {run_dir.name} failed (rc {rc}); see {log.name}")
            return 1
        category, detail = landed(run_dir, launch)
        hits.append(category)
        if not aimed and target != "start-up":
            targets.append(target)  # try again (on a fresh run if this one is past it)
        print(f"kill {len(hits)}/{len(targets)} [{label}{'' if aimed else ', missed'}] {run_dir.name}: "
              f"{category}: {detail}", flush=True)
    finish(run_dir)

    equal = all(same and not left for _, same, left in rounds)
    counts = Counter(hits)
    order = ("start-up", "set-up", "training", "mid-experience", "evaluation", "final window", "after results")
    print(f"{args.strategy}{' --mid' if args.mid else ''}: {len(hits)} SIGKILLs over {len(rounds)} killed run(s) "
          f"({launches} launches killed or tried); landed: "
          + ", ".join(f"{counts[c]} {c}" for c in order if counts[c]))
    for name, same, left in rounds:
        print(f"  {name}: metrics.csv and summary.json {'EQUAL' if same else 'DIFFER'} to the uninterrupted run; "
              f"temp files left: {left}")
    if len(hits) < len(targets):
        print(f"only {len(hits)} of {len(targets)} kills landed in {max_launches} launches")
    if args.work is None and equal:
        shutil.rmtree(work)
    return 0 if equal and len(hits) == len(targets) else 1


if __name__ == "__main__":
    sys.exit(main())
