"""Lifelong metrics from the long results table (docs/protocol.md#lifelong-metrics; formulas in docs/metrics.md).

The table has one row per (step, eval_domain, eval_set) with columns RESULT_COLUMNS; metric
values are percentages. Step 0 is the model before any training; `trained_domain` is the domain
trained in that step ("" for step 0, UNION_LABEL when one step trained every domain).

Notation: R[t][j] is the metric on seen domain j (benchmark order, j = 1..T) after step t,
U[t][u] the same on unseen dataset u, T the last step.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..errors import UserError

if TYPE_CHECKING:
    import pandas as pd

METRICS = ("mAP", "mINP", "R1", "R5", "R10")
RESULT_COLUMNS = ("step", "trained_domain", "eval_domain", "eval_set") + METRICS
EVAL_SETS = ("seen", "unseen")
# The trained_domain of a step that trained the union of every domain (the word of joint training;
# run directories written before carry it too).
UNION_LABEL = "joint"


def check_results_table(df: "pd.DataFrame") -> None:
    """Raise UserError when the table lacks a column or repeats a (step, eval_domain, eval_set) row."""
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"results table lacks column(s) {', '.join(missing)}; expected {', '.join(RESULT_COLUMNS)}")
    from pandas.api.types import is_numeric_dtype

    text = [m for m in METRICS if not is_numeric_dtype(df[m])]
    if text:
        raise UserError(f"results table column(s) {', '.join(text)} hold non-numeric values; write numbers (percent)")
    bad_sets = sorted(set(df["eval_set"]) - set(EVAL_SETS))
    if bad_sets:
        raise UserError(f"results table has eval_set value(s) {bad_sets}; use 'seen' or 'unseen'")
    dup = df.duplicated(["step", "eval_domain", "eval_set"])
    if dup.any():
        row = df[dup].iloc[0]
        raise UserError(
            f"results table has several rows for step {row['step']}, {row['eval_set']} domain "
            f"'{row['eval_domain']}'; keep one row per step and domain"
        )


def results_matrix(df: "pd.DataFrame", metric: str = "mAP", eval_set: str = "seen") -> "pd.DataFrame":
    """The metric as a step x domain matrix; domains in their order of first appearance in `df`.

    Every step of `df` is a row, so a step without `eval_set` rows is all NaN.
    """
    _check_args(metric, eval_set)
    check_results_table(df)
    rows = df[df["eval_set"] == eval_set]
    domains = list(dict.fromkeys(rows["eval_domain"]))
    steps = sorted(set(df["step"]))
    matrix = rows.pivot(index="step", columns="eval_domain", values=metric)
    return matrix.reindex(index=steps, columns=domains).astype(float).rename_axis(index="step", columns="eval_domain")


def lifelong_summary(df: "pd.DataFrame", seen_order: list[str], metric: str = "mAP") -> dict[str, Any]:
    """Seen/Unseen-Avg per step, final values, forgetting, BWT, FWT and plasticity of one run.

    With T the last step and R, U as in the module docstring (percent):
    - seen_avg[t-1] = Seen-Avg(t) = mean_{j<=t} R[t][j] for t = 1..T (a union step: every domain);
    - unseen_avg[t] = Unseen-Avg(t) = mean_u U[t][u] for t = 0..T;
    - final = {"seen": {j: R[T][j]}, "unseen": {u: U[T][u]}}; seen_avg_final, unseen_avg_final;
    - forgetting[j] = F_j = max_{l in [j, T-1]} R[l][j] - R[T][j] for j < T; forgetting_mean = mean_j F_j;
    - bwt = mean_{j<T} (R[T][j] - R[j][j]);
    - fwt = mean_{j=2..T} (R[j-1][j] - R[0][j]);
    - plasticity[j] = R[j][j] for j <= T; plasticity_mean = mean_j R[j][j] (learning accuracy).
    Values that are undefined (a single step, a union step, no unseen set, a missing cell) are None.
    """
    seen = results_matrix(df, metric, "seen")
    unseen = results_matrix(df, metric, "unseen")
    missing = [d for d in seen_order if d not in seen.columns]
    if missing:
        raise UserError(f"results table has no seen rows for domain(s) {', '.join(missing)} of the domain order")
    extra = [d for d in seen.columns if d not in seen_order]
    if extra:
        raise UserError(f"results table has seen domain(s) {', '.join(extra)} missing from the domain order {seen_order}")
    last = int(max(df["step"]))
    steps = range(last + 1)
    R = seen.reindex(index=steps, columns=seen_order).to_numpy()
    U = unseen.reindex(index=steps).to_numpy()
    union = _trained_union(df, seen_order)
    # Sequential: domain j (1-based) is trained at step j; a union step trains them all.
    seq = [] if union else list(range(1, last + 1))
    forgetting = {seen_order[j - 1]: R[j:last, j - 1].max() - R[last, j - 1] for j in seq if j < last}
    plasticity = {seen_order[j - 1]: R[j, j - 1] for j in seq}
    seen_avg = [_mean(R[t, : len(seen_order) if union else t]) for t in steps[1:]]
    unseen_avg = [_mean(U[t]) if U.shape[1] else None for t in steps]
    return _json_safe({
        "seen_avg": seen_avg,
        "unseen_avg": unseen_avg,
        "final": {"seen": dict(zip(seen_order, R[last])), "unseen": dict(zip(unseen.columns, U[last]))},
        "seen_avg_final": seen_avg[-1] if seen_avg else None,
        "unseen_avg_final": unseen_avg[-1],
        "forgetting": forgetting or None,
        "forgetting_mean": _mean(list(forgetting.values())),
        "bwt": _mean([R[last, j - 1] - R[j, j - 1] for j in seq if j < last]),
        "fwt": _mean([R[j - 1, j - 1] - R[0, j - 1] for j in seq if j >= 2]),
        "plasticity": plasticity or None,
        "plasticity_mean": _mean(list(plasticity.values())),
    })


def _check_args(metric: str, eval_set: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if eval_set not in EVAL_SETS:
        raise ValueError(f"unknown eval_set {eval_set!r}; choose from {', '.join(EVAL_SETS)}")


def _trained_union(df: "pd.DataFrame", seen_order: list[str]) -> bool:
    """True for a run whose one step trained every domain; raise UserError when a sequential step trained an unexpected domain."""
    trained = df[df["step"] > 0].drop_duplicates("step").set_index("step")["trained_domain"]
    if (trained == UNION_LABEL).any():
        return True
    for step, name in trained.items():
        expected = seen_order[step - 1] if step <= len(seen_order) else None
        if name != expected:
            raise UserError(
                f"results table step {step} trained '{name}' but the domain order {seen_order} "
                f"has {repr(expected) if expected else 'no domain'} there"
            )
    return False


def _mean(values: Any) -> float | None:
    """Mean of the values, None when there are none or one is missing (NaN)."""
    values = [float(v) for v in values]
    if not values or any(math.isnan(v) for v in values):
        return None
    return sum(values) / len(values)


def _json_safe(obj: Any) -> Any:
    """Plain floats and None (for NaN) all the way down, so json.dumps never writes NaN."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if obj is None:
        return None
    value = float(obj)
    return None if math.isnan(value) else value
