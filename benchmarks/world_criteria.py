"""The synthetic world's criteria W1-W7 (docs/synthetic.md#world-criteria) on fine-tune and joint runs.

    PYTHONPATH=. python benchmarks/world_criteria.py RUN_DIR... [--demo-minutes 9.5]

RUN_DIR are the fine-tune and joint run directories of one world (3 seeds each); the strategy of each
is read from its config.yaml. Zero-shot is the fine-tune runs' step 0, the model before any training
(the same weights in every run of a seed). Every figure is the mean over the seeds, mAP in percent, final step unless said
otherwise. Prints one line per criterion with PASS or FAIL; exits 1 when one fails.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pad_bench.errors import UserError
from pad_bench.metrics.lifelong import results_matrix
from pad_bench.results.runs import Run, load_run

DEMO_BUDGET_MIN = 15.0
MIN_ATTRIBUTES = 6  # W5: attributes the text tower must beat the majority rate on


@dataclass
class Criterion:
    name: str
    passed: bool | None  # None: not measured
    detail: str

    def line(self) -> str:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[self.passed]
        return f"{self.name} {verdict}  {self.detail}"


def _seen(run: Run) -> np.ndarray:
    """R[t][j]: seen mAP after step t on domain j, in the run's domain order."""
    return results_matrix(run.table, "mAP", "seen").reindex(columns=run.domains).to_numpy()


def _unseen_avg(run: Run, step: int) -> float:
    return float(np.nanmean(results_matrix(run.table, "mAP", "unseen").to_numpy()[step]))


def _by_strategy(runs: Sequence[Run], name: str) -> list[Run]:
    chosen = [r for r in runs if r.strategy == name]
    if not chosen:
        raise UserError(f"no {name} run among the given directories; pass the fine-tune and the joint runs "
                        f"of the world (3 seeds each)")
    return chosen


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def check(runs: Sequence[Run], demo_minutes: float | None = None) -> list[Criterion]:
    """W1-W7 of the module docstring on the loaded runs."""
    ft, joint = _by_strategy(runs, "finetune"), _by_strategy(runs, "joint")
    r_ft = np.mean([_seen(r) for r in ft], axis=0)  # (T+1, T), seed mean
    zero_seen = r_ft[0]
    zero_seen_avg = float(zero_seen.mean())
    zero_unseen = statistics.mean(_unseen_avg(r, 0) for r in ft)
    ft_final = [r.summary["mAP"]["seen_avg_final"] for r in ft]
    joint_final = [r.summary["mAP"]["seen_avg_final"] for r in joint]
    joint_unseen = statistics.mean(_unseen_avg(r, -1) for r in joint)
    out = []

    trained = np.diag(r_ft[1:])  # R[j][j], right after domain j is trained
    ok = (trained >= 2 * zero_seen) & (trained >= zero_seen + 25)
    worst = int(np.argmin(trained - np.maximum(2 * zero_seen, zero_seen + 25)))
    out.append(Criterion("W1 learnable", bool(ok.all()),
                         f"{int(ok.sum())}/{len(ok)} domains reach max(2x, +25) over zero-shot; closest: "
                         f"{ft[0].domains[worst]} {zero_seen[worst]:.1f} -> {trained[worst]:.1f}"))

    j, f = statistics.mean(joint_final), statistics.mean(ft_final)
    out.append(Criterion("W2 upper bound", j >= zero_seen_avg + 25 and j >= f + 10,
                         f"joint Seen-Avg {j:.1f} vs zero-shot {zero_seen_avg:.1f} + 25 and fine-tune {f:.1f} + 10"))

    gain, lost = r_ft[1, 0] - r_ft[0, 0], r_ft[1, 0] - r_ft[-1, 0]
    out.append(Criterion("W3 forgetting", bool(gain > 0 and lost >= gain / 2),
                         f"first domain gains {gain:.1f} when trained, loses {lost:.1f} by the last step "
                         f"(needs >= {gain / 2:.1f})"))

    out.append(Criterion("W4 generalises", joint_unseen >= zero_unseen + 5,
                         f"joint Unseen-Avg {joint_unseen:.1f} vs zero-shot {zero_unseen:.1f} + 5"))

    out.append(_attributes(ft[0]))

    s_ft, s_joint = _std(ft_final), _std(joint_final)
    out.append(Criterion("W6 stable", bool(s_ft <= 1.5 and s_joint <= 1.5),
                         f"seed std of final Seen-Avg: fine-tune {s_ft:.2f} ({len(ft)} seeds), joint "
                         f"{s_joint:.2f} ({len(joint)} seeds), each <= 1.5"))

    if demo_minutes is None:
        out.append(Criterion("W7 affordable", None, "make demo not timed (--demo-minutes)"))
    else:
        out.append(Criterion("W7 affordable", demo_minutes <= DEMO_BUDGET_MIN,
                             f"make demo {demo_minutes:.1f} min <= {DEMO_BUDGET_MIN:.0f}"))
    return out


def _attributes(run: Run) -> Criterion:
    """W5 from the pretrained weights' report that the run's config.yaml records (the report itself, or
    the path of its report.json as runs write it)."""
    report = (run.config.get("model") or {}).get("pretrained_report") or {}
    if isinstance(report, str):
        path = Path(report)
        report = json.loads(path.read_text()) if path.is_file() else {}
    zero_shot = (report.get("heldout") or {}).get("zero_shot")
    if not zero_shot:
        return Criterion("W5 text tower", None, "no zero-shot attribute report in config.yaml (model.pretrained_report)")
    above = sorted(a for a, v in zero_shot.items() if v["accuracy"] > v["majority"])
    return Criterion("W5 text tower", len(above) >= MIN_ATTRIBUTES,
                     f"{len(above)}/{len(zero_shot)} attributes above the majority rate (needs {MIN_ATTRIBUTES}): "
                     f"{', '.join(above) or 'none'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="fine-tune and joint run directories")
    ap.add_argument("--demo-minutes", type=float, help="measured `make demo` wall time from a fresh clone (W7)")
    args = ap.parse_args(argv)
    try:
        results = check([load_run(p) for p in args.runs], args.demo_minutes)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for c in results:
        print(c.line())
    return 1 if any(c.passed is False for c in results) else 0


if __name__ == "__main__":
    sys.exit(main())
