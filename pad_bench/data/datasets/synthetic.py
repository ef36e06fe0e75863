"""Synthetic person domains (`pad-bench datasets synth`): Market-1501 layout, one folder per domain."""
from __future__ import annotations

from ...synthetic.domains import MAX_TRAIN_DOMAINS, MAX_UNSEEN_DOMAINS, train_domain_name, unseen_domain_name
from .base import register_dataset
from .market1501 import MarketStyleDataset


def _register(name: str) -> type[MarketStyleDataset]:
    """A Market-style adapter for the synthetic domain `name`."""
    cls = type(f"Synthetic_{name}", (MarketStyleDataset,), {
        "__doc__": f"Synthetic domain {name}, written by `pad-bench datasets synth`.",
        "name": name,
        "kind": "synthetic",
        "root_aliases": (f"synth/{name}", f"synthetic/{name}", name),
        "how_to_get": f"Run `pad-bench datasets synth --out DIR` and use DIR as the data root ({name} is its own folder).",
    })
    return register_dataset(name)(cls)


SYNTHETIC_DATASETS = tuple(
    _register(name)
    for name in [train_domain_name(i) for i in range(1, MAX_TRAIN_DOMAINS + 1)]
    + [unseen_domain_name(i) for i in range(1, MAX_UNSEEN_DOMAINS + 1)]
)
