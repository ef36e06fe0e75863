"""Identity batch samplers: PAD's P×K chunks (docs/methods/pad.md#data) and the LSTKC family's
multi-gallery sampler (docs/methods/lstkc.md). Both are deterministic for a given (seed, epoch):
call `set_epoch` before each epoch.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from ..errors import UserError

SAMPLERS = ("pk", "multi_gallery")


def check_pk_settings(domain: str, labels: Sequence[int], p: int, k: int,
                      keys: tuple[str, str] = ("train.batch_p", "train.batch_k")) -> None:
    """UserError unless P×K batches can be drawn from a domain's labels: P >= 2 identities (and no more
    than the domain has), 1 <= K <= the most images any one identity has (else every batch repeats images).
    `keys` name the config keys of P and K in the message."""
    p_key, k_key = keys
    counts = np.bincount(np.asarray(labels, dtype=np.int64) - min(labels)) if len(labels) else np.zeros(0, int)
    n_ids, most = int((counts > 0).sum()), int(counts.max(initial=0))
    if p < 2:
        raise UserError(f"{p_key} is {p}; a P×K batch needs at least 2 identities")
    if p > n_ids:
        raise UserError(f"{p_key} is {p} but training domain {domain} has {n_ids} identities "
                        f"(protocol.ids_per_domain limits them); lower {p_key} to at most {n_ids}")
    if not 1 <= k <= most:
        raise UserError(f"{k_key} is {k}; it must be between 1 and {most}, the most images one "
                        f"identity has in training domain {domain}")


class _EpochBatchSampler(Sampler[list[int]]):
    """The epoch bookkeeping both samplers share; subclasses implement `_batches(rng)`."""

    def __init__(self, labels: Sequence[int], p: int, k: int, seed: int):
        if p < 2 or k < 1:
            raise ValueError(f"P×K sampler needs P >= 2 and K >= 1, got P={p}, K={k}")
        self.p, self.k, self.seed, self.epoch = p, k, seed, 0
        by_label: dict[int, list[int]] = defaultdict(list)
        for i, lab in enumerate(labels):
            by_label[int(lab)].append(i)
        self.by_label = dict(sorted(by_label.items()))
        if len(self.by_label) < p:
            raise ValueError(f"P×K sampler: only {len(self.by_label)} identities for P={p}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self, rng: np.random.Generator) -> list[list[int]]:
        raise NotImplementedError

    def _cached(self) -> list[list[int]]:
        if getattr(self, "_cache_epoch", None) != self.epoch:
            self._cache = self._batches(np.random.default_rng([self.seed, self.epoch]))
            self._cache_epoch = self.epoch
        return self._cache

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._cached())

    def __len__(self) -> int:
        return len(self._cached())


class PKBatchSampler(_EpochBatchSampler):
    """Yields index batches of P identities × K images (PAD).

    Each identity's shuffled images are cut into chunks of K (an identity with fewer than K
    images is padded by drawing with replacement); one epoch visits every chunk once, P
    identities at a time, until fewer than P identities have chunks left.
    """

    def __init__(self, labels: Sequence[int], p: int, k: int, *, seed: int = 0):
        super().__init__(labels, p, k, seed)

    def _batches(self, rng: np.random.Generator) -> list[list[int]]:
        chunks: dict[int, list[list[int]]] = {}
        for lab, idxs in self.by_label.items():
            idxs = list(idxs)
            if len(idxs) < self.k:
                idxs = [int(i) for i in rng.choice(idxs, size=self.k, replace=True)]
            order = [idxs[i] for i in rng.permutation(len(idxs))]
            chunks[lab] = [order[i:i + self.k] for i in range(0, len(order) - self.k + 1, self.k)]
        batches = []
        available = [lab for lab in chunks if chunks[lab]]
        while len(available) >= self.p:
            picked = rng.choice(len(available), size=self.p, replace=False)
            batch = []
            for j in sorted(picked):
                batch.extend(chunks[available[j]].pop())
            batches.append(batch)
            available = [lab for lab in available if chunks[lab]]
        return batches


class MultiGalleryBatchSampler(_EpochBatchSampler):
    """The LSTKC family's `RandomMultipleGallerySampler` behind its fixed-length loader.

    One pass visits every identity once, in random order (identities are drawn uniformly, not by
    image count): a random anchor image, then K−1 images of the same identity from other cameras
    (without replacement only when at least K such images exist), or, with a single camera, K−1
    of its other images; an identity with one image contributes the anchor alone. The index
    stream of a pass is cut into batches of P·K, its incomplete last batch dropped, and passes
    follow each other until the epoch has int(N / (P·K)) batches, N being the number of images
    (at least one batch). Every epoch starts a fresh pass, as the reference restarts its loader.
    """

    def __init__(self, labels: Sequence[int], camids: Sequence[int], p: int, k: int, *, seed: int = 0):
        super().__init__(labels, p, k, seed)
        if len(camids) != len(labels):
            raise ValueError(f"{len(camids)} camera ids for {len(labels)} labels")
        self.camids = [int(c) for c in camids]
        self.batch_size = p * k
        self.iterations = max(1, len(labels) // self.batch_size)

    def _pass(self, rng: np.random.Generator) -> list[int]:
        out: list[int] = []
        groups = list(self.by_label.values())
        for g in rng.permutation(len(groups)):
            idxs = groups[g]
            a = int(rng.integers(len(idxs)))
            out.append(idxs[a])
            others = [j for j in range(len(idxs)) if self.camids[idxs[j]] != self.camids[idxs[a]]]
            if not others:
                others = [j for j in range(len(idxs)) if j != a]
            if others:
                picks = rng.choice(others, size=self.k - 1, replace=len(others) < self.k)
                out.extend(idxs[int(j)] for j in picks)
        return out

    def _batches(self, rng: np.random.Generator) -> list[list[int]]:
        b = self.batch_size
        batches: list[list[int]] = []
        while len(batches) < self.iterations:
            stream = self._pass(rng)
            if len(stream) < b:
                raise ValueError(f"multi-gallery sampler: one pass gives {len(stream)} images, fewer than a "
                                 f"batch of {b}; lower batch_p")
            full = [stream[i:i + b] for i in range(0, len(stream) - b + 1, b)]
            batches.extend(full[: self.iterations - len(batches)])
        return batches


def make_batch_sampler(kind: str, labels: Sequence[int], camids: Sequence[int], p: int, k: int, *,
                       seed: int) -> _EpochBatchSampler:
    """The `train.sampler` named `kind`: 'pk' (PAD) or 'multi_gallery' (the LSTKC family)."""
    from ..errors import UserError

    if kind == "pk":
        return PKBatchSampler(labels, p, k, seed=seed)
    if kind == "multi_gallery":
        return MultiGalleryBatchSampler(labels, camids, p, k, seed=seed)
    raise UserError(f"train.sampler must be one of {', '.join(SAMPLERS)}, got {kind!r}")
