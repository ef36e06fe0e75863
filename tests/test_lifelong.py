"""Lifelong metrics on hand-made results matrices with hand-computed expectations."""
from __future__ import annotations

import json

import pytest

from fake_runs import R1_OFFSET, results_table
from pad_bench.errors import UserError
from pad_bench.metrics.lifelong import lifelong_summary, results_matrix

DOMAINS = ["a", "b", "c"]
UNSEEN = ["u1", "u2"]
# R[t][j]: rows are steps 0..3, columns domains a, b, c (trained at steps 1, 2, 3).
R = [
    [10, 20, 30],
    [50, 25, 35],
    [60, 58, 33],  # a improves after b is trained: forgetting uses the max, not R[1][a]
    [45, 55, 70],
]
U = [[5, 7], [10, 14], [20, 20], [30, 26]]


@pytest.fixture
def table():
    return results_table(R, U, DOMAINS, UNSEEN)


def test_results_matrix_in_first_appearance_order(table):
    shuffled = table.iloc[::-1]  # domains now appear c, b, a
    m = results_matrix(shuffled, "R1")
    assert list(m.columns) == ["c", "b", "a"]
    assert list(m.index) == [0, 1, 2, 3]
    assert m.loc[2, "a"] == 60 + R1_OFFSET
    u = results_matrix(table, eval_set="unseen")
    assert u.loc[3].tolist() == [30, 26]


def test_sequential_summary(table):
    s = lifelong_summary(table, DOMAINS)
    # Seen-Avg(1) = 50; (2) = (60 + 58) / 2 = 59; (3) = (45 + 55 + 70) / 3 = 56.667
    assert s["seen_avg"] == pytest.approx([50, 59, 170 / 3])
    assert s["seen_avg_final"] == pytest.approx(170 / 3)
    # Unseen-Avg per step incl. 0: (5+7)/2, (10+14)/2, 20, (30+26)/2
    assert s["unseen_avg"] == pytest.approx([6, 12, 20, 28])
    assert s["unseen_avg_final"] == pytest.approx(28)
    assert s["final"] == {"seen": {"a": 45, "b": 55, "c": 70}, "unseen": {"u1": 30, "u2": 26}}
    # F_a = max(50, 60) - 45 = 15; F_b = 58 - 55 = 3; mean 9
    assert s["forgetting"] == pytest.approx({"a": 15, "b": 3})
    assert s["forgetting_mean"] == pytest.approx(9)
    # BWT = ((45 - 50) + (55 - 58)) / 2 = -4
    assert s["bwt"] == pytest.approx(-4)
    # FWT = ((R[1][b] - R[0][b]) + (R[2][c] - R[0][c])) / 2 = ((25 - 20) + (33 - 30)) / 2 = 4
    assert s["fwt"] == pytest.approx(4)
    # LA = (50 + 58 + 70) / 3
    assert s["plasticity"] == pytest.approx({"a": 50, "b": 58, "c": 70})
    assert s["plasticity_mean"] == pytest.approx(178 / 3)


def test_r1_summary_shifts_levels_not_differences(table):
    s = lifelong_summary(table, DOMAINS, metric="R1")
    assert s["seen_avg"] == pytest.approx([60, 69, 170 / 3 + 10])
    assert s["forgetting_mean"] == pytest.approx(9)
    assert s["bwt"] == pytest.approx(-4)


def test_joint_single_step_has_no_sequence_metrics():
    joint = results_table([[10, 20, 30], [60, 62, 64]], U[:2], DOMAINS, UNSEEN, joint=True)
    s = lifelong_summary(joint, DOMAINS)
    assert s["seen_avg"] == pytest.approx([62])  # every domain counts as trained
    assert s["seen_avg_final"] == pytest.approx(62)
    assert s["unseen_avg"] == pytest.approx([6, 12])
    for key in ("forgetting", "forgetting_mean", "bwt", "fwt", "plasticity", "plasticity_mean"):
        assert s[key] is None, key
    json.dumps(s, allow_nan=False)


def test_one_domain_run_has_plasticity_only():
    s = lifelong_summary(results_table([[10], [40]], [[1], [2]], ["a"], ["u1"]), ["a"])
    assert s["plasticity"] == {"a": 40}
    assert s["seen_avg"] == [40]
    assert s["forgetting"] is None and s["bwt"] is None and s["fwt"] is None


def test_unfinished_run_uses_its_last_step(table):
    s = lifelong_summary(table[table["step"] <= 2], DOMAINS)
    assert s["seen_avg_final"] == pytest.approx(59)
    # T = 2: F_a = max(R[1][a]) - R[2][a] = 50 - 60 = -10 (a gained); BWT = 60 - 50 = 10
    assert s["forgetting"] == pytest.approx({"a": -10})
    assert s["bwt"] == pytest.approx(10)
    assert s["final"]["seen"]["c"] == 33


def test_missing_cell_gives_none_not_nan(table):
    gap = table[~((table["step"] == 2) & (table["eval_domain"] == "b"))]
    s = lifelong_summary(gap, DOMAINS)
    assert s["seen_avg"][1] is None
    assert s["plasticity"]["b"] is None and s["plasticity_mean"] is None
    json.dumps(s, allow_nan=False)


def test_no_unseen_sets(table):
    s = lifelong_summary(table[table["eval_set"] == "seen"], DOMAINS)
    assert s["unseen_avg"] == [None] * 4
    assert s["final"]["unseen"] == {}


def test_table_errors(table):
    with pytest.raises(UserError, match="step 1 trained 'a'"):
        lifelong_summary(table, ["b", "a", "c"])
    with pytest.raises(UserError, match="several rows"):
        lifelong_summary(table.iloc[[0, 0]], DOMAINS)
    with pytest.raises(UserError, match="R10"):
        results_matrix(table.drop(columns="R10"))
    with pytest.raises(UserError, match="no seen rows for domain"):
        lifelong_summary(table, DOMAINS + ["d"])
    with pytest.raises(UserError, match="non-numeric"):
        results_matrix(table.assign(mINP="n/a"))
    with pytest.raises(ValueError, match="unknown metric"):
        results_matrix(table, "accuracy")
