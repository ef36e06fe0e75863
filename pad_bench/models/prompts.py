"""Prompt pools of the rehearsal-free prompt methods (L2P, DualPrompt, CODA-Prompt) on a frozen ViT or CLIP
image tower, and the backbone that runs them (docs/adding-a-method.md#a-prompt-method).

Every method here queries its pool with the frozen tower's own feature of the image (the first head tap:
ViT 'cls', CLIP 'x12', both the final-LayerNorm CLS token), computed without prompts, and hands the
tower's block loop prompts through `prompter(i, x)`: `KeptPrompts` (prompt tuning at the input, L2P) or
`KVPrefix` (prefix tuning: P prompt tokens, the first P/2 as keys and the last P/2 as values of the
block's attention, pad_bench.models.attention). A prompter also returns the method's auxiliary loss terms
(the key pull, the orthogonality penalty), which the backbone puts into the model output as
out["prompt_terms"].
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from .attention import KeptPrompts, KVPrefix

BATCHWISE = ("train", "always", "never")


def cosine_topk(query: Tensor, keys: Tensor, k: int) -> Tensor:
    """(B, k) indices of the k keys (M, D) with the highest cosine to each query (B, D), best first."""
    return (F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).t()).topk(k, dim=1).indices


def batchwise_ids(idx: Tensor, k: int) -> Tensor:
    """L2P's batch-wise selection: the k ids picked most often over the batch's (B, k') picks, for every
    image (B, k); ties go to the lower id."""
    ids, counts = torch.unique(idx, return_counts=True, sorted=True)
    order = torch.sort(counts, descending=True, stable=True).indices[:k]
    return ids[order].expand(idx.shape[0], -1)


def key_pull(query: Tensor, keys: Tensor, idx: Tensor) -> Tensor:
    """L2P's surrogate: the sum over picks of cos(query, picked key), averaged over the batch
    (the methods subtract coefficient × this from the loss)."""
    picked = F.normalize(keys, dim=-1)[idx]  # (B, k, D)
    return (picked * F.normalize(query, dim=-1)[:, None]).sum() / query.shape[0]


def ortho_penalty(t: Tensor) -> Tensor:
    """CODA-Prompt's orthogonality penalty of the rows of t (M, D): mean of (t tᵀ − I)²."""
    return ((t @ t.t() - torch.eye(t.shape[0], device=t.device, dtype=t.dtype)) ** 2).mean()


def gram_schmidt_rows(rows: Tensor, start: int, stop: int) -> Tensor:
    """`rows` (M, D) with rows [start, stop) replaced by unit random vectors: a fresh N(0, 1) draw minus its
    projections on every row before it (classical Gram-Schmidt, as CODA-Prompt re-initialises a task's
    components), so orthogonal to those rows when they are orthogonal to each other; the other rows are kept."""
    out = rows.detach().clone()
    if stop > out.shape[1]:
        raise UserError(f"{stop} orthogonal components do not fit in {out.shape[1]} dimensions; "
                        f"lower strategy.pool_size to at most {out.shape[1]}")
    for k in range(start, stop):
        v = torch.randn(out.shape[1], dtype=out.dtype, device=out.device)
        before = out[:k]
        coef = (before @ v) / (before * before).sum(dim=1)
        u = v - coef @ before
        out[k] = u / u.norm()
    return out


def tower_sizes(model_cfg: dict) -> dict[str, int]:
    """What a prompt module needs of the tower a model config (pad_bench/configs/models) describes: depth
    (blocks), dim (token width) and key_dim (the query's width: the final CLS token's, the same)."""
    family = model_cfg.get("family")
    if family not in ("vit", "clip"):
        raise UserError(f"prompt methods need a ViT image tower (vit-b16, vit-tiny, clip-vit-b16, clip-tiny), "
                        f"not a {family} model; pick one with --model")
    arch = model_cfg["vision"] if family == "clip" else model_cfg
    return {"depth": arch["layers"], "dim": arch["width"], "key_dim": arch["width"]}


def check_layers(name: str, layers: Sequence[int], depth: int) -> tuple[int, ...]:
    """The block indices `layers` as a tuple, each inside a tower of `depth` blocks."""
    layers = tuple(int(i) for i in layers)
    bad = [i for i in layers if not 0 <= i < depth]
    if bad or len(set(layers)) != len(layers):
        raise UserError(f"strategy.{name} {list(layers)} must name distinct blocks among 0..{depth - 1} "
                        f"of this model; pick layers it has")
    return layers


class LayerPrompter:
    """`prompter(i, x)` of one forward: per block the prompts of `make(i)` (None: no prompts), plus the
    auxiliary loss terms the method computed for this forward."""

    def __init__(self, make: Callable[[int], "KVPrefix | KeptPrompts | None"], terms: dict[str, Tensor]):
        self.make, self.terms = make, terms

    def __call__(self, layer: int, x: Tensor):
        return self.make(layer)


class KeyedPromptPool(nn.Module):
    """L2P's prompt pool (DualPrompt's E-prompts): M learnable keys (M, key_dim) shared by the pool's
    blocks and per block M prompts of `tokens` tokens (len(layers), M, tokens, dim), all U(-1, 1);
    `select` picks top_k of them per image."""

    def __init__(self, *, pool_size: int, tokens: int, dim: int, key_dim: int, layers: Sequence[int], top_k: int):
        super().__init__()
        if pool_size < 1 or tokens < 1:
            raise UserError(f"a prompt pool needs pool_size >= 1 and a prompt length >= 1, got {pool_size}, {tokens}")
        if not 1 <= top_k <= pool_size:
            raise UserError(f"strategy.top_k is {top_k}; it must be between 1 and strategy.pool_size ({pool_size})")
        self.layers, self.top_k = tuple(layers), top_k
        self.key = nn.Parameter(torch.empty(pool_size, key_dim).uniform_(-1, 1))
        self.prompt = nn.Parameter(torch.empty(len(self.layers), pool_size, tokens, dim).uniform_(-1, 1))

    @property
    def pool_size(self) -> int:
        return self.key.shape[0]

    def select(self, query: Tensor, batchwise: bool) -> Tensor:
        """(B, top_k) prompt ids for the queries (B, key_dim)."""
        with torch.no_grad():
            idx = cosine_topk(query.float(), self.key.float(), self.top_k)
        return batchwise_ids(idx, self.top_k) if batchwise else idx

    def tokens(self, layer: int, idx: Tensor) -> Tensor:
        """The picked prompts of block `layer`, (B, top_k·tokens, dim), in pick order."""
        p = self.prompt[self.layers.index(layer)][idx]  # (B, k, tokens, dim)
        return p.reshape(p.shape[0], -1, p.shape[-1])


class CodaPool(nn.Module):
    """CODA-Prompt's components per block: keys K, attention vectors A (M, key_dim) and prompt components
    P (M, length, dim), M = pool_size, U[0, 1) before each task's slice of M // n_tasks is re-drawn by
    Gram-Schmidt (`start_task`). The prompt of an image is Σ_m cos(q ⊙ A_m, K_m) P_m, fed as key/value
    prefix (first half keys, second half values). Training uses the slices up to the current task's, the
    earlier ones detached; evaluation uses the same slices, none detached."""

    def __init__(self, *, pool_size: int, length: int, dim: int, key_dim: int, layers: Sequence[int], n_tasks: int):
        super().__init__()
        if length < 2 or length % 2:
            raise UserError(f"strategy.prompt_length must be an even number >= 2 (half keys, half values), "
                            f"got {length}")
        if not n_tasks <= pool_size <= key_dim:
            raise UserError(f"strategy.pool_size is {pool_size}; it needs one component per domain ({n_tasks}) and "
                            f"at most the key width {key_dim} (Gram-Schmidt): pick one in [{n_tasks}, {key_dim}]")
        self.layers, self.per_task = tuple(layers), pool_size // n_tasks
        n = len(self.layers)
        self.key = nn.Parameter(torch.rand(n, pool_size, key_dim))
        self.attn = nn.Parameter(torch.rand(n, pool_size, key_dim))
        self.prompt = nn.Parameter(torch.rand(n, pool_size, length, dim))
        self.register_buffer("task", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def start_task(self, task: int) -> None:
        """Make `task` the current one and re-draw its slice of every component by Gram-Schmidt."""
        self.task.fill_(task)
        s, f = task * self.per_task, (task + 1) * self.per_task
        for param in (self.key, self.attn):
            for j in range(len(self.layers)):
                param[j] = gram_schmidt_rows(param[j], s, f)
        for j in range(len(self.layers)):
            flat = self.prompt[j].reshape(self.prompt.shape[1], -1)
            self.prompt[j] = gram_schmidt_rows(flat, s, f).reshape(self.prompt.shape[1:])

    def components(self, layer: int, train: bool) -> tuple[Tensor, Tensor, Tensor]:
        """K, A, P of block `layer` restricted to the slices in use (earlier slices detached in training)."""
        j, f = self.layers.index(layer), (int(self.task) + 1) * self.per_task
        s = f - self.per_task
        parts = []
        for param in (self.key, self.attn, self.prompt):
            t = param[j, :f]
            parts.append(torch.cat([t[:s].detach(), t[s:]]) if train else t)
        return parts[0], parts[1], parts[2]


def component_weights(query: Tensor, key: Tensor, attn: Tensor) -> Tensor:
    """CODA-Prompt's weights (B, M): cos(query ⊙ A_m, K_m) for each component m."""
    return (F.normalize(query[:, None] * attn[None], dim=-1) * F.normalize(key, dim=-1)[None]).sum(-1)


class PromptedBackbone(nn.Module):
    """A frozen ViT or CLIP tower (ViTBackbone, CLIPBackbone) run with a prompt method: `method(query,
    training)` returns the forward's LayerPrompter. Same taps as the tower, plus out["prompt_terms"]; the
    tower stays in eval mode (no drop path), as the references run their frozen encoder."""

    def __init__(self, trunk: nn.Module, method: nn.Module):
        super().__init__()
        self.trunk, self.method = trunk.requires_grad_(False), method
        self.query_tap = trunk.head_taps[0]
        self.head_taps, self.embedding_taps = trunk.head_taps, trunk.embedding_taps
        self.triplet_taps, self.tap_dims = trunk.triplet_taps, trunk.tap_dims

    @property
    def blocks(self) -> nn.Module:
        return self.trunk.blocks

    def image_encoder(self) -> nn.Module:
        """The whole prompted image side (the frozen tower and the method's prompts), as for unfreeze reports."""
        return self

    def train(self, mode: bool = True) -> "PromptedBackbone":
        super().train(mode)
        self.trunk.train(False)
        return self

    def forward(self, x: Tensor, prompter=None) -> dict:
        if prompter is not None:
            raise UserError("a prompt method's backbone brings its own prompts; it takes no other prompter")
        with torch.no_grad():
            query = self.trunk(x)[self.query_tap].float()
        layer_prompter = self.method(query, self.training)
        out = self.trunk(x, prompter=layer_prompter)
        out["prompt_terms"] = layer_prompter.terms
        return out

    def image_encoder_state_dict(self) -> dict[str, Tensor]:
        """The tower's image side (a CLIP's text tower stays out) and the method's prompts."""
        sd = {f"trunk.{k}": t for k, t in self.trunk.image_encoder_state_dict().items()}
        sd.update({f"method.{k}": t.detach() for k, t in self.method.state_dict().items()})
        return sd
