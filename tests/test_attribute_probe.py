"""benchmarks/attribute_probe.py: the linear probe and the prompt similarity, on hand-made tensors."""
from __future__ import annotations

import pytest
import torch

from benchmark_scripts import load_script

probe = load_script("attribute_probe")


def _clusters(n: int, flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0 around x = -3, class 1 around x = +3 (noise 0.5 in both coordinates)."""
    g = torch.Generator().manual_seed(n)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) * 0.5
    x[:, 0] += torch.where(y == 1, 3.0, -3.0)
    return x, (1 - y) if flip else y


def test_linear_probe_reads_a_separable_attribute():
    train_x, train_y = _clusters(40)
    test_x, test_y = _clusters(30)
    assert probe.linear_probe(train_x, train_y, test_x, test_y, 2) == pytest.approx(100.0)


def test_linear_probe_scores_against_the_test_labels():
    train_x, train_y = _clusters(40)
    test_x, test_y = _clusters(30, flip=True)  # the opposite rule: every prediction is wrong
    assert probe.linear_probe(train_x, train_y, test_x, test_y, 2) == pytest.approx(0.0)


def test_mean_offdiagonal_cosine_by_hand():
    assert probe.mean_offdiagonal_cosine(torch.tensor([[1.0, 0.0], [0.0, 2.0]])) == pytest.approx(0.0, abs=1e-7)
    # pairs (a, b) = 1, (a, c) = (b, c) = 0, each counted both ways: 2 / 6
    rows = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    assert probe.mean_offdiagonal_cosine(rows) == pytest.approx(1 / 3, abs=1e-6)
