"""Time evaluate_retrieval at Market-1501 and MSMT17 sizes, before and after the sort-free ranking.

    python benchmarks/perf/eval_speed.py --device cpu --threads 2 --sizes market,msmt17
    python benchmarks/perf/eval_speed.py --device cuda --sizes market,msmt17

For each size it prints, in one process:
  - after:     `evaluate_retrieval` (counts each relevant item's rank, sorts nothing);
  - reference: the same distances plus a stable argsort of every gallery row, in the same blocks:
               the ratio after / reference is the figure that holds on a noisy machine;
  - before:    the previous implementation (argsort every row, gather match codes, cumsum),
               kept here as the reference for both time and results (`--skip-before` skips it);
  - a plain per-query numpy loop on a subset, extrapolated.
CPU figures give wall time and this process's CPU time (less disturbed by other processes).

Features are random 512-d vectors around one centre per identity (so the mAP is neither 0 nor 100),
with the official query/gallery image and identity counts, camera counts and distractors.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from pad_bench.metrics import evaluate_retrieval
from pad_bench.metrics.retrieval import CPU_BLOCK_BYTES, MAX_EXTRA_BYTES, auto_chunk_size

from timing import sync


@dataclass(frozen=True)
class Size:
    num_query: int
    num_gallery: int
    num_ids: int  # test identities, all present in both query and gallery
    num_cams: int
    num_distractors: int  # gallery images with pid 0


SIZES = {
    "market": Size(3_368, 15_913, 750, 6, 2_793),
    "msmt17": Size(11_659, 82_161, 3_060, 15, 0),
}
NOISE = 2.5  # per-dimension noise around the unit-variance identity centres
ARGS = ("query_feats", "gallery_feats", "query_pids", "gallery_pids", "query_camids", "gallery_camids")


def make_split(size: Size, dim: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """L2-normalised features, pids (0 = distractor) and camids for a query and a gallery set."""
    centres = rng.standard_normal((size.num_ids + 1, dim), dtype=np.float32)
    g_pids = np.concatenate([
        np.zeros(size.num_distractors, dtype=np.int64),
        np.arange(1, size.num_ids + 1),  # every identity at least once
        rng.integers(1, size.num_ids + 1, size.num_gallery - size.num_distractors - size.num_ids),
    ])
    q_pids = np.concatenate([np.arange(1, size.num_ids + 1), rng.integers(1, size.num_ids + 1, size.num_query - size.num_ids)])
    split = {"query_pids": q_pids, "gallery_pids": g_pids}
    for side, pids in (("query", q_pids), ("gallery", g_pids)):
        feats = rng.standard_normal((len(pids), dim), dtype=np.float32)
        feats *= NOISE
        feats += np.where(pids[:, None] > 0, centres[pids], 0)
        feats /= np.linalg.norm(feats, axis=1, keepdims=True)
        split[f"{side}_feats"] = feats
        split[f"{side}_camids"] = rng.integers(0, size.num_cams, len(pids))
    return split


# ---- the reference paths (what evaluate_retrieval did before: sort every gallery row) ------------
_JUNK, _POSITIVE = 2, 1


def sort_blocks(qf: torch.Tensor, gf: torch.Tensor, chunk: int, consume: Callable) -> None:
    """Distances of each query block and their stable row-wise sort, handed to `consume`."""
    g_sq, q_sq = (gf * gf).sum(1), (qf * qf).sum(1)
    for s in range(0, len(qf), chunk):
        dist = torch.addmm(g_sq[None, :], qf[s:s + chunk], gf.T, alpha=-2).add_(q_sq[s:s + chunk, None])
        consume(s, torch.sort(dist, dim=1, stable=True).indices)


def distances_and_argsort(t: dict[str, torch.Tensor], chunk: int) -> None:
    sort_blocks(t["query_feats"], t["gallery_feats"], chunk, lambda s, order: None)


def sort_based_eval(t: dict[str, torch.Tensor], chunk: int) -> dict[str, float]:
    """The previous evaluate_retrieval: match codes gathered in sorted order, then cumsums."""
    g_pids, g_cams = t["gallery_pids"], t["gallery_camids"]
    aps, inps, firsts = [], [], []

    def consume(s: int, order: torch.Tensor) -> None:
        q_pids, q_cams = t["query_pids"][s:s + len(order), None], t["query_camids"][s:s + len(order), None]
        same_pid = q_pids == g_pids[None, :]
        codes = same_pid.to(torch.int8).masked_fill_(same_pid & (q_cams == g_cams[None, :]), _JUNK).gather(1, order)
        kept_rank = torch.cumsum(codes != _JUNK, dim=1, dtype=torch.int32)
        rows, cols = (codes == _POSITIVE).nonzero(as_tuple=True)
        num_rel = torch.bincount(rows, minlength=len(codes))
        hit_rank = kept_rank[rows, cols].double()
        starts = torch.cumsum(num_rel, 0) - num_rel
        hit_num = torch.arange(len(rows), device=codes.device) - starts[rows] + 1
        ap = torch.zeros(len(codes), dtype=torch.float64, device=codes.device).index_add_(0, rows, hit_num / hit_rank)
        valid = num_rel > 0
        n_rel = num_rel[valid]
        aps.append(ap[valid] / n_rel)
        inps.append(n_rel / hit_rank[starts[valid] + n_rel - 1])
        firsts.append(hit_rank[starts[valid]])

    sort_blocks(t["query_feats"], t["gallery_feats"], chunk, consume)
    first = torch.cat(firsts).cpu()
    return {"mAP": float(torch.cat(aps).mean()), "mINP": float(torch.cat(inps).mean()),
            "R1": float((first <= 1).double().mean()), "R10": float((first <= 10).double().mean())}


def numpy_loop_map(dist: np.ndarray, q_pids, g_pids, q_cams, g_cams) -> float:
    """The classic per-query loop (argsort one row, drop same-pid same-camera, cumsum the hits)."""
    aps = []
    for i, row in enumerate(dist):
        order = np.argsort(row, kind="stable")
        match = g_pids[order] == q_pids[i]
        match = match[~(match & (g_cams[order] == q_cams[i]))]
        if not match.any():
            continue
        hits = np.cumsum(match)
        aps.append(float(np.sum(hits[match] / (np.flatnonzero(match) + 1)) / hits[-1]))
    return float(np.mean(aps))


# ---- timing -----------------------------------------------------------------------------------
class PeakMemory:
    """Peak memory above the level at entry: CUDA allocator stats, or the process RSS on Linux CPUs.

    `peak` is None where neither is available (a CPU without /proc).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.base: int | None = None
        self.peak: int | None = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # resets VmHWM (the peak RSS) to the current RSS
                self.base = _proc_status_bytes("VmRSS")
            except OSError:
                self.base = None
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        elif self.base is not None:
            self.peak = _proc_status_bytes("VmHWM") - self.base

    def describe(self, budget: int) -> str:
        if self.peak is None:
            return "n/a (no /proc on this system)"
        source = "CUDA max_memory_allocated" if self.device.type == "cuda" else "RSS delta"
        return f"{self.peak / 2**20:.0f} MiB  (block budget {budget / 2**20:.0f} MiB; {source})"


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{field} not in /proc/self/status")


@dataclass
class Timing:
    wall: float
    cpu: float  # this process's CPU time, all threads

    def describe(self, device: torch.device) -> str:
        return f"{self.wall:8.3f} s" + ("" if device.type == "cuda" else f"  (CPU time {self.cpu:8.3f} s)")


def timed(fn: Callable, device: torch.device):
    """(fn(), Timing), synchronising CUDA around the call."""
    sync(device)
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    sync(device)
    return out, Timing(time.perf_counter() - w, time.process_time() - c)


def run_size(name: str, size: Size, device: torch.device, args: argparse.Namespace) -> None:
    data = make_split(size, args.dim, np.random.default_rng(args.seed))
    tensors = {k: torch.from_numpy(v).to(device) for k, v in data.items()}

    def eval_args(num_queries: int | None = None) -> list[torch.Tensor]:
        return [tensors[k][:num_queries] if k.startswith("query") else tensors[k] for k in ARGS]

    budget = MAX_EXTRA_BYTES if device.type == "cuda" else CPU_BLOCK_BYTES
    chunk = auto_chunk_size(size.num_gallery, 4, budget)
    evaluate_retrieval(*eval_args(64))  # warm-up
    with PeakMemory(device) as mem:
        out, t_after = timed(lambda: evaluate_retrieval(*eval_args()), device)
    _, t_ref = timed(lambda: distances_and_argsort(tensors, chunk), device)

    print(f"== {name}: {size.num_query:,} queries x {size.num_gallery:,} gallery, dim {args.dim}, "
          f"device {device}, torch threads {torch.get_num_threads()}")
    print(f"  after  evaluate_retrieval   : {t_after.describe(device)}  "
          f"({-(-size.num_query // chunk)} blocks of {chunk} queries)")
    print(f"  peak extra memory           : {mem.describe(budget)}")
    print(f"  reference distances+argsort : {t_ref.describe(device)}")
    ratio = f"{t_after.wall / t_ref.wall:.3f} wall"
    if device.type != "cuda":
        ratio += f", {t_after.cpu / t_ref.cpu:.3f} CPU time"
    print(f"  ratio after / reference     : {ratio}  (target <= 0.25)")
    print(f"  mAP {out['mAP'] * 100:.2f}  R1 {out['cmc'][0] * 100:.2f}  mINP {out['mINP'] * 100:.2f}  "
          f"valid {out['num_valid_queries']:,}")
    if not args.skip_before:
        old_chunk = max(1, MAX_EXTRA_BYTES // (44 * size.num_gallery))  # the previous block rule
        before, t_before = timed(lambda: sort_based_eval(tensors, old_chunk), device)
        diff = max(abs(before["mAP"] - out["mAP"]), abs(before["mINP"] - out["mINP"]),
                   abs(before["R1"] - out["cmc"][0]), abs(before["R10"] - out["cmc"][9]))
        print(f"  before (sort every row)     : {t_before.describe(device)}  "
              f"-> speed-up {t_before.wall / t_after.wall:.1f}x wall")
        print(f"  max |before - after| over mAP, mINP, R1, R10: {diff:.1e}  (must be <= 1e-9)")

    n = min(args.loop_queries, size.num_query)
    q, g = data["query_feats"][:n], data["gallery_feats"]
    t0 = time.perf_counter()
    dist = (g * g).sum(1)[None, :] - 2 * q @ g.T + (q * q).sum(1)[:, None]
    loop_map = numpy_loop_map(dist, data["query_pids"][:n], data["gallery_pids"], data["query_camids"][:n], data["gallery_camids"])
    per_query = (time.perf_counter() - t0) / n
    subset = evaluate_retrieval(*eval_args(n))
    print(f"  numpy loop                  : {per_query * 1e3:8.3f} ms/query on {n} queries -> "
          f"{per_query * size.num_query:.1f} s extrapolated; subset mAP |loop - after| = {abs(subset['mAP'] - loop_map):.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="market,msmt17", help=f"comma-separated, from: {', '.join(SIZES)}")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--skip-before", action="store_true", help="do not time the previous sort-based path")
    parser.add_argument("--loop-queries", type=int, default=200, help="queries timed in the numpy loop")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SIZES))
    if unknown:
        parser.error(f"unknown size(s) {', '.join(unknown)}; choose from {', '.join(SIZES)}")
    if args.loop_queries < 1:
        parser.error("--loop-queries must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    for name in names:
        run_size(name, SIZES[name], device, args)


if __name__ == "__main__":
    main()
