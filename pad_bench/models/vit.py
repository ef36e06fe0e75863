"""ImageNet ViT backbone (timm's VisionTransformer) with a hook for key/value prefix prompts.

The tap 'cls' is the final-LayerNorm CLS token. `prompter(i, x)` may return `KVPrefix(tokens)`
(B, P, D) for block i: key/value prefix prompts of that block's attention (pad_bench.models.attention;
prefix tuning, as PAEMA's released code does with its general prompt), which leave the tokens
unchanged; or `KeptPrompts(tokens)`: tokens inserted after CLS before block i and kept to the end.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

from torch import Tensor, nn

from ..errors import UserError
from .attention import KeptPrompts, KVPrefix, insert_after_cls, packed_attention
from .clip import resize_pos_embed

Prompter = Callable[[int, Tensor], "KVPrefix | KeptPrompts | None"]

# Entries of an ImageNet checkpoint that the ReID backbone has no use for (classifier heads).
_HEAD_PREFIXES = ("head.", "pre_logits.", "fc_norm.")


class ViTBackbone(nn.Module):
    """timm VisionTransformer (no head) at the ReID input size; the tap 'cls' is the normed CLS token."""

    head_taps = ("cls",)
    embedding_taps = ("cls",)
    triplet_taps = ("cls",)

    def __init__(self, *, image_size: Sequence[int], patch_size: int = 16, width: int = 768, layers: int = 12,
                 heads: int = 12, mlp_ratio: float = 4.0, drop_path: float = 0.1):
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        h, w = image_size
        if h % patch_size or w % patch_size:
            raise UserError(f"image_size {h}x{w} is not divisible by the patch size {patch_size}; "
                            f"pick a multiple of {patch_size}")
        if width % heads:
            raise UserError(f"ViT width {width} is not divisible by its {heads} heads")
        self.vit = VisionTransformer(img_size=(h, w), patch_size=patch_size, embed_dim=width, depth=layers,
                                     num_heads=heads, mlp_ratio=mlp_ratio, qkv_bias=True, num_classes=0,
                                     drop_path_rate=drop_path)
        self.grid = (h // patch_size, w // patch_size)
        self.width = width
        self.tap_dims = {"cls": width}

    @property
    def blocks(self) -> nn.Sequential:
        return self.vit.blocks

    def forward(self, x: Tensor, prompter: Prompter | None = None) -> dict[str, Tensor]:
        v = self.vit
        x = v.norm_pre(v.patch_drop(v._pos_embed(v.patch_embed(x))))
        for i, blk in enumerate(v.blocks):
            prompts = prompter(i, x) if prompter is not None else None
            if isinstance(prompts, KeptPrompts):
                x = insert_after_cls(x, prompts.tokens)
                prompts = None
            if prompts is not None and not isinstance(prompts, KVPrefix):
                raise TypeError(f"the vit family takes key/value prefix prompts (KVPrefix) or kept input prompts "
                                f"(KeptPrompts), not {type(prompts).__name__}")
            prefix = prompts.tokens if prompts is not None else None
            x = x + blk.drop_path1(blk.ls1(prefix_attention(blk.attn, blk.norm1(x), prefix)))
            x = x + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x))))
        return {"cls": v.norm(x)[:, 0]}

    def image_encoder(self) -> nn.Module:
        """The image tower: all of this backbone."""
        return self

    def image_encoder_state_dict(self) -> dict[str, Tensor]:
        return dict(self.state_dict())

    def prepare_pretrained(self, state_dict: Mapping[str, Tensor], source: str) -> tuple[nn.Module, dict]:
        """An ImageNet ViT checkpoint (timm / jx keys) without its head, positional embedding resized."""
        sd = {k: t for k, t in state_dict.items() if not k.startswith(_HEAD_PREFIXES)}
        if "pos_embed" in sd:
            sd["pos_embed"] = resize_pos_embed(sd["pos_embed"][0], self.grid, source)[None]
        return self.vit, sd


def prefix_attention(attn: nn.Module, x: Tensor, prompts: Tensor | None) -> Tensor:
    """timm Attention on x (B, N, C), with key/value prefix prompts (B, P, C) when they are given."""
    out = packed_attention(x, attn.qkv, attn.num_heads, prompts, q_norm=attn.q_norm, k_norm=attn.k_norm,
                           dropout_p=attn.attn_drop.p if attn.training else 0.0)
    return attn.proj_drop(attn.proj(attn.norm(out)))
