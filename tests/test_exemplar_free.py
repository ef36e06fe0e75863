"""Exemplar-free, enforced: once a domain's training ends, no method reads its training images again."""
from pathlib import Path

import pytest

from pad_bench.config import resolve_config
from pad_bench.data.images import record_reads

from conftest import tiny_sets

METHODS = ("finetune", "lstkc", "dkp", "pad", "paema", "lstkcpp", "dkppp", "dask", "dafc")

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:No loggers specified")]


def _tiny_strategy(method: str, synth_root: Path):
    from avalanche.training.plugins import EvaluationPlugin

    from pad_bench.data.stream import build_benchmark
    from pad_bench.models import model_family
    from pad_bench.run.build import build_strategy, finalize

    cfg = resolve_config(benchmark="synth", strategy=method, sets=tiny_sets(synth_root, **{"train.num_workers": 0}))
    cls = finalize(cfg)
    bench = build_benchmark(cfg, family=model_family(cfg["model"]["name"]), union=cls.sees_union)
    return build_strategy(cfg, bench, evaluator=EvaluationPlugin(loggers=[])), bench


def _resolved(paths) -> set[str]:
    return {str(Path(p).resolve()) for p in paths}


def _reads_around_the_boundary(strategy, bench) -> tuple[set[str], set[str]]:
    """Paths read until experience 1's training ends, and after it (evaluation included)."""
    with record_reads() as reads:
        strategy.train(bench.train_stream[0], eval_streams=[])
        boundary = len(reads)
        strategy.eval(bench.test_stream)
        strategy.train(bench.train_stream[1], eval_streams=[])
        strategy.eval(bench.test_stream)
    return _resolved(reads[:boundary]), _resolved(reads[boundary:])


def _train_paths(bench, root: Path, domain: str) -> set[str]:
    # manifest rows: (domain, role, split, run, relative path, ...)
    return _resolved(root / r[4] for r in bench.manifest.rows if r[0] == domain and r[2] == "train")


@pytest.mark.parametrize("method", METHODS)
def test_no_training_image_of_domain_1_is_read_after_its_experience(method, synth_root):
    strategy, bench = _tiny_strategy(method, synth_root)
    train_1, train_2 = _train_paths(bench, synth_root, "synth_d1"), _train_paths(bench, synth_root, "synth_d2")
    before, after = _reads_around_the_boundary(strategy, bench)

    assert train_1 & before and train_2 & after  # the log sees both experiences' reads
    leaked = sorted(train_1 & after)
    assert not leaked, f"{method} read {len(leaked)} domain-1 training images after experience 1, e.g. {leaked[0]}"


def test_the_check_catches_a_method_that_replays(synth_root):
    from avalanche.core import SupervisedPlugin

    class Replay(SupervisedPlugin):  # re-reads domain 1's training set at the start of experience 2
        def before_training_exp(self, strategy, **kwargs):
            if strategy.exp_index == 1:
                strategy.extract(bench.train_stream[0].dataset)

    strategy, bench = _tiny_strategy("finetune", synth_root)
    strategy.plugins.insert(0, Replay())
    _, after = _reads_around_the_boundary(strategy, bench)
    assert _train_paths(bench, synth_root, "synth_d1") <= after
