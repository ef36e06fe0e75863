"""Avalanche's EWC, LwF, SI and MAS attached to fine-tune by YAML: the classifier view the stock plugins
run against, the YAML errors, and one epoch on two synthetic domains each."""
import json
import types

import pytest
import torch
import torch.nn.functional as F
from avalanche.training.plugins import EWCPlugin, LwFPlugin

from pad_bench.config import resolve_config
from pad_bench.errors import UserError
from pad_bench.training.plugins.avalanche_regularisers import (ClassifierView, LogitsModel, ReIDRegulariser,
                                                                build_regularisers, stacked_cross_entropy,
                                                                stacked_logits)

from conftest import tiny_sets


def test_stacked_logits_put_the_taps_one_after_the_other_and_the_loss_averages_them():
    a = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 3.0], [1.0, 1.0]])
    logits = stacked_logits({"logits": {"x12": a, "proj": b}})
    assert torch.equal(logits, torch.cat([a, b]))
    y = torch.tensor([0, 1])
    expected = (F.cross_entropy(a, y) + F.cross_entropy(b, y)) / 2
    assert float(stacked_cross_entropy(logits, y)) == pytest.approx(float(expected), rel=1e-6)


class _Net(torch.nn.Module):
    """A two-tap 'ReID model': dict output with per-tap logits."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([[1.0, -1.0], [0.5, 2.0]]))

    def forward(self, x):
        return {"logits": {"a": x @ self.w, "b": 2 * x @ self.w}}


def test_the_view_reads_the_strategy_and_records_what_a_plugin_adds_to_the_loss():
    recorded = {}
    net = _Net()
    strategy = types.SimpleNamespace(model=net, loss=torch.tensor(1.5), mb_output=net(torch.ones(1, 2)),
                                     record_losses=recorded.update, clock="clock")
    view = ClassifierView(strategy, LogitsModel(net), "ewc")
    assert view.clock == "clock" and view.mb_output.shape == (2, 2)
    view.loss += torch.tensor(0.25)
    assert float(strategy.loss) == 1.75 and recorded == {"ewc": pytest.approx(0.25)}


def test_ewc_through_the_adapter_penalises_the_squared_change_weighted_by_importance():
    net = _Net()
    ewc = ReIDRegulariser(EWCPlugin(ewc_lambda=2.0), "ewc")
    ewc.plugin.saved_params[0] = {"net.w": types.SimpleNamespace(expand=lambda s: torch.zeros(2, 2))}
    ewc.plugin.importances[0] = {"net.w": types.SimpleNamespace(expand=lambda s: torch.full((2, 2), 0.5))}
    strategy = types.SimpleNamespace(model=net, loss=torch.tensor(0.0), device="cpu", record_losses=lambda t: None,
                                     clock=types.SimpleNamespace(train_exp_counter=1))
    ewc.before_backward(strategy)
    # 2 · Σ 0.5 · w² = 1 + 1 + 0.25 + 4
    assert float(strategy.loss.detach()) == pytest.approx(6.25)


def test_lwf_distils_the_previous_models_stacked_logits_on_old_identities():
    torch.manual_seed(0)
    net = _Net()
    lwf = ReIDRegulariser(LwFPlugin(alpha=1.0, temperature=2.0), "lwf")
    old = LogitsModel(_Net())
    with torch.no_grad():
        old.net.w.mul_(-1)
    lwf.plugin.lwf.prev_model, lwf.plugin.lwf.expcount = old, 1
    lwf.plugin.lwf.prev_classes_by_task[0] = {0, 1}
    x = torch.randn(3, 2)
    strategy = types.SimpleNamespace(model=net, mb_x=x, mb_output=net(x), loss=torch.tensor(0.0),
                                     record_losses=lambda t: None)
    lwf.before_backward(strategy)
    cur, prev = stacked_logits(net(x)), stacked_logits(old.net(x))
    expected = F.kl_div(F.log_softmax(cur / 2, 1), F.softmax(prev / 2, 1), reduction="batchmean")
    assert float(strategy.loss.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_resuming_after_a_domain_is_refused_because_the_plugin_state_is_not_checkpointed():
    reg = build_regularisers([{"name": "MASPlugin"}])[0]
    reg.load_state_dict(reg.state_dict())  # nothing built yet: fine
    reg.plugin.after_training_exp = lambda strategy, **kw: None
    reg.after_training_exp(types.SimpleNamespace(model=_Net()))
    with pytest.raises(UserError, match="cannot resume"):
        reg.load_state_dict(reg.state_dict())


def test_unknown_plugins_and_bad_arguments_are_user_errors():
    with pytest.raises(UserError, match="unknown plugin 'EWC'"):
        build_regularisers([{"name": "EWC"}])
    with pytest.raises(UserError, match="EWCPlugin"):
        build_regularisers([{"name": "EWCPlugin", "ewc_lambda": 1, "mode": "online"}])  # online needs decay
    with pytest.raises(UserError, match="name"):
        build_regularisers(["EWCPlugin"])


@pytest.mark.parametrize("method", ["ewc", "lwf", "si", "mas"])
def test_regulariser_trains_one_epoch_on_two_synthetic_domains(method, synth_root, tmp_path):
    from pad_bench.run import runner

    cfg = resolve_config(benchmark="synth", strategy=method, sets=tiny_sets(synth_root))
    assert cfg["strategy"]["method"] == "finetune" and len(cfg["strategy"]["avalanche_plugins"]) == 1
    run_dir = runner.execute(cfg, tmp_path / "run", progress=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    final = summary["mAP"]["final"]
    assert 0 <= final["seen"]["synth_d1"] <= 100 and 0 <= final["unseen"]["synth_u1"] <= 100
    rows = [line.split(",") for line in (run_dir / "losses.csv").read_text().splitlines()[1:]]
    terms = {r[4] for r in rows if r[0] == "2"}  # the second domain (1-based): the regulariser is active
    assert {"id", "tri", method if method != "si" else "synapticintelligence"} <= terms
