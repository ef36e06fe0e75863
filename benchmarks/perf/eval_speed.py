"""Time evaluate_retrieval at Market-1501 and MSMT17 sizes against a per-query numpy loop.

    python benchmarks/perf/eval_speed.py --device cpu --sizes market
    python benchmarks/perf/eval_speed.py --device cuda --sizes market,msmt17

Features are random 512-d vectors around one centre per identity (so the mAP is neither 0 nor 100),
with the official query/gallery image and identity counts, camera counts and distractors.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch

from pad_bench.metrics import evaluate_retrieval
from pad_bench.metrics.retrieval import MAX_EXTRA_BYTES, auto_chunk_size


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

    def describe(self) -> str:
        if self.peak is None:
            return "n/a (no /proc on this system)"
        source = "CUDA max_memory_allocated" if self.device.type == "cuda" else "RSS delta"
        return f"{self.peak / 2**20:.0f} MiB  (budget {MAX_EXTRA_BYTES / 2**20:.0f} MiB; {source})"


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{field} not in /proc/self/status")


def run_size(name: str, size: Size, device: torch.device, loop_queries: int, dim: int, seed: int) -> None:
    data = make_split(size, dim, np.random.default_rng(seed))
    tensors = {k: torch.from_numpy(v).to(device) for k, v in data.items()}

    def eval_args(num_queries: int | None = None) -> list[torch.Tensor]:
        return [tensors[k][:num_queries] if k.startswith("query") else tensors[k] for k in ARGS]

    evaluate_retrieval(*eval_args(64))  # warm-up
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        out = evaluate_retrieval(*eval_args())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t_vec = time.perf_counter() - t0

    n = min(loop_queries, size.num_query)
    q, g = data["query_feats"][:n], data["gallery_feats"]
    t0 = time.perf_counter()
    dist = (g * g).sum(1)[None, :] - 2 * q @ g.T + (q * q).sum(1)[:, None]
    t_dist = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop_map = numpy_loop_map(dist, data["query_pids"][:n], data["gallery_pids"], data["query_camids"][:n], data["gallery_camids"])
    t_loop = time.perf_counter() - t0
    subset = evaluate_retrieval(*eval_args(n))
    per_query = (t_dist + t_loop) / n
    loop_total = per_query * size.num_query

    chunk = auto_chunk_size(size.num_gallery)
    print(f"== {name}: {size.num_query:,} queries x {size.num_gallery:,} gallery, dim {dim}, device {device}")
    print(f"  evaluate_retrieval : {t_vec:8.3f} s  (chunk {chunk} queries, {-(-size.num_query // chunk)} blocks)")
    print(f"  peak extra memory  : {mem.describe()}")
    print(f"  numpy loop         : {per_query * 1e3:8.3f} ms/query on {n} queries "
          f"(distances {t_dist / n * 1e3:.3f} + ranking {t_loop / n * 1e3:.3f})")
    print(f"  numpy loop, all    : {loop_total:8.3f} s  (extrapolated)")
    print(f"  speedup            : {loop_total / t_vec:8.1f} x")
    print(f"  mAP {out['mAP'] * 100:.2f}  R1 {out['cmc'][0] * 100:.2f}  mINP {out['mINP'] * 100:.2f}  "
          f"valid {out['num_valid_queries']:,};  subset mAP vectorised vs loop: |diff| = {abs(subset['mAP'] - loop_map):.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="market,msmt17", help=f"comma-separated, from: {', '.join(SIZES)}")
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
    device = torch.device(args.device)
    for name in names:
        run_size(name, SIZES[name], device, args.loop_queries, args.dim, args.seed)


if __name__ == "__main__":
    main()
