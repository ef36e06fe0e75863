"""Per-step diagnostics (docs/metrics.md#6-diagnostics) against hand computations on tiny tensors, and one
tiny PAD run end to end (diagnostics.csv, the three figures, metrics.csv unchanged by them)."""
from __future__ import annotations

import csv
import math
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch

from conftest import tiny_sets
from pad_bench.config import resolve_config
from pad_bench.metrics.diagnostics import (NO_DOMAIN, Diagnostics, RoutingRecord, anchor_alignment, linear_cka,
                                           mean_cosine, routing_share, slot_usage)

X = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [2.0, 0.0, 1.0], [-1.0, 1.0, 1.0], [0.5, 0.5, -2.0]])


def test_cka_of_a_matrix_with_itself_is_one():
    assert linear_cka(X, X) == pytest.approx(1.0, rel=1e-12)


def test_cka_is_one_under_an_orthogonal_rotation_and_a_scaling():
    q, _ = torch.linalg.qr(torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]]))
    assert linear_cka(X, 3.0 * X @ q) == pytest.approx(1.0, rel=1e-6)  # float32 inputs, double maths


def test_cka_of_one_dimension_is_the_squared_correlation():
    # centred x = (-1, 0, 1), y = (-1, 1, 0): (yᵀx)² / (xᵀx · yᵀy) = 1 / (2 · 2)
    assert linear_cka(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[1.0], [3.0], [2.0]])) == pytest.approx(0.25)


def test_mean_cosine_drift():
    # cos((1,0),(1,1)) = 1/sqrt(2); cos((0,2),(0,-1)) = -1
    a, b = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    assert mean_cosine(a, b) == pytest.approx((1 / math.sqrt(2) - 1) / 2)


def test_anchor_alignment_and_gap():
    # sims of f0 = (1,0): (1, 1/√2, 0); of f1 = (0,1): (0, 1/√2, 1); labels 0 and 1.
    feats, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    anchors = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    r = 1 / math.sqrt(2)
    own, gap = anchor_alignment(feats, labels, anchors)
    assert own == pytest.approx((1 + r) / 2)
    assert gap == pytest.approx(((1 - r / 2) + (r - 0.5)) / 2)


def test_routing_share_and_slot_usage():
    picks = torch.tensor([[0, 1], [2, 3], [0, 3]])
    owner = torch.tensor([0, 0, 1, 1, NO_DOMAIN])
    assert routing_share(picks, owner, 0) == pytest.approx(3 / 6)  # slots 0, 1, 0 of six picks
    assert routing_share(picks, owner, 1) == pytest.approx(3 / 6)
    assert math.isnan(routing_share(torch.zeros(3, 0, dtype=torch.long), owner, 0))  # no picks
    assert slot_usage(picks, 5).tolist() == pytest.approx([2 / 6, 1 / 6, 1 / 6, 2 / 6, 0.0])


def test_routing_record_weighs_every_token_of_every_batch():
    rec = RoutingRecord(torch.tensor([0, 0, 1, NO_DOMAIN]))
    # batch 1: prompt norms 5, 5; patch norms 1, 1. batch 2: prompt norm 2; patch norms 2, 2.
    rec.add(0, torch.tensor([[0], [1]]), torch.tensor([[[3.0, 4.0]], [[0.0, 5.0]]]), torch.eye(2)[None].expand(2, 2, 2))
    rec.add(0, torch.tensor([[2]]), torch.tensor([[[0.0, 2.0]]]), 2 * torch.eye(2)[None])
    rows = {(d, i): v for d, i, v in rec.rows(domain=0)}
    assert rows[("routing_share", 0)] == pytest.approx(2 / 3)
    assert rows[("prompt_patch_norm", 0)] == pytest.approx((12 / 3) / (8 / 6))
    assert [rows[("slot_usage", s)] for s in range(4)] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0])
    assert not any(d == "routing_share" for d, _, _ in rec.rows(domain=3))  # a domain without slots: no share


def _strategy(stream: str, index: int) -> SimpleNamespace:
    return SimpleNamespace(experience=SimpleNamespace(origin_stream=SimpleNamespace(name=stream), current_experience=index),
                           routing_record=lambda: nullcontext(None))


def _evaluate(diag: Diagnostics, step: int, splits: list[torch.Tensor]) -> list[dict]:
    """One evaluation of the two splits of an unseen set "u", as RetrievalMetric drives it."""
    for index, feats in enumerate(splits):
        diag.start_experience(_strategy("unseen", index))
        diag.end_experience(_strategy("unseen", index), feats)
    return diag.collect(step, "unseen", ["u"] * len(splits))


def test_drift_compares_each_set_with_its_previous_evaluation_and_splits_are_averaged():
    diag = Diagnostics()
    a, b = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    assert _evaluate(diag, 0, [a, a]) == []  # nothing to compare with yet
    rows = {r["diagnostic"]: r["value"] for r in _evaluate(diag, 1, [b, a])}  # split 0 drifts, split 1 does not
    assert rows["drift_cosine"] == pytest.approx(((1 / math.sqrt(2) - 1) / 2 + 1) / 2)
    # two items: centred, each matrix is (r, -r), and CKA of two rank-1 such matrices is 1
    assert rows["drift_cka"] == pytest.approx(1.0)


def test_pad_pool_slot_owner():
    from pad_bench.strategies.pad.prompts import VAPromptPool

    pool = VAPromptPool(num_layers=2, dim=4, pool_size=6, prompt_len=1, g_len=1, top_k=2)
    pool.allocate_new_domain_slots(2)
    pool.allocate_new_domain_slots(3)
    assert pool.slot_owner([2, 3, 1]).tolist() == [0, 0, 1, 1, 1, NO_DOMAIN]  # domain 3 not trained yet


@pytest.fixture(scope="module")
def pad_runs(synth_root, tmp_path_factory):
    """The same tiny PAD run with diagnostics and with every diagnostic hook turned into a no-op."""
    from pad_bench.run import runner

    out = tmp_path_factory.mktemp("diag")
    sets = tiny_sets(synth_root, **{"strategy.stage1_epochs": 1})
    full = runner.execute(resolve_config(benchmark="synth", strategy="pad", sets=sets), out / "full", progress=False)
    with pytest.MonkeyPatch.context() as mp:
        for name in ("start_experience", "align"):
            mp.setattr(Diagnostics, name, lambda *a, **k: None)
        mp.setattr(Diagnostics, "end_experience", lambda self, *a: self.results.append([]))
        bare = runner.execute(resolve_config(benchmark="synth", strategy="pad", sets=sets), out / "bare",
                              progress=False)
    return full, bare


@pytest.mark.slow
def test_pad_run_writes_every_diagnostic_and_leaves_metrics_unchanged(pad_runs):
    full, bare = pad_runs
    # Same machine, threads and precision: the diagnostics only read, so the bytes are the same.
    assert (full / "metrics.csv").read_bytes() == (bare / "metrics.csv").read_bytes()
    with open(full / "diagnostics.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["step", "eval_set", "eval_domain", "diagnostic", "index", "value"]
    kinds = {(r["step"], r["eval_set"], r["diagnostic"]) for r in rows}
    for step in ("1", "2"):
        assert {(step, "seen", d) for d in ("drift_cosine", "drift_cka", "routing_share", "slot_usage",
                                             "prompt_patch_norm")} <= kinds
        assert {(step, "train", "anchor_cosine"), (step, "train", "anchor_gap")} <= kinds
    assert ("0", "seen", "drift_cosine") not in kinds
    cka = [float(r["value"]) for r in rows if r["diagnostic"] == "drift_cka"]
    assert all(0 <= v <= 1 + 1e-9 for v in cka)
    usage = [float(r["value"]) for r in rows if r["diagnostic"] == "slot_usage" and r["step"] == "2"
             and r["eval_domain"] == "synth_d1"]
    assert sum(usage) == pytest.approx(1.0, rel=1e-4)


@pytest.mark.slow
def test_plot_command_draws_the_three_diagnostics(pad_runs):
    from pad_bench.cli import main

    full, _ = pad_runs
    for f in (full / "plots").iterdir():
        f.unlink()
    assert main(["plot", str(full)]) == 0
    assert {"drift.png", "alignment.png", "routing.png"} <= {p.name for p in (full / "plots").iterdir()}


def test_drift_probe_is_every_query_or_an_even_spread():
    from pad_bench.metrics.diagnostics import PROBE_SIZE, probe_rows

    assert probe_rows(3).tolist() == [0, 1, 2]
    rows = probe_rows(2 * PROBE_SIZE - 1)  # spacing (n - 1) / (PROBE_SIZE - 1) = 2: every other query
    assert rows.tolist() == list(range(0, 2 * PROBE_SIZE - 1, 2))
