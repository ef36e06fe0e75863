"""Market-1501-style retrieval evaluation (mAP, mINP, CMC), vectorised over blocks of queries.

Semantics follow torchreid / fast-reid `eval_market1501` (docs/protocol.md#evaluation):
- distance: squared Euclidean on the given features (callers L2-normalise them); each query's
  gallery is ranked ascending, ties going to the lower gallery index (a stable sort's order);
- gallery items with the query's pid AND camid are junk: removed before ranking;
- the other same-pid items are relevant; every other pid (distractors 0 / -1 included) is negative;
- a query with no relevant item left is skipped; only valid queries are averaged;
- AP = mean over hits of the precision at that hit, INP = |Rel| / rank of the last hit,
  CMC(k) = 1 if the first hit ranks <= k, with ranks counted after junk removal.

Nothing is sorted but each query's few relevant items: their ranks are counted (see
`_rank_stats`), which gives the same numbers as sorting every gallery row at a fraction of the
cost. Only one block of queries is handled at a time, so the full query x gallery matrix never exists.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

MAX_EXTRA_BYTES = 2 * 1024**3
"""Budget for the working memory of one query block (the inputs themselves not counted)."""
CPU_BLOCK_BYTES = 256 * 1024**2
"""The block budget on the CPU: large enough to amortise the matrix product, small enough to be
allocated quickly (first touches of fresh memory cost about as much as the arithmetic)."""
CPU_CACHE_BYTES = 8 * 1024**2
"""On the CPU a block's distances are binned a few rows at a time, in buffers of about this size
that stay in cache; on a GPU the whole block at once."""

_BIN_BITS = 12
NUM_BINS = 1 << _BIN_BITS
"""Distance bins per query used to count the negatives ahead of each relevant item."""
_RANK_PAIR_BYTES = 5  # int32 bin + bool mask per (query, gallery) pair being ranked
_MAX_FLAT = 2**31 - 1  # flat (query, bin) indices are int32


def auto_chunk_size(num_gallery: int, element_size: int = 4, budget: int = MAX_EXTRA_BYTES) -> int:
    """Queries per block so that one block's working memory stays within `budget` bytes."""
    if num_gallery < 1:
        raise ValueError(f"num_gallery must be >= 1, got {num_gallery}")
    # Per (query, gallery) pair: the distance, its int32 bin and a bool mask (buffers reused by
    # every block); per query the int64 histogram, its cumsum and a bool table of NUM_BINS + 1.
    query_bytes = (element_size + _RANK_PAIR_BYTES) * num_gallery + 17 * (NUM_BINS + 1)
    return max(1, budget // query_bytes)


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
    `chunk_size` queries are ranked at a time (default: `auto_chunk_size`, <= 2 GiB of work memory
    on a GPU, 256 MiB on the CPU).

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
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")

    g_sq = (gf * gf).sum(1)
    q_sq = (qf * qf).sum(1)
    for name, sq in (("query_feats", q_sq), ("gallery_feats", g_sq)):
        if not bool(torch.isfinite(sq).all()):  # a non-finite entry makes its squared norm non-finite
            raise ValueError(f"{name} holds NaN or infinite values (or values too large to square); "
                             "check the model's output")
    on_gpu = device.type == "cuda"
    if chunk_size is None:
        chunk_size = auto_chunk_size(len(gf), gf.element_size(), MAX_EXTRA_BYTES if on_gpu else CPU_BLOCK_BYTES)
    block = max(1, min(chunk_size, len(qf)))
    rank_rows = block if on_gpu else CPU_CACHE_BYTES // (_RANK_PAIR_BYTES * len(gf))
    rank_rows = max(1, min(rank_rows, block, _MAX_FLAT // (NUM_BINS + 1)))
    ap, inp, first = [], [], []
    with torch.no_grad():
        same_pid = _SamePid(q_pids, g_pids)
        dist_buf = torch.empty(block, len(gf), dtype=gf.dtype, device=device)
        work = _RankBuffers(rank_rows, len(gf), device)
        for s in range(0, len(qf), block):
            e = min(s + block, len(qf))
            dist = torch.addmm(g_sq[None, :], qf[s:e], gf.T, alpha=-2, out=dist_buf[: e - s]).add_(q_sq[s:e, None])
            for a in range(s, e, rank_rows):
                b = min(a + rank_rows, e)
                stats = _rank_stats(work, dist[a - s : b - s], *same_pid.pairs(a, b), q_cams[a:b], g_cams)
                for acc, t in zip((ap, inp, first), stats):
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


class _RankBuffers:
    """Per-pair buffers for ranking, allocated once per evaluation and reused by every block."""

    def __init__(self, rows: int, num_gallery: int, device: "torch.device"):
        import torch

        self.bins = torch.empty(rows, num_gallery, dtype=torch.int32, device=device)
        self.mask = torch.empty(rows, num_gallery, dtype=torch.bool, device=device)


class _SamePid:
    """The (query, gallery) pairs with equal pids, listed without a query x gallery comparison:
    the gallery grouped by pid once, each query reads its pid's group."""

    def __init__(self, q_pids: "torch.Tensor", g_pids: "torch.Tensor"):
        import torch

        self.order = torch.sort(g_pids, stable=True).indices  # groups keep gallery-index order
        pids, counts = torch.unique_consecutive(g_pids[self.order], return_counts=True)
        at = torch.searchsorted(pids, q_pids).clamp_max(len(pids) - 1)
        found = pids[at] == q_pids
        self.count = torch.where(found, counts[at], 0)
        self.start = (torch.cumsum(counts, 0) - counts)[at]

    def pairs(self, s: int, e: int) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Block-local query rows and gallery columns of queries s..e-1, by row then column."""
        import torch

        count = self.count[s:e]
        rows = torch.repeat_interleave(torch.arange(e - s, device=count.device), count)
        within = torch.arange(len(rows), device=count.device) - (torch.cumsum(count, 0) - count)[rows]
        return rows, self.order[self.start[s:e][rows] + within]


def _rank_stats(work: _RankBuffers, dist, rows, cols, q_cams, g_cams):
    """AP, INP and first-hit rank of every valid query of a block of distances, without sorting.
    `rows`, `cols` list the block's same-pid pairs (junk and positives) by row, then column.
    `dist` is overwritten.

    A query's metrics need only the rank of each relevant item, i.e. how many kept gallery items
    come before it in the order (distance, gallery index). With the query's n positives sorted by
    that key, positive k (0-based) has rank k + 1 + #{negatives before it}. The negatives are
    counted through a histogram over NUM_BINS distance bins per query: a negative in a lower bin
    than positive k precedes it, one in a higher bin follows it, and only the few negatives that
    share a bin with some positive are compared exactly. Distances are scaled by a power of two,
    which is exact, so those comparisons see the original order and ties.
    """
    import torch

    dev, (n_q, n_g) = dist.device, dist.shape
    bins, mask = work.bins[:n_q], work.mask[:n_q]
    keep = q_cams[rows] != g_cams[cols]
    p_rows, p_cols = rows[keep], cols[keep]
    n_pos = torch.bincount(p_rows, minlength=n_q)
    width = int(n_pos.max()) if len(p_rows) else 0
    if width == 0:
        empty = torch.zeros(0, dtype=torch.float64, device=dev)
        return empty, empty, empty.long()

    # The positives of every query, padded to (B, P) and sorted by (distance, gallery index):
    # they come by row and index, so a stable sort by distance breaks ties by index.
    slot = torch.arange(len(p_rows), device=dev) - (torch.cumsum(n_pos, 0) - n_pos)[p_rows]
    pos_d = torch.full((n_q, width), float("inf"), dtype=dist.dtype, device=dev)
    pos_d[p_rows, slot] = dist[p_rows, p_cols]
    pos_i = torch.full((n_q, width), n_g, dtype=torch.long, device=dev)
    pos_i[p_rows, slot] = p_cols
    pos_d, order = torch.sort(pos_d, dim=1, stable=True)
    pos_i = pos_i.gather(1, order)
    real = torch.arange(width, device=dev)[None, :] < n_pos[:, None]

    # Scale so that the farthest positive lands in [NUM_BINS / 2, NUM_BINS): bins 0..NUM_BINS - 1
    # hold positives, bin NUM_BINS only negatives beyond the last one and (at +inf) junk and
    # positives, which leave the count. Clamping at NUM_BINS changes no distance that matters; the
    # lower clamp keeps the int32 conversion defined (a negative distance 2^19 times larger than
    # the farthest positive's is no rounding error).
    far = pos_d.gather(1, (n_pos - 1).clamp_min(0)[:, None]).clamp_min(1e-30)
    far.masked_fill_(n_pos[:, None] == 0, 1.0)  # a query without positives: any scale will do
    scale = torch.ldexp(torch.ones_like(far), _BIN_BITS - torch.frexp(far).exponent)
    dist.mul_(scale)
    dist[rows, cols] = float("inf")
    dist.clamp_(-(2.0**30), NUM_BINS)
    pos_d.mul_(scale)
    pos_bin = _bins(pos_d).masked_fill_(~real, NUM_BINS)
    bins.copy_(dist).clamp_min_(0)  # truncation: a monotone map onto the bins 0..NUM_BINS
    # One histogram row of NUM_BINS + 1 counts per query, through flat int32 indices.
    bins.add_(torch.arange(0, n_q * (NUM_BINS + 1), NUM_BINS + 1, dtype=torch.int32, device=dev)[:, None])
    flat = bins.view(-1)
    hist = torch.bincount(flat, minlength=n_q * (NUM_BINS + 1))
    # Negatives in lower bins than each bin: one flat cumsum (far faster than a row-wise one on
    # the CPU), less the count before the row's first bin.
    below = torch.cumsum(hist, 0).sub_(hist).view(n_q, NUM_BINS + 1)
    below.sub_(below[:, :1].clone())
    rank = torch.arange(1, width + 1, device=dev) + below.gather(1, pos_bin)
    del hist, below

    # Negatives sharing a bin with a positive: compared exactly with that bin's positives only.
    shared = torch.zeros(n_q * (NUM_BINS + 1), dtype=torch.bool, device=dev)
    pos_flat = (pos_bin + torch.arange(0, n_q * (NUM_BINS + 1), NUM_BINS + 1, device=dev)[:, None])[real]
    shared[pos_flat] = True
    torch.index_select(shared, 0, flat, out=mask.view(-1))
    s_rows, s_cols = mask.nonzero(as_tuple=True)
    if len(s_rows):
        rank += _shared_bin_counts(s_rows, s_cols, dist[s_rows, s_cols], bins[s_rows, s_cols].long(),
                                   pos_d, pos_i, pos_flat, real)

    valid = n_pos > 0
    rank = rank.double()
    hit = torch.arange(1, width + 1, device=dev, dtype=torch.float64)
    ap = torch.where(real, hit / rank, 0).sum(1)[valid] / n_pos[valid]
    last = rank.gather(1, (n_pos - 1).clamp_min(0)[:, None])[:, 0]
    return ap, (n_pos / last)[valid], rank[valid, 0].long()


def _bins(scaled: "torch.Tensor") -> "torch.Tensor":
    """Bin of each scaled distance (the same map as the gallery's, for a few values)."""
    import torch

    return scaled.clamp(-(2.0**30), NUM_BINS).to(torch.int32).clamp_min_(0).long()


def _shared_bin_counts(rows, cols, d, flat_bin, pos_d, pos_i, pos_flat, real) -> "torch.Tensor":
    """(B, P) counts, for each positive, of the given negatives that share its bin and come before
    it. The negatives are given by query row, gallery column, scaled distance and flat bin index."""
    import torch

    n_q, width = pos_d.shape
    # The positives of a bin are consecutive in the sorted list: slots [first, end) of the row.
    slots = torch.arange(width, device=d.device).expand(n_q, width)[real]
    first = torch.empty(n_q * (NUM_BINS + 1), dtype=torch.long, device=d.device)
    first.scatter_reduce_(0, pos_flat, slots, "amin", include_self=False)
    end = torch.empty_like(first).scatter_reduce_(0, pos_flat, slots + 1, "amax", include_self=False)
    first, end = first[flat_bin], end[flat_bin]
    # before = the slot of the first positive that comes after the negative (distance, then index).
    before = first.clone()
    row_start = rows * width
    for offset in range(int((end - first).max())):
        k = first + offset
        slot = row_start + k.clamp_max(width - 1)
        pd, pi = pos_d.view(-1)[slot], pos_i.view(-1)[slot]
        before += (k < end) & ((pd < d) | ((pd == d) & (pi < cols)))
    # +1 for every positive from `before` to the end of its bin: a difference array per row.
    diff = torch.zeros(n_q * (width + 1), dtype=torch.long, device=d.device)
    row_start = rows * (width + 1)
    diff.index_add_(0, row_start + before, torch.ones_like(before))
    diff.index_add_(0, row_start + end, torch.full_like(end, -1))
    return diff.view(n_q, width + 1).cumsum(1)[:, :width]


def _cmc(first_hit_rank: np.ndarray, max_rank: int) -> np.ndarray:
    """cmc[k-1] = fraction of valid queries whose first hit ranks <= k."""
    counts = np.bincount(np.minimum(first_hit_rank, max_rank + 1), minlength=max_rank + 2)
    return np.cumsum(counts[1 : max_rank + 1]) / len(first_hit_rank)
