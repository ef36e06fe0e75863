"""Per-step diagnostics (docs/metrics.md#6-diagnostics): feature drift, text-anchor alignment, prompt routing.

The maths are plain functions on tensors; `Diagnostics` gathers them during the evaluation after every
step (RetrievalMetric hands it each eval experience's query features) and keeps the long table that
becomes diagnostics.csv. Methods take part through two strategy hooks (ReIDStrategy's defaults opt out), never by name:
- `text_anchors()` -> TextAnchors | None: the frozen text tower's anchors of the identities just trained;
- `routing_record()` -> a context manager yielding a RoutingRecord (or None) that the model fills
  while it is entered, with the prompt slots each test image selects.
"""
from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

DIAGNOSTIC_COLUMNS = ("step", "eval_set", "eval_domain", "diagnostic", "index", "value")
NO_DOMAIN = -1  # slot_owner of a slot no training domain was given
PROBE_SIZE = 512  # queries per set whose features drift compares (kept in memory and in checkpoints)


def probe_rows(n: int) -> Tensor:
    """The drift probe of a set of n queries: all of them, or PROBE_SIZE evenly spaced (the same each step)."""
    return torch.arange(n) if n <= PROBE_SIZE else torch.linspace(0, n - 1, PROBE_SIZE).round().long()


def mean_cosine(a: Tensor, b: Tensor) -> float:
    """mean_i cos(a_i, b_i) of two (N, d) matrices whose rows are the same items."""
    return float(F.cosine_similarity(a.double(), b.double(), dim=1).mean())


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA of (N, d1) and (N, d2) with rows the same items: with X, Y column-centred,
    ||Yᵀ X||_F² / (||Xᵀ X||_F ||Yᵀ Y||_F). 1 for X against itself, any rotation or isotropic scaling of it."""
    x, y = x.double(), y.double()
    x, y = x - x.mean(0), y - y.mean(0)
    num = (y.T @ x).square().sum()
    den = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(num / den) if den > 0 else math.nan


def anchor_alignment(feats: Tensor, labels: Tensor, anchors: Tensor) -> tuple[float, float]:
    """(own, gap) of image features (N, d) with labels 0..C-1 against anchors (C, d), C >= 2:
    own = mean_i cos(f_i, a_{y_i}); gap = own - mean_i mean_{c != y_i} cos(f_i, a_c)."""
    sim = F.normalize(feats.double(), dim=1) @ F.normalize(anchors.double(), dim=1).T
    own = sim.gather(1, labels.long()[:, None])[:, 0]
    other = (sim.sum(1) - own) / (sim.shape[1] - 1)
    return float(own.mean()), float((own - other).mean())


def routing_share(picks: Tensor, slot_owner: Tensor, domain: int) -> float:
    """Share of the selections (N images x k picks of one block) whose slot belongs to training domain
    `domain`; slot_owner[s] is the domain slot s was given (NO_DOMAIN for none)."""
    return float((slot_owner[picks] == domain).double().mean()) if picks.numel() else math.nan


def slot_usage(picks: Tensor, pool_size: int) -> Tensor:
    """(pool_size,) share of all selections that picked each slot (sums to 1 when any pick was made)."""
    counts = torch.bincount(picks.reshape(-1), minlength=pool_size).double()
    return counts / counts.sum().clamp_min(1)


@dataclass
class TextAnchors:
    """A method's text anchors of the identities just trained: anchors[c] belongs to the identity whose
    dataset label is first_label + c; `feature` names the model output (dotted) that lives in their space."""

    feature: str
    anchors: Tensor
    first_label: int


@dataclass
class RoutingRecord:
    """What a prompt-pool model selected while evaluating one experience; the model calls `add` once per
    block and batch. slot_owner (pool_size,): the training domain (benchmark position) each slot was
    given, NO_DOMAIN for slots never given."""

    slot_owner: Tensor
    picks: dict[int, list[Tensor]] = field(default_factory=dict)
    norms: dict[int, Tensor] = field(default_factory=dict)  # block -> [prompt sum, count, patch sum, count]

    @torch.no_grad()
    def add(self, block: int, picks: Tensor, prompts: Tensor, patches: Tensor) -> None:
        """picks (B, k) slot indices; prompts (B, P, D) the tokens inserted; patches (B, N, D) the patch tokens."""
        self.picks.setdefault(block, []).append(picks.detach().cpu())
        p, x = prompts.detach().float().norm(dim=-1), patches.detach().float().norm(dim=-1)
        sums = torch.tensor([float(p.sum()), p.numel(), float(x.sum()), x.numel()], dtype=torch.float64)
        self.norms[block] = self.norms.get(block, torch.zeros(4, dtype=torch.float64)) + sums

    def rows(self, domain: int | None) -> list[tuple[str, int | str, float]]:
        """(diagnostic, index, value): routing_share per block (for a seen domain that owns slots),
        slot_usage per slot (over every block) and prompt_patch_norm per block."""
        out: list[tuple[str, int | str, float]] = []
        every = []
        owns = domain is not None and bool((self.slot_owner == domain).any())
        for block in sorted(self.picks):
            picks = torch.cat(self.picks[block])
            every.append(picks.reshape(-1))
            if owns:
                out.append(("routing_share", block, routing_share(picks, self.slot_owner, domain)))
            ps, pn, xs, xn = self.norms[block].tolist()
            out.append(("prompt_patch_norm", block, (ps / pn) / (xs / xn) if pn and xs else math.nan))
        if every:
            usage = slot_usage(torch.cat(every), len(self.slot_owner))
            out += [("slot_usage", s, float(u)) for s, u in enumerate(usage)]
        return out


class Diagnostics:
    """Collects the diagnostics of one run: drift and routing per eval experience (through RetrievalMetric),
    text-anchor alignment once per step (`align`). `results` holds one list of (diagnostic, index, value)
    per eval experience of the current `Strategy.eval` call, drained by the caller like RetrievalMetric's;
    `rows` is the run's table (DIAGNOSTIC_COLUMNS)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.results: list[list[tuple[str, int | str, float]]] = []
        self.previous: dict[tuple[str, int], Tensor] = {}  # query features of the last evaluation
        self._routing: RoutingRecord | None = None
        self._stack = ExitStack()

    def start_experience(self, strategy) -> None:
        self._routing = self._stack.enter_context(strategy.routing_record())

    def end_experience(self, strategy, query_feats: Tensor) -> None:
        self._stack.close()
        exp = strategy.experience
        key = (exp.origin_stream.name, exp.current_experience)
        probe = query_feats[probe_rows(len(query_feats))].detach().cpu()
        out: list[tuple[str, int | str, float]] = []
        before = self.previous.get(key)
        if before is not None and before.shape == probe.shape:
            out.append(("drift_cosine", "", mean_cosine(before, probe)))
        if before is not None:
            out.append(("drift_cka", "", linear_cka(before, probe)))
        self.previous[key] = probe
        if self._routing is not None:
            seen = exp.origin_stream.name == "test"
            out += self._routing.rows(exp.current_experience if seen else None)
        self._routing = None
        self.results.append(out)

    def collect(self, step: int, eval_set: str, names: list[str]) -> list[dict]:
        """Turn `results` (one per eval experience, named by `names`) into rows and clear it; the
        experiences of one name (an unseen set's splits) are averaged, as their metrics are."""
        per_name: dict[str, dict[tuple[str, int | str], list[float]]] = {}
        for values, name in zip(self.results, names):
            for d, i, v in values:
                per_name.setdefault(name, {}).setdefault((d, i), []).append(v)
        self.results.clear()
        start = len(self.rows)
        for name, values in per_name.items():
            self.add(step, eval_set, name, [(d, i, sum(v) / len(v)) for (d, i), v in values.items()])
        return self.rows[start:]

    def add(self, step: int, eval_set: str, eval_domain: str, values: list[tuple[str, int | str, float]]) -> None:
        self.rows += [{"step": step, "eval_set": eval_set, "eval_domain": eval_domain, "diagnostic": d,
                       "index": i, "value": v} for d, i, v in values]

    def align(self, strategy, dataset, *, step: int, domain: str) -> None:
        """Text-anchor alignment of the images of `dataset` (the domain just trained) with their anchors."""
        anchors = strategy.text_anchors()
        if anchors is None or len(anchors.anchors) < 2:
            return
        feats = strategy.extract(dataset, keys=(anchors.feature,))
        own, gap = anchor_alignment(feats[anchors.feature], feats["labels"] - anchors.first_label,
                                    anchors.anchors.to(feats[anchors.feature].device))
        self.add(step, "train", domain, [("anchor_cosine", "", own), ("anchor_gap", "", gap)])

    def state_dict(self) -> dict:
        return {"rows": list(self.rows), "previous": dict(self.previous)}

    def load_state_dict(self, state: dict | None) -> None:
        """A checkpoint's state; a checkpoint without one (written before diagnostics existed) starts empty."""
        state = state or {}
        self.rows, self.previous = list(state.get("rows", [])), dict(state.get("previous", {}))
