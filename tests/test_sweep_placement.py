"""A sweep never waits silently for runs no node can hold, and leaves no process or temp dir of its local
Ray instance behind, however its driver ends (issue 25, cases 1 and 10). No Ray here: nodes are the
dicts ray.nodes() returns, and the reaper is checked on plain processes (tests/test_sweep_ray.py
SIGKILLs a real driver)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pad_bench.cli import main
from pad_bench.errors import UserError
from pad_bench.sweep import reaper
from pad_bench.sweep.execute import PLACEMENT_SECONDS, PlacementWatch, refuse_unplaceable, unplaceable
from pad_bench.sweep.spec import Resources


def node(cpus: float, gpus: float = 0, alive: bool = True) -> dict:
    resources = {"CPU": cpus, **({"GPU": gpus} if gpus else {}), "memory": 1e9}
    return {"Alive": alive, "Resources": resources}


def test_a_run_fits_when_one_alive_node_holds_it():
    assert unplaceable(Resources(cpus=4), [node(2), node(4)]) is None
    assert unplaceable(Resources(cpus=1, gpus=1), [node(8, gpus=1)]) is None
    assert unplaceable(Resources(cpus=4), [node(2), node(8, alive=False)]) == (
        "each run asks for 4 CPUs (resources.cpus) but the largest node of the Ray cluster has 2")
    assert unplaceable(Resources(cpus=1, gpus=0.5), [node(8)]) == (
        "each run asks for 0.5 GPUs (resources.gpus) but the largest node of the Ray cluster has 0")
    with pytest.raises(UserError, match="has 2: no run could start; lower resources in the spec "
                                        r"\(or add such a node to the cluster\)"):
        refuse_unplaceable(Resources(cpus=512), [node(2)], "auto")


def test_a_cluster_that_shrinks_stops_the_sweep_after_a_minute_naming_the_resource():
    now = [0.0]
    watch = PlacementWatch(Resources(cpus=4), clock=lambda: now[0])
    nodes = [node(4)]
    asked = []

    def ray_nodes():
        asked.append(now[0])
        return nodes

    now[0] = PLACEMENT_SECONDS - 1
    watch.check(progressed=False, nodes=ray_nodes)
    assert asked == []  # not asked before a minute without progress
    now[0] = PLACEMENT_SECONDS + 1
    watch.check(progressed=False, nodes=ray_nodes)  # busy, but a node could hold a run: keep waiting
    assert asked == [PLACEMENT_SECONDS + 1]
    nodes[:] = [node(4, alive=False), node(2)]  # the large node left
    now[0] += PLACEMENT_SECONDS / 2
    watch.check(progressed=True, nodes=ray_nodes)  # a run finished meanwhile: the clock restarts
    now[0] += PLACEMENT_SECONDS - 1
    watch.check(progressed=False, nodes=ray_nodes)
    now[0] += 2
    with pytest.raises(UserError, match=r"^no run could be placed for 60 s: each run asks for 4 CPUs "
                                        r"\(resources.cpus\) but the largest node of the Ray cluster has 2 now"):
        watch.check(progressed=False, nodes=ray_nodes)


def test_runs_larger_than_the_local_instance_are_refused_before_anything_starts(tmp_path, capsys):
    """Case 1 as written: resources {cpus: 512} with --cpus 2 (no Ray is started)."""
    spec = tmp_path / "c.yaml"
    spec.write_text(f"benchmarks: [synth]\nstrategies: [finetune]\n"
                    f"set: {{benchmark.data_root: {tmp_path}, train.epochs: 1}}\nresources: {{cpus: 512}}\n")
    for extra in ([], ["--dry-run"]):
        assert main(["sweep", str(spec), "--out", str(tmp_path / "sw"), "--cpus", "2", *extra]) == 2
        err = capsys.readouterr().err
        assert err == (f"pad-bench: error: {spec}: each run asks for 512 CPUs (resources.cpus) but the local Ray "
                       "instance gets 2 (--cpus): no run could start; lower resources.cpus or raise --cpus\n")
    assert not (tmp_path / "sw").exists()


# ---- the reaper -------------------------------------------------------------------------------------
def instance_dir() -> str:
    return tempfile.mkdtemp(prefix="pad-bench-ray-")


def marked_sleeper(temp_dir: str, *, by_file: bool = False) -> subprocess.Popen:
    """A process of the 'instance': marked by the environment variable, or holding a file in temp_dir open."""
    if by_file:
        code = f"import time; f = open({str(Path(temp_dir) / 'agent.log')!r}, 'w'); time.sleep(120)"
        return subprocess.Popen([sys.executable, "-c", code], env={k: v for k, v in os.environ.items()
                                                                 if k != reaper.INSTANCE_VARIABLE})
    return subprocess.Popen(["sleep", "120"], env={**os.environ, reaper.INSTANCE_VARIABLE: temp_dir})


def wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_stop_instance_ends_marked_processes_and_removes_the_temp_dir():
    temp_dir = instance_dir()
    other = subprocess.Popen(["sleep", "120"])  # not of the instance: left alone
    procs = [marked_sleeper(temp_dir), marked_sleeper(temp_dir, by_file=True)]
    try:
        assert wait_for(lambda: sorted(reaper.instance_pids(temp_dir)) == sorted(p.pid for p in procs))
        reaper.stop_instance(temp_dir)
        assert all(p.wait(timeout=10) is not None for p in procs)
        assert not Path(temp_dir).exists() and other.poll() is None
    finally:
        for p in (*procs, other):
            p.kill()
            p.wait()


def test_the_reaper_cleans_up_when_its_driver_is_killed():
    """A stand-in driver starts the reaper as run_sweep does and a marked process, then is SIGKILLed."""
    temp_dir = instance_dir()
    driver_code = (
        "import os, subprocess, sys, time\n"
        f"r = subprocess.Popen([sys.executable, {reaper.__file__!r}, {temp_dir!r}], stdin=subprocess.PIPE, "
        "start_new_session=True)\n"
        f"s = subprocess.Popen(['sleep', '120'], env={{**os.environ, {reaper.INSTANCE_VARIABLE!r}: {temp_dir!r}}})\n"
        "print(r.pid, s.pid, flush=True)\n"
        "time.sleep(120)\n")
    driver = subprocess.Popen([sys.executable, "-c", driver_code], stdout=subprocess.PIPE, text=True)
    reaper_pid, sleeper_pid = map(int, driver.stdout.readline().split())
    try:
        assert reaper.instance_pids(temp_dir) == [sleeper_pid]
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        assert wait_for(lambda: not reaper.instance_pids(temp_dir) and not Path(temp_dir).exists())
        assert wait_for(lambda: not Path(f"/proc/{reaper_pid}").exists() or _zombie(reaper_pid))
    finally:
        for pid in (reaper_pid, sleeper_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def test_the_reaper_by_hand_refuses_anything_but_an_instance_dir(capsys):
    assert reaper.main(["--now", "/home"]) == 2
    assert "usage: python -m pad_bench.sweep.reaper" in capsys.readouterr().err
