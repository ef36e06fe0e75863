"""What the per-step diagnostics (docs/metrics.md#6-diagnostics) add to the evaluation after a step.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/perf/diagnostics_cost.py [--strategy pad] [--reps 3]

A method on the synthetic benchmark (random init, so no pretraining is needed; the data are written
under --data-root if missing) trains its first domain for one epoch, so that its prompt slots and text
anchors exist; then the evaluation of every seen and unseen set is timed, alternately without and with
the diagnostics collected in the same pass (drift and routing), plus the text-anchor alignment pass on
the trained domain. Prints the median wall and CPU seconds of each and the added share of evaluation time.
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from pad_bench.config import resolve_config
from pad_bench.metrics.diagnostics import Diagnostics
from pad_bench.metrics.plugin import RetrievalMetric
from pad_bench.run.build import build_strategy
from pad_bench.run.runner import prepare


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strategy", default="pad")
    ap.add_argument("--data-root", default=".cache/synth")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    sets = {"benchmark.data_root": args.data_root, "model.weights": "random", "train.epochs": 1}
    if args.strategy.startswith("pad"):
        sets["strategy.stage1_epochs"] = 1
    cfg = resolve_config(benchmark="synth", strategy=args.strategy, sets=sets)
    _, bench = prepare(cfg)
    metric = RetrievalMetric()
    from avalanche.training.plugins import EvaluationPlugin

    with warnings.catch_warnings():  # "no loggers"
        warnings.simplefilter("ignore", UserWarning)
        evaluator = EvaluationPlugin(metric, loggers=[])
    strategy = build_strategy(cfg, bench, device=cfg["device"], evaluator=evaluator)
    strategy.device_input = bench.device_input
    strategy.train(bench.train_stream[0], eval_streams=[])
    streams = [bench.test_stream] + ([bench.unseen_stream] if bench.unseen_names else [])
    diag = Diagnostics()

    def evaluate(with_diagnostics: bool) -> None:
        metric.diagnostics = diag if with_diagnostics else None
        for stream in streams:
            strategy.eval(stream, num_workers=0)
        diag.results.clear()

    def align() -> None:
        diag.align(strategy, bench.train_stream[0].dataset, step=1, domain=bench.train_names[0])

    evaluate(True)  # warm-up, and the previous features that drift compares with
    plain, collected, aligned = [], [], []
    for _ in range(args.reps):
        plain.append(timed(lambda: evaluate(False)))
        collected.append(timed(lambda: evaluate(True)))
        aligned.append(timed(align))
    n_images = sum(len(exp.dataset) for s in streams for exp in s)
    print(f"{args.strategy} on synth, {n_images} evaluation images, {torch.get_num_threads()} thread(s), "
          f"median of {args.reps}:")
    base = [statistics.median(t[i] for t in plain) for i in (0, 1)]
    for label, times in (("eval without diagnostics", plain), ("eval with drift + routing", collected),
                         ("text-anchor alignment pass", aligned)):
        wall, cpu = (statistics.median(t[i] for t in times) for i in (0, 1))
        print(f"  {label:28s} wall {wall:7.3f} s  CPU {cpu:7.3f} s")
    added = [statistics.median(c[i] - p[i] + a[i] for p, c, a in zip(plain, collected, aligned)) for i in (0, 1)]
    print(f"  added by diagnostics: wall {added[0]:.3f} s = {100 * added[0] / base[0]:.1f} % of evaluation, "
          f"CPU {added[1]:.3f} s = {100 * added[1] / base[1]:.1f} %")


if __name__ == "__main__":
    main()
