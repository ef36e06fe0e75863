"""Shared fixtures: a tiny synthetic stream (generated once per test session and worker)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pad_bench.synthetic.domains import SynthConfig, generate

# `make test` runs two xdist workers on two cores: one thread each avoids oversubscription,
# which made tiny runs ~10x slower.
torch.set_num_threads(1)

TINY_SYNTH = SynthConfig(seed=3, n_train_domains=2, n_unseen_domains=1, train_ids=8, test_ids=6,
                         images_per_id=5, query_per_id=1, gallery_per_id=2, distractors=3, height=64, width=32)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate(root, TINY_SYNTH)
    return root


def tiny_sets(synth_root: Path, **extra) -> dict:
    """--set overrides for a fast 2-domain run on the tiny synthetic stream."""
    sets = {
        "benchmark.data_root": str(synth_root),
        "benchmark.domains": ["synth_d1", "synth_d2"],
        "benchmark.unseen": ["synth_u1"],
        "train.epochs": 1,
        "train.batch_p": 4,
        "train.batch_k": 2,
        "train.eval_batch_size": 32,
        "model.weights": "random",  # the synthetic pretraining has its own tests (test_pretrain.py)
    }
    sets.update(extra)
    return sets
