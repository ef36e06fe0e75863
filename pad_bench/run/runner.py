"""One run end to end: stream -> strategy -> evaluation after every experience -> run directory.

Imports torch and Avalanche: only `pad-bench run` / `demo` reach this module.
"""
from __future__ import annotations

import logging
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..data.loading import loader_workers
from ..data.stream import ReIDBenchmark, build_benchmark
from ..errors import UserError
from ..metrics.lifelong import lifelong_summary
from ..models import model_family
from ..results.store import RunStore, environment_info
from ..training.checkpoint import load_latest_checkpoint, rng_state, save_checkpoint, set_rng_state
from ..training.loss_log import LossLog
from ..training.progress import ProgressPlugin
from .build import build_strategy, finalize

log = logging.getLogger("pad_bench")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def run_name(cfg: dict) -> str:
    return f"{cfg['strategy']['name']}-{cfg['benchmark']['name']}-{cfg['model']['name']}-s{cfg['seed']}"


def plan(cfg: dict) -> list[dict]:
    """`run --dry-run`: resolve the config, build the stream and the model, set every experience up as
    training would and return its settings (ReIDStrategy.experience_settings); nothing is written."""
    from avalanche.training.plugins import EvaluationPlugin

    strategy_cls = finalize(cfg)
    seed_everything(cfg["seed"])
    bench = build_benchmark(cfg, family=model_family(cfg["model"]["name"]), joint=strategy_cls.joint)
    with warnings.catch_warnings():  # "no loggers": nothing is evaluated
        warnings.simplefilter("ignore", UserWarning)
        evaluator = EvaluationPlugin(loggers=[])
    return build_strategy(cfg, bench, evaluator=evaluator).plan()


def execute(cfg: dict, run_dir: Path, *, resume: bool = False, progress: bool = True) -> Path:
    """Train and evaluate one configured run into run_dir. Returns run_dir."""
    strategy_cls = finalize(cfg)  # before the resume check: config.yaml holds resolved values
    store = RunStore.create(run_dir, resume)
    if resume:
        store.check_same_run(cfg)
    handler = _attach_log_file(store.path / "run.log")
    try:
        return _train_and_evaluate(cfg, store, strategy_cls, resume=resume, progress=progress)
    finally:  # later runs in this process must not write into this run's log
        log.removeHandler(handler)
        handler.close()


def _train_and_evaluate(cfg: dict, store: RunStore, strategy_cls, *, resume: bool, progress: bool) -> Path:
    """The run proper, logging into its run.log."""
    device = torch.device(cfg["device"])
    seed_everything(cfg["seed"])

    bench = build_benchmark(cfg, family=model_family(cfg["model"]["name"]), joint=strategy_cls.joint)
    manifest_sha = bench.manifest.sha256()
    if resume:
        stored = store.read_config().get("manifest_sha256")
        if stored != manifest_sha:
            raise UserError(f"cannot resume {store.path}: the data changed since the run started "
                            f"(manifest SHA-256 {manifest_sha[:12]} != stored {str(stored)[:12]})")
    else:
        cfg = dict(cfg, manifest_sha256=manifest_sha, manifest_domains=bench.manifest.domain_hashes(),
                   **environment_info())
        store.write_manifest(bench.manifest)
        store.write_config(cfg)

    from avalanche.logging import TensorboardLogger
    from avalanche.training.plugins import EvaluationPlugin

    from ..metrics.plugin import RetrievalMetric

    metric = RetrievalMetric()
    tb = TensorboardLogger(tb_log_dir=str(store.path / "tb"))
    evaluator = EvaluationPlugin(metric, loggers=[tb])
    strategy = build_strategy(cfg, bench, device=str(device), evaluator=evaluator,
                              plugins=[ProgressPlugin(disable=not progress), LossLog(store.path / "losses.csv", tb=tb)])
    strategy.device_input = bench.device_input

    state = load_latest_checkpoint(store.checkpoints) if resume else None
    if state is not None:
        strategy.load_checkpoint_state(state["strategy"])
        rows, timing, start = state["rows"], state["timing"], state["step"]
        set_rng_state(state["rng"])
        log.info("resumed %s after step %d", store.path.name, start)
    else:
        rows, timing, start = _evaluate(strategy, bench, metric, step=0, trained=""), [], 0
        store.write_metrics(rows)

    for k in range(start, len(bench.train_names)):
        t0 = time.perf_counter()
        images_before = strategy.images_seen
        strategy.train(bench.train_stream[k], eval_streams=[])
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        rows += _evaluate(strategy, bench, metric, step=k + 1, trained=bench.train_names[k])
        eval_s = time.perf_counter() - t1
        n_img = strategy.images_seen - images_before
        timing.append({"step": k + 1, "domain": bench.train_names[k], "train_seconds": round(train_s, 3),
                       "train_images": n_img, "images_per_second": round(n_img / max(train_s, 1e-9), 2),
                       "eval_seconds": round(eval_s, 3)})
        save_checkpoint(store.checkpoints, k + 1, {"strategy": strategy.checkpoint_state(), "rows": rows,
                                                   "timing": timing, "step": k + 1, "rng": rng_state()})
        store.write_metrics(rows)
        summary = build_summary(cfg, bench, rows, timing, strategy, store.path.name)
        store.write_summary(summary)
        _log_step(k + 1, bench.train_names[k], summary, train_s, eval_s)

    if start == len(bench.train_names) and not (store.path / "summary.json").exists():
        store.write_summary(build_summary(cfg, bench, rows, timing, strategy, store.path.name))
    from ..results.plots import plot_run

    plot_run(store.path)
    return store.path


def _evaluate(strategy, bench: ReIDBenchmark, metric, *, step: int, trained: str) -> list[dict]:
    """Score every seen-test and unseen set; unseen runs of one dataset are averaged."""
    nw = loader_workers(strategy.train_cfg)
    streams = [("seen", bench.test_stream, bench.seen_names)]
    if bench.unseen_names:
        streams.append(("unseen", bench.unseen_stream, bench.unseen_names))
    rows = []
    for eval_set, stream, names in streams:
        metric.results.clear()
        strategy.eval(stream, num_workers=nw)
        per_name: dict[str, list[dict]] = {}
        for res, name in zip(metric.results, names):
            per_name.setdefault(name, []).append(res)
        for name, runs in per_name.items():
            row = {"step": step, "trained_domain": trained, "eval_domain": name, "eval_set": eval_set}
            for key in ("mAP", "mINP", "R1", "R5", "R10"):
                row[key] = float(np.mean([r[key] for r in runs]))
            rows.append(row)
    return rows


def build_summary(cfg: dict, bench: ReIDBenchmark, rows: list[dict], timing: list[dict], strategy,
                  name: str) -> dict:
    import pandas as pd

    df = pd.DataFrame(rows)
    return {
        "run": name,
        "strategy": cfg["strategy"]["name"],
        "benchmark": cfg["benchmark"]["name"],
        "model": cfg["model"]["name"],
        "seed": cfg["seed"],
        "units": "percent",
        "mAP": lifelong_summary(df, bench.seen_names, metric="mAP"),
        "R1": lifelong_summary(df, bench.seen_names, metric="R1"),
        "timing": timing,
        "experiences": strategy.experience_history,  # the settings each experience ran with
        "params": strategy.param_history,
        "manifest_sha256": bench.manifest.sha256(),
    }


def _log_step(step: int, domain: str, summary: dict, train_s: float, eval_s: float) -> None:
    m, r = summary["mAP"], summary["R1"]
    seen = m["seen_avg"][-1] if m["seen_avg"] else float("nan")
    unseen = m["unseen_avg"][-1] if m["unseen_avg"] else float("nan")
    seen_r1 = r["seen_avg"][-1] if r["seen_avg"] else float("nan")
    unseen_r1 = r["unseen_avg"][-1] if r["unseen_avg"] else float("nan")
    msg = (f"step {step} ({domain}): Seen-Avg mAP/R1 {seen:.1f}/{seen_r1:.1f}  "
           f"Unseen-Avg {unseen:.1f}/{unseen_r1:.1f}  [train {train_s:.0f}s, eval {eval_s:.0f}s]")
    log.info(msg)
    print(msg, flush=True)


def _attach_log_file(path: Path) -> logging.FileHandler:
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler
