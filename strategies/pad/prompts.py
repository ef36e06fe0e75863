"""PAD's prompts (docs/methods/pad.md#prompts): the VA-prompt pool on the image side, the TA-prompt learner on the
text side, and PADNet, a CLIP ReIDNet carrying both.

Torch only (no Avalanche): everything here is testable without a strategy.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pad_bench.errors import UserError
from pad_bench.metrics.diagnostics import NO_DOMAIN, RoutingRecord
from pad_bench.models.clip import image_taps
from pad_bench.models.prompts import cosine_topk
from pad_bench.models.reid import ReIDNet

EVAL_ACTIVE_SLOTS = ("trained_only", "all_36")
SLOT_RULES = ("train", "test")  # which selection rule a forward uses (see VAPromptPool)
IMAGE_SIDE = ("reid.backbone.clip.visual.", "reid.necks.", "reid.classifiers.", "va_prompt.")


class VAPromptPool(nn.Module):
    """Per block: a shared G-prompt (always trainable) and a pool of E-prompts picked by query-key cosine.

    Slots are handed out per domain (`allocate_new_domain_slots`); a gradient hook zeroes the rows of
    older slots in `e_prompt` and `e_key`, so an optimizer without weight decay leaves them bitwise
    unchanged.

    Which slots top-k may pick is a rule the caller names, never the module's train/eval mode:
      rule "train", used by every forward during training (the student, the EMA teacher, the stage-1
        feature cache), so that KD targets and cached features come from the student's selection:
        learn_keys=False (released code): every allocated slot; keys stay random.
        learn_keys=True (DualPrompt-style): only this domain's slots (all allocated ones in a domain
          that got none), whose keys the pull term -mean cos(q, picked keys) draws to this domain's
          queries. (Picking among all slots would keep choosing the older, already pulled keys and
          leave the new slots untrained.)
      rule "test", used by evaluation only: every allocated slot (eval_active_slots=trained_only),
        or the whole pool (all_36, released code: its test-time active count covers every slot).
    """

    def __init__(self, *, num_layers: int, dim: int, pool_size: int = 36, prompt_len: int = 6, g_len: int = 6,
                 top_k: int = 4, init_range: float = 0.02, eval_active_slots: str = "trained_only",
                 learn_keys: bool = True):
        super().__init__()
        if eval_active_slots not in EVAL_ACTIVE_SLOTS:
            raise UserError(f"eval_active_slots must be one of {', '.join(EVAL_ACTIVE_SLOTS)}, "
                            f"got {eval_active_slots!r}")
        for name, value in (("num_layers", num_layers), ("pool_size", pool_size), ("prompt_len", prompt_len),
                            ("top_k", top_k)):
            if value < 1:
                raise UserError(f"VA-prompt {name} is {value}; it must be >= 1")
        self.pool_size, self.prompt_len, self.top_k = pool_size, prompt_len, top_k
        self.eval_all_slots = eval_active_slots == "all_36"
        self.learn_keys = learn_keys
        r = init_range
        self.g_prompt = nn.Parameter(torch.empty(num_layers, g_len, dim).uniform_(-r, r))
        self.e_prompt = nn.Parameter(torch.empty(num_layers, pool_size, prompt_len, dim).uniform_(-r, r))
        self.e_key = nn.Parameter(torch.empty(num_layers, pool_size, dim).uniform_(-r, r))
        self.register_buffer("active_sizes", torch.zeros(num_layers, dtype=torch.long))
        self.register_buffer("frozen_masks", torch.zeros(num_layers, pool_size, dtype=torch.bool))
        self.register_buffer("trainable_masks", torch.zeros(num_layers, pool_size, dtype=torch.bool))
        self.e_prompt.register_hook(self._zero_frozen_rows)
        self.e_key.register_hook(self._zero_frozen_rows)

    def _zero_frozen_rows(self, grad: Tensor) -> Tensor:
        keep = ~self.frozen_masks
        return grad * keep.view(*keep.shape, *([1] * (grad.dim() - 2))).to(grad.dtype)

    @torch.no_grad()
    def allocate_new_domain_slots(self, n: int) -> range:
        """Freeze every slot in use, make the next n trainable and selectable; returns the new slots (layer 0)."""
        if n < 0:
            raise UserError(f"allocate_new_domain_slots got n={n}; it must be >= 0")
        used = self.active_sizes.clone()
        new = (used + n).clamp(max=self.pool_size)
        slot = torch.arange(self.pool_size, device=used.device)
        self.frozen_masks.copy_(slot[None] < used[:, None])
        self.trainable_masks.copy_((slot[None] >= used[:, None]) & (slot[None] < new[:, None]))
        self.active_sizes.copy_(new)
        return range(int(used[0]), int(new[0]))

    def selectable_ranges(self, rule: str) -> list[tuple[int, int]]:
        """Per layer, the slots [lo, hi) top-k may pick under `rule` ("train" or "test"; class docstring)."""
        if rule not in SLOT_RULES:
            raise ValueError(f"slot rule must be one of {SLOT_RULES}, got {rule!r}")
        if rule == "test":
            hi = [self.pool_size] * len(self.active_sizes) if self.eval_all_slots else self.active_sizes.tolist()
            return [(0, h) for h in hi]
        lo = self.frozen_masks.sum(1).tolist() if self.learn_keys else [0] * len(self.active_sizes)
        return [(lo_ if lo_ < hi else 0, hi) for lo_, hi in zip(lo, self.active_sizes.tolist())]

    def layer_prompts(self, layer: int, x: Tensor, lo: int, hi: int, pull: bool = False,
                      record: RoutingRecord | None = None) -> tuple[Tensor, Tensor | None]:
        """Prompt tokens (B, g_len + k·prompt_len, D) for block `layer` given its input x (B, N, D), picked
        among slots [lo, hi), and with `pull` the mean query-key cosine of the picks (else None).
        `record` gets the picks and the prompt and patch tokens (docs/metrics.md#prompt-routing)."""
        b = x.shape[0]
        g = self.g_prompt[layer].expand(b, -1, -1)
        k = min(self.top_k, hi - lo)
        if k <= 0:
            if record is not None:
                record.add(layer, torch.zeros(b, 0, dtype=torch.long), g, x[:, 1:])
            return g, None
        with torch.no_grad():  # the query is the mean of the block's input tokens
            query = x.float().mean(dim=1)
            idx = cosine_topk(query, self.e_key[layer, lo:hi].float(), k) + lo
        e = self.e_prompt[layer][idx].reshape(b, k * self.prompt_len, -1)
        sim = None
        if pull:
            q = F.normalize(query, dim=-1)
            sim = (F.normalize(self.e_key[layer][idx].float(), dim=-1) * q[:, None]).sum(-1).mean()
        prompts = torch.cat([g, e], dim=1)
        if record is not None:
            record.add(layer, idx, prompts, x[:, 1:])
        return prompts, sim

    def slot_owner(self, new_slots: list[int]) -> Tensor:
        """(pool_size,) the training domain (position) each slot was given, from the slots each domain
        got (`new_slots`, in order; a slot past the pool's active size went to no domain yet)."""
        owner = torch.full((self.pool_size,), NO_DOMAIN, dtype=torch.long)
        active, start = int(self.active_sizes[0]), 0
        for domain, n in enumerate(new_slots):
            end = min(start + n, active)
            owner[start:end] = domain
            start = end
        return owner

    def prompter(self, rule: str = "train", record: RoutingRecord | None = None) -> "PoolPrompter":
        return PoolPrompter(self, rule, record)


class PoolPrompter:
    """The `prompter(layer, x)` of one forward pass under one slot rule; collects the key-pull similarities
    (training rule with learn_keys, when gradients are on: the teacher and the stage-1 cache skip them)."""

    def __init__(self, pool: VAPromptPool, rule: str, record: RoutingRecord | None = None):
        self.pool, self.record = pool, record
        self.ranges = pool.selectable_ranges(rule)  # one host sync per forward, not one per block
        self.pull = rule == "train" and pool.learn_keys and torch.is_grad_enabled()
        self.sims: list[Tensor] = []

    def __call__(self, layer: int, x: Tensor) -> Tensor:
        prompts, sim = self.pool.layer_prompts(layer, x, *self.ranges[layer], pull=self.pull, record=self.record)
        if sim is not None:
            self.sims.append(sim)
        return prompts

    def pull_loss(self) -> Tensor | None:
        """-mean cos(q, selected keys) over blocks, images and picks (None when not computed)."""
        return -torch.stack(self.sims).mean() if self.sims else None


class TAPromptLearner(nn.Module):
    """CLIP-ReID's identity prompts: "A photo of a X X X X person." with 4 learnable vectors per identity."""

    TEMPLATE = "A photo of a X X X X person."

    def __init__(self, num_classes: int, text: nn.Module, *, std: float = 0.02):
        """`text` is a CLIPBackbone built with its text tower (tokenize, embed_tokens)."""
        super().__init__()
        tokens = text.tokenize([self.TEMPLATE])
        x_id = int(text.tokenize(["X"])[0, 1])
        ctx_pos = (tokens[0] == x_id).nonzero().squeeze(1)
        start, n_ctx = int(ctx_pos[0]), len(ctx_pos)
        with torch.no_grad():
            emb = text.embed_tokens(tokens.to(text.clip.token_embedding.weight.device))
        # Derived from the frozen tower: rebuilt with the learner, not stored in checkpoints.
        self.register_buffer("tokens", tokens.to(emb.device), persistent=False)
        self.register_buffer("prefix", emb[:, :start].clone(), persistent=False)
        self.register_buffer("suffix", emb[:, start + n_ctx:].clone(), persistent=False)
        self.cls_ctx = nn.Parameter(torch.randn(num_classes, n_ctx, emb.shape[-1], device=emb.device) * std)

    @property
    def num_classes(self) -> int:
        return self.cls_ctx.shape[0]

    def forward(self, labels: Tensor, text: nn.Module) -> Tensor:
        """Text features (B, embed_dim), unnormalised, of the prompts of `labels` through the frozen `text` tower."""
        ctx = self.cls_ctx[labels]
        b = ctx.shape[0]
        embeds = torch.cat([self.prefix.expand(b, -1, -1), ctx, self.suffix.expand(b, -1, -1)], dim=1)
        return text.encode_prompt_embeddings(embeds, self.tokens.expand(b, -1))


class ImageTeacher(nn.Module):
    """The EMA teacher of PAD's image side: the image tower and the VA pool, with the student's frozen
    parameters shared rather than copied (they cannot change within a domain), so the teacher holds
    only the tensors that train. No text tower, necks or classifiers: KD reads the pre-BN taps."""

    def __init__(self, visual: nn.Module, pool: VAPromptPool | None):
        super().__init__()
        self.visual, self.va_prompt = visual, pool

    @classmethod
    def of(cls, net: "PADNet") -> "ImageTeacher":
        visual, pool = net.backbone.clip.visual, net.va_prompt
        memo = {id(p): p for p in visual.parameters() if not p.requires_grad}
        teacher = cls(copy.deepcopy(visual, memo), copy.deepcopy(pool))
        return teacher.eval().requires_grad_(False)

    def ema_pairs(self, net: "PADNet") -> tuple[list[Tensor], list[Tensor]]:
        """Matching (teacher, student) tensors the EMA moves: those that train in the student."""
        student = {"visual": net.backbone.clip.visual, "va_prompt": net.va_prompt}
        pairs = [(t, s) for part, mod in student.items() if mod is not None
                 for t, s in zip(getattr(self, part).parameters(), mod.parameters()) if s.requires_grad]
        return [t for t, _ in pairs], [s for _, s in pairs]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """The taps x11, x12, proj under the training slot rule (the student's)."""
        return image_taps(self.visual, x, self.va_prompt.prompter("train") if self.va_prompt is not None else None)


class PADNet(nn.Module):
    """A CLIP ReIDNet (with its frozen text tower) + an optional VA-prompt pool + this domain's TA-prompts."""

    def __init__(self, reid: ReIDNet, pool: VAPromptPool | None):
        super().__init__()
        if not getattr(reid.backbone, "has_text_tower", False):
            raise UserError("PAD needs a CLIP model built with text_tower=True")
        self.reid = reid
        self.va_prompt = pool
        self.prompt_learner = TAPromptLearner(0, reid.backbone)
        self.routing_record: RoutingRecord | None = None  # filled by test-rule forwards while set

    @property
    def backbone(self) -> nn.Module:
        return self.reid.backbone

    def forward(self, x: Tensor, slot_rule: str = "train") -> dict[str, Any]:
        """ReIDNet outputs with prompts picked under `slot_rule` ("train" for every training-time forward,
        "test" for evaluation); with the pull constraint and gradients on, also 'va_pull'."""
        record = self.routing_record if slot_rule == "test" else None
        prompter = self.va_prompt.prompter(slot_rule, record) if self.va_prompt is not None else None
        out = self.reid(x, prompter=prompter)
        pull = prompter.pull_loss() if prompter is not None else None
        if pull is not None:
            out["va_pull"] = pull
        return out

    def new_domain(self, num_classes: int) -> None:
        """Fresh classifiers and fresh TA-prompts for a domain of num_classes identities (labels from 0)."""
        self.reid.reset_classifier(num_classes)
        self.prompt_learner = TAPromptLearner(num_classes, self.backbone)

    def text_features(self, labels: Tensor) -> Tensor:
        """Text features of the current TA-prompts of `labels` (domain-local)."""
        return self.prompt_learner(labels, self.backbone)

    @torch.no_grad()
    def text_bank(self, chunk: int = 256) -> Tensor:
        """(C, embed_dim) float text features of every current identity."""
        labels = torch.arange(self.prompt_learner.num_classes, device=self.prompt_learner.cls_ctx.device)
        return torch.cat([self.text_features(c).float() for c in labels.split(chunk)])

    def set_trainable(self, *, full_backbone: bool, last_n: int, ln_post_proj: bool, neck_bias: bool) -> None:
        """docs/methods/pad.md#trainable-set: the whole image tower, or only its last `last_n` blocks (+ ln_post/proj if asked);
        necks (bias if asked), classifiers and VA-prompts always; TA-prompts and the text tower never."""
        self.requires_grad_(False)
        bb = self.backbone
        n_blocks = len(bb.blocks)
        if not 0 <= last_n <= n_blocks:
            raise UserError(f"unfreeze_last_n is {last_n}; this model has {n_blocks} blocks")
        for i in range(0 if full_backbone else n_blocks - last_n, n_blocks):
            bb.set_requires_grad(i, True)
        if full_backbone:
            bb.set_requires_grad("embeddings", True)
        for part in ("ln_post", "proj"):
            bb.set_requires_grad(part, full_backbone or ln_post_proj)
        for neck in self.reid.necks.values():
            neck.weight.requires_grad_(True)
            neck.bias.requires_grad_(neck_bias)
        self.reid.classifiers.requires_grad_(True)
        if self.va_prompt is not None:
            self.va_prompt.requires_grad_(True)

    def constant_state_keys(self) -> list[str]:
        """State that never changes in a run: the frozen text tower (checkpoints leave it out)."""
        text = "reid.backbone.clip."
        return [k for k in self.state_dict() if k.startswith(text) and not k.startswith(text + "visual.")]

    def image_parameters(self) -> list[nn.Parameter]:
        """The image side's parameters: image tower, VA pool, necks, classifiers (no text side)."""
        return [p for n, p in self.named_parameters() if n.startswith(IMAGE_SIDE)]

    def prompt_storage(self) -> dict[str, int]:
        """Parameters held by prompts: the VA pool (all slots) and this domain's TA-prompts."""
        va = sum(p.numel() for p in self.va_prompt.parameters()) if self.va_prompt is not None else 0
        return {"va_prompt_params": va, "ta_prompt_params": self.prompt_learner.cls_ctx.numel()}

    def image_encoder_state_dict(self) -> dict[str, Tensor]:
        """Deployment weights: the image tower, necks and VA pool (no classifiers, no text side)."""
        sd = {f"reid.{k}": t for k, t in self.reid.image_encoder_state_dict().items()}
        if self.va_prompt is not None:
            sd.update({f"va_prompt.{k}": t for k, t in self.va_prompt.state_dict().items()})
        return sd

    def resize_for_state_dict(self, state_dict: Mapping[str, Tensor]) -> None:
        """Size classifiers and TA-prompts like `state_dict` (a later domain's) so that it loads."""
        self.reid.resize_for_state_dict({k.removeprefix("reid."): t for k, t in state_dict.items()
                                         if k.startswith("reid.")})
        ctx = state_dict.get("prompt_learner.cls_ctx")
        if ctx is not None and ctx.shape[0] != self.prompt_learner.num_classes:
            self.prompt_learner = TAPromptLearner(ctx.shape[0], self.backbone)
