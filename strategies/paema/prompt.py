"""PAEMA's general prompt: one learnable (length × width) prompt per ViT block, fed to that block's
attention as key/value prefix (the first half as keys, the second half as values)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pad_bench.errors import UserError
from pad_bench.models.vit import ViTBackbone


class GeneralPromptBackbone(nn.Module):
    """A ViTBackbone whose every forward uses the general prompt (B-broadcast), with the same taps.

    Initialised U[0, 1) like the released code's `gprompt_init_type: unif`."""

    def __init__(self, trunk: nn.Module, length: int = 10):
        super().__init__()
        if not isinstance(trunk, ViTBackbone):
            raise UserError(f"PAEMA's prompt needs an ImageNet ViT backbone (vit-b16, vit-tiny), "
                            f"not {type(trunk).__name__}; pick one with --model")
        if length < 2:
            raise UserError(f"paema_prompt_length must be >= 2 (half keys, half values), got {length}")
        self.trunk = trunk
        self.prompt = nn.Parameter(torch.rand(len(trunk.blocks), length, trunk.width))
        self.head_taps, self.embedding_taps = trunk.head_taps, trunk.embedding_taps
        self.triplet_taps, self.tap_dims = trunk.triplet_taps, trunk.tap_dims

    def forward(self, x: Tensor, prompter=None) -> dict[str, Tensor]:
        if prompter is not None:
            raise UserError("PAEMA's backbone brings its own prompt; it takes no other prompter")
        return self.trunk(x, prompter=lambda i, tokens: self.prompt[i].expand(tokens.shape[0], -1, -1))

    def image_encoder_state_dict(self) -> dict[str, Tensor]:
        return dict(self.state_dict())
