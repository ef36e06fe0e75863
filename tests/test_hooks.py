"""The method API: methods override only the hooks base.py documents, never Avalanche's private
template methods; the engine overrides those in one adapter, checked against the installed Avalanche."""
import inspect
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from avalanche.training.templates import SupervisedTemplate

from pad_bench import paths
from pad_bench.registry import METHODS, load_strategy_class
from pad_bench.training import base
from pad_bench.training.avalanche_adapter import AVALANCHE_VERSION, PRIVATE_OVERRIDES, AvalancheAdapter
from pad_bench.training.base import ReIDStrategy
from pad_bench.training.reporting import ReportingMixin
from pad_bench.training.strategy_state import StrategyStateMixin

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


def test_the_adapter_is_the_only_class_that_overrides_avalanche_private_methods():
    def private_overrides(cls):
        return {n for n, v in vars(cls).items()
                if n.startswith("_") and not n.startswith("__") and callable(v) and hasattr(SupervisedTemplate, n)}

    assert private_overrides(AvalancheAdapter) == set(PRIVATE_OVERRIDES)
    for cls in (ReIDStrategy, ReportingMixin, StrategyStateMixin):
        assert private_overrides(cls) == set(), cls


def test_the_installed_avalanche_still_has_the_private_methods_the_adapter_overrides():
    assert version("avalanche-lib") == AVALANCHE_VERSION
    for name, params in PRIVATE_OVERRIDES.items():
        original = getattr(SupervisedTemplate, name, None)
        assert original is not None, f"avalanche-lib {version('avalanche-lib')} has no {name}"
        assert tuple(inspect.signature(original).parameters) == params, name
