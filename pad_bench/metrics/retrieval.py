"""Market-1501-style retrieval evaluation (mAP, mINP, CMC), vectorised over blocks of queries.

Semantics follow torchreid / fast-reid `eval_market1501` (docs/protocol.md#evaluation):
- distance: squared Euclidean on the given features (callers L2-normalise them); each query's
  gallery is sorted ascending with a stable sort, so ties go to the lower gallery index;
- gallery items with the query's pid AND camid are junk: removed before ranking;
- the other same-pid items are relevant; every other pid (distractors 0 / -1 included) is negative;
- a query with no relevant item left is skipped; only valid queries are averaged;
- AP = mean over hits of the precision at that hit, INP = |Rel| / rank of the last hit,
  CMC(k) = 1 if the first hit ranks <= k, with ranks counted after junk removal.

Only one block of queries is ranked at a time, so the full query x gallery matrix never exists.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

MAX_EXTRA_BYTES = 2 * 1024**3
"""Budget for the working memory of one query block (the inputs themselves not counted)."""

_POSITIVE, _JUNK = 1, 2  # match codes; 0 = negative


def auto_chunk_size(num_gallery: int, element_size: int = 4) -> int:
    """Queries per block so that one block's working memory stays within MAX_EXTRA_BYTES."""
    if num_gallery < 1:
        raise ValueError(f"num_gallery must be >= 1, got {num_gallery}")
    # Per (query, gallery) pair: distances and their sorted copy, int64 sort indices, int8 match
    # codes before and after sorting, the int32 rank cumsum. Doubled because the sort (CUDA
    # segmented radix sort in particular) double-buffers keys and indices internally.
    pair_bytes = 2 * (2 * element_size + 8 + 2 + 4)
    return max(1, MAX_EXTRA_BYTES // (pair_bytes * num_gallery))


def evaluate_retrieval(
    query_feats: Any,
    gallery_feats: Any,
    query_pids: Any,
    gallery_pids: Any,
    query_camids: Any,
    gallery_camids: Any,
    max_rank: int = 50,
    chunk_size: int | None = None,
) -> dict[str, Any]:
    """mAP, mINP and CMC of a query set against a gallery, as fractions in [0, 1].

    Features are (N, D) torch tensors or numpy arrays; ids and camera ids are 1-D, one per row.
    Tensors are evaluated on the query features' device (the other inputs are moved there);
    numpy inputs on the CPU. Half-precision and integer features are promoted to float32.
    `chunk_size` queries are ranked at a time (default: `auto_chunk_size`, <= 2 GiB of work memory).

    As in torchreid, when the gallery has fewer than `max_rank` items the CMC curve is cut to the
    gallery size, so `cmc` has min(max_rank, num_gallery) entries; cmc[k-1] is the rank-k accuracy.

    Returns {"mAP": float, "mINP": float, "cmc": np.ndarray, "num_valid_queries": int}.
    Raises ValueError on malformed inputs and when no query has a relevant gallery item.
    """
    import torch

    device = query_feats.device if isinstance(query_feats, torch.Tensor) else torch.device("cpu")
    qf = _features(query_feats, "query_feats", device)
    gf = _features(gallery_feats, "gallery_feats", device)
    if qf.dtype != gf.dtype:
        qf, gf = qf.double(), gf.double()
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(f"query_feats has dimension {qf.shape[1]} but gallery_feats has {gf.shape[1]}")
    if len(gf) == 0:
        raise ValueError("gallery_feats is empty: evaluation needs at least one gallery item")
    q_pids = _labels(query_pids, "query_pids", len(qf), "query_feats", device)
    q_cams = _labels(query_camids, "query_camids", len(qf), "query_feats", device)
    g_pids = _labels(gallery_pids, "gallery_pids", len(gf), "gallery_feats", device)
    g_cams = _labels(gallery_camids, "gallery_camids", len(gf), "gallery_feats", device)
    if isinstance(max_rank, bool) or not isinstance(max_rank, int) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive int, got {max_rank!r}")
    if chunk_size is None:
        chunk_size = auto_chunk_size(len(gf), gf.element_size())
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")

    g_sq = (gf * gf).sum(1)
    q_sq = (qf * qf).sum(1)
    ap, inp, first = [], [], []
    with torch.no_grad():
        for s in range(0, len(qf), chunk_size):
            e = s + chunk_size
            codes = _ranked_codes(qf[s:e], q_sq[s:e], gf, g_sq, q_pids[s:e], g_pids, q_cams[s:e], g_cams)
            for acc, t in zip((ap, inp, first), _query_stats(codes)):
                acc.append(t.cpu().numpy())
    ap, inp, first = (np.concatenate(parts) if parts else np.zeros(0) for parts in (ap, inp, first))
    if len(ap) == 0:
        raise ValueError(
            "no valid query: no query has a gallery item with its pid from another camera; "
            "check the query/gallery pids and camids"
        )
    return {
        "mAP": float(np.mean(ap)),
        "mINP": float(np.mean(inp)),
        "cmc": _cmc(first, min(max_rank, len(gf))),
        "num_valid_queries": int(len(ap)),
    }


def _features(x: Any, name: str, device: "torch.device") -> "torch.Tensor":
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D (num_items, dim), got shape {tuple(t.shape)}")
    if t.dtype != torch.float64:
        t = t.float()
    return t.to(device)


def _labels(x: Any, name: str, n: int, feats_name: str, device: "torch.device") -> "torch.Tensor":
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.dim() != 1 or len(t) != n:
        raise ValueError(f"{name} must be 1-D with one entry per row of {feats_name} ({n}), got shape {tuple(t.shape)}")
    return t.to(device=device, dtype=torch.int64)


def _ranked_codes(q, q_sq, g, g_sq, q_pids, g_pids, q_cams, g_cams) -> "torch.Tensor":
    """Match codes (0 negative, 1 relevant, 2 junk) of each query's gallery in ranked order."""
    import torch

    same_pid = q_pids[:, None] == g_pids[None, :]
    codes = same_pid.to(torch.int8)
    codes.masked_fill_(same_pid & (q_cams[:, None] == g_cams[None, :]), _JUNK)
    del same_pid
    dist = torch.addmm(g_sq[None, :], q, g.T, alpha=-2).add_(q_sq[:, None])
    order = torch.sort(dist, dim=1, stable=True).indices
    del dist
    return codes.gather(1, order)


def _query_stats(codes: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """AP, INP and first-hit rank of every valid query of a block of ranked match codes."""
    import torch

    # Rank of each item once the junk is removed (1-based); meaningful only at non-junk places.
    kept_rank = torch.cumsum(codes != _JUNK, dim=1, dtype=torch.int32)
    good = codes == _POSITIVE
    num_rel = good.sum(1)
    # Hits are few, so work on their coordinates; nonzero lists them row by row, left to right.
    rows, cols = good.nonzero(as_tuple=True)
    hit_rank = kept_rank[rows, cols].double()
    starts = torch.cumsum(num_rel, 0) - num_rel
    hit_num = torch.arange(len(rows), device=codes.device) - starts[rows] + 1
    ap = torch.zeros(len(codes), dtype=torch.float64, device=codes.device)
    ap.index_add_(0, rows, hit_num / hit_rank)
    valid = num_rel > 0
    n_rel = num_rel[valid]
    first = hit_rank[starts[valid]]
    last = hit_rank[starts[valid] + n_rel - 1]
    return ap[valid] / n_rel, n_rel / last, first.long()


def _cmc(first_hit_rank: np.ndarray, max_rank: int) -> np.ndarray:
    """cmc[k-1] = fraction of valid queries whose first hit ranks <= k."""
    counts = np.bincount(np.minimum(first_hit_rank, max_rank + 1), minlength=max_rank + 2)
    return np.cumsum(counts[1 : max_rank + 1]) / len(first_hit_rank)
