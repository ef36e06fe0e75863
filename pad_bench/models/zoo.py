"""`create_model`: a model config (YAML, by name) + overrides + an optional local weights file -> ReIDNet."""
from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..errors import UserError
from . import model_config
from .clip import CLIPBackbone
from .reid import ReIDNet
from .resnet import ResNetBackbone
from .vit import ViTBackbone
from .weights import RANDOM, resolve_weights

__all__ = ["create_model", "model_config", "read_state_dict"]

# Config keys about where weights come from, not about the network: not overridable.
_POLICY_KEYS = ("family", "weights_required", "weights_env", "weights_file")
_REID_KEYS = ("image_size", "bnneck_bias_trainable")
# Integer entries of OpenAI's TorchScript state dict that are not weights.
_TORCHSCRIPT_EXTRAS = ("input_resolution", "context_length", "vocab_size")


def create_model(name: str, *, num_classes: int = 0, weights: str | None = None,
                 image_size: tuple[int, int] | None = None, text_tower: bool = False,
                 test_feature: str = "pre_bn", test_normalize: bool = True, **overrides: Any) -> ReIDNet:
    """Build model `name` of configs/models/<name>.yaml with `overrides` of its keys.

    weights: a local file (CLIP: OpenAI TorchScript .pt, open_clip .pt/.pth/.bin, .safetensors;
    ResNet: a torchvision ImageNet state dict; ViT: a timm ImageNet checkpoint), or "random". None
    means the config's default: its weights_env file (required for clip-vit-b16, resnet50, vit-b16),
    random init for the tiny models.
    """
    cfg = model_config(name)
    cfg = _merge(cfg, overrides, [k for k in cfg if k not in _POLICY_KEYS])
    if image_size is not None:
        cfg["image_size"] = list(image_size)
    size = _check_image_size(cfg["image_size"])
    resolved = resolve_weights(name, weights, cfg)
    path = None if resolved == RANDOM else Path(resolved)
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
    spec = {"name": name, **cfg, "weights": resolved, "text_tower": text_tower}
    return ReIDNet(backbone, num_classes=num_classes, bnneck_bias_trainable=cfg["bnneck_bias_trainable"],
                   image_size=size, spec=spec, test_feature=test_feature, test_normalize=test_normalize)


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
        raise UserError(f"cannot read weights file '{path}' ({torch_load_refusal(e)}); "
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


def torch_load_refusal(e: Exception) -> str:
    """Why torch.load(weights_only=True) failed, in a few words. torch's own message for a pickle holding
    arbitrary objects advises weights_only=False, which would let the file run code: not quoted."""
    if "weights_only" in str(e):
        return "it holds objects other than tensors and plain values, refused for safety"
    return f"{type(e).__name__}: {_first_line(e)}"


def _first_line(e: object, limit: int = 200) -> str:
    text = str(e).strip().splitlines()
    return text[0][:limit] if text else ""
