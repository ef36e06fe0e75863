"""Is a difference between two methods larger than the seed noise?

Runs with the same seed see the same data order, so two methods are compared pairwise by seed:
d_s = x_method(s) - x_baseline(s) over the seeds both have. The mean difference gets a Student-t
95 % confidence interval, mean(d) ± t(0.975, n-1) · sd(d) / sqrt(n), and a two-sided paired t-test
(scipy.stats.ttest_rel). With one pair there is no interval and no test. When every d_s is the
same the spread is zero: the interval is that value and p is 0 (1 if the value is 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

ALPHA = 0.05
CONFIDENCE = 1 - ALPHA


@dataclass(frozen=True)
class PairedDifference:
    """Mean of method - baseline over `n` seeds both have, its 95 % CI and the paired t-test's p."""

    n: int
    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < ALPHA


def paired_difference(method: Mapping[int, float], baseline: Mapping[int, float]) -> PairedDifference:
    """Compare per-seed values ({seed: value}); seeds missing from either side are left out."""
    seeds = sorted(set(method) & set(baseline))
    a = [float(method[s]) for s in seeds]
    b = [float(baseline[s]) for s in seeds]
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    if n == 0:
        return PairedDifference(0)
    mean = math.fsum(d) / n
    if n == 1:
        return PairedDifference(1, mean)
    if all(x == d[0] for x in d):
        return PairedDifference(n, mean, mean, mean, 1.0 if mean == 0 else 0.0)
    from scipy import stats

    res = stats.ttest_rel(a, b)
    ci = res.confidence_interval(confidence_level=CONFIDENCE)
    return PairedDifference(n, mean, float(ci.low), float(ci.high), float(res.pvalue))


def clear_winner(values: Sequence[Mapping[int, float] | None], higher_is_better: bool = True) -> int | None:
    """The index of the entry whose mean is best and significantly better than every other entry
    (paired by seed); None when the best is inside the noise of any other, or fewer than two have values."""
    means = {i: math.fsum(v.values()) / len(v) for i, v in enumerate(values) if v}
    if len(means) < 2:
        return None
    sign = 1 if higher_is_better else -1
    best = max(means, key=lambda i: sign * means[i])
    for i in means:
        if i == best:
            continue
        diff = paired_difference(values[best], values[i])  # type: ignore[arg-type]
        if not diff.significant or sign * (diff.mean or 0.0) <= 0:
            return None
    return best
