"""The body of one sweep run, executed in a Ray worker.

Every run is started with `pad-bench run --resume` semantics, which hold in every state the
directory can be in: missing (created and started), half-made by a kill at start-up (cleared and
started), holding a config.yaml (continued from its last checkpoint: a run retried after its
worker or node died picks up where it stopped) or finished (nothing retrained, results rebuilt).
Deciding from config.yaml here instead would race with an attempt that writes it meanwhile. Errors
raised by the run are returned, not raised, so Ray retries only the failures it detects itself (a
dead worker or node).
"""
from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from ..errors import UserError
from .state import DONE, FAILED, record_attempt


def run_one(cfg: dict, run_dir: str, threads: int) -> dict[str, Any]:
    """Train and evaluate one run into run_dir with `threads` torch threads; a result entry for sweep.yaml."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read when torch is first imported in this worker
    import torch

    torch.set_num_threads(threads)
    path = Path(run_dir)
    resumed = (path / "config.yaml").is_file()  # for the attempt record only
    record_attempt(path.parent, path.name, _node_name(), resumed, torch.get_num_threads())
    t0 = time.perf_counter()
    tb = path.parent / f"{path.name}.traceback.txt"
    try:
        from ..run.runner import execute

        execute(cfg, path, resume=True, progress=False)
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except UserError as e:
        return {"status": FAILED, "error": str(e), "seconds": _since(t0)}
    except Exception as e:  # a bug, not bad input: keep the traceback next to the run
        tb.write_text(traceback.format_exc(), encoding="utf-8")
        return {"status": FAILED, "error": f"{type(e).__name__}: {e} (traceback: {tb})", "seconds": _since(t0)}
    tb.unlink(missing_ok=True)  # an earlier attempt's, now out of date
    m = summary["mAP"]
    return {"status": DONE, "seen_avg_mAP": _round(m.get("seen_avg_final")),
            "unseen_avg_mAP": _round(m.get("unseen_avg_final")), "seconds": _since(t0), "error": None}


def _node_name() -> str:
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    return next((n["NodeName"] for n in ray.nodes() if n["NodeID"] == node_id), node_id)


def _since(t0: float) -> float:
    return round(time.perf_counter() - t0, 1)


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)
