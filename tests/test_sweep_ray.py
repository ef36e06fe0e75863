"""Sweeps on real Ray, every process on 127.0.0.1: a two-node cluster that loses its worker node
mid-sweep, and a local instance with a run that fails on bad input."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import tiny_sets
from pad_bench.cli import main
from pad_bench.config import resolve_config
from pad_bench.paths import PROJECT_ROOT
from pad_bench.sweep.state import DONE, FAILED, read_attempts, read_entries
from pad_bench.run.runner import execute
from pad_bench.sweep import reaper
from ray_cluster import LOOPBACK_HOSTS, LoopbackCluster, kill_tree, process_tree, tcp_endpoints

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # one Ray test at a time, same worker

SWEEP_TIMEOUT = 400


def write_spec(path: Path, synth_root: Path, **keys) -> Path:
    sets = {k: v for k, v in tiny_sets(synth_root).items() if k not in keys.get("grid", {})}
    spec = {"benchmarks": ["synth"], "strategies": ["finetune"], "set": sets, **keys}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def start_sweep(spec: Path, out: Path, env: dict | None, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pad_bench.cli", "sweep", str(spec), "--out", str(out), "--no-progress", *args]
    return subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def assert_loopback_only(pids: list[int]) -> int:
    """Every TCP socket of these processes listens on / talks to loopback; returns how many listen."""
    endpoints = tcp_endpoints(pids)
    outside = [e for e in endpoints if e[0] not in LOOPBACK_HOSTS or (not e[2] and e[1] not in LOOPBACK_HOSTS)]
    assert not outside, f"sockets off 127.0.0.1: {outside}"
    return sum(1 for e in endpoints if e[2])


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=SWEEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid, graceful=False)
        out, err = proc.communicate()
        pytest.fail(f"sweep did not finish in {SWEEP_TIMEOUT}s:\n{out}\n{err}")
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def cluster():
    c = LoopbackCluster()
    yield c
    c.stop()


def test_sweep_survives_losing_its_worker_node(cluster, synth_root, tmp_path):
    spec = write_spec(tmp_path / "eight.yaml", synth_root, seeds=[0, 1, 2, 3], grid={"train.random_erasing": [0.0, 0.5]})
    out = tmp_path / "sweep"
    proc = start_sweep(spec, out, cluster.env, "--address", cluster.address)
    try:
        victim, listening = None, 0
        deadline = time.monotonic() + SWEEP_TIMEOUT
        while victim is None and proc.poll() is None and time.monotonic() < deadline:
            listening = assert_loopback_only(cluster.pids() + process_tree(proc.pid))
            victim = _run_past_its_first_checkpoint_on(out, "worker")
            time.sleep(0.05)
        assert victim, "no run on the worker node got past its first checkpoint while the sweep ran"
        cluster.kill_node("worker")  # mid-run: experience 1 is checkpointed, experience 2 is training
    finally:
        rc, stdout, stderr = finish(proc)
    assert rc == 0, stderr
    assert listening >= 4  # GCS, raylets, agents were checked while they ran

    entries = {e["name"]: e for e in read_entries(out)}
    assert len(entries) == 8 and all(e["status"] == DONE for e in entries.values())
    assert any(e["node"] == "worker" for e in entries.values())  # runs were spread over both nodes
    attempts = read_attempts(out, victim)
    assert [a["node"] for a in attempts] == ["worker", "head"] and attempts[1]["resumed"]
    # the kill lands after the first checkpoint; on a fast machine the run may already have checkpointed step 2
    assert re.search(rf"resumed {re.escape(victim)} after step [12]\b", (out / victim / "run.log").read_text())
    assert f"done   {victim}: Seen-Avg mAP " in stdout and "attempt 2" in stdout

    # each run alone, in this process, gives the same metrics.csv: bitwise, as the workers run on this
    # machine with one thread each (as this process), in fp32 (docs/runs.md)
    for name, entry in entries.items():
        cfg = resolve_config(benchmark="synth", strategy="finetune", sets={
            **tiny_sets(synth_root), "seed": entry["seed"], **entry["grid"]})
        alone = execute(cfg, tmp_path / "alone" / name, progress=False)
        assert (out / name / "metrics.csv").read_text() == (alone / "metrics.csv").read_text(), name
        summary = json.loads((alone / "summary.json").read_text())
        assert entry["seen_avg_mAP"] == pytest.approx(summary["mAP"]["seen_avg_final"], abs=0.006)

    stamps = {n: (out / n / "metrics.csv").stat().st_mtime_ns for n in entries}
    assert main(["sweep", str(spec), "--out", str(out), "--address", cluster.address]) == 0  # nothing left to run
    assert {n: (out / n / "metrics.csv").stat().st_mtime_ns for n in entries} == stamps


def _run_past_its_first_checkpoint_on(out: Path, node: str) -> str | None:
    """Once `node` has finished a run: a run whose latest attempt is on `node`, has written its step-1
    checkpoint and is not finished."""
    if not (out / ".attempts").is_dir() or not any(
            e["status"] == DONE and e["node"] == node for e in read_entries(out)):
        return None
    for folder in sorted((out / ".attempts").glob("*")):
        attempts = read_attempts(out, folder.name)
        run = out / folder.name
        if (attempts and attempts[-1]["node"] == node and (run / "checkpoints" / "step001.pt").is_file()
                and not (run / "checkpoints" / "step002.pt").exists()):
            return folder.name
    return None


def test_local_instance_reports_a_bad_run_without_retrying_it(synth_root, tmp_path):
    # VIPeR is not in the synthetic data root: that run fails on bad input when it reads its data
    spec = write_spec(tmp_path / "two.yaml", synth_root, grid={"benchmark.unseen": [["synth_u1"], ["viper"]]},
                      resources={"cpus": 2})
    out = tmp_path / "sweep"
    good, bad = "finetune-synth-unseen=synth_u1-s0", "finetune-synth-unseen=viper-s0"

    proc = start_sweep(spec, out, None, "--cpus", "2")
    try:
        listening = 0
        while proc.poll() is None and not listening:
            if (out / ".attempts").is_dir():
                listening = assert_loopback_only(process_tree(proc.pid))
            time.sleep(0.1)
    finally:
        rc, stdout, stderr = finish(proc)
    assert rc == 1 and listening >= 3  # GCS, raylet, the agents and workers of the local instance
    assert f"done   {good}: Seen-Avg mAP " in stdout and "Unseen-Avg mAP " in stdout
    assert f"FAILED {bad}: " in stdout and "viper" in stdout.split(f"FAILED {bad}: ")[1]
    assert "1 of 2 runs failed" in stderr and f"  {bad}: " in stderr and "Traceback" not in stderr
    entries = {e["name"]: e for e in read_entries(out)}
    assert entries[good]["status"] == DONE and entries[bad]["status"] == FAILED
    assert entries[bad]["attempts"] == 1  # a user error is not retried
    assert [a["threads"] for a in read_attempts(out, good)] == [2]  # torch threads = the run's CPUs
    assert not list(Path("/tmp").glob(f"pad-bench-ray-*/session_*/logs/*{proc.pid}*"))  # temp dir removed


def test_a_killed_driver_leaves_no_ray_process_and_the_same_command_finishes(synth_root, tmp_path):
    """Issue 25 case 10: SIGKILL the driver mid-run; its reaper ends the local instance and removes the temp dir."""
    spec = write_spec(tmp_path / "one.yaml", synth_root)
    out = tmp_path / "sweep"
    proc = start_sweep(spec, out, None, "--cpus", "1")
    try:
        temp_dir = None
        deadline = time.monotonic() + SWEEP_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline and not (temp_dir and read_attempts(out, RUN)):
            temp_dir = temp_dir or _reaper_temp_dir(proc.pid)
            time.sleep(0.1)
        assert temp_dir and reaper.instance_pids(temp_dir), "the run did not start"
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        deadline = time.monotonic() + reaper.GRACE_SECONDS + 15
        while (reaper.instance_pids(temp_dir) or Path(temp_dir).exists()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not reaper.instance_pids(temp_dir) and not Path(temp_dir).exists()
    finally:
        kill_tree(proc.pid, graceful=False)
    rc, stdout, stderr = finish(start_sweep(spec, out, None, "--cpus", "1"))
    assert rc == 0, stderr
    assert [e["status"] for e in read_entries(out)] == [DONE]


RUN = "finetune-synth-s0"


def _reaper_temp_dir(driver: int) -> str | None:
    for pid in process_tree(driver):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if any(a.endswith("reaper.py") for a in argv):
            return argv[-2] if argv[-1] == "" else argv[-1]
    return None
