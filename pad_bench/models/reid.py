"""ReIDNet: a backbone plus one BNNeck and one bias-free ID classifier per head tap."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError

CLASSIFIER_STD = 0.001
# The test feature: the embedding taps before or after their BNNecks.
TEST_FEATURES = ("pre_bn", "post_bn")


class ReIDNet(nn.Module):
    """`backbone` (CLIPBackbone / ResNetBackbone) + `necks[tap]` (BatchNorm1d) + `classifiers[tap]` (Linear)."""

    def __init__(self, backbone: nn.Module, *, num_classes: int = 0, bnneck_bias_trainable: bool = False,
                 image_size: tuple[int, int] = (256, 128), spec: Mapping[str, Any] | None = None,
                 test_feature: str = "pre_bn", test_normalize: bool = True):
        super().__init__()
        if num_classes < 0:
            raise UserError(f"num_classes is {num_classes}; it must be >= 0")
        if test_feature not in TEST_FEATURES:
            raise UserError(f"model.test_feature must be one of {', '.join(TEST_FEATURES)}, got {test_feature!r}")
        self.test_feature, self.test_normalize = test_feature, bool(test_normalize)
        self.backbone = backbone
        self.image_size = tuple(image_size)
        self.spec = dict(spec or {})  # the resolved model config, for the run directory
        self.necks = nn.ModuleDict({tap: _bnneck(backbone.tap_dims[tap], bnneck_bias_trainable)
                                    for tap in backbone.head_taps})
        self.classifiers = nn.ModuleDict({tap: IDClassifier(backbone.tap_dims[tap], num_classes)
                                          for tap in backbone.head_taps})

    @property
    def num_classes(self) -> int:
        return next(iter(self.classifiers.values())).out_features

    def forward(self, x: Tensor, prompter: Callable | None = None) -> dict[str, Any]:
        """Backbone taps, plus 'bn' and 'logits' per head tap and the test 'embedding': the embedding
        taps before (default) or after their BNNecks, L2-normalised unless test_normalize is off."""
        out: dict[str, Any] = self.backbone(x, prompter=prompter)
        bn = {tap: self.necks[tap](out[tap]) for tap in self.backbone.head_taps}
        out["bn"] = bn
        out["logits"] = {tap: self.classifiers[tap](f) for tap, f in bn.items()} if self.num_classes else {}
        emb = self.unnormalized_embedding(out)
        out["embedding"] = F.normalize(emb, dim=1) if self.test_normalize else emb
        return out

    def unnormalized_embedding(self, out: Mapping[str, Any]) -> Tensor:
        """The test feature of a forward's output `out` before its L2 normalisation."""
        source = out["bn"] if self.test_feature == "post_bn" else out
        return torch.cat([source[t] for t in self.backbone.embedding_taps], dim=1)

    def grow_classifier(self, n_new: int, init: Mapping[str, Tensor] | None = None) -> None:
        """Append n_new rows to every classifier, keeping the old rows; init[tap] (n_new, dim) gives the new rows.

        The classifiers become new Parameters: rebuild the optimizer afterwards.
        """
        init = dict(init or {})
        if n_new < 0:
            raise UserError(f"grow_classifier n_new is {n_new}; it must be >= 0")
        for tap, rows in init.items():
            if tap not in self.classifiers:
                raise UserError(f"grow_classifier init has unknown tap '{tap}'; valid: {', '.join(self.classifiers)}")
            expected = (n_new, self.classifiers[tap].in_features)
            if tuple(rows.shape) != expected:
                raise UserError(f"grow_classifier init['{tap}'] has shape {tuple(rows.shape)}; expected {expected}")
        for tap, old in self.classifiers.items():
            new = IDClassifier(old.in_features, old.out_features + n_new).to(old.weight)
            with torch.no_grad():
                new.weight[: old.out_features] = old.weight
                if tap in init:
                    new.weight[old.out_features:] = init[tap]
            self.classifiers[tap] = new

    def reset_classifier(self, n: int) -> None:
        """Replace every classifier by a fresh one with n rows (PAD: a new head per domain)."""
        self._set_classifier_rows({tap: n for tap in self.classifiers})

    def resize_for_state_dict(self, state_dict: Mapping[str, Tensor]) -> None:
        """Give the classifiers the row counts of `state_dict` (e.g. a later experience's) so that it loads."""
        rows = {tap: state_dict[f"classifiers.{tap}.weight"].shape[0]
                for tap in self.classifiers if f"classifiers.{tap}.weight" in state_dict}
        self._set_classifier_rows({tap: n for tap, n in rows.items() if n != self.classifiers[tap].out_features})

    def image_encoder_state_dict(self) -> dict[str, Tensor]:
        """What deployment needs: the backbone's image side and the necks (no classifiers, no text tower)."""
        sd = {f"backbone.{k}": t for k, t in self.backbone.image_encoder_state_dict().items()}
        sd.update({f"necks.{k}": t for k, t in self.necks.state_dict().items()})
        return sd

    def _set_classifier_rows(self, rows: Mapping[str, int]) -> None:
        for tap, n in rows.items():
            if n < 0:
                raise UserError(f"classifier size {n} must be >= 0")
            self.classifiers[tap] = IDClassifier(self.classifiers[tap].in_features, n).to(
                self.classifiers[tap].weight)


def _bnneck(dim: int, bias_trainable: bool) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(dim)
    bn.bias.requires_grad_(bias_trainable)
    return bn


class IDClassifier(nn.Linear):
    """Bias-free ID classifier (dim -> n), weights N(0, 0.001); n may be 0."""

    def __init__(self, dim: int, n: int):
        super().__init__(dim, n, bias=False)

    def reset_parameters(self) -> None:
        if self.weight.numel():  # init of an empty tensor warns
            nn.init.normal_(self.weight, std=CLASSIFIER_STD)
