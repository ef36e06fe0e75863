"""Where a model's pretrained weights come from (`model.weights`), resolved before anything is built.

`model.weights` is a path to a local file, the word `random` (random init, asked for by name), or
unset. Unset means the model config's default: the file named by its environment variable
(`weights_env`) when that is set; else, for a model that needs pretrained weights
(`weights_required`: CLIP ViT-B/16, ResNet-50), a one-line error naming the key and the file; else
(the tiny CPU models) a random init. Nothing is ever downloaded. Torch-free.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..errors import UserError

RANDOM = "random"


def resolve_weights(name: str, weights: str | None, cfg: Mapping[str, Any] | None = None) -> str:
    """`random`, or the absolute path of an existing weights file, for model `name` (config `cfg`)."""
    if cfg is None:
        from . import model_config

        cfg = model_config(name)
    if weights == RANDOM:
        return RANDOM
    if weights is not None:
        return _existing(Path(str(weights)), "model.weights", "fix the path")
    env = cfg.get("weights_env")
    if env and os.environ.get(env):
        return _existing(Path(os.environ[env]), env, f"fix or unset {env}")
    if cfg.get("weights_required"):
        env_hint = f" or set {env}=PATH" if env else ""
        raise UserError(
            f"model '{name}' needs {cfg.get('weights_file', 'pretrained weights')} from a local file (no downloads "
            f"at run time): pass --set model.weights=PATH{env_hint} (or model.weights={RANDOM} for a random init)")
    return RANDOM


def _existing(path: Path, key: str, fix: str) -> str:
    path = path.expanduser()
    if not path.is_file():
        raise UserError(f"{key} '{path}' is not a file; {fix} (or model.weights={RANDOM} for a random init)")
    return str(path.resolve())
