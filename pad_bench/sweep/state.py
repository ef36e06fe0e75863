"""The sweep directory: sweep.yaml (the expanded runs and each run's status), one run directory per run,
and .attempts/<run>/ (one small file per start of a run, written by the worker that runs it).

Only the driver writes sweep.yaml (atomically); workers write attempt files on the shared filesystem.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from ..errors import UserError
from ..io import atomic_write_json, atomic_write_text
from ..yamlio import read_yaml
from .spec import SweepRun, SweepSpec

STATE_FILE = "sweep.yaml"
ATTEMPTS_DIR = ".attempts"
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
RESULT_FIELDS = ("seen_avg_mAP", "unseen_avg_mAP", "seconds", "error")


class SweepState:
    """sweep.yaml in memory: one entry (a dict) per run of the current spec, in spec order, then the
    entries of runs that an earlier spec of this directory had and the current one has not
    (`in_spec: false`): they are kept, never run, so that no finished run drops out of the record."""

    def __init__(self, directory: Path, header: dict[str, Any], entries: list[dict[str, Any]]):
        self.directory = Path(directory)
        self.header = header
        self.entries = {e["name"]: e for e in entries}

    @classmethod
    def open(cls, directory: Path, spec: SweepSpec, runs: Iterable[SweepRun]) -> "SweepState":
        """The state for these runs; a run keeps its recorded status if its config is unchanged."""
        old = {e["name"]: e for e in read_entries(directory)} if (Path(directory) / STATE_FILE).is_file() else {}
        entries = []
        for run in runs:
            entry = {"name": run.name, "benchmark": run.benchmark, "strategy": run.strategy, "profile": run.profile,
                     "seed": run.seed, "grid": run.grid, "config_sha256": run.config_sha256, "in_spec": True,
                     "status": PENDING, "attempts": 0, "node": None, "resumed": False}
            prev = old.pop(run.name, None)
            started = (Path(directory) / run.name / "config.yaml").is_file()
            if prev and prev.get("config_sha256") != run.config_sha256 and started:
                raise UserError(f"{directory} holds run {run.name} made with another config (the spec changed "
                                f"since it ran); delete {Path(directory) / run.name} or sweep into another --out")
            if prev and prev.get("config_sha256") == run.config_sha256:
                entry.update({k: prev[k] for k in ("status", "attempts", "node", "resumed", *RESULT_FIELDS) if k in prev})
                if entry["status"] == RUNNING:
                    entry["status"] = PENDING  # the sweep that ran it was stopped
            entries.append(entry)
        entries += [{**e, "in_spec": False} for e in old.values()]
        header = {"spec": str(spec.path), "grid_keys": list(spec.grid),
                  "resources": {"cpus": spec.resources.cpus, "gpus": spec.resources.gpus}}
        return cls(directory, header, entries)

    def earlier(self) -> list[str]:
        """Runs recorded by an earlier spec of this directory that the current spec does not have."""
        return [name for name, e in self.entries.items() if e.get("in_spec") is False]

    def run_dir(self, name: str) -> Path:
        return self.directory / name

    def is_complete(self, name: str) -> bool:
        """Recorded as done and its run directory still holds the results."""
        return self.entries[name]["status"] == DONE and (self.run_dir(name) / "summary.json").is_file()

    def update(self, name: str, **fields: Any) -> None:
        self.entries[name].update(fields)

    def refresh_attempts(self) -> bool:
        """Fold the attempt files into the entries (count, node, running); True if anything changed."""
        changed = False
        for name, entry in self.entries.items():
            attempts = read_attempts(self.directory, name)
            if len(attempts) == entry["attempts"]:
                continue
            last = attempts[-1]
            entry.update(attempts=len(attempts), node=last["node"], resumed=last["resumed"])
            if entry["status"] == PENDING:
                entry["status"] = RUNNING
            changed = True
        return changed

    def save(self) -> None:
        doc = {**self.header, "runs": list(self.entries.values())}
        atomic_write_text(self.directory / STATE_FILE, yaml.safe_dump(doc, sort_keys=False))


def read_entries(directory: str | Path) -> list[dict[str, Any]]:
    """The run entries of DIRECTORY/sweep.yaml; UserError when it is missing or unreadable."""
    doc = read_sweep(directory)
    return list(doc.get("runs") or [])


def read_sweep(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise UserError(f"{directory} has no {STATE_FILE}; is it a sweep directory?")
    doc = read_yaml(path, "sweep state")
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
        raise UserError(f"{path} has no 'runs' list; it is not a pad-bench sweep file")
    return doc


def is_sweep_dir(path: str | Path) -> bool:
    return (Path(path) / STATE_FILE).is_file()


def record_attempt(directory: str | Path, name: str, node: str, resumed: bool, threads: int) -> None:
    """Called by the worker when a run starts: the driver learns where it runs and how often it started."""
    stamp = time.time_ns()
    atomic_write_json(Path(directory) / ATTEMPTS_DIR / name / f"{stamp}-{os.getpid()}.json",
                      {"node": node, "resumed": resumed, "threads": threads, "started": stamp / 1e9})


def read_attempts(directory: str | Path, name: str) -> list[dict[str, Any]]:
    folder = Path(directory) / ATTEMPTS_DIR / name
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0])):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue  # written atomically; a vanished file is not an attempt
    return out


def expand_compare_inputs(paths: Sequence[Path], out: Path | None) -> tuple[list[Path], list[str], Path]:
    """`compare` arguments -> (run directories, swept keys, output folder): a sweep directory stands for
    its finished runs; its grid keys get sensitivity plots; alone it is the default output's parent."""
    runs: list[Path] = []
    keys: list[str] = []
    sweeps = [Path(p) for p in paths if is_sweep_dir(p)]
    for path in map(Path, paths):
        if path not in sweeps:
            runs.append(path)
            continue
        doc = read_sweep(path)
        current = [e for e in doc["runs"] if e.get("in_spec") is not False]
        finished = [path / e["name"] for e in current if e.get("status") == DONE]
        earlier = [e["name"] for e in doc["runs"] if e.get("in_spec") is False and e.get("status") == DONE]
        if earlier:
            print(f"compare: {path}: left out {len(earlier)} finished run(s) of an earlier spec, not in the current "
                  f"one ({', '.join(earlier)}); name their run directories to include them")
        if not finished:
            raise UserError(f"sweep {path} has no finished run yet; run `pad-bench sweep` on its spec first")
        left = len(current) - len(finished)
        if left:
            print(f"compare: {path}: {left} of {len(current)} runs are not finished; comparing the others")
        runs += finished
        keys += [k for k in doc.get("grid_keys") or [] if k not in keys]
    if out is None:
        if len(sweeps) != 1 or len(sweeps) != len(paths):
            raise UserError("--out is required unless a single sweep directory is compared")
        out = sweeps[0] / "comparison"
    return runs, keys, out
