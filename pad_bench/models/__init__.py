"""The model zoo: one YAML file per model in `pad_bench/configs/models/` (its stem is the name), one `create_model`.

Listing reads file names only; torch is imported on the first `create_model` access, so that
`pad-bench list` stays fast.
"""
from __future__ import annotations

from typing import Any

from ..paths import MODEL_CONFIGS_DIR

__all__ = ["create_model", "list_models", "model_family"]


def list_models() -> list[str]:
    """Names of the registered models (the config file stems), sorted."""
    return sorted(p.stem for p in MODEL_CONFIGS_DIR.glob("*.yaml"))


def model_family(name: str) -> str:
    """The model's family ("clip" or "resnet"), which also picks the input normalisation."""
    import yaml

    from ..registry import unknown_name_error

    path = MODEL_CONFIGS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise unknown_name_error("model", name, list_models())
    return yaml.safe_load(path.read_text())["family"]


def __getattr__(name: str) -> Any:
    if name == "create_model":
        from .zoo import create_model

        return create_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
