"""One run end to end: stream -> strategy -> evaluation after every experience -> run directory.

Imports torch and Avalanche: only `pad-bench run` / `demo` reach this module.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import per_domain, validate
from ..data.loading import loader_workers
from ..data.protocol import fingerprint_changes
from ..data.sampler import check_pk_settings
from ..data.stream import ReIDBenchmark, build_benchmark
from ..errors import UserError
from ..metrics.lifelong import lifelong_summary
from ..models import model_family
from ..results.store import RunStore, environment_info, hardware_change, hardware_info
from ..training.checkpoint import (checkpoint_path, latest_checkpoint, load_checkpoint, load_latest_checkpoint,
                                   rng_state, save_checkpoint, set_rng_state)
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


def run_name(cfg: dict, overrides: dict | None = None) -> str:
    """<strategy>-<benchmark>-<model>-s<seed>, plus a short stable hash of the overrides that are not
    in the name already (--set, --profile), so that parallel runs over settings never share a folder."""
    name = f"{cfg['strategy']['name']}-{cfg['benchmark']['name']}-{cfg['model']['name']}-s{cfg['seed']}"
    rest = {k: v for k, v in (overrides or {}).items() if k not in NAMED_KEYS}
    if rest:
        digest = hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:8]
        name += f"-{digest}"
    return name


NAMED_KEYS = ("strategy.name", "benchmark.name", "model.name", "seed")


def prepare(cfg: dict) -> tuple[type, ReIDBenchmark]:
    """Everything that can refuse a run, done before its directory exists: the resolved config, its
    ranges, the data, and the sampler settings against the data."""
    strategy_cls = finalize(cfg)  # config.yaml holds resolved values
    validate(cfg)
    seed_everything(cfg["seed"])
    bench = build_benchmark(cfg, family=model_family(cfg["model"]["name"]), union=strategy_cls.sees_union)
    extra = strategy_cls.extra_pk_batches(cfg)
    for k, exp in enumerate(bench.train_stream):
        labels = [int(y) for y in exp.dataset.targets]
        check_pk_settings(bench.train_names[k], labels, int(per_domain(cfg["train"]["batch_p"], k)),
                          int(cfg["train"]["batch_k"]))
        for keys, p, kk in extra:
            check_pk_settings(bench.train_names[k], labels, p, kk, keys)
    return strategy_cls, bench


def plan(cfg: dict) -> list[dict]:
    """`run --dry-run`: resolve the config, build the stream and the model, set every experience up as
    training would and return its settings (ReIDStrategy.experience_settings); nothing is written.
    It refuses what a real run would refuse (`prepare`), with the same error."""
    from avalanche.training.plugins import EvaluationPlugin

    _, bench = prepare(cfg)
    with warnings.catch_warnings():  # "no loggers": nothing is evaluated
        warnings.simplefilter("ignore", UserWarning)
        evaluator = EvaluationPlugin(loggers=[])
    return build_strategy(cfg, bench, evaluator=evaluator).plan()


def execute(cfg: dict, run_dir: Path, *, resume: bool = False, progress: bool = True) -> Path:
    """Train and evaluate one configured run into run_dir (locked for the run). Returns run_dir.

    With resume, continue from the newest checkpoint (inside an experience if there is one there);
    the results files are always rebuilt from the rows stored in the checkpoint."""
    _, bench = prepare(cfg)
    store = RunStore.open(run_dir, resume)
    try:
        cfg = _start(store, cfg, bench)
    except BaseException:
        if store.resuming:
            store.close()
        else:
            store.abandon()
        raise
    handler = _attach_log_file(store.path / "run.log")
    try:
        _train(store, cfg, bench, progress)
    finally:  # later runs in this process must not write into this run's log
        log.removeHandler(handler)
        handler.close()
        store.close()
    return store.path


def _start(store: RunStore, cfg: dict, bench: ReIDBenchmark) -> dict:
    """Write (or, resuming, check) config.yaml, manifest.csv and fingerprint.csv; returns the config."""
    manifest_sha = bench.manifest.sha256()
    fingerprint = bench.manifest.fingerprint(cfg["benchmark"]["fingerprint"])
    if store.resuming:
        store.check_same_run(cfg)
        recorded = store.read_config()
        stored = recorded.get("manifest_sha256")
        if stored != manifest_sha:
            raise UserError(f"cannot resume {store.path}: the data changed since the run started "
                            f"(manifest SHA-256 {manifest_sha[:12]} != stored {str(stored)[:12]})")
        old = store.read_fingerprint()
        n, first = fingerprint_changes(old, fingerprint) if old is not None else (0, None)
        if n:
            raise UserError(f"cannot resume {store.path}: {n} image(s) changed since the run started "
                            f"(first: {first}; compared by {cfg['benchmark']['fingerprint']}); restore the "
                            f"original data or start a new run")
        changed = hardware_change(recorded.get("hardware"), hardware_info(cfg["device"]))
        if changed:
            log.warning("resuming %s on other hardware (%s): the result will not be bitwise that of an "
                        "uninterrupted run", store.path, changed)
        return cfg
    cfg = dict(cfg, manifest_sha256=manifest_sha, manifest_domains=bench.manifest.domain_hashes(),
               **environment_info(), hardware=hardware_info(cfg["device"]))
    store.write_manifest(bench.manifest)
    store.write_fingerprint(fingerprint)
    store.write_config(cfg)  # last: a directory with config.yaml is a run that can be resumed
    return cfg


@dataclass(frozen=True)
class _Experience:
    """The experience being trained, as its mid-experience checkpoints record it."""

    step: int  # 0-based index of the training experience
    t0: float  # perf_counter() when its training started in this process
    spent: float  # seconds trained on it before a resume
    rng_start: dict  # the RNG state at its start, to replay its set-up on resume


def _train(store: RunStore, cfg: dict, bench: ReIDBenchmark, progress: bool) -> None:
    from avalanche.logging import TensorboardLogger
    from avalanche.training.plugins import EvaluationPlugin

    from ..metrics.diagnostics import Diagnostics
    from ..metrics.plugin import RetrievalMetric

    diag = Diagnostics()
    metric = RetrievalMetric(diagnostics=diag)
    tb = TensorboardLogger(tb_log_dir=str(store.path / "tb"))
    evaluator = EvaluationPlugin(metric, loggers=[tb])
    latest = latest_checkpoint(store.checkpoints) if store.resuming else None
    state = load_latest_checkpoint(store.checkpoints) if latest else None  # names a corrupt one
    mid = state if state is not None and "epoch" in state else None  # killed inside an experience

    def save_mid(s):  # the strategy's epoch_checkpoint, inside the experience `current`
        save_checkpoint(store.checkpoints, current.step, {
            "strategy": s.mid_experience_state(), "rows": rows, "timing": timing, "step": current.step,
            "epoch": s.epoch, "rng_start": current.rng_start, "diagnostics": diag.state_dict(),
            "train_seconds": current.spent + time.perf_counter() - current.t0}, epoch=s.epoch)

    strategy = build_strategy(cfg, bench, device=cfg["device"], evaluator=evaluator,
                              plugins=[ProgressPlugin(disable=not progress), LossLog(store.path / "losses.csv", tb=tb)],
                              resume=mid["strategy"] if mid else None, epoch_checkpoint=save_mid)
    if state is None:
        rows, timing, start = _evaluate(strategy, bench, metric, step=0, trained=""), [], 0
        store.write_metrics(rows)
        _write_diagnostics(store, tb, diag.rows)
    else:
        rows, timing, start = state["rows"], state["timing"], state["step"]
        diag.load_state_dict(state.get("diagnostics"))
        if mid:  # inside experience start + 1: replay its set-up from the boundary before it
            if start > 0:
                boundary = checkpoint_path(store.checkpoints, start)
                strategy.load_checkpoint_state(load_checkpoint(boundary)["strategy"], str(boundary))
            set_rng_state(state["rng_start"])
            log.info("resumed %s inside step %d after epoch %d", store.path.name, start + 1, state["epoch"])
        else:
            strategy.load_checkpoint_state(state["strategy"], str(latest))
            set_rng_state(state["rng"])
            log.info("resumed %s after step %d", store.path.name, start)

    for k in range(start, len(bench.train_names)):
        images_before = strategy.images_seen
        current = _Experience(step=k, t0=time.perf_counter(), spent=mid["train_seconds"] if mid else 0.0,
                              rng_start=rng_state())
        mid = None
        strategy.train(bench.train_stream[k], eval_streams=[])
        train_s = current.spent + time.perf_counter() - current.t0
        t1 = time.perf_counter()
        n_diag = len(diag.rows)
        rows += _evaluate(strategy, bench, metric, step=k + 1, trained=bench.train_names[k])
        eval_s = time.perf_counter() - t1
        _align(diag, strategy, bench, k)
        n_img = strategy.images_seen - images_before
        timing.append({"step": k + 1, "domain": bench.train_names[k], "train_seconds": round(train_s, 3),
                       "train_images": n_img, "images_per_second": round(n_img / max(train_s, 1e-9), 2),
                       "eval_seconds": round(eval_s, 3)})
        save_checkpoint(store.checkpoints, k + 1, {"strategy": strategy.checkpoint_state(), "rows": rows,
                                                   "timing": timing, "step": k + 1, "rng": rng_state(),
                                                   "diagnostics": diag.state_dict()})
        store.write_metrics(rows)
        _write_diagnostics(store, tb, diag.rows, since=n_diag)
        summary = build_summary(cfg, bench, rows, timing, strategy, store.path.name)
        store.write_summary(summary)
        _log_step(k + 1, bench.train_names[k], summary, train_s, eval_s)

    # Always rebuilt from the checkpointed rows: a kill after the last checkpoint lost nothing.
    store.write_metrics(rows)
    store.write_diagnostics(diag.rows)
    store.write_summary(build_summary(cfg, bench, rows, timing, strategy, store.path.name))
    from ..results.plots import plot_run

    plot_run(store.path)


def _evaluate(strategy, bench: ReIDBenchmark, metric, *, step: int, trained: str) -> list[dict]:
    """Score every seen-test and unseen set; unseen runs of one dataset are averaged."""
    nw = loader_workers(strategy.train_cfg)
    streams = [("seen", bench.test_stream, bench.seen_names)]
    if bench.unseen_names:
        streams.append(("unseen", bench.unseen_stream, bench.unseen_names))
    rows = []
    for eval_set, stream, names in streams:
        metric.results.clear()
        metric.diagnostics.results.clear()
        strategy.eval(stream, num_workers=nw)
        metric.diagnostics.collect(step, eval_set, names)
        per_name: dict[str, list[dict]] = {}
        for res, name in zip(metric.results, names):
            per_name.setdefault(name, []).append(res)
        for name, runs in per_name.items():
            row = {"step": step, "trained_domain": trained, "eval_domain": name, "eval_set": eval_set}
            for key in ("mAP", "mINP", "R1", "R5", "R10"):
                row[key] = float(np.mean([r[key] for r in runs]))
            rows.append(row)
    return rows


def _align(diag, strategy, bench: ReIDBenchmark, k: int) -> None:
    """Text-anchor alignment on the domain just trained. Its feature pass must leave the run as it was:
    the random state is restored (a data loader draws its base seed from it), so metrics.csv is the same
    bytes with or without diagnostics."""
    state = rng_state()
    try:
        diag.align(strategy, bench.train_stream[k].dataset, step=k + 1, domain=bench.train_names[k])
    finally:
        set_rng_state(state)


def _write_diagnostics(store: RunStore, tb, rows: list[dict], since: int = 0) -> None:
    """diagnostics.csv (every row) and TensorBoard scalars diagnostics/<name>/<set>/<domain>[/<index>]
    (the rows from `since` on, i.e. this step's)."""
    store.write_diagnostics(rows)
    for r in rows[since:]:
        tag = f"diagnostics/{r['diagnostic']}/{r['eval_set']}/{r['eval_domain']}"
        tb.writer.add_scalar(f"{tag}/{r['index']}" if r["index"] != "" else tag, r["value"], r["step"])


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
    seen, unseen, seen_r1, unseen_r1 = (_last(d[k]) for d, k in ((m, "seen_avg"), (m, "unseen_avg"),
                                                                  (r, "seen_avg"), (r, "unseen_avg")))
    msg = (f"step {step} ({domain}): Seen-Avg mAP/R1 {seen:.1f}/{seen_r1:.1f}  "
           f"Unseen-Avg {unseen:.1f}/{unseen_r1:.1f}  [train {train_s:.0f}s, eval {eval_s:.0f}s]")
    log.info(msg)
    print(msg, flush=True)


def _last(values: list) -> float:
    """The newest value of a per-step series; NaN when there is none (e.g. no unseen sets)."""
    return values[-1] if values and values[-1] is not None else float("nan")


def _attach_log_file(path: Path) -> logging.FileHandler:
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler
