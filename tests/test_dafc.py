"""DAFC: prompt matching and selection, the experts' gated sums and consistency loss against hand
computations, golden outputs of its model on clip-tiny, and a tiny two-domain run through both
phases of the second step."""
import csv
import json
import sys
from pathlib import Path

import pytest
import torch

from pad_bench.config import resolve_config
from pad_bench.models.clip import score_embedding_term
from pad_bench.strategies.dafc.prompt import key_match, select_prompts
from pad_bench.strategies.dafc.tws import expert_consistency, gated_sum

from pad_bench.registry import load_strategy_class

from conftest import tiny_sets
from test_models_golden import INIT_SEED, NUM_CLASSES, flat_statistics, golden_input, mismatches

GOLDEN = Path(__file__).with_name("golden") / "dafc.json"
PIN = "ATEN_CPU_CAPABILITY=default PYTHONPATH=. python tests/test_dafc.py"


def test_key_match_sums_the_cosines_over_the_pool():
    query = torch.tensor([[1.0, 2.0]])
    attention = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # q ⊙ A_1 = (1, 0): cos with (1, 0) = 1; q ⊙ A_2 = (1, 2): cos with (0, 1) = 2 / sqrt(5)
    assert key_match(query, attention, keys).item() == pytest.approx(1 + 2 / 5 ** 0.5, rel=1e-6)


def test_select_prompts_keeps_the_top_values_per_channel_in_descending_order():
    prompts = torch.tensor([[[1.0, -4.0], [3.0, 0.0], [2.0, 5.0]]])
    out = select_prompts(torch.tensor([-2.0]), prompts, top=2)
    # scaled by -2: channel 0 -> (-2, -6, -4), channel 1 -> (8, 0, -10)
    assert out.tolist() == [[[-2.0, 8.0], [-4.0, 0.0]]]


def test_gated_sums_over_all_experts_and_over_one_steps_slice():
    outputs = torch.arange(12.0).reshape(1, 3, 4)  # (B, D, n experts)
    gate = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    expected_all = [sum(w * outputs[0, d, e].item() for e, w in enumerate(gate[0].tolist())) for d in range(3)]
    assert gated_sum(outputs, gate)[0].tolist() == pytest.approx(expected_all)
    expected_slice = [0.3 * outputs[0, d, 2].item() + 0.4 * outputs[0, d, 3].item() for d in range(3)]
    assert gated_sum(outputs, gate, 2, 4)[0].tolist() == pytest.approx(expected_slice)


def test_expert_consistency_is_the_mean_cosine_distance_to_earlier_steps_experts():
    # 2 images, 2-d outputs, 2 experts per step, 3 steps; step 2 (0-based) compares with steps 0 and 1
    e = torch.zeros(2, 2, 6)
    e[:, :, 0] = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # step 0, expert 0
    e[:, :, 2] = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # step 1, expert 0
    e[:, :, 4] = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # step 2, expert 0
    e[:, :, 1] = e[:, :, 3] = e[:, :, 5] = torch.tensor([[0.0, 1.0], [0.0, 1.0]])  # expert 1: identical
    # expert 0: vs step 0, the 2x2 cosines (1, 0; 1, 0) -> distances (0, 1; 0, 1), mean 0.5; vs step 1: 0
    expected = ((0.5 + 0.0) / 2 + 0.0) / 2
    assert expert_consistency(e, step=2, per_step=2).item() == pytest.approx(expected, abs=1e-6)


def test_score_embedding_adds_each_channels_largest_token_value_at_that_token():
    tokens = torch.tensor([[[1.0, 5.0], [3.0, -1.0], [2.0, 2.0]]])  # (B, tokens, channels), token 0 = CLS
    # channel 0: largest 3 at token 1; channel 1: largest 5 at token 0 (the CLS token takes part)
    assert score_embedding_term(tokens).tolist() == [[[0.0, 5.0], [3.0, 0.0], [0.0, 0.0]]]


@pytest.mark.parametrize("eval_feature", ["with_previous", "current"])
def test_dafc_two_domain_run(synth_root, tmp_path, eval_feature):
    from pad_bench.run import runner

    sets = tiny_sets(synth_root, **{"train.epochs": 2, "strategy.dafc_adapt_epochs": 1,
                                    "strategy.dafc_eval_feature": eval_feature})
    cfg = resolve_config(benchmark="synth", strategy="dafc", sets=sets)
    run_dir = runner.execute(cfg, tmp_path / "dafc", progress=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    fsc = eval_feature == "with_previous"
    carried = summary["params"][1]["carried_bytes"]
    assert set(carried) == {"model", "previous_state"}
    assert (carried["previous_state"] > 0) == fsc  # the entering model's weights, classifier excluded
    with open(run_dir / "diagnostics.csv") as f:
        drift = {r["diagnostic"] for r in csv.DictReader(f) if r["step"] == "2"} & {"drift_cosine", "drift_cka"}
    # with the previous model's feature appended, the step-2 test feature is twice as wide: no cosine drift
    assert drift == ({"drift_cka"} if fsc else {"drift_cosine", "drift_cka"})
    with open(run_dir / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    terms: dict = {}
    for r in rows:
        terms.setdefault((r["experience"], r["step"]), {})[r["term"]] = float(r["value"])
    first = {tuple(sorted(v)) for k, v in terms.items() if k[0] == "1"}
    second = {tuple(sorted(v)) for k, v in terms.items() if k[0] == "2"}
    assert first == {("id", "loss", "tri")}
    assert second == {("id", "loss", "tri"), ("consistency", "id", "loss", "tri")}  # adapt epoch, then all experts
    for v in terms.values():
        assert v["loss"] == pytest.approx(v["id"] + v["tri"] + v.get("consistency", 0.0), rel=1e-4)


def dafc_outputs(**strategy: object) -> dict[str, dict]:
    """Golden statistics of DAFC's model on clip-tiny (random init under INIT_SEED, NUM_CLASSES
    identities, the first step), as tests/test_models_golden.py computes them, without the train-mode
    BNNeck outputs and logits: batch norm over 2 images amplifies last-bit kernel differences (that
    file pins the BNNeck itself). `strategy` overrides strategy keys (the breakage checks)."""
    sets = {"model.name": "clip-tiny", "model.weights": "random", **{f"strategy.{k}": v for k, v in strategy.items()}}
    cfg = resolve_config(benchmark="synth", strategy="dafc", sets=sets)
    torch.manual_seed(INIT_SEED)
    net = load_strategy_class("dafc").build_model(cfg, None)
    net.grow_classifier(NUM_CLASSES)
    return {k: v for k, v in flat_statistics(net, golden_input(net)).items()
            if not k.startswith(("train:bn/", "train:logits/"))}


def test_dafc_model_output_matches_its_pin():
    assert GOLDEN.is_file(), f"pin DAFC's model once its output is right: {PIN}"
    assert mismatches(dafc_outputs(), json.loads(GOLDEN.read_text())) == []


@pytest.mark.parametrize("change", [{"dafc_top_prompts": 8}, {"dafc_score_embedding": False}],
                         ids=lambda c: next(iter(c)))
def test_a_changed_dafc_model_fails_its_pin(change):
    assert mismatches(dafc_outputs(**change), json.loads(GOLDEN.read_text()))


if __name__ == "__main__":
    if torch.backends.cpu.get_cpu_capability() != "DEFAULT":
        sys.exit(f"pin with torch's generic kernels: {PIN}")
    GOLDEN.write_text(json.dumps(dafc_outputs(), indent=1, sort_keys=True) + "\n")
    print(f"pinned DAFC's model in {GOLDEN}")
