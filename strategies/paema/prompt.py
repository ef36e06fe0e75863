"""PAEMA's general prompt: one learnable (length × width) prompt per block of a ViT image tower (timm's
ImageNet ViT or CLIP's), fed to that block's attention as key/value prefix (the first half as keys,
the second half as values)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pad_bench.errors import UserError
from pad_bench.models.attention import KVPrefix
from pad_bench.models.clip import CLIPBackbone
from pad_bench.models.vit import ViTBackbone

# The backbones whose block loops take key/value prefix prompts
PREFIX_BACKBONES = (ViTBackbone, CLIPBackbone)


class GeneralPromptBackbone(nn.Module):
    """A ViT or CLIP backbone whose every forward uses the general prompt (B-broadcast), with the same taps.

    Initialised U[0, 1) like the released code's `gprompt_init_type: unif`."""

    def __init__(self, trunk: nn.Module, length: int = 10):
        super().__init__()
        if not isinstance(trunk, PREFIX_BACKBONES):
            raise UserError(f"PAEMA's prompt needs a ViT image tower (vit-b16, vit-tiny, clip-vit-b16, clip-tiny), "
                            f"not {type(trunk).__name__}; pick one with --model")
        if length < 2 or length % 2:
            raise UserError(f"paema_prompt_length must be an even number >= 2 (half keys, half values), got {length}")
        self.trunk = trunk
        self.prompt = nn.Parameter(torch.rand(len(trunk.blocks), length, trunk.width))
        self.head_taps, self.embedding_taps = trunk.head_taps, trunk.embedding_taps
        self.triplet_taps, self.tap_dims = trunk.triplet_taps, trunk.tap_dims

    def forward(self, x: Tensor, prompter=None) -> dict[str, Tensor]:
        if prompter is not None:
            raise UserError("PAEMA's backbone brings its own prompt; it takes no other prompter")
        return self.trunk(x, prompter=lambda i, tokens: KVPrefix(self.prompt[i].expand(tokens.shape[0], -1, -1)))

    def image_encoder(self) -> nn.Module:
        """The module whose trainable flags the run reports as `unfreeze`: this whole backbone
        (prompt and trunk)."""
        return self

    def image_encoder_state_dict(self) -> dict[str, Tensor]:
        """The trunk's image side (a CLIP's text tower stays out) and the prompt."""
        sd = {f"trunk.{k}": t for k, t in self.trunk.image_encoder_state_dict().items()}
        sd["prompt"] = self.prompt.detach()
        return sd
