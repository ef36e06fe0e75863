"""train.precision: what a strategy runs with, and the fp16 gradient scaler's step."""
from __future__ import annotations

import torch
from torch import nn

from pad_bench.training.optim import scaled, step


def _model_and_optimizer():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def test_the_scaler_unscales_before_the_step_and_skips_an_overflowed_one():
    model, opt = _model_and_optimizer()
    ref, ref_opt = _model_and_optimizer()
    x = torch.ones(2, 3)
    ref(x).sum().backward()
    ref_opt.step()

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)  # the CUDA one's logic, on CPU
    scaled(model(x).sum(), scaler).backward()
    assert torch.equal(model.weight.grad, 2.0**10 * ref.weight.grad)  # scaled by a power of two: exact
    step(opt, scaler)
    assert torch.equal(model.weight, ref.weight) and torch.equal(model.bias, ref.bias)  # unscaled, then stepped

    before = model.weight.detach().clone()
    opt.zero_grad()
    scaled(model(x).sum() * float("inf"), scaler).backward()
    step(opt, scaler)
    assert torch.equal(model.weight, before) and scaler.get_scale() == 2.0**9  # skipped, scale halved


def test_without_a_scaler_it_is_a_plain_step():
    model, opt = _model_and_optimizer()
    ref, ref_opt = _model_and_optimizer()
    x = torch.ones(2, 3)
    scaled(model(x).sum(), None).backward()
    step(opt, None)
    ref(x).sum().backward()
    ref_opt.step()
    assert torch.equal(model.weight, ref.weight)
