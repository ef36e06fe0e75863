"""Golden outputs of every registered model, so that a silent change of one (architecture,
initialisation, forward) shows up: random init under a fixed seed, a fixed input, and a few
statistics (shape, sum, mean of |x|, first entries) of every output tensor in eval and train mode
and of CLIP's text features, pinned in tests/golden/models.json.

Pinning is a conscious act: after checking that a model's change is intended (or adding a model),
    ATEN_CPU_CAPABILITY=default PYTHONPATH=. python tests/test_models_golden.py NAME [NAME ...]
rewrites the pins of the named models (all of them with no name). Pins are made with torch's generic
kernels so that they do not lean on one CPU's vector units; the test compares within tolerances that
float32 rounding explains (TOLERANCES), on any CPU, and still fails for the deliberate changes in BREAKAGES.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from pad_bench.models import create_model, list_models, model_config

GOLDEN = Path(__file__).with_name("golden") / "models.json"
REGENERATE = "ATEN_CPU_CAPABILITY=default PYTHONPATH=. python tests/test_models_golden.py"
INIT_SEED, INPUT_SEED, BATCH, NUM_CLASSES, N_HEAD = 0, 1, 2, 5, 4
# Relative tolerance of every statistic, against max(|pinned value|, mean |x|) (a sum near 0 or a tiny
# entry is judged on the tensor's scale). float32 rounds to 6e-8 relative; a forward accumulates it over
# thousands of multiply-adds whose order differs between AVX-512, AVX2 and generic kernels (and MKL's own
# dispatch), which across those kernels moved well-conditioned outputs by at most 1.6e-5: 1e-4 holds that
# with a 6x margin. Train-mode BNNeck outputs and the logits computed from them are ill-conditioned: with a
# batch of 2, batch norm divides the difference of two nearly equal features by its own size, so a 6e-8
# rounding of the features becomes up to 1.6e-3 of the output (measured, ResNet-50); 1e-2 holds that.
TOLERANCES = {"train:bn/": 1e-2, "train:logits/": 1e-2, "": 1e-4}  # the first key prefix that matches


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


def outputs(name: str, **overrides) -> dict[str, dict]:
    """The statistics of every output tensor of model `name` in eval and in train mode (batch
    statistics, stochastic depth drawn under a fixed seed), keyed 'eval:embedding', 'train:bn/<tap>', ...,
    and for CLIP models the text features of PROMPTS ('text:features'). CLIP always builds its text
    tower, so building it with text_tower=True leaves the image side's initialisation as it is.
    `overrides` change keys of the model's config (the breakage checks)."""
    clip = model_config(name)["family"] == "clip"
    torch.manual_seed(INIT_SEED)
    model = create_model(name, num_classes=NUM_CLASSES, weights="random", text_tower=clip, **overrides)
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


def tolerance(key: str) -> float:
    return next(tol for prefix, tol in TOLERANCES.items() if key.startswith(prefix))


def mismatches(got: dict[str, dict], want: dict[str, dict]) -> list[str]:
    """The statistics of `got` that differ from the pins `want` by more than their tolerance."""
    if sorted(got) != sorted(want):
        return [f"outputs {sorted(got)} != pinned {sorted(want)}"]
    bad = []
    for key, w in want.items():
        g, rel, n = got[key], tolerance(key), torch.Size(w["shape"]).numel()
        if g["shape"] != w["shape"]:
            bad.append(f"{key} shape {g['shape']} != {w['shape']}")
            continue
        scale = w["mean_abs"]
        checks = [("mean_abs", g["mean_abs"], w["mean_abs"], scale), ("sum", g["sum"], w["sum"], n * scale)]
        checks += [(f"head[{i}]", a, b, scale) for i, (a, b) in enumerate(zip(g["head"], w["head"], strict=True))]
        bad += [f"{key} {what}: {a!r} != {b!r}" for what, a, b, floor in checks
                if abs(a - b) > rel * max(abs(b), floor)]
    return bad


def assert_matches_pin(got: dict[str, dict], want: dict[str, dict]) -> None:
    assert mismatches(got, want) == []


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


# Changes of a model's config that the tolerances must still catch: GeM's p, CLIP's activation,
# the ViT's stochastic depth (train mode only), the text tower's attention heads (text features only).
BREAKAGES = [("resnet-tiny", {"gem_p": 3.5}), ("clip-tiny", {"quick_gelu": False}),
             ("vit-tiny", {"drop_path": 0.2}), ("clip-tiny", {"text": {"heads": 1}})]


@pytest.mark.parametrize(("name", "change"), BREAKAGES, ids=lambda v: v if isinstance(v, str) else next(iter(v)))
def test_a_changed_model_fails_its_pin(name, change):
    assert mismatches(outputs(name, **change), read_pins()[name])


if __name__ == "__main__":
    if torch.backends.cpu.get_cpu_capability() != "DEFAULT":
        sys.exit(f"pin with torch's generic kernels: {REGENERATE} {' '.join(sys.argv[1:])}".rstrip())
    names = sys.argv[1:] or list_models()
    pins = {**read_pins(), **{name: outputs(name) for name in names}}
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text("{\n" + ",\n".join(  # one line per output tensor
        f" {json.dumps(name)}: {{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in pins[name].items())
        + "\n }" for name in sorted(pins)) + "\n}\n")
    print(f"pinned {', '.join(names)} in {GOLDEN}")
