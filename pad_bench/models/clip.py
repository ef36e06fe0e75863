"""CLIP backbone: an open_clip.CLIP with a hand-written image forward (feature taps, prompt hook).

See docs/models.md#input-size and docs/methods/pad.md#model. All open_clip transformers are batch-first (B, N, D).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping, Sequence

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from torch import Tensor, nn

from ..errors import UserError
from .attention import KeptPrompts, KVPrefix, insert_after_cls, packed_attention

Prompter = Callable[[int, Tensor], "Tensor | None"]

# Everything of open_clip.CLIP outside `visual` (the logit scale is unused by ReID, it goes too).
_TEXT_ATTRS = ("transformer", "token_embedding", "positional_embedding", "ln_final", "text_projection",
               "logit_scale", "attn_mask")
_EMBEDDING_ATTRS = ("conv1", "class_embedding", "positional_embedding", "ln_pre")
PARTS = ("embeddings", "ln_post", "proj")


class CLIPBackbone(nn.Module):
    """open_clip's CLIP ViT image tower (and optionally its frozen text tower) with taps x11, x12, proj."""

    head_taps = ("x12", "proj")
    embedding_taps = ("x12", "proj")
    triplet_taps = ("x11", "x12", "proj")

    def __init__(self, *, embed_dim: int, image_size: Sequence[int], vision: Mapping, text: Mapping,
                 quick_gelu: bool = True, text_tower: bool = False):
        super().__init__()
        h, w = image_size
        patch = vision["patch_size"]
        if h % patch or w % patch:
            raise UserError(f"image_size {h}x{w} is not divisible by the patch size {patch}; "
                            f"pick a multiple of {patch}")
        if vision["layers"] < 2:
            raise UserError(f"vision.layers is {vision['layers']}; it must be >= 2 (x11 taps the penultimate block)")
        self.clip = open_clip.CLIP(embed_dim, vision_cfg=CLIPVisionCfg(**vision, image_size=(h, w)),
                                   text_cfg=CLIPTextCfg(**text), quick_gelu=quick_gelu)
        self.has_text_tower = text_tower
        if text_tower:
            for name, param in self.clip.named_parameters():
                if not name.startswith("visual."):
                    param.requires_grad_(False)
            self.context_length = self.clip.context_length
            self._tokenizer: open_clip.tokenizer.SimpleTokenizer | None = None
        else:
            for name in _TEXT_ATTRS:
                delattr(self.clip, name)
        self.width = vision["width"]
        self.embed_dim = embed_dim
        self.tap_dims = {"x11": self.width, "x12": self.width, "proj": embed_dim}

    @property
    def blocks(self) -> nn.ModuleList:
        """The vision transformer blocks, indexable for freezing."""
        return self.clip.visual.transformer.resblocks

    # ---- image side -------------------------------------------------------------------------
    def forward(self, x: Tensor, prompter: Prompter | None = None, score_embedding: bool = False) -> dict[str, Tensor]:
        """Taps of the CLS token: x11 (penultimate block, no LN), x12 (ln_post of the last), proj (x12 @ proj).

        `prompter(i, x)` gets block i's input (B, N, D) and may return prompt tokens (B, P, D); they
        are inserted after CLS for that block only and dropped after it (prompt tuning). Returned as
        `KVPrefix(tokens)` they are key/value prefix prompts of that block's attention instead, and as
        `KeptPrompts(tokens)` they are inserted after CLS before block i and kept to the end.
        `score_embedding`: DAFC's extra term before the positional embedding (`score_embedding_term`).
        """
        return image_taps(self.clip.visual, x, prompter, score_embedding)

    def set_requires_grad(self, part: str | int, requires_grad: bool) -> None:
        """Set requires_grad of one image-side part: 'embeddings', 'ln_post', 'proj' or a block index."""
        v = self.clip.visual
        if isinstance(part, int) and not isinstance(part, bool):
            if not -len(self.blocks) <= part < len(self.blocks):
                raise UserError(f"block index {part} is out of range; this model has {len(self.blocks)} blocks")
            self.blocks[part].requires_grad_(requires_grad)
        elif part == "embeddings":
            for name in _EMBEDDING_ATTRS:
                getattr(v, name).requires_grad_(requires_grad)
        elif part in ("ln_post", "proj"):
            getattr(v, part).requires_grad_(requires_grad)
        else:
            raise UserError(f"unknown CLIP part {part!r}; use one of {', '.join(PARTS)} or a block index")

    def image_encoder(self) -> nn.Module:
        """The image tower (no text tower)."""
        return self.clip.visual

    def image_encoder_state_dict(self) -> dict[str, Tensor]:
        """The image tower's weights (no text tower), with this module's key names."""
        return {k: t for k, t in self.state_dict().items() if k.startswith("clip.visual.")}

    def prepare_pretrained(self, state_dict: Mapping[str, Tensor], source: str) -> tuple[nn.Module, dict]:
        """The submodule a CLIP checkpoint (OpenAI / open_clip keys) describes, and the state dict adapted to it."""
        sd = dict(state_dict)
        if not self.has_text_tower:
            sd = {k: t for k, t in sd.items() if k.startswith("visual.")}
        key = "visual.positional_embedding"
        if key in sd:
            sd[key] = resize_pos_embed(sd[key], self.clip.visual.grid_size, source)
        return self.clip, sd

    # ---- text side (frozen) -------------------------------------------------------------------
    def tokenize(self, texts: Iterable[str]) -> Tensor:
        """Token ids (B, context_length) from open_clip's bundled BPE tokenizer (offline)."""
        self._require_text()
        if self._tokenizer is None:
            self._tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=self.context_length)
        return self._tokenizer(list(texts))

    def embed_tokens(self, tokens: Tensor) -> Tensor:
        """Token embeddings (B, L, D_text) of token ids (B, L)."""
        self._require_text()
        return self.clip.token_embedding(tokens)

    def encode_prompt_embeddings(self, embeds: Tensor, tokens: Tensor) -> Tensor:
        """Text features (B, embed_dim) of token embeddings (B, L, D); `tokens` locate the EOT (argmax).
        L may be shorter than the context length: attention is causal, so tokens after the EOT never matter."""
        self._require_text()
        c = self.clip
        cast = c.transformer.get_cast_dtype()
        n = embeds.shape[1]
        x = embeds.to(cast) + c.positional_embedding[:n].to(cast)
        x = c.ln_final(c.transformer(x, attn_mask=c.attn_mask[:n, :n]))
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        return x @ c.text_projection

    def _require_text(self) -> None:
        if not self.has_text_tower:
            raise UserError("this CLIP model was built without its text tower; create it with text_tower=True")


def image_taps(visual: nn.Module, x: Tensor, prompter: Prompter | None = None,
               score_embedding: bool = False) -> dict[str, Tensor]:
    """CLIPBackbone.forward on an open_clip VisionTransformer `visual` (also used by PAD's EMA teacher,
    which holds a copy of the image tower only)."""
    x = _embed(visual, x, score_embedding)
    blocks = visual.transformer.resblocks
    last = len(blocks) - 1
    for i, blk in enumerate(blocks):
        prompts = prompter(i, x) if prompter is not None else None
        if isinstance(prompts, KeptPrompts):
            x = insert_after_cls(x, prompts.tokens)
            prompts = None
        if prompts is None:
            x = block_forward(blk, x)
        elif isinstance(prompts, KVPrefix):
            x = block_forward(blk, x, prefix=prompts.tokens)
        else:
            n_prompts = prompts.shape[1]
            x = block_forward(blk, insert_after_cls(x, prompts))
            x = torch.cat([x[:, :1], x[:, 1 + n_prompts:]], dim=1)
        if i == last - 1:
            x11 = x[:, 0]
    x12 = visual.ln_post(x[:, 0])
    return {"x11": x11, "x12": x12, "proj": x12 @ visual.proj}


def _embed(visual: nn.Module, x: Tensor, score_embedding: bool = False) -> Tensor:
    x = visual.conv1(x).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1)
    if score_embedding:
        x = x + score_embedding_term(x)
    x = x + visual.positional_embedding.to(x.dtype)
    return visual.ln_pre(visual.patch_dropout(x))


def score_embedding_term(tokens: Tensor) -> Tensor:
    """DAFC's "score embedding" (its clip/model.py:266-271): per image and channel, the largest value
    over the tokens (CLS included), placed at that token; zero elsewhere."""
    top, where = tokens.max(dim=1, keepdim=True)
    return torch.zeros_like(tokens).scatter(1, where, top)


def block_forward(blk: nn.Module, x: Tensor, prefix: Tensor | None = None) -> Tensor:
    """`blk(x)` of an open_clip ResidualAttentionBlock (batch-first, no mask), with the attention computed
    by F.scaled_dot_product_attention on the packed in-projection (no nn.MultiheadAttention wrapper);
    `prefix` (B, P, D): key/value prefix prompts of the attention (pad_bench.models.attention)."""
    attn = blk.attn
    a = packed_attention(blk.ln_1(x), lambda t: F.linear(t, attn.in_proj_weight, attn.in_proj_bias),
                         attn.num_heads, prefix)
    x = x + blk.ls_1(attn.out_proj(a))
    return x + blk.ls_2(blk.mlp(blk.ln_2(x)))


def resize_pos_embed(pos: Tensor, grid: Sequence[int], source: str = "checkpoint") -> Tensor:
    """Resize a (1 + g*g, D) ViT positional embedding to `grid`, bilinear without antialias (CLIP-ReID)."""
    gh, gw = grid
    if pos.shape[0] == 1 + gh * gw:
        return pos
    side = math.isqrt(pos.shape[0] - 1)
    if side * side != pos.shape[0] - 1:
        raise UserError(f"weights file '{source}' has a {pos.shape[0] - 1}-token positional embedding that is "
                        f"not a square grid, so it cannot be resized to {gh}x{gw}; use a square-input checkpoint")
    patches = pos[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches.float(), size=(gh, gw), mode="bilinear", align_corners=False, antialias=False)
    return torch.cat([pos[:1], patches.permute(0, 2, 3, 1).reshape(gh * gw, -1).to(pos.dtype)], dim=0)
