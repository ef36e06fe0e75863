"""DAFC's model (reid/models/vit_pytorch.py:533-646) on pad-bench's CLIP backbone: text prompts from
a fixed description (the released attribute captioner has no usable weights, docs/methods/dafc.md),
key/value prefix prompts in every block, and the TWS experts on the final CLS feature."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pad_bench.errors import UserError
from pad_bench.models.attention import KVPrefix
from pad_bench.models.clip import CLIPBackbone

from .prompt import key_match, select_prompts
from .tws import TWS, gated_sum


def orthonormal_rows(n: int, dim: int) -> nn.Parameter:
    """n random orthonormal rows (columns when n > dim), the distribution of the released
    Gram–Schmidt over Gaussian draws (Prompt.py:108-164)."""
    return nn.Parameter(nn.init.orthogonal_(torch.empty(n, dim)))


class DAFCBackbone(nn.Module):
    """Taps: 'fin' (all experts, gated), 'adapt' (the current step's experts), 'experts' (B, D, n)."""

    head_taps = ("fin",)
    embedding_taps = ("fin",)
    triplet_taps = ("fin",)

    def __init__(self, trunk: nn.Module, *, steps: int, experts_per_step: int = 5, text_prompts: int = 20,
                 pool: int = 128, top: int = 10, description: str = "A photo of a person.", dropout: float = 0.1,
                 score_embedding: bool = True):
        super().__init__()
        if not isinstance(trunk, CLIPBackbone) or not trunk.has_text_tower:
            raise UserError("DAFC needs a CLIP model with its text tower (clip-vit-b16, clip-tiny) and "
                            "model.text_tower: true")
        if top < 2 or top % 2 or top > text_prompts:
            raise UserError(f"dafc_top_prompts must be even, >= 2 and <= dafc_text_prompts ({text_prompts}), got {top}")
        self.trunk, self.top, self.experts_per_step = trunk, top, experts_per_step
        self.score_embedding = score_embedding
        width = trunk.width
        self.tap_dims = {"fin": width}
        with torch.no_grad():
            tokens = trunk.tokenize([description])
            self.register_buffer("text_feature", trunk.encode_prompt_embeddings(trunk.embed_tokens(tokens), tokens))
        self.generators = nn.ModuleList(nn.Linear(trunk.embed_dim, width) for _ in range(text_prompts))
        n_blocks = len(trunk.blocks)
        self.attention = nn.ParameterList(orthonormal_rows(pool, width) for _ in range(n_blocks))
        self.keys = nn.ParameterList(orthonormal_rows(pool, width) for _ in range(n_blocks))
        self.tws = TWS(width, steps * experts_per_step, dropout)
        self.step = 0  # the 0-based step whose experts make 'adapt' (set by the strategy)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.trunk.blocks

    def text_prompts(self, batch: int) -> Tensor:
        """(B, n, D): one linear generator per prompt on the description's text feature."""
        return torch.stack([g(self.text_feature) for g in self.generators], dim=1).expand(batch, -1, -1)

    def forward(self, x: Tensor, prompter=None) -> dict[str, Tensor]:
        if prompter is not None:
            raise UserError("DAFC's backbone brings its own prompts; it takes no other prompter")
        prompts = self.text_prompts(x.shape[0])
        with torch.no_grad():
            first_query = self.trunk(x, score_embedding=self.score_embedding)["x12"]

        def prefix(i: int, tokens: Tensor) -> KVPrefix:
            query = first_query if i == 0 else tokens[:, 0]  # Transformer.forward, clip/model.py:205-214
            return KVPrefix(select_prompts(key_match(query, self.attention[i], self.keys[i]), prompts, self.top))

        feat = self.trunk(x, prompter=prefix, score_embedding=self.score_embedding)["x12"]
        outputs, gate = self.tws(feat, prompts)
        start = self.experts_per_step * self.step
        return {"fin": gated_sum(outputs, gate), "adapt": gated_sum(outputs, gate, start, start + self.experts_per_step),
                "experts": outputs}

    def image_encoder(self) -> nn.Module:
        """The module whose trainable flags the run reports as `unfreeze`: this whole backbone
        (its trunk's frozen text tower included)."""
        return self

    def image_encoder_state_dict(self) -> dict[str, Tensor]:
        """Everything but the text tower: the description's text feature stands in for it."""
        sd = {f"trunk.{k}": t for k, t in self.trunk.image_encoder_state_dict().items()}
        sd.update({k: t for k, t in self.state_dict().items() if not k.startswith("trunk.")})
        return sd
