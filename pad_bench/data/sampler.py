"""P×K identity sampler: batches of P identities with K images each (docs/methods/pad.md#data)."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class PKBatchSampler(Sampler[list[int]]):
    """Yields index batches of P identities × K images.

    Each identity's shuffled images are cut into chunks of K (an identity with fewer than K
    images is padded by drawing with replacement); one epoch visits every chunk once, P
    identities at a time, until fewer than P identities have chunks left. Deterministic for a
    given (seed, epoch): call `set_epoch` before each epoch.
    """

    def __init__(self, labels: Sequence[int], p: int, k: int, *, seed: int = 0):
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

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
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

    def _cached(self) -> list[list[int]]:
        if getattr(self, "_cache_epoch", None) != self.epoch:
            self._cache, self._cache_epoch = self._batches(), self.epoch
        return self._cache

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._cached())

    def __len__(self) -> int:
        return len(self._cached())
