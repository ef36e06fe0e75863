"""The model zoo: one YAML file per model in `pad_bench/configs/models/` (its stem is the name), one `create_model`.

Listing reads file names only; torch is imported on the first `create_model` access, so that
`pad-bench list` stays fast.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..registry import MODELS

__all__ = ["create_model", "list_models", "model_config", "model_family", "model_options"]

FAMILIES = ("clip", "resnet", "vit")
RUN_OPTIONS = ("gem_learnable",)  # model-config keys a run config may override (model.<key>)


def list_models() -> list[str]:
    """Names of the registered models (the config file stems), sorted."""
    return MODELS.names()


def model_config(name: str) -> dict[str, Any]:
    """The parsed pad_bench/configs/models/<name>.yaml."""
    from ..config import load_yaml
    from ..errors import UserError

    cfg = load_yaml(MODELS.path(name))
    if cfg.get("family") not in FAMILIES:
        raise UserError(f"model config '{name}.yaml' has family {cfg.get('family')!r}; "
                        f"use one of {', '.join(FAMILIES)}")
    return cfg


def model_options(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture overrides a run config's `model` section sets (null keeps the model config's value)."""
    return {k: model_cfg[k] for k in RUN_OPTIONS if model_cfg.get(k) is not None}


def model_family(name: str) -> str:
    """The model's family ("clip", "resnet" or "vit"), which also picks the input normalisation."""
    return model_config(name)["family"]


def __getattr__(name: str) -> Any:
    if name == "create_model":
        from .zoo import create_model

        return create_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
