"""Every strategy's `clip` profile (its own or one it inherits) builds on clip-tiny and trains: one
epoch on each of two tiny synthetic domains, so that the later domains' code (distillation, fusion,
rehearsal) runs on CLIP's taps too."""
import pytest
import torch

from pad_bench.config import list_strategies, resolve_config, strategy_layers
from pad_bench.models.clip import CLIPBackbone

from conftest import tiny_sets

CLIP_PROFILED = [s for s in list_strategies() if any("clip" in layer.profiles for layer in strategy_layers(s))]

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:No loggers specified")]


def test_the_inherited_profiles_are_found():
    assert {"lstkc", "dkp", "lstkcpp", "dkppp", "paema"} <= set(CLIP_PROFILED)


def _clip_tiny_strategy(method: str, synth_root):
    from avalanche.training.plugins import EvaluationPlugin

    from pad_bench.data.stream import build_benchmark
    from pad_bench.models import model_family
    from pad_bench.run.build import build_strategy, finalize

    cfg = resolve_config(benchmark="synth", strategy=method, profile="clip",
                         sets=tiny_sets(synth_root, **{"train.num_workers": 0, "model.name": "clip-tiny"}))
    if "rehearser_batch" in cfg["strategy"]:  # the tiny stream has 8 identities, the rehearser's recipe 32 x 4
        cfg["strategy"].update(rehearser_batch=[4, 2], rehearser_iters=2)
    cls = finalize(cfg)
    bench = build_benchmark(cfg, family=model_family(cfg["model"]["name"]), union=cls.sees_union)
    return cfg, build_strategy(cfg, bench, evaluator=EvaluationPlugin(loggers=[])), bench


def _params(model) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("method", CLIP_PROFILED)
def test_clip_profile_builds_and_trains_on_clip_tiny(method, synth_root):
    cfg, strategy, bench = _clip_tiny_strategy(method, synth_root)
    assert (cfg["strategy"]["optimizer"], cfg["strategy"]["lr"]) == ("adam", 5e-6)  # the CLIP-ReID recipe
    assert any(isinstance(m, CLIPBackbone) for m in strategy.model.modules())
    for exp in bench.train_stream[:2]:
        before = _params(strategy.model)
        strategy.train(exp, eval_streams=[])
        assert torch.isfinite(strategy.loss), f"{method}: non-finite loss in experience {exp.current_experience + 1}"
        after = _params(strategy.model)
        tower = [k for k in before if k.endswith("resblocks.0.attn.in_proj_weight") and k in after]
        assert tower and not torch.equal(before[tower[0]], after[tower[0]]), f"{method}: the image tower did not train"
        assert all(torch.isfinite(t).all() for t in after.values())
