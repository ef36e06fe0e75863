"""Avalanche's stock regularisation plugins (EWC, LwF, SI, MAS) on a ReID strategy, named in YAML
(`strategy.avalanche_plugins`, docs/methods/regularisers.md).

The stock plugins expect a classifier: a model that returns one logits tensor, a `_criterion(out, y)`,
an experience dataset of (x, y, ..., task) samples with task labels. The ReID strategy has a dict
output with one growing classifier per head tap, an unused criterion, samples [img, target, camid,
is_query, domain] and (on the cached data path) images that are finished on the device. So each stock
plugin runs unchanged against a view of the strategy (`ClassifierView`): the model's head-tap logits
stacked along the batch axis, cross-entropy as the criterion, and the experience's images with the
eval transforms as (x, y, 0). What the plugin adds to the loss is also recorded as its own loss term.
"""
from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EWCPlugin, LwFPlugin, MASPlugin, SynapticIntelligencePlugin
from torch import Tensor, nn
from torch.utils.data import Dataset

from ...errors import UserError

REGULARISERS: dict[str, type] = {cls.__name__: cls for cls in
                                 (EWCPlugin, LwFPlugin, SynapticIntelligencePlugin, MASPlugin)}
# The callbacks the four plugins implement; the adapter forwards these.
CALLBACKS = ("before_training_exp", "before_training_iteration", "before_backward", "after_training_iteration",
             "after_training_exp")


def stacked_logits(out: dict) -> Tensor:
    """(T·B, C): the logits of the T head taps, one tap after the other along the batch axis."""
    return torch.cat(list(out["logits"].values()), dim=0)


def stacked_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of stacked logits (T·B, C) against the B labels, repeated once per tap."""
    return F.cross_entropy(logits, labels.repeat(logits.shape[0] // labels.shape[0]))


class LogitsModel(nn.Module):
    """The ReID model as a classifier: forward returns stacked_logits of its output."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return stacked_logits(self.net(x))


class ClassifierItems(Dataset):
    """The experience's samples as (image, label, task 0) with the eval transforms, finished as the
    strategy finishes an eval batch; with the task-label attributes LwF reads."""

    def __init__(self, dataset, prepare=None):
        self.dataset, self.prepare = dataset.eval(), prepare
        classes = sorted({int(y) for y in dataset.targets})
        self.targets_task_labels = types.SimpleNamespace(uniques=[0])
        self.task_set = {0: types.SimpleNamespace(targets=types.SimpleNamespace(uniques=classes))}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        sample = self.dataset[i]
        x = sample[0] if self.prepare is None else self.prepare(sample[0][None])[0]
        return x, sample[1], 0


class ClassifierView:
    """What a stock plugin sees of the strategy: `model`, `mb_output`, `_criterion` and `experience` as a
    classifier's; `loss` read and written through (each addition recorded as the term `term`); everything
    else the strategy's own."""

    def __init__(self, strategy, model: LogitsModel, term: str):
        object.__setattr__(self, "_strategy", strategy)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "_term", term)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._strategy, name)

    @property
    def mb_output(self) -> Tensor:
        return stacked_logits(self._strategy.mb_output)

    @property
    def _criterion(self):
        return stacked_cross_entropy

    @property
    def experience(self):
        s = self._strategy
        prepare = s.device_input.eval_batch if s.device_input is not None else None
        return types.SimpleNamespace(dataset=ClassifierItems(s.experience.dataset, prepare),
                                     current_experience=s.experience.current_experience)

    @property
    def loss(self) -> Tensor:
        loss = self._strategy.loss
        object.__setattr__(self, "_read", float(loss.detach()))  # `loss += x` may add in place: keep the value
        return loss

    @loss.setter
    def loss(self, value: Tensor) -> None:
        self._strategy.record_losses({self._term: float(value.detach()) - self._read})
        self._strategy.loss = value

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "loss":
            object.__setattr__(self, name, value)  # the property's setter
        else:
            setattr(self._strategy, name, value)


class ReIDRegulariser(SupervisedPlugin):
    """A stock Avalanche plugin run against a ClassifierView of the strategy (built once per strategy and
    model, so that the plugin sees one LogitsModel throughout)."""

    def __init__(self, plugin: SupervisedPlugin, term: str):
        super().__init__()
        self.plugin, self.term = plugin, term
        self._view: ClassifierView | None = None
        self.experiences_done = 0

    def state_dict(self) -> dict:
        return {"experiences_done": self.experiences_done}

    def load_state_dict(self, state: dict) -> None:
        """The stock plugins' state (importances, old weights, old model) is not checkpointed: refuse to
        resume after an experience that built it, rather than continue without it."""
        if state.get("experiences_done", 0) > 0:
            raise UserError(f"this run uses Avalanche's {type(self.plugin).__name__}, whose state is not in the "
                            f"checkpoints, so it cannot resume after its first domain; start it again in a new "
                            f"run directory")

    def view(self, strategy) -> ClassifierView:
        v = self._view
        if v is None or v._strategy is not strategy or v.model.net is not strategy.model:
            self._view = ClassifierView(strategy, LogitsModel(strategy.model), self.term)
        return self._view


def _forward(name: str):
    def callback(self: ReIDRegulariser, strategy, **kwargs):
        getattr(self.plugin, name)(self.view(strategy), **kwargs)
        if name == "after_training_exp":
            self.experiences_done += 1

    callback.__name__ = name
    return callback


for _name in CALLBACKS:
    setattr(ReIDRegulariser, _name, _forward(_name))


def build_regularisers(specs: list[dict] | None) -> list[ReIDRegulariser]:
    """The plugins `strategy.avalanche_plugins` names: [{name: EWCPlugin, ewc_lambda: 1, ...}, ...], each
    stock plugin built with the other keys as its arguments."""
    plugins = []
    for spec in specs or []:
        if not isinstance(spec, dict) or "name" not in spec:
            raise UserError(f"strategy.avalanche_plugins entries are mappings with a 'name', got {spec!r}")
        args = {k: v for k, v in spec.items() if k != "name"}
        name = spec["name"]
        if name not in REGULARISERS:
            raise UserError(f"strategy.avalanche_plugins: unknown plugin {name!r}; "
                            f"use one of {', '.join(REGULARISERS)}")
        try:
            plugin = REGULARISERS[name](**args)
        except (TypeError, AssertionError) as err:
            given = ", ".join(f"{k}={v!r}" for k, v in args.items())
            raise UserError(f"strategy.avalanche_plugins: {name}({given}) is refused: {err or 'invalid arguments'}; "
                            f"see avalanche.training.plugins.{name}") from None
        plugins.append(ReIDRegulariser(plugin, name.removesuffix("Plugin").lower()))
    return plugins
