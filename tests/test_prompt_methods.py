"""L2P, DualPrompt and CODA-Prompt: the shared prompt maths against hand computations on tiny tensors,
the prompt injection of the ViT and CLIP towers, and one epoch on two synthetic domains each."""
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pad_bench.config import resolve_config
from pad_bench.errors import UserError
from pad_bench.models import create_model
from pad_bench.models.attention import KeptPrompts, KVPrefix
from pad_bench.models.prompts import (CodaPool, batchwise_ids, component_weights, cosine_topk, gram_schmidt_rows,
                                      key_pull, ortho_penalty)
from pad_bench.registry import load_strategy_class

from conftest import tiny_sets
from test_models_golden import INIT_SEED, NUM_CLASSES, assert_matches_pin, flat_statistics, golden_input

PROMPT_GOLDEN = Path(__file__).with_name("golden") / "prompt_methods.json"
GOLDEN_CASES = [f"{m}:{tower}" for m in ("l2p", "dualprompt", "coda-prompt") for tower in ("clip-tiny", "vit-tiny")]


def test_cosine_topk_ranks_keys_by_cosine_not_by_dot_product():
    q = torch.tensor([[1.0, 0.0]])
    keys = torch.tensor([[10.0, 10.0], [0.5, 0.0], [0.0, 1.0]])  # cos 0.707, 1, 0 (dot 10, 0.5, 0)
    assert cosine_topk(q, keys, 2).tolist() == [[1, 0]]


def test_batchwise_ids_take_the_most_picked_ids_for_every_image_ties_to_the_lower_id():
    idx = torch.tensor([[3, 1], [3, 2], [2, 3]])  # counts: 1 -> 1, 2 -> 2, 3 -> 3
    assert batchwise_ids(idx, 2).tolist() == [[3, 2]] * 3
    tie = torch.tensor([[4, 0], [0, 4], [1, 2]])  # 0 and 4 twice, 1 and 2 once
    assert batchwise_ids(tie, 2).tolist() == [[0, 4]] * 3


def test_key_pull_is_the_summed_cosine_of_the_picks_over_the_batch():
    q = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    idx = torch.tensor([[0, 1], [1, 1]])
    # image 0: cos 0.6 + 0.8; image 1: 1 + 1; (1.4 + 2) / 2 = 1.7
    assert float(key_pull(q, keys, idx)) == pytest.approx(1.7, rel=1e-6)


def test_ortho_penalty_is_the_mean_squared_gram_minus_identity():
    assert float(ortho_penalty(torch.eye(3))) == 0.0
    t = torch.tensor([[1.0, 1.0], [0.0, 1.0]])  # t tᵀ = [[2, 1], [1, 1]] -> minus I: 1, 1, 1, 0
    assert float(ortho_penalty(t)) == pytest.approx(0.75)


def test_component_weights_are_cosines_of_the_attended_query_to_each_key():
    q = torch.tensor([[1.0, 2.0]])
    attn = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    key = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # q ⊙ A_0 = (1, 0): cos 1;  q ⊙ A_1 = (1, 2): cos 1/√5
    assert component_weights(q, key, attn)[0].tolist() == pytest.approx([1.0, 1 / math.sqrt(5)], rel=1e-6)


def test_gram_schmidt_redraws_one_slice_orthonormal_to_every_row_before_it():
    torch.manual_seed(0)
    rows = torch.rand(6, 8)
    rows[:2] = torch.eye(8)[:2] * torch.tensor([[2.0], [0.5]])  # orthogonal (not unit) earlier rows
    out = gram_schmidt_rows(rows, 2, 4)
    assert torch.equal(out[:2], rows[:2]) and torch.equal(out[4:], rows[4:])
    assert out[2:4].norm(dim=1).tolist() == pytest.approx([1.0, 1.0], rel=1e-5)
    gram = out[:4] @ out[2:4].t()  # rows 0..3 against the new rows 2, 3
    assert gram[:2].abs().max() < 1e-5 and float(gram[2, 1]) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(UserError, match="pool_size"):
        gram_schmidt_rows(torch.rand(10, 4), 0, 5)


def test_gram_schmidt_projects_the_fresh_draw_on_each_earlier_row_as_the_reference():
    rows = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    torch.manual_seed(3)
    v = torch.randn(3)
    torch.manual_seed(3)
    out = gram_schmidt_rows(rows, 2, 3)
    # classical: u = v − (v·r0) r0 − (v·r1)/2 r1, from the draw v (not from the partly projected vector)
    u = v - v[0] * rows[0] - (v[0] + v[1]) / 2 * rows[1]
    assert out[2].tolist() == pytest.approx((u / u.norm()).tolist(), rel=1e-5, abs=1e-6)


def test_coda_training_detaches_earlier_slices_and_evaluation_uses_every_slice_so_far():
    torch.manual_seed(0)
    pool = CodaPool(pool_size=6, length=2, dim=4, key_dim=8, layers=[0], n_tasks=3)
    pool.start_task(0)
    pool.start_task(1)
    key, attn, prompt = pool.components(0, train=True)
    assert key.shape == (4, 8) and prompt.shape == (4, 2, 4)
    (key.sum() + attn.sum() + prompt.sum()).backward()
    assert pool.key.grad[0, :2].abs().sum() == 0 and pool.key.grad[0, 2:4].abs().min() == 1
    assert pool.key.grad[0, 4:].abs().sum() == 0  # a later domain's slice is unused
    assert pool.components(0, train=False)[0].shape == (4, 8)


def _tower(name: str):
    torch.manual_seed(0)
    return create_model(name, num_classes=0, weights="random").backbone.eval()


@pytest.mark.parametrize("name", ["clip-tiny", "vit-tiny"])
def test_kept_prompts_stay_in_the_sequence_and_prefix_prompts_reach_the_output(name):
    tower = _tower(name)
    x = torch.randn(2, 3, 64, 32)
    plain = tower(x)[tower.head_taps[0]]
    seen = []

    def kept(i, tokens):
        seen.append(tokens.shape[1])
        return KeptPrompts(torch.randn(2, 3, tower.width)) if i == 0 else None

    assert not torch.allclose(tower(x, prompter=kept)[tower.head_taps[0]], plain)
    assert seen == [33, 36, 36]  # CLS + 32 patches, then 3 prompts kept in blocks 1 and 2
    prefix = tower(x, prompter=lambda i, t: KVPrefix(torch.randn(2, 4, tower.width)))
    assert not torch.allclose(prefix[tower.head_taps[0]], plain)


def _strategy_model(method: str, synth_root, **sets):
    cfg = resolve_config(benchmark="synth", strategy=method, sets=tiny_sets(synth_root, **sets))
    cls = load_strategy_class(cfg["strategy"]["method"])
    torch.manual_seed(0)
    return cfg, cls.build_model(cfg, None)


@pytest.mark.parametrize("method", ["l2p", "dualprompt", "coda-prompt"])
def test_prompt_methods_freeze_the_tower_and_its_query(method, synth_root):
    cfg, net = _strategy_model(method, synth_root)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("backbone.method.", "necks.", "classifiers.")) for n in trainable)
    net.train()
    assert not net.backbone.trunk.training  # frozen tower: no drop path, as the references
    out = net(torch.randn(4, 3, 64, 32))
    assert set(out["prompt_terms"]) == ({"key_pull"} if method != "coda-prompt" else set())


def test_dualprompt_trains_the_domain_prompt_and_picks_by_key_at_test(synth_root):
    _, net = _strategy_model("dualprompt", synth_root)
    prompts = net.backbone.method
    prompts.start_task(1)
    net.train()
    net(torch.randn(4, 3, 64, 32))["proj"].sum().backward()
    grad = prompts.pool.prompt.grad
    assert grad[:, 1].abs().sum() > 0 and grad[:, 0].abs().sum() == 0 and grad[:, 2:].abs().sum() == 0
    q = torch.randn(3, prompts.pool.key.shape[1])
    expected = (F.normalize(q, dim=1) @ F.normalize(prompts.pool.key.detach(), dim=1).t()).argmax(1)
    assert prompts.pool.select(q, batchwise=False)[:, 0].tolist() == expected.tolist()


def test_l2p_selection_and_surrogate_follow_the_keys(synth_root):
    _, net = _strategy_model("l2p", synth_root, **{"strategy.batchwise_prompt": "never"})
    prompts = net.backbone.method
    q = torch.randn(3, prompts.pool.key.shape[1])
    cos = F.normalize(q, dim=1) @ F.normalize(prompts.pool.key.detach(), dim=1).t()
    top = cos.topk(5, dim=1)
    terms = prompts(q, True).terms
    assert float(terms["key_pull"].detach()) == pytest.approx(float(top.values.sum() / 3), rel=1e-5)


@pytest.mark.parametrize("method", ["l2p", "dualprompt", "coda-prompt"])
def test_prompt_method_trains_one_epoch_on_two_synthetic_domains(method, synth_root, tmp_path):
    from pad_bench.run import runner

    cfg = resolve_config(benchmark="synth", strategy=method, sets=tiny_sets(synth_root))
    run_dir = runner.execute(cfg, tmp_path / "run", progress=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [e["domain"] for e in summary["experiences"]] == ["synth_d1", "synth_d2"]
    final = summary["mAP"]["final"]
    assert 0 <= final["seen"]["synth_d1"] <= 100 and 0 <= final["unseen"]["synth_u1"] <= 100
    assert summary["experiences"][1]["unfreeze"] == "partial"
    scale = 4 * 2 / 256 if cfg["strategy"]["lr_scaling"] == "batch" else 1.0  # P·K = 4·2 in tiny_sets
    assert summary["experiences"][0]["lr"] == {"all": pytest.approx(cfg["strategy"]["lr"] * scale)}
    terms = {line.split(",")[4] for line in (run_dir / "losses.csv").read_text().splitlines()[1:]}
    assert ("key_pull" in terms) == (method != "coda-prompt") and {"id", "tri"} <= terms


@pytest.mark.parametrize("method, key, value, match", [
    ("dualprompt", "e_prompt_layers", [2, 3], "e_prompt_layers"),  # clip-tiny has blocks 0-2
    ("dualprompt", "pool_size", 1, "pool_size"),  # one E-prompt per domain
    ("coda-prompt", "pool_size", 65, r"\[5, 64\]"),  # 5 synthetic domains; clip-tiny's key width is 64
    ("l2p", "top_k", 11, "top_k"),
])
def test_bad_prompt_settings_are_refused_when_the_config_is_finalised(method, key, value, match):
    from pad_bench.run.build import finalize

    cfg = resolve_config(benchmark="synth", strategy=method, sets={f"strategy.{key}": value})
    with pytest.raises(UserError, match=match):  # the runner finalises before it writes the run directory
        finalize(cfg, check_data=False)


@pytest.mark.parametrize("method, key, value, match", [
    ("l2p", "lr_schedule", "step", "strategy.lr_schedule is 'step'; it must be one of constant, cosine"),
    ("coda-prompt", "lr_scaling", "sqrt", "strategy.lr_scaling is 'sqrt'; it must be one of batch, none"),
])
def test_bad_lr_rules_are_refused_by_the_declarations(method, key, value, match):
    with pytest.raises(UserError, match=match):
        resolve_config(benchmark="synth", strategy=method, sets={f"strategy.{key}": value})


def test_lr_rules_follow_the_references():
    class Stub(load_strategy_class("coda_prompt")):
        def __init__(self, hp, epochs):
            self.hp, self.train_epochs = hp, epochs

    cosine = Stub(Stub.Params({"lr_schedule": "cosine"}), 3)
    # utils/schedulers.py: cos(99π·e / (200·(E − 1)))
    assert [cosine.lr_factor(e) for e in range(3)] == pytest.approx(
        [1.0, math.cos(99 * math.pi / 400), math.cos(99 * math.pi / 200)])
    assert Stub(Stub.Params({"lr_schedule": "constant"}), 3).lr_factor(2) == 1.0


def prompted_outputs(case: str) -> dict[str, dict]:
    """Golden statistics of a prompt method's model (its `tiny` profile on `tower`, random init under
    INIT_SEED, the first domain started, NUM_CLASSES identities), outputs as tests/test_models_golden.py
    but without the train-mode BNNeck outputs: batch statistics of 2 images whose features differ little
    amplify the last-bit differences between CPU kernels (2.5e-4 relative seen with ATEN_CPU_CAPABILITY=default);
    the BNNeck itself is pinned there."""
    method, tower = case.split(":")
    cfg = resolve_config(benchmark="synth", strategy=method, sets={"model.name": tower, "model.weights": "random"})
    torch.manual_seed(INIT_SEED)
    net = load_strategy_class(cfg["strategy"]["method"]).build_model(cfg, None)
    start = getattr(net.backbone.method, "start_task", None)
    if start is not None:
        start(0)
    net.grow_classifier(NUM_CLASSES)
    return {k: v for k, v in flat_statistics(net, golden_input(net)).items()
            if not k.startswith(("train:bn/", "train:logits/"))}


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_prompted_model_output_matches_its_pin(case):
    pins = json.loads(PROMPT_GOLDEN.read_text())
    assert case in pins, f"pin it once right: PYTHONPATH=. python tests/test_prompt_methods.py {case}"
    assert_matches_pin(prompted_outputs(case), pins[case])


if __name__ == "__main__":
    cases = sys.argv[1:] or GOLDEN_CASES
    pins = json.loads(PROMPT_GOLDEN.read_text()) if PROMPT_GOLDEN.is_file() else {}
    pins.update({case: prompted_outputs(case) for case in cases})
    PROMPT_GOLDEN.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
    print(f"pinned {', '.join(cases)} in {PROMPT_GOLDEN}")
