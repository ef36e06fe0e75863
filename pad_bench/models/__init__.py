"""The model zoo: one YAML file per model in `pad_bench/configs/models/` (its stem is the name), one `create_model`.

Listing reads file names only; torch is imported on the first `create_model` access, so that
`pad-bench list` stays fast.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..paths import MODEL_CONFIGS_DIR

__all__ = ["create_model", "list_models", "model_config", "model_family", "model_options"]

FAMILIES = ("clip", "resnet")
RUN_OPTIONS = ("gem_learnable",)  # model-config keys a run config may override (model.<key>)


def list_models() -> list[str]:
    """Names of the registered models (the config file stems), sorted."""
    return sorted(p.stem for p in MODEL_CONFIGS_DIR.glob("*.yaml"))


def model_config(name: str) -> dict[str, Any]:
    """The parsed pad_bench/configs/models/<name>.yaml."""
    import yaml

    from ..errors import UserError
    from ..registry import unknown_name_error

    path = MODEL_CONFIGS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise unknown_name_error("model", name, list_models())
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    if cfg.get("family") not in FAMILIES:
        raise UserError(f"model config '{name}.yaml' has family {cfg.get('family')!r}; "
                        f"use one of {', '.join(FAMILIES)}")
    return cfg


def model_options(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture overrides a run config's `model` section sets (null keeps the model config's value)."""
    return {k: model_cfg[k] for k in RUN_OPTIONS if model_cfg.get(k) is not None}


def model_family(name: str) -> str:
    """The model's family ("clip" or "resnet"), which also picks the input normalisation."""
    return model_config(name)["family"]


def __getattr__(name: str) -> Any:
    if name == "create_model":
        from .zoo import create_model

        return create_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
