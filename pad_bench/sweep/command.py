"""`pad-bench sweep SPEC.yaml`: check the spec and every run's config, then run what is unfinished on Ray."""
from __future__ import annotations

import copy
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import UserError
from ..synthetic.assets import make_assets, pending_assets
from .spec import SweepRun, SweepSpec, load_spec
from .state import SweepState

DEFAULT_PARENT = Path("results") / "sweeps"
LOCK_FILE = ".sweep.lock"


def sweep_command(spec_path: Path, *, out: Path | None, address: str | None, cpus: int | None, retries: int,
                  dry_run: bool, progress: bool) -> int:
    """Exit code: 0 when every run finished, 1 when some failed (they are listed)."""
    if address and cpus is not None:
        raise UserError("--cpus sizes the local Ray instance; a cluster joined with --address has its own CPUs")
    if retries < 0:
        raise UserError(f"--retries must be >= 0, got {retries}")
    if cpus is not None and cpus < 1:
        raise UserError(f"--cpus must be >= 1, got {cpus}")
    spec = load_spec(spec_path)
    if cpus is not None and spec.resources.cpus > cpus:
        raise UserError(f"{spec.path}: each run asks for {spec.resources.cpus:g} CPUs (resources.cpus) but the local "
                        f"Ray instance gets {cpus} (--cpus): no run could start; lower resources.cpus or raise --cpus")
    runs = spec.expand()
    check_strategy_settings(spec, runs)
    directory = (out or DEFAULT_PARENT / spec.name).resolve()
    state = SweepState.open(directory, spec, runs)
    todo = [r for r in runs if not state.is_complete(r.name)]
    print(f"sweep {spec.name}: {len(runs)} runs, {len(runs) - len(todo)} finished, {len(todo)} to run -> {directory}")
    earlier = state.earlier()
    if earlier:
        print(f"  {len(earlier)} run(s) of an earlier spec stay recorded in sweep.yaml, not run: {', '.join(earlier)}")
    pending = _pending_assets(todo)
    if dry_run:
        for run in runs:
            print(f"  {run.name:<48} {state.entries[run.name]['status']}")
        for cfg, lines in pending:
            print(f"  the sweep would first make (its asset step): {'; '.join(lines)}")
        return 0
    for cfg, lines in pending:
        print(f"asset step: making {'; '.join(lines)}", flush=True)
        make_assets(cfg)
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory):
        state.save()
        if not todo:
            return 0
        from .execute import failure_summary, run_sweep

        failed = run_sweep(state, todo, spec.resources, address=address, cpus=cpus, retries=retries,
                           progress=progress)
    if failed:
        print(failure_summary(state, failed), file=sys.stderr)
    print(f"compare: pad-bench compare {directory} --baseline NAME")
    return 1 if failed else 0


def check_strategy_settings(spec: SweepSpec, runs: list[SweepRun]) -> None:
    """Resolve each run's method switches (e.g. a method's presets) and per-dataset tables on a copy, as
    the run will: a bad one fails before anything runs (nothing is written; data and weights are the
    asset step's)."""
    from ..config import resolve_dataset_tables
    from ..registry import load_strategy_class

    for run in runs:
        cfg = copy.deepcopy(run.config)
        try:
            load_strategy_class(cfg["strategy"]["method"]).finalize_config(cfg)
            resolve_dataset_tables(cfg)
        except UserError as e:
            raise UserError(f"{spec.path}: run {run.name}: {e}") from None


def _pending_assets(runs: list[SweepRun]) -> list[tuple[dict, list[str]]]:
    """(a run's config, what its data root lacks) once per distinct data root, streams and weights."""
    distinct: dict[tuple, dict] = {}
    for run in runs:
        b, m = run.config["benchmark"], run.config["model"]
        key = (str(b["data_root"]), tuple(b["domains"]), tuple(b["unseen"]), m["name"], str(m.get("weights")))
        distinct.setdefault(key, run.config)
    found = [(cfg, pending_assets(cfg)) for cfg in distinct.values()]
    return [(cfg, lines) for cfg, lines in found if lines]


@contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """One driver per sweep directory at a time."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(directory / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(f"another pad-bench sweep is running in {directory}; wait for it "
                        "or sweep into another --out") from None
    try:
        yield
    finally:
        lock.release()
