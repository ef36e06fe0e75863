"""Tests parametrised over the registries: every strategy resolves on every benchmark and profile it
declares, and a method folder copied under a new name runs end to end."""
import json
import shutil

import pytest

from pad_bench.config import list_benchmarks, list_strategies, resolve_config, strategy_layers
from pad_bench.paths import STRATEGIES_DIR

from conftest import tiny_sets


def _profiles(strategy: str) -> list[str]:
    return sorted({name for layer in strategy_layers(strategy) for name in layer.profiles})


CASES = [(s, b, p) for s in list_strategies() for b in list_benchmarks() for p in [None] + _profiles(s)]


@pytest.mark.parametrize("strategy, benchmark, profile", CASES)
def test_every_strategy_benchmark_and_profile_resolves(strategy, benchmark, profile):
    if benchmark == "synth" and profile == "code":
        pytest.skip("the synthetic sets have one split: the code reading is combined as 'code,tiny'")
    cfg = resolve_config(benchmark=benchmark, strategy=strategy, profile=profile)
    assert cfg["strategy"]["name"] == strategy and cfg["benchmark"]["name"] == benchmark
    assert cfg["benchmark"]["domains"] and cfg["model"]["name"]
    assert (STRATEGIES_DIR / cfg["strategy"]["method"] / "strategy.py").is_file()


@pytest.mark.slow
def test_a_method_folder_copied_under_a_new_name_runs(synth_root, tmp_path, monkeypatch):
    """Adding a method is copying a folder: rename its YAML and its registered name, nothing else."""
    copy = tmp_path / "methods" / "lstkc_copy"
    shutil.copytree(STRATEGIES_DIR / "lstkc", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "lstkc.yaml").rename(copy / "lstkc_copy.yaml")
    module = copy / "strategy.py"
    module.write_text(module.read_text().replace('register_strategy("lstkc")', 'register_strategy("lstkc_copy")'))
    monkeypatch.setenv("PAD_BENCH_STRATEGY_PATH", str(tmp_path / "methods"))

    from pad_bench.registry import load_strategy_class
    from pad_bench.run import runner

    cfg = resolve_config(benchmark="synth", strategy="lstkc_copy", sets=tiny_sets(synth_root))
    assert cfg["strategy"]["method"] == "lstkc_copy"
    cls = load_strategy_class("lstkc_copy")
    assert cls.__module__ == "pad_bench.strategies.lstkc_copy.strategy"
    assert load_strategy_class("lstkc").__module__ == "pad_bench.strategies.lstkc.strategy"  # untouched
    run = runner.execute(cfg, tmp_path / "run", progress=False)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["strategy"] == "lstkc_copy" and [t["step"] for t in summary["timing"]] == [1, 2]
    assert summary["params"][1]["fusion_alpha"] is not None  # the copy's own E-LTKC plugin ran
