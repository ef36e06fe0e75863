"""Paired differences, confidence intervals and t-tests against hand-computed values; compare --baseline.

The Student-t CDF has closed forms for 1 and 2 degrees of freedom, so the expected numbers need no
statistics library:
    df = 1: F(t) = 1/2 + atan(t) / pi            -> two-sided p = 1 - 2 atan(|t|) / pi, t(0.975) = tan(0.475 pi)
    df = 2: F(t) = 1/2 + t / (2 sqrt(2 + t^2))   -> two-sided p = 1 - |t| / sqrt(2 + t^2),
            t(0.975) solves t / sqrt(2 + t^2) = 0.95: t^2 = 2 * 0.95^2 / (1 - 0.95^2)
"""
from __future__ import annotations

import math

import pandas as pd
import pytest

from fake_runs import write_fake_run
from pad_bench.errors import UserError
from pad_bench.results.compare import compare_runs
from pad_bench.results.stats import clear_winner, paired_difference

T975_DF2 = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))  # 4.302653
T975_DF1 = math.tan(0.475 * math.pi)  # 12.706205


def p_df2(t: float) -> float:
    return 1 - abs(t) / math.sqrt(2 + t * t)


def test_three_pairs_match_the_closed_form():
    # differences 1, 2, 3: mean 2, sd 1, se 1/sqrt(3), t = 2 sqrt(3)
    d = paired_difference({0: 11.0, 1: 22.0, 2: 33.0}, {0: 10.0, 1: 20.0, 2: 30.0})
    assert d.n == 3 and d.mean == pytest.approx(2.0)
    half = T975_DF2 / math.sqrt(3)
    assert (d.ci_low, d.ci_high) == (pytest.approx(2 - half), pytest.approx(2 + half))  # [-0.484, 4.484]
    assert d.p == pytest.approx(p_df2(2 * math.sqrt(3)))  # 0.0742
    assert not d.significant


def test_two_pairs_match_the_cauchy_form():
    # differences 13 and 9: mean 11, sd 2 sqrt(2), se 2, t = 5.5 with one degree of freedom
    d = paired_difference({0: 61.0, 1: 61.0}, {0: 48.0, 1: 52.0})
    assert d.mean == pytest.approx(11.0)
    assert (d.ci_low, d.ci_high) == (pytest.approx(11 - 2 * T975_DF1), pytest.approx(11 + 2 * T975_DF1))
    assert d.p == pytest.approx(1 - 2 * math.atan(5.5) / math.pi)  # 0.1146


def test_pairs_by_seed_only():
    # seeds 5 and 7 have no partner; the order of the mapping does not matter
    d = paired_difference({2: 33.0, 5: 99.0, 0: 11.0, 1: 22.0}, {1: 20.0, 0: 10.0, 7: -50.0, 2: 30.0})
    assert d.n == 3 and d.mean == pytest.approx(2.0) and d.p == pytest.approx(p_df2(2 * math.sqrt(3)))


def test_degenerate_cases():
    one = paired_difference({0: 3.0}, {0: 1.0})
    assert (one.n, one.mean, one.ci_low, one.p) == (1, 2.0, None, None) and not one.significant
    none = paired_difference({0: 3.0}, {1: 1.0})
    assert none.n == 0 and none.mean is None
    same = paired_difference({0: 5.0, 1: 6.0}, {0: 1.0, 1: 2.0})  # every difference is 4: no spread
    assert (same.ci_low, same.ci_high, same.p) == (4.0, 4.0, 0.0) and same.significant
    equal = paired_difference({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})
    assert (equal.mean, equal.p) == (0.0, 1.0)


def test_clear_winner_needs_significance_against_every_row():
    base = {0: 10.0, 1: 20.0, 2: 30.0}
    noisy = {0: 11.0, 1: 22.0, 2: 33.0}  # +1, +2, +3 over base: p = 0.074
    clear = {0: 20.0, 1: 31.0, 2: 39.0}  # +10, +11, +9 over base, +9, +9, +6 over noisy
    assert clear_winner([base, noisy]) is None
    assert clear_winner([base, noisy, clear]) == 2
    assert clear_winner([base, noisy], higher_is_better=False) is None
    assert clear_winner([{0: 1.0}, {0: 2.0}]) is None  # one seed: no test, no winner
    assert clear_winner([base, None]) is None


def write_three_methods(root):
    """Three seeds each, drop 4 on 3 domains, so Seen-Avg final = level + 2 - 4 = level - 2:
      finetune levels 50, 51, 52 -> Seen-Avg 48, 49, 50
      pad      levels 51, 53, 55 -> 49, 51, 53   (minus finetune: 1, 2, 3 -> p = 0.074)
      lstkc    levels 60, 62, 61 -> 58, 60, 59   (minus finetune: 10, 11, 9: t = 10 sqrt(3);
                                                 minus pad: 9, 9, 6: mean 8, sd sqrt(3), t = 8)
    Unseen and forgetting are the same for all (unseen_level 30, drop 4): differences 0, p = 1.
    The runs are written in a shuffled seed order: pairing goes by seed."""
    levels = {"finetune": (50, 51, 52), "pad": (51, 53, 55), "lstkc": (60, 62, 61)}
    return [write_fake_run(root, f"{name}-s{seed}", strategy=name, seed=seed, level=lv[seed])
            for name, lv in levels.items() for seed in (2, 0, 1)]


def test_baseline_table_csv_and_bold(tmp_path):
    runs = write_three_methods(tmp_path)
    written = compare_runs(runs, tmp_path / "out", baseline="finetune")
    md = written["table.md"].read_text()
    half = T975_DF2 / math.sqrt(3)
    p_lstkc = p_df2(10 * math.sqrt(3))  # 0.0033
    assert "## Difference from the baseline: finetune (resnet50)" in md
    assert f"| lstkc (resnet50) | 3 | +10.0 [{10 - half:.1f}, {10 + half:.1f}] p={p_lstkc:.3f}* |" in md
    assert f"| pad (resnet50) | 3 | +2.0 [{2 - half:.1f}, {2 + half:.1f}] p={p_df2(2 * math.sqrt(3)):.3f} |" in md
    assert "+0.0 [0.0, 0.0] p=1.000 |" in md  # unseen: identical
    # lstkc's Seen-Avg (59 ± 1) beats both others significantly (vs pad: t = 8, p = 0.015): bold
    assert "**59.0 ± 1.0**" in md
    assert p_df2(8.0) < 0.05

    table = pd.read_csv(written["table.csv"]).set_index("strategy")
    assert bool(table.loc["finetune", "is_baseline"]) and not bool(table.loc["pad", "is_baseline"])
    assert pd.isna(table.loc["finetune", "seen_avg_mAP_diff"])
    pad = table.loc["pad"]
    assert pad["seen_avg_mAP_diff"] == pytest.approx(2.0)
    assert pad["seen_avg_mAP_diff_ci_low"] == pytest.approx(2 - half, abs=1e-5)
    assert pad["seen_avg_mAP_diff_ci_high"] == pytest.approx(2 + half, abs=1e-5)
    assert pad["seen_avg_mAP_diff_p"] == pytest.approx(p_df2(2 * math.sqrt(3)), abs=1e-5)
    assert pad["seen_avg_mAP_diff_n"] == 3
    assert table.loc["lstkc", "seen_avg_R1_diff"] == pytest.approx(10.0)  # R1 = mAP + 10 everywhere

    tex = written["table.tex"].read_text()
    assert r"$+10.0$$^{*}$" in tex and r"$+2.0$\,{\scriptsize" in tex
    assert r"\textbf{59.0}" in tex


def test_baseline_name_errors(tmp_path):
    runs = write_three_methods(tmp_path)
    with pytest.raises(UserError, match=r"--baseline 'resnet50' matches several rows; name one of: 'finetune \(resnet50\)'"):
        compare_runs(runs, tmp_path / "out", baseline="resnet50")
    with pytest.raises(UserError, match="--baseline 'dkp' matches no row"):
        compare_runs(runs, tmp_path / "out", baseline="dkp")
    assert not (tmp_path / "out").exists()
