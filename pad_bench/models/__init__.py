"""The model zoo: one YAML file per model in `pad_bench/configs/models/` (its stem is the name), one `create_model`.

Listing reads file names only; torch is imported on the first `create_model` access, so that
`pad-bench list` stays fast.
"""
from __future__ import annotations

from typing import Any

from ..registry import MODELS

__all__ = ["create_model", "list_models", "model_family"]


def list_models() -> list[str]:
    """Names of the registered models (the config file stems), sorted."""
    return MODELS.names()


def model_family(name: str) -> str:
    """The model's family ("clip" or "resnet"), which also picks the input normalisation."""
    from ..config import load_yaml

    return load_yaml(MODELS.path(name))["family"]


def __getattr__(name: str) -> Any:
    if name == "create_model":
        from .zoo import create_model

        return create_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
