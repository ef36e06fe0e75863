"""`create_model`: a model config (YAML, by name) + overrides + an optional local weights file -> ReIDNet."""
from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml
from torch import Tensor, nn

from ..errors import UserError
from ..paths import MODEL_CONFIGS_DIR
from ..registry import unknown_name_error
from . import list_models
from .clip import CLIPBackbone
from .reid import ReIDNet
from .resnet import ResNetBackbone
from .vit import ViTBackbone

# Config keys about where weights come from, not about the network: not overridable.
_POLICY_KEYS = ("family", "weights_required", "weights_env", "weights_hint")
_REID_KEYS = ("image_size", "bnneck_bias_trainable")
_FAMILIES = ("clip", "resnet", "vit")
# Integer entries of OpenAI's TorchScript state dict that are not weights.
_TORCHSCRIPT_EXTRAS = ("input_resolution", "context_length", "vocab_size")


def create_model(name: str, *, num_classes: int = 0, weights: str | None = None,
                 image_size: tuple[int, int] | None = None, text_tower: bool = False,
                 test_feature: str = "pre_bn", test_normalize: bool = True, **overrides: Any) -> ReIDNet:
    """Build model `name` of configs/models/<name>.yaml with `overrides` of its keys.

    weights: a local file (CLIP: OpenAI TorchScript .pt, open_clip .pt/.pth/.bin, .safetensors;
    ResNet: a torchvision ImageNet state dict; ViT: a timm ImageNet checkpoint), or "random". None means the config's default:
    PAD_BENCH_CLIP_WEIGHTS for clip-vit-b16 (required), random init for the others.
    """
    cfg = model_config(name)
    cfg = _merge(cfg, overrides, [k for k in cfg if k not in _POLICY_KEYS])
    if image_size is not None:
        cfg["image_size"] = list(image_size)
    size = _check_image_size(cfg["image_size"])
    path = _weights_path(name, cfg, weights)
    if text_tower and cfg["family"] != "clip":
        raise UserError(f"model '{name}' has no text tower; drop text_tower=True or use a CLIP model")
    arch = {k: v for k, v in cfg.items() if k not in _POLICY_KEYS + _REID_KEYS}
    if cfg["family"] == "clip":
        backbone = CLIPBackbone(image_size=size, text_tower=text_tower, **arch)
    elif cfg["family"] == "vit":
        backbone = ViTBackbone(image_size=size, **arch)
    else:
        backbone = ResNetBackbone(**arch)
    if path is not None:
        module, sd = backbone.prepare_pretrained(read_state_dict(path), str(path))
        _load_strict(module, sd, path)
    spec = {"name": name, **cfg, "weights": str(path) if path else "random", "text_tower": text_tower}
    return ReIDNet(backbone, num_classes=num_classes, bnneck_bias_trainable=cfg["bnneck_bias_trainable"],
                   image_size=size, spec=spec, test_feature=test_feature, test_normalize=test_normalize)


def model_config(name: str) -> dict[str, Any]:
    """The parsed configs/models/<name>.yaml."""
    if name not in list_models():
        raise unknown_name_error("model", name, list_models())
    cfg = yaml.safe_load((MODEL_CONFIGS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    if cfg.get("family") not in _FAMILIES:
        raise UserError(f"model config '{name}.yaml' has family {cfg.get('family')!r}; "
                        f"use one of {', '.join(_FAMILIES)}")
    return cfg


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Float32 state dict of a .safetensors, TorchScript or torch.save file (`state_dict`/`module.` unwrapped)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"weights file '{path}' does not exist; fix the path")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        elif _is_torchscript(path):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, OpenAI's file is TorchScript
                sd = torch.jit.load(str(path), map_location="cpu").state_dict()
            sd = {k: t for k, t in sd.items() if k not in _TORCHSCRIPT_EXTRAS}
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # every reader has its own error types; all mean "not a weights file"
        raise UserError(f"cannot read weights file '{path}' ({type(e).__name__}: {_first_line(e)}); "
                        f"is it a complete, uncorrupted checkpoint?") from None
    if isinstance(sd, Mapping) and isinstance(sd.get("state_dict"), Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping) or not all(isinstance(t, Tensor) for t in sd.values()):
        raise UserError(f"weights file '{path}' holds no state dict of tensors; pass a model checkpoint")
    return {k.removeprefix("module."): t.float() if t.is_floating_point() else t for k, t in sd.items()}


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") for n in zf.namelist())


def _weights_path(name: str, cfg: Mapping[str, Any], weights: str | None) -> Path | None:
    if weights == "random":
        return None
    env = cfg.get("weights_env")
    if weights is None and env and os.environ.get(env):
        weights = os.environ[env]
        if not Path(weights).expanduser().is_file():
            raise UserError(f"{env} points to '{weights}', which is not a file; fix or unset {env}")
    if weights is None:
        if cfg.get("weights_required"):
            raise UserError(
                f"model '{name}' needs pretrained weights from a local file (no downloads at run time): "
                f"get {cfg.get('weights_hint', 'its checkpoint')}, then pass "
                f"--set model.weights=PATH or set {env}=PATH (or model.weights=random for a random init)")
        return None
    return Path(weights).expanduser()


def _load_strict(module: nn.Module, state_dict: Mapping[str, Tensor], path: Path) -> None:
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        details = str(e).split("\n", 1)[-1].strip()
        raise UserError(f"weights file '{path}' does not fit this model ({_first_line(details)}); "
                        f"pass a checkpoint of the same architecture") from None


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any], valid: list[str],
           prefix: str = "") -> dict[str, Any]:
    """base updated by overrides; dict values merge key by key. Unknown keys raise."""
    out = dict(base)
    for key, value in overrides.items():
        if key not in valid:
            raise UserError(f"unknown model option '{prefix}{key}'; valid: {', '.join(prefix + k for k in valid)}")
        if isinstance(base[key], Mapping) and isinstance(value, Mapping):
            out[key] = _merge(base[key], value, list(base[key]), f"{prefix}{key}.")
        else:
            out[key] = value
    return out


def _check_image_size(size: Any) -> tuple[int, int]:
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(s, int) and s > 0 for s in size)):
        raise UserError(f"image_size {size!r} must be two positive ints [height, width], e.g. [256, 128]")
    return int(size[0]), int(size[1])


def _first_line(e: object, limit: int = 200) -> str:
    text = str(e).strip().splitlines()
    return text[0][:limit] if text else ""
