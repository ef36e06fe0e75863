"""Dataset adapters, one module per dataset, registered by name in `DATASETS`.

Adding a dataset = adding a module here with a `@register_dataset("name")` class: the modules of
this folder are found by file name and imported on first use (not at package import), so that
`pad-bench --help` stays fast.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from .base import DATASETS, DatasetSplits, ImageRecord, ReIDDataset, register_dataset, split_counts


@cache
def _import_adapters() -> None:
    """Import every module of this folder once; their decorators fill DATASETS."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def get_dataset_class(name: str) -> type[ReIDDataset]:
    _import_adapters()
    return DATASETS.get(name)


def dataset_names(kind: str | None = None) -> list[str]:
    """Registered dataset names, optionally only those of one kind (seen / unseen / synthetic)."""
    _import_adapters()
    return [n for n in DATASETS.names() if kind is None or DATASETS.get(n).kind == kind]


def create_dataset(name: str, data_root, **options) -> ReIDDataset:
    return get_dataset_class(name)(data_root, **options)


__all__ = [
    "DATASETS", "DatasetSplits", "ImageRecord", "ReIDDataset", "register_dataset", "split_counts",
    "get_dataset_class", "dataset_names", "create_dataset",
]
