"""The default synthetic world still behaves like lifelong ReID (docs/synthetic.md#world-criteria).

A reduced world: the default world's first two training domains and one unseen domain at their full
sizes, the default pretrained clip-tiny, one seed of fine-tune and
joint at the `tiny` profiles, exactly as `pad-bench run` makes them. W1-W4 are checked by
benchmarks/world_criteria.py, the script that checks the full world. A change to the renderer, the
corpus, the pretraining or the tiny recipe that makes training stop paying, forgetting vanish or
joint stop being an upper bound fails here. It takes about 6 CPU-minutes, more than `make test`'s
budget allows, so it is marked `world`: `make test-world` runs it, and CI runs it after `make test`.
"""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pad_bench.cli import main
from pad_bench.results.runs import load_run
from pad_bench.synthetic.assets import DEFAULT_SYNTH
from pad_bench.synthetic.domains import generate
from benchmark_scripts import world_criteria

pytestmark = [pytest.mark.slow, pytest.mark.world]

REDUCED = replace(DEFAULT_SYNTH, n_train_domains=2, n_unseen_domains=1)


@pytest.fixture(scope="module")
def reduced_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    generate(root / "data", REDUCED)
    sets = {"benchmark.data_root": str(root / "data"), "benchmark.domains": ["synth_d1", "synth_d2"],
            "benchmark.unseen": ["synth_u1"]}
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    for strategy in ("finetune", "joint"):
        assert main(["run", "-b", "synth", "-s", strategy, "--seed", "0", "--out", str(root / "runs"),
                     "--name", strategy, "--no-progress", *args]) == 0
    return [load_run(root / "runs" / s) for s in ("finetune", "joint")]


def test_the_reduced_world_meets_w1_to_w3(reduced_runs):
    verdicts = {c.name.split()[0]: c for c in world_criteria.check(reduced_runs)}
    for name in ("W1", "W2", "W3"):
        assert verdicts[name].passed, verdicts[name].line()


@pytest.mark.xfail(strict=True, reason="the reduced world's unseen domain has the full world's third-domain "
                                       "style, and joint on two domains does not generalise to it (W4 holds on "
                                       "the full world: docs/synthetic.md#world-version-2-measured); a pass "
                                       "means the world changed and the docs must say how")
def test_the_reduced_world_meets_w4(reduced_runs):
    verdict = {c.name.split()[0]: c for c in world_criteria.check(reduced_runs)}["W4"]
    assert verdict.passed, verdict.line()
