"""The cost of a full order-1 run per method, from a bounded number of iterations per domain.

    python benchmarks/perf/order1_cost.py --device cuda --data-root /data/rehearsal --iters 20 --out results/cost
    python benchmarks/perf/order1_cost.py --device cpu --scale tiny --out /tmp/cost     # writes its tiny data

Each method (fine-tune, LSTKC, DKP, PAD by default) is built by the run machinery (`prepare`, `build_strategy`)
on aka-order1 and trained domain by domain, but each training stage stops after --iters iterations: PAD's
stage 1 runs on the cached features of iters x stage-1 batch images, its stage 2 (and every other method's
only stage) stops after --iters sampler batches. After the last domain one evaluation round (every seen and
unseen test set) is timed per set. Printed and written (--out: order1_cost.csv, order1_cost.md) per method:
img/s of every stage, evaluation seconds per set, peak GPU memory, and the projected wall time of the full
run, from the method's resolved per-domain tables and the data:

    stage-2 / train (per domain) = epochs x iterations per epoch (the sampler's) x batch / train img/s
    PAD stage 1 (per domain)     = n_train / feature img/s + stage-1 epochs x n_train / stage-1 img/s
    other (per domain)           = the domain's measured wall time outside those loops (set-up, data loader
                                   start, end-of-domain work such as DKP's prototypes), taken as it is
    evaluation                   = one measured round x (domains + 1): after step 0 and after every domain

Weights are random (speed does not depend on them). --scale tiny uses each method's `tiny` profile at 64x32.
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from pad_bench.config import parse_set, per_domain, resolve_config
from pad_bench.data.loading import loader_workers
from pad_bench.synthetic.rehearsal import generate_rehearsal
from pad_bench.io import atomic_write_text
from pad_bench.run.build import build_strategy
from pad_bench.run.runner import prepare

from timing import sync

HEADLINE = ("finetune", "lstkc", "dkp", "pad")
TINY_SETS = {"protocol.image_size": [64, 32], "train.pad": 3, "train.num_workers": 0}
COLUMNS = ("method", "model", "domain", "stage", "epochs", "images_per_epoch", "img_per_s", "measured_s",
           "projected_s")


class IterationBudget:
    """An Avalanche plugin: stops a training experience after `iters` iterations and times them."""

    def __init__(self, iters: int, device: torch.device):
        self.iters, self.device = iters, device

    def before_training_exp(self, strategy, **kwargs) -> None:
        self.count, self.images, self.times, self.batches_per_epoch = 0, [], [], None

    def before_training_iteration(self, strategy, **kwargs) -> None:
        if self.count == 0:
            sync(self.device)
            self.times.append(time.perf_counter())
            self.batches_per_epoch = len(strategy.id_sampler)

    def after_training_iteration(self, strategy, **kwargs) -> None:
        sync(self.device)
        self.count += 1
        self.times.append(time.perf_counter())
        self.images.append(len(strategy.mb_y))
        if self.count >= self.iters:
            strategy.stop_training()

    def rate(self) -> float:
        """img/s over the iterations after the first (which pays warm-up), or over all when there is one."""
        first = 1 if self.count > 1 else 0
        return sum(self.images[first:]) / (self.times[-1] - self.times[first])

    def loop_seconds(self) -> float:
        return self.times[-1] - self.times[0]

    # the rest of Avalanche's plugin interface: nothing to do
    def __getattr__(self, name: str):
        if name.startswith(("before_", "after_")):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


class Stage1Meter:
    """Wraps a PAD strategy's stage 1: features of the first iters x stage-1 batch images only, timed apart
    from the stage-1 loop on them."""

    def __init__(self, strategy, iters: int, device: torch.device):
        self.strategy, self.iters, self.device = strategy, iters, device
        self.extract, self.train_stage1 = strategy.extract, strategy.train_stage1
        strategy.extract, strategy.train_stage1 = self._extract, self._train_stage1
        self.inside = False

    def _extract(self, dataset, *args, **kwargs):
        if not self.inside:
            return self.extract(dataset, *args, **kwargs)
        n = min(len(dataset), self.iters * self.strategy.stage1_batch)
        sync(self.device)
        t0 = time.perf_counter()
        out = self.extract(dataset.subset(range(n)), *args, **kwargs)
        sync(self.device)
        self.extract_s, self.n = time.perf_counter() - t0, n
        return out

    def _train_stage1(self) -> None:
        self.inside = True
        sync(self.device)
        t0 = time.perf_counter()
        try:
            self.train_stage1()
        finally:
            self.inside = False
        sync(self.device)
        self.total_s = time.perf_counter() - t0


def measure_method(method: str, args, data_root: Path) -> tuple[list[dict], float | None]:
    """The CSV rows of one method and its peak allocated GPU memory in GiB (None on CPU)."""
    from avalanche.training.plugins import EvaluationPlugin

    from pad_bench.metrics.plugin import RetrievalMetric

    sets = {**(TINY_SETS if args.scale == "tiny" else {}), **parse_set(args.set),
            "benchmark.data_root": str(data_root), "device": args.device, "model.weights": "random"}
    cfg = resolve_config(benchmark="aka-order1", strategy=method, sets=sets,
                         profile="tiny" if args.scale == "tiny" else args.profile)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    _, bench = prepare(cfg)
    budget = IterationBudget(args.iters, device)
    with warnings.catch_warnings():  # "no loggers"
        warnings.simplefilter("ignore", UserWarning)
        evaluator = EvaluationPlugin(RetrievalMetric(), loggers=[])
    strategy = build_strategy(cfg, bench, device=args.device, evaluator=evaluator, plugins=[budget])
    stage1 = Stage1Meter(strategy, args.iters, device) if hasattr(strategy, "train_stage1") else None
    model, rows = cfg["model"]["name"], []

    def row(domain: str, stage: str, measured: float, projected: float, epochs="", per_epoch="", rate="") -> None:
        rows.append({"method": method, "model": model, "domain": domain, "stage": stage, "epochs": epochs,
                     "images_per_epoch": per_epoch, "img_per_s": rate, "measured_s": measured,
                     "projected_s": projected})

    for k, exp in enumerate(bench.train_stream):
        domain = bench.train_names[k]
        sync(device)
        t0 = time.perf_counter()
        strategy.train(exp, eval_streams=[])
        sync(device)
        wall = time.perf_counter() - t0
        epochs = int(per_domain(cfg["train"]["epochs"], k))
        per_epoch = budget.batches_per_epoch * budget.images[0]  # full P x K batches
        rate = budget.rate()
        inside = budget.loop_seconds()
        if stage1 is not None:
            n_train = len(exp.dataset)
            e1 = int(per_domain(cfg["strategy"]["stage1_epochs"], k))
            feat_rate = stage1.n / stage1.extract_s
            s1_rate = e1 * stage1.n / (stage1.total_s - stage1.extract_s)
            row(domain, "stage1_features", stage1.extract_s, n_train / feat_rate, 1, n_train, feat_rate)
            row(domain, "stage1", stage1.total_s - stage1.extract_s, e1 * n_train / s1_rate, e1, n_train, s1_rate)
            inside += stage1.total_s
        row(domain, "stage2" if stage1 is not None else "train", budget.loop_seconds(),
            epochs * per_epoch / rate, epochs, per_epoch, rate)
        row(domain, "other", wall - inside, wall - inside)
    rounds = len(bench.train_names) + 1
    nw = loader_workers(strategy.train_cfg)
    for stream, names in ((bench.test_stream, bench.seen_names), (bench.unseen_stream, bench.unseen_names)):
        seconds: dict[str, float] = {}
        for exp, name in zip(stream, names):
            sync(device)
            t0 = time.perf_counter()
            strategy.eval([exp], num_workers=nw)
            sync(device)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
        for name, s in seconds.items():
            row(name, "eval", s, s * rounds, rounds)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return rows, peak


def summary(rows: list[dict], peaks: dict[str, float | None]) -> list[dict]:
    """One line per method: mean img/s per stage over domains, one evaluation round, peak memory, projection."""
    out = []
    for method, peak in peaks.items():
        mine = [r for r in rows if r["method"] == method]

        def mean_rate(stage: str) -> str:
            rates = [r["img_per_s"] for r in mine if r["stage"] == stage]
            return f"{sum(rates) / len(rates):.1f}" if rates else "-"

        evals = [r for r in mine if r["stage"] == "eval"]
        slowest = max(evals, key=lambda r: r["measured_s"])
        out.append({"method": method, "model": mine[0]["model"],
                    "stage1 img/s": mean_rate("stage1"), "stage1 features img/s": mean_rate("stage1_features"),
                    "train/stage2 img/s": mean_rate("stage2") if mean_rate("stage2") != "-" else mean_rate("train"),
                    "eval round s": f"{sum(r['measured_s'] for r in evals):.2f}",
                    "slowest eval set": f"{slowest['domain']} {slowest['measured_s']:.2f} s",
                    "peak GPU GiB": f"{peak:.2f}" if peak is not None else "n/a (CPU)",
                    "projected order-1 h": f"{sum(r['projected_s'] for r in mine) / 3600:.3f}"})
    return out


def markdown(lines: list[dict]) -> str:
    head = list(lines[0])
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(str(x[h]) for h in head) + " |" for x in lines]) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--scale", choices=("paper", "tiny"), default="paper",
                    help="paper: --data-root holds the real datasets or a rehearsal tree (datasets synth --scale "
                         "paper); tiny: a tiny rehearsal tree is written to --data-root (default: a temporary folder)")
    ap.add_argument("--data-root", type=Path)
    ap.add_argument("--methods", default="", help="comma-separated methods added to " + ",".join(HEADLINE))
    ap.add_argument("--iters", type=int, default=3, help="iterations per training stage and domain (>= 2: the "
                                                         "first one is a warm-up)")
    ap.add_argument("--profile", help="a strategy profile for every method (paper scale)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override for every method")
    ap.add_argument("--out", type=Path, required=True, help="folder for order1_cost.csv and order1_cost.md")
    args = ap.parse_args(argv)
    if args.iters < 1:
        ap.error("--iters must be at least 1")
    if args.data_root is None and args.scale == "paper":
        ap.error("--data-root is required with --scale paper")
    methods = list(HEADLINE) + [m for m in args.methods.split(",") if m and m not in HEADLINE]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root or Path(tmp)
        if args.scale == "tiny":
            generate_rehearsal(root, "tiny", jobs=1, report=lambda _: None)
            logging.getLogger("pad_bench.data.datasets.base").setLevel(logging.ERROR)  # tiny counts, as declared
        rows, peaks = [], {}
        for method in methods:
            mine, peaks[method] = measure_method(method, args, root)
            rows += mine
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    table = (f"order-1 cost on {device}, {args.scale} scale, {args.iters} iterations per stage and domain\n\n"
             + markdown(summary(rows, peaks)))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "order1_cost.csv", buf.getvalue())
    atomic_write_text(args.out / "order1_cost.md", table)
    print(table, end="")
    print(f"per-domain rows: {args.out / 'order1_cost.csv'}", file=sys.stderr)


if __name__ == "__main__":
    main()
