"""ResNet backbone of the LSTKC family (docs/methods/lstkc.md#the-lstkc-family-resnet-50-recipe): torchvision ResNet, last stride 1, GeM pooling."""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from ..errors import UserError

BLOCKS = {"bottleneck": Bottleneck, "basic": BasicBlock}
STAGES = ("layer1", "layer2", "layer3", "layer4")
CUT_AT = {"layer3": 4, "layer4": 8}  # stage -> its planes in units of base_planes


class ScaledResNet(ResNet):
    """torchvision's ResNet with stage widths scaled by base_planes / 64 (64 gives the standard nets)."""

    def __init__(self, block: type[nn.Module], layers: Sequence[int], base_planes: int = 64):
        self._planes_scale = base_planes / 64  # read by _make_layer during ResNet.__init__
        super().__init__(block, list(layers))

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        return super()._make_layer(block, round(planes * self._planes_scale), blocks, stride, dilate)


class GeM(nn.Module):
    """Generalized-mean pooling (B, C, H, W) -> (B, C). p is fixed (3 in both LSTKC-family codes,
    whose nn.Parameter line is commented out) unless `learnable`, when it is a trained parameter."""

    def __init__(self, p: float = 3.0, learnable: bool = False, eps: float = 1e-6):
        super().__init__()
        self.p: nn.Parameter | float = nn.Parameter(torch.full((1,), float(p))) if learnable else float(p)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


class ResNetBackbone(nn.Module):
    """A ResNet trunk cut after `cut_at` ('layer4', or 'layer3' for DKP), GeM-pooled into the tap 'gem'."""

    head_taps = ("gem",)
    embedding_taps = ("gem",)
    triplet_taps = ("gem",)

    def __init__(self, *, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 6, 3), base_planes: int = 64,
                 last_stride: int = 1, cut_at: str = "layer4", pooling: str = "gem", gem_p: float = 3.0,
                 gem_learnable: bool = False):
        super().__init__()
        _check_choice("block", block, BLOCKS)
        _check_choice("cut_at", cut_at, CUT_AT)
        _check_choice("pooling", pooling, ("gem",))
        _check_choice("last_stride", last_stride, (1, 2))
        if len(layers) != 4 or min(layers) < 1:
            raise UserError(f"layers {list(layers)} must be 4 positive block counts, e.g. [3, 4, 6, 3]")
        self.body = ScaledResNet(BLOCKS[block], layers, base_planes)
        del self.body.avgpool, self.body.fc
        if cut_at == "layer3":
            del self.body.layer4
        elif last_stride == 1:
            for m in self.body.layer4[0].modules():
                if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
                    m.stride = (1, 1)
        self.stages = STAGES[: STAGES.index(cut_at) + 1]
        self.pool = GeM(gem_p, learnable=gem_learnable)
        channels = base_planes * CUT_AT[cut_at] * BLOCKS[block].expansion
        self.tap_dims = {"gem": channels}

    def forward_map(self, x: Tensor) -> Tensor:
        """The trunk's feature map (B, C, h, w)."""
        b = self.body
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        for name in self.stages:
            x = getattr(b, name)(x)
        return x

    def forward(self, x: Tensor, prompter: Callable | None = None) -> dict[str, Tensor]:
        if prompter is not None:
            raise UserError("ResNet backbones take no prompts; use a CLIP model for prompt-based strategies")
        return {"gem": self.pool(self.forward_map(x))}

    def image_encoder(self) -> nn.Module:
        """The image tower: all of this backbone."""
        return self

    def image_encoder_state_dict(self) -> dict[str, Tensor]:
        return dict(self.state_dict())

    def prepare_pretrained(self, state_dict: Mapping[str, Tensor], source: str) -> tuple[nn.Module, dict]:
        """The trunk a torchvision ImageNet checkpoint describes, and the state dict without the parts cut off."""
        dropped = ("fc.",) + tuple(f"{s}." for s in STAGES if s not in self.stages)
        return self.body, {k: t for k, t in state_dict.items() if not k.startswith(dropped)}


def _check_choice(key: str, value: object, valid: Sequence) -> None:
    if value not in valid:
        raise UserError(f"{key} {value!r} is not supported; use one of {', '.join(map(repr, valid))}")
