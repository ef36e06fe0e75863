"""The method API: methods override only the hooks base.py documents, never Avalanche's private
template methods; the engine overrides those in one adapter, checked against the installed Avalanche."""
import inspect
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from avalanche.training.templates import SupervisedTemplate
from torch.utils.data import DataLoader

from pad_bench import paths
from pad_bench.config import resolve_config
from pad_bench.data.stream import build_benchmark
from pad_bench.registry import METHODS, load_strategy_class
from pad_bench.run.build import build_strategy, finalize
from pad_bench.training import base
from pad_bench.training.avalanche_adapter import AVALANCHE_VERSION, TEMPLATE_OVERRIDES, AvalancheAdapter
from pad_bench.training.base import ReIDStrategy
from pad_bench.training.reporting import ReportingMixin
from pad_bench.training.strategy_state import StrategyStateMixin

from conftest import tiny_sets

AVALANCHE_PRIVATE = re.compile(r"^\s*def (_before_\w*|_after_\w*|_train_exp)\s*\(", re.MULTILINE)


def documented_hooks() -> set[str]:
    """The names of the 'Hooks:' block of base.py's docstring: two-space indented lines up to a blank line."""
    block = base.__doc__.split("\nHooks:", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^  ([a-z_]+)\b", block, re.MULTILINE))


def overridden(cls: type) -> set[str]:
    """Public methods and properties of ReIDStrategy that `cls` or one of its own bases redefines."""
    names = set()
    for klass in cls.__mro__[:cls.__mro__.index(ReIDStrategy)]:
        for name, value in vars(klass).items():
            if name.startswith("_") or not hasattr(ReIDStrategy, name) or inspect.isclass(value):
                continue
            if callable(value) or isinstance(value, (property, classmethod, staticmethod)):
                names.add(name)
    return names


def test_the_documented_hooks_exist_and_include_the_new_stage_hook():
    hooks = documented_hooks()
    assert {"finalize_config", "before_training_epochs", "experience_settings", "kd_active"} <= hooks
    assert all(hasattr(ReIDStrategy, h) for h in hooks), hooks - set(dir(ReIDStrategy))


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_overrides_only_documented_hooks(method):
    assert overridden(load_strategy_class(method)) - documented_hooks() == set()


def test_an_undocumented_override_is_caught():
    class Sneaky(ReIDStrategy):
        def make_optimizer(self, **kwargs):
            pass

        def compute_loss(self, out, labels):
            pass

    assert overridden(Sneaky) - documented_hooks() == {"make_optimizer"}


def test_no_method_folder_defines_an_avalanche_private_method():
    assert AVALANCHE_PRIVATE.search("    def _before_training_exp(self, **kwargs):")
    assert AVALANCHE_PRIVATE.search("    def _train_exp(self, experience):")
    offenders = [str(p) for p in Path(paths.STRATEGIES_DIR).rglob("*.py") if AVALANCHE_PRIVATE.search(p.read_text())]
    assert offenders == []


def template_overrides(cls: type) -> set[str]:
    """Methods of Avalanche's SupervisedTemplate that `cls` itself defines (dunder methods aside)."""
    return {n for n, v in vars(cls).items()
            if not n.startswith("__") and callable(v) and hasattr(SupervisedTemplate, n)}


def test_the_adapter_is_the_only_class_that_overrides_avalanche_private_methods():
    private = {n for n in TEMPLATE_OVERRIDES if n.startswith("_")}
    assert {n for n in template_overrides(AvalancheAdapter) if n.startswith("_")} == private
    for cls in (ReIDStrategy, ReportingMixin, StrategyStateMixin):
        assert not {n for n in template_overrides(cls) if n.startswith("_")}, cls
    engine = set().union(*map(template_overrides, (AvalancheAdapter, ReIDStrategy, ReportingMixin, StrategyStateMixin)))
    assert engine == set(TEMPLATE_OVERRIDES)  # each one listed, so that the next test checks it


def test_the_installed_avalanche_still_has_the_template_methods_the_engine_overrides():
    assert version("avalanche-lib") == AVALANCHE_VERSION
    for name, params in TEMPLATE_OVERRIDES.items():
        original = getattr(SupervisedTemplate, name, None)
        assert original is not None, f"avalanche-lib {version('avalanche-lib')} has no {name}"
        assert tuple(inspect.signature(original).parameters) == params, name


def test_batch_fields_are_read_by_name_in_the_order_the_stream_collates(synth_root):
    cfg = resolve_config(benchmark="synth", strategy="finetune",
                         sets=tiny_sets(synth_root, **{"train.data_path": "cached"}))
    finalize(cfg)
    bench = build_benchmark(cfg, family="clip")
    strategy = build_strategy(cfg, bench)
    assert strategy.device_input is bench.device_input is not None  # handed over at construction
    test = bench.test_stream[1].dataset.eval()
    strategy.mbatch = list(next(iter(DataLoader(test, batch_size=len(test)))))
    assert strategy.mb_y.tolist() == [int(t) for t in test.targets]
    assert strategy.mb_camid.tolist() == list(test.camid)
    assert strategy.mb_is_query.tolist() == list(test.is_query) and 0 < sum(test.is_query) < len(test)
    assert strategy.mb_domain.tolist() == [1] * len(test)  # the second training domain's test set


@pytest.mark.parametrize("method, kd", [("finetune", [False, False]), ("lstkc", [False, True]),
                                        ("dkp", [False, True])])
def test_distillation_is_reported_from_the_plugins_that_declare_it(synth_root, method, kd):
    cfg = resolve_config(benchmark="synth", strategy=method, sets=tiny_sets(synth_root))
    finalize(cfg)
    rows = build_strategy(cfg, build_benchmark(cfg, family="clip")).plan()
    assert [r["kd"] for r in rows] == kd
    assert "new_slots" not in rows[0]  # a key of PAD's own settings, not the base's
