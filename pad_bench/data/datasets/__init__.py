"""Dataset adapters, one module per dataset, registered by name in `DATASETS`.

Adding a dataset = adding a module here with a `@register_dataset("name")` class, and its
module name to ADAPTER_MODULES. Modules are imported on first use (not at package import)
so that `pad-bench --help` stays fast.
"""
from __future__ import annotations

import importlib

from .base import DATASETS, DatasetSplits, ImageRecord, ReIDDataset, register_dataset, split_counts

SEEN = ("market1501", "cuhk_sysu", "dukemtmc", "msmt17", "cuhk03")
UNSEEN = ("cuhk01", "cuhk02", "grid", "sensereid", "viper", "ilids", "prid")
ADAPTER_MODULES = SEEN + UNSEEN + ("lpw_s2", "synthetic")

_loaded = False


def _ensure_loaded() -> None:
    global _loaded  # one-time lazy import of the adapter modules listed above
    if not _loaded:
        for mod in ADAPTER_MODULES:
            importlib.import_module(f"{__name__}.{mod}")
        _loaded = True


def get_dataset_class(name: str) -> type[ReIDDataset]:
    _ensure_loaded()
    return DATASETS.get(name)


def dataset_names(kind: str | None = None) -> list[str]:
    """Registered dataset names, optionally only those of one kind (seen / unseen / synthetic)."""
    _ensure_loaded()
    return [n for n in DATASETS.names() if kind is None or DATASETS.get(n).kind == kind]


def create_dataset(name: str, data_root, **options) -> ReIDDataset:
    return get_dataset_class(name)(data_root, **options)


__all__ = [
    "DATASETS", "DatasetSplits", "ImageRecord", "ReIDDataset", "register_dataset", "split_counts",
    "SEEN", "UNSEEN", "get_dataset_class", "dataset_names", "create_dataset",
]
