"""Run a sweep's unfinished runs as Ray tasks and track them in sweep.yaml.

Each run is one task asking for the spec's `resources` (CPUs, GPUs). Without an address a local
Ray instance is started on 127.0.0.1 only, dashboard off, in a temp dir of its own; with one
(HOST:PORT or auto) the driver joins that cluster. Ray retries a task whose worker or node died
(up to `retries` times); the retried run resumes from its run directory. Errors of the run itself
are not retried: they are recorded and summarised at the end.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence, TextIO

from ..errors import UserError
from . import reaper as reaper_script
from .loopback import LOOPBACK, keep_loopback
from .spec import Resources, SweepRun
from .state import DONE, FAILED, PENDING, RUNNING, SweepState

LOCAL_OBJECT_STORE_BYTES = 256 * 2**20  # tasks pass configs and small result dicts only
POLL_SECONDS = 1.0
PLACEMENT_SECONDS = 60.0  # how long a sweep waits without progress before checking that its runs still fit


def run_sweep(state: SweepState, runs: Sequence[SweepRun], resources: Resources, *, address: str | None = None,
              cpus: int | None = None, retries: int = 3, progress: bool = True,
              out: TextIO | None = None) -> list[str]:
    """Execute `runs` (the unfinished ones of `state`) on Ray; return the names of the runs that failed."""
    import ray
    from tqdm.auto import tqdm

    reaper = _connect(address, cpus)
    try:
        refuse_unplaceable(resources, ray.nodes(), address)
        task = ray.remote(_task_body())
        opts = {"num_cpus": resources.cpus, "num_gpus": resources.gpus, "max_retries": retries,
                "retry_exceptions": False, "scheduling_strategy": "SPREAD"}
        pending = {task.options(name=run.name, **opts).remote(run.config, str(state.run_dir(run.name)),
                                                              resources.threads): run
                   for run in runs}
        for run in runs:
            state.update(run.name, status=PENDING)
        state.save()
        failed: list[str] = []
        watch = PlacementWatch(resources)
        with tqdm(total=len(runs), unit="run", desc="sweep", disable=not progress, file=out,
                  dynamic_ncols=True) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_SECONDS)
                changed = state.refresh_attempts()
                watch.check(progressed=changed or bool(ready), nodes=ray.nodes)
                for ref in ready:
                    run = pending.pop(ref)
                    result = _result(ray, ref)
                    state.update(run.name, **result)
                    if result["status"] == FAILED:
                        failed.append(run.name)
                    bar.write(finished_line(run.name, state.entries[run.name]), file=out)
                    bar.update(1)
                    changed = True
                if changed:
                    state.save()
        return failed
    finally:
        for entry in state.entries.values():
            if entry["status"] == RUNNING:
                entry["status"] = PENDING
        state.save()
        ray.shutdown()
        if reaper:  # it stops what is left of the local instance and removes its temp dir
            reaper.stdin.close()
            reaper.wait()


def _task_body():
    from .task import run_one

    return run_one


def _connect(address: str | None, cpus: int | None) -> subprocess.Popen | None:
    """ray.init for a cluster address or a local instance; returns the local instance's reaper
    (reaper.py): closing its stdin, or the end of this process, stops the instance."""
    import ray

    keep_loopback()
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": "WARNING"}
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise UserError(f"cannot join the Ray cluster at {address}: {one_line(e)}; start it first "
                            "(docs/sweeps.md) or drop --address for a local instance") from None
        return None
    if "RAY_AUTH_MODE" not in os.environ:
        # A token of this instance only, shared with the processes Ray starts (nothing written to ~/.ray).
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
        from ray._raylet import Config

        Config.initialize("")  # Ray caches the auth mode when imported
    temp_dir = tempfile.mkdtemp(prefix="pad-bench-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
    reaper = subprocess.Popen([sys.executable, reaper_script.__file__, temp_dir], stdin=subprocess.PIPE,
                              start_new_session=True)
    os.environ[reaper_script.INSTANCE_VARIABLE] = temp_dir  # inherited by every process Ray starts
    try:
        ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address=LOOPBACK, _temp_dir=temp_dir,
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet)
    except BaseException:
        reaper.stdin.close()
        raise
    finally:
        del os.environ[reaper_script.INSTANCE_VARIABLE]
    return reaper


def largest_node(nodes: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The most CPUs and GPUs any one alive node of the cluster has."""
    alive = [n.get("Resources") or {} for n in nodes if n.get("Alive")]
    return {r: max((float(n.get(r, 0)) for n in alive), default=0.0) for r in ("CPU", "GPU")}


def unplaceable(resources: Resources, nodes: Sequence[dict[str, Any]]) -> str | None:
    """Why no alive node can run a run asking for `resources` (naming the resource), or None."""
    most = largest_node(nodes)
    for key, resource, asked in (("cpus", "CPU", resources.cpus), ("gpus", "GPU", resources.gpus)):
        if asked > most[resource]:
            return (f"each run asks for {asked:g} {resource}s (resources.{key}) but the largest node of the Ray "
                    f"cluster has {most[resource]:g}")
    return None


def refuse_unplaceable(resources: Resources, nodes: Sequence[dict[str, Any]], address: str | None) -> None:
    why = unplaceable(resources, nodes)
    if why:
        fix = "add such a node to the cluster" if address else "for CPUs, raise --cpus"
        raise UserError(f"{why}: no run could start; lower resources in the spec (or {fix})")


class PlacementWatch:
    """A joined cluster can shrink while a sweep waits: when nothing has started or finished for
    PLACEMENT_SECONDS and no alive node can hold a run any more, the sweep stops with the reason
    instead of waiting forever."""

    def __init__(self, resources: Resources, clock=time.monotonic):
        self.resources, self.clock = resources, clock
        self.since = clock()

    def check(self, *, progressed: bool, nodes) -> None:
        """`nodes` is called (ray.nodes) only after PLACEMENT_SECONDS without progress."""
        if progressed:
            self.since = self.clock()
            return
        if self.clock() - self.since < PLACEMENT_SECONDS:
            return
        why = unplaceable(self.resources, nodes())
        if why:
            raise UserError(f"no run could be placed for {PLACEMENT_SECONDS:.0f} s: {why} now; re-run the same "
                            f"command when the cluster has such a node (finished runs are skipped)")
        self.since = self.clock()


def _result(ray, ref) -> dict[str, Any]:
    """The run's result entry, or a failure entry when Ray gave up on it (retries spent, cancelled)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return {"status": FAILED, "error": f"{type(e).__name__}: {first}", "seconds": None}


def finished_line(name: str, entry: dict[str, Any]) -> str:
    """One line per finished run: Seen-Avg / Unseen-Avg mAP, or the error."""
    where = f"{entry.get('node') or '?'}" + (f", attempt {entry['attempts']}" if entry.get("attempts", 0) > 1 else "")
    if entry["status"] == DONE:
        secs = entry.get("seconds") or 0.0
        return (f"done   {name}: Seen-Avg mAP {_pct(entry.get('seen_avg_mAP'))}  "
                f"Unseen-Avg mAP {_pct(entry.get('unseen_avg_mAP'))}  [{secs:.0f}s, {where}]")
    return f"FAILED {name}: {one_line(entry.get('error'))}  [{where}]"


def failure_summary(state: SweepState, failed: Sequence[str]) -> str:
    current = len(state.entries) - len(state.earlier())
    lines = [f"{len(failed)} of {current} runs failed (not retried: errors of the run itself):"]
    lines += [f"  {name}: {one_line(state.entries[name].get('error'))}" for name in failed]
    lines.append(f"fix the cause and re-run the same command: finished runs are skipped (state: {state.directory / 'sweep.yaml'})")
    return "\n".join(lines)


def one_line(text: Any) -> str:
    lines = str(text or "unknown error").strip().splitlines()
    return lines[0] if lines else "unknown error"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"
