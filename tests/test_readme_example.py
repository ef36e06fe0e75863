"""The README's "Add a baseline" example must work as written."""
import json
import re

import pytest

from pad_bench.config import resolve_config
from pad_bench.paths import PROJECT_ROOT
from pad_bench.run.runner import execute

from conftest import tiny_sets


@pytest.mark.slow
def test_readme_baseline_example_runs(synth_root, tmp_path, monkeypatch):
    readme = (PROJECT_ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:python|yaml)\n(# strategies/(\S+)\n.*?)```", readme, flags=re.S)
    assert {name for _, name in blocks} == {"l2anchor/strategy.py", "l2anchor/l2anchor.yaml"}
    (tmp_path / "l2anchor").mkdir()
    for text, name in blocks:
        (tmp_path / name).write_text(text)
    monkeypatch.setenv("PAD_BENCH_STRATEGY_PATH", str(tmp_path))
    cfg = resolve_config(benchmark="synth", strategy="l2anchor", sets=tiny_sets(synth_root))
    run = execute(cfg, tmp_path / "run", progress=False)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["strategy"] == "l2anchor"
    assert summary["params"][1]["carried_bytes"]["anchor"] > 0  # declared state is accounted
