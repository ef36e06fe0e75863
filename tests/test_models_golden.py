"""Golden outputs of every registered model, so that a silent change of one (architecture,
initialisation, forward) shows up: random init under a fixed seed, a fixed input, and a few
statistics (shape, sum, mean of |x|, first entries) of every output tensor in eval and train mode
and of CLIP's text features, pinned in tests/golden/models.json.

Pinning is a conscious act: after checking that a model's change is intended (or adding a model),
    PYTHONPATH=. python tests/test_models_golden.py NAME [NAME ...]
rewrites the pins of the named models (all of them with no name).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from pad_bench.models import create_model, list_models, model_config

GOLDEN = Path(__file__).with_name("golden") / "models.json"
REGENERATE = "PYTHONPATH=. python tests/test_models_golden.py"
INIT_SEED, INPUT_SEED, BATCH, NUM_CLASSES, N_HEAD = 0, 1, 2, 5, 4
REL = 1e-5  # of the value, or of the mean |x| where the value is smaller (a sum near 0, a tiny entry)


PROMPTS = ("a photo of a person", "a person in a red coat and blue jeans")


def flat_statistics(model: torch.nn.Module, x: torch.Tensor) -> dict[str, dict]:
    """statistics() of every output tensor (one level of dicts flattened) in eval and in train mode,
    each forward under the seed INPUT_SEED: keys 'eval:embedding', 'train:bn/<tap>', ..."""
    flat = {}
    for mode in ("eval", "train"):
        model.train(mode == "train")
        torch.manual_seed(INPUT_SEED)
        with torch.no_grad():
            out = model(x)
        for key, value in out.items():
            for sub, t in value.items() if isinstance(value, dict) else [("", value)]:
                flat[f"{mode}:{key}/{sub}" if sub else f"{mode}:{key}"] = statistics(t)
    return flat


def outputs(name: str) -> dict[str, dict]:
    """The statistics of every output tensor of model `name` in eval and in train mode (batch
    statistics, stochastic depth drawn under a fixed seed), keyed 'eval:embedding', 'train:bn/<tap>', ...,
    and for CLIP models the text features of PROMPTS ('text:features'). CLIP always builds its text
    tower, so building it with text_tower=True leaves the image side's initialisation as it is."""
    clip = model_config(name)["family"] == "clip"
    torch.manual_seed(INIT_SEED)
    model = create_model(name, num_classes=NUM_CLASSES, weights="random", text_tower=clip)
    flat = flat_statistics(model, golden_input(model))
    if clip:
        bb = model.backbone
        tokens = bb.tokenize(PROMPTS)
        with torch.no_grad():
            flat["text:features"] = statistics(bb.encode_prompt_embeddings(bb.embed_tokens(tokens), tokens))
    return flat


def golden_input(model: torch.nn.Module) -> torch.Tensor:
    return torch.randn(BATCH, 3, *model.image_size, generator=torch.Generator().manual_seed(INPUT_SEED))


def statistics(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "sum": t.sum().item(), "mean_abs": t.abs().mean().item(),
            "head": t.flatten()[:N_HEAD].tolist()}


def read_pins() -> dict[str, dict]:
    return json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}


def test_every_pin_names_a_registered_model():
    assert set(read_pins()) - set(list_models()) == set()


# The full-size models take a few seconds each on CPU (build and two forwards).
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if model_config(n).get("weights_required")
                                  else n for n in list_models()])
def test_output_matches_its_pin(name):
    pins = read_pins()
    if name not in pins:
        pytest.fail(f"model '{name}' has no golden output in tests/golden/models.json; "
                    f"once its output is right, pin it: {REGENERATE} {name}")
    assert_matches_pin(outputs(name), pins[name])


def assert_matches_pin(got: dict[str, dict], want: dict[str, dict]) -> None:
    """Every output's statistics within REL of its pin (and the same outputs)."""
    assert sorted(got) == sorted(want)
    for key, w in want.items():
        g, n = got[key], torch.Size(want[key]["shape"]).numel()
        assert g["shape"] == w["shape"], key
        assert abs(g["mean_abs"] - w["mean_abs"]) <= REL * w["mean_abs"], key
        assert abs(g["sum"] - w["sum"]) <= REL * max(abs(w["sum"]), n * w["mean_abs"]), key
        for a, b in zip(g["head"], w["head"], strict=True):
            assert abs(a - b) <= REL * max(abs(b), w["mean_abs"]), f"{key} head: {g['head']} != {w['head']}"


if __name__ == "__main__":
    names = sys.argv[1:] or list_models()
    pins = {**read_pins(), **{name: outputs(name) for name in names}}
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text("{\n" + ",\n".join(  # one line per output tensor
        f" {json.dumps(name)}: {{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in pins[name].items())
        + "\n }" for name in sorted(pins)) + "\n}\n")
    print(f"pinned {', '.join(names)} in {GOLDEN}")
