"""Eval-mode features of a whole dataset, and the class means that new classifier rows start from."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..data.batch import ReIDBatch


@torch.no_grad()
def extract_features(model: nn.Module, dataset, *, keys: tuple[str, ...] = ("embedding",), batch_size: int,
                     num_workers: int, device: torch.device,
                     autocast: Callable[[], ContextManager] = contextlib.nullcontext,
                     prepare: Callable[[Tensor], Tensor] | None = None) -> dict[str, Tensor]:
    """The model's outputs `keys` (dotted for nested outputs) on every image of an Avalanche dataset,
    with its eval transforms and the model in eval mode (its mode is restored), plus the labels and
    camera ids: {key: (N, d) float, "labels": (N,), "camids": (N,)}. `prepare` finishes a batch on the
    device (the cached data path's eval transforms)."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset.eval(), batch_size=batch_size, shuffle=False, num_workers=num_workers)
    out: dict[str, list] = {k: [] for k in keys + ("labels", "camids")}
    for batch in map(ReIDBatch.of, loader):
        x = batch.image.to(device)
        if prepare is not None:
            x = prepare(x)
        with autocast():
            feats = model(x)
        for k in keys:
            out[k].append(output_tap(feats, k).float())
        out["labels"].append(batch.pid.to(device))
        out["camids"].append(batch.camid.to(device))
    model.train(was_training)
    return {k: torch.cat(v) for k, v in out.items()}


def output_tap(out: Any, key: str) -> Tensor:
    """out["a.b"] -> out["a"]["b"] for nested model outputs."""
    for part in key.split("."):
        out = out[part]
    return out


def normalized_class_means(feats: Tensor, labels: Tensor, n_classes: int, normalize: bool = True) -> Tensor:
    """(n_classes, d): the L2-normalised mean of each class's features (labels 0..n-1), L2-normalised
    first unless `normalize` is off; a class without features gets a zero row."""
    f = F.normalize(feats, dim=1) if normalize else feats
    sums = torch.zeros(n_classes, f.shape[1], device=f.device).index_add_(0, labels, f)
    return F.normalize(sums / torch.bincount(labels, minlength=n_classes).clamp_min(1)[:, None], dim=1)
