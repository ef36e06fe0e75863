"""The fields of a ReID batch by name, in the order the stream's samples collate (stream.py)."""
from __future__ import annotations

from typing import NamedTuple, Sequence

from torch import Tensor


class ReIDBatch(NamedTuple):
    """One collated batch: images, pids (global labels in training), camera ids, query flags, domain indices."""

    image: Tensor
    pid: Tensor
    camid: Tensor
    is_query: Tensor
    domain: Tensor

    @classmethod
    def of(cls, batch: Sequence[Tensor]) -> ReIDBatch:
        """Name the fields of a collated sample list (Avalanche's `mbatch`, a loader's batch)."""
        return cls(*batch)
