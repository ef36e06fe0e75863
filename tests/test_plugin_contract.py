"""The plugin contract: declared plugin order is checked, LossPlugins hand back their terms."""
import pytest
import torch
from avalanche.core import SupervisedPlugin

from pad_bench.training.base import check_plugin_order
from pad_bench.training.plugins.loss import LossPlugin


class A(SupervisedPlugin):
    pass


class B(SupervisedPlugin):
    pass


class Other(SupervisedPlugin):
    pass


def test_plugin_order_accepts_the_declared_order_and_ignores_others():
    check_plugin_order("M", [A(), Other(), B()], (A, B))
    check_plugin_order("M", [B()], (A, B))  # a missing plugin is fine


def test_plugin_order_names_the_offending_plugins():
    with pytest.raises(ValueError, match=r"M: plugins B, A are out of order; M.plugin_order requires A, B"):
        check_plugin_order("M", [B(), Other(), A()], (A, B))


def test_a_strategy_built_with_its_plugins_out_of_order_is_refused(synth_root):
    from conftest import tiny_sets
    from pad_bench.config import resolve_config
    from pad_bench.registry import load_strategy_class

    class Ordered(load_strategy_class("finetune")):  # fine-tune's declared hyperparameters match its config
        plugin_order = (A, B)

    cfg = resolve_config(benchmark="synth", strategy="finetune", sets=tiny_sets(synth_root))
    with pytest.raises(ValueError, match="Ordered: plugins B, A are out of order"):
        Ordered(model=Ordered.build_model(cfg, None), cfg=cfg, num_classes=[4, 4], class_offsets=[0, 4],
                plugins=[B(), A()])


class Constant(LossPlugin):
    def loss(self, strategy):
        term = torch.tensor(2.0)
        return 0.5 * term, {"const": term}


def test_a_loss_plugin_adds_its_weighted_total_and_records_the_unweighted_term():
    recorded = {}

    class Strategy:
        loss = torch.tensor(1.0)

        def record_losses(self, terms):
            recorded.update({k: float(v) for k, v in terms.items()})

    s = Strategy()
    Constant().before_backward(s)
    assert float(s.loss) == 2.0 and recorded == {"const": 2.0}
