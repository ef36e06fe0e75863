"""Images per second of the PIL data path, the cached data path and tensor-fed training, on one model.

    python benchmarks/perf/data_path.py                                  # CPU: clip-tiny, batch 16
    python benchmarks/perf/data_path.py --device cuda --model clip-vit-b16 --batch 64 --images 4096

Real JPEGs (generated once into --data-dir at Market-1501's native 128 x 64, or any folder of
.jpg files) go through the harness's own datasets (`pad_bench.data.stream.make_reid_dataset`):
  - pil:    PIL decode + train transform per sample in `train.num_workers` loader processes
            (default: one per available CPU, at most 8), then the batch moves to the device;
  - cached: decoded once into the uint8 cache (build time printed apart), batches looked up in the
            main process, moved to the device, then flipped/cropped/normalised/erased there;
  - tensor: one pre-made device batch fed again and again (the ceiling: no data path at all).
Each path is timed twice: producing batches alone, and feeding a full fine-tune step (ID +
triplet, Adam, bf16 autocast on CUDA). The goal on a GPU: cached training >= 0.9x tensor-fed.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from pad_bench.config import resolve_config
from pad_bench.data.cache import CacheLookup, ImageCache
from pad_bench.data.loading import loader_workers
from pad_bench.data.stream import make_reid_dataset
from pad_bench.data.tensor_transforms import TensorTrainTransform, eval_normalize
from pad_bench.data.device_input import DeviceInput
from pad_bench.data.transforms import test_transform, train_transform
from pad_bench.models import create_model, model_family
from pad_bench.models.zoo import model_config
from pad_bench.training.losses import reid_losses

from timing import autocast, images_per_second

NATIVE = (128, 64)  # Market-1501 image size (height, width)


def make_jpegs(folder: Path, n: int, seed: int = 0) -> list[str]:
    """n smooth random JPEGs at NATIVE size (reused when the folder already holds enough)."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(str(p) for p in folder.glob("*.jpg"))
    if len(existing) >= n:
        return existing[:n]
    rng = np.random.default_rng(seed)
    for i in range(len(existing), n):
        coarse = rng.integers(0, 256, (NATIVE[0] // 8, NATIVE[1] // 8, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize(NATIVE[::-1], Image.BICUBIC)
        img.save(folder / f"{i:06d}.jpg", quality=90)
    return sorted(str(p) for p in folder.glob("*.jpg"))[:n]


def batches(loader: DataLoader, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(images, labels, domains) on the device, cycling through the loader forever."""
    while True:
        for b in loader:
            yield (b[0].to(device, non_blocking=True), b[1].to(device, non_blocking=True),
                   b[4].to(device, non_blocking=True))


def finetune_step(args, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """One full fine-tune step (finetune.yaml's losses and optimizer) on a fresh random-weight model."""
    hp = resolve_config(benchmark="aka-order1", strategy="finetune")["strategy"]
    net = create_model(args.model, num_classes=args.num_classes, weights="random",
                       image_size=tuple(model_config(args.model)["image_size"])).to(device).train()
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=hp["lr"])
    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast(device):
            out = net(x)
        ce, tri = reid_losses(out, y, hp, net.backbone.triplet_taps)
        optimizer.zero_grad(set_to_none=True)
        (hp["id_weight"] * ce + hp["triplet_weight"] * tri).backward()
        optimizer.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default=None, help="default: clip-vit-b16 on CUDA, clip-tiny on CPU")
    ap.add_argument("--batch", type=int, default=None, help="default: 64 on CUDA, 16 on CPU")
    ap.add_argument("--images", type=int, default=None, help="JPEGs in the set (default: 4096 on CUDA, 512 on CPU)")
    ap.add_argument("--data-dir", default=None, help="folder of .jpg files (generated there if too few)")
    ap.add_argument("--workers", type=int, default=None, help="PIL-path loader processes (default: the harness's)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: 30 on CUDA, 5 on CPU)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--num-classes", type=int, default=500)
    args = ap.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.model = args.model or ("clip-vit-b16" if gpu else "clip-tiny")
    batch = args.batch or (64 if gpu else 16)
    n_images = args.images or (4096 if gpu else 512)
    steps = args.steps or (30 if gpu else 5)
    if n_images < batch:
        ap.error("--images must be at least --batch")

    family, size = model_family(args.model), model_config(args.model)["image_size"]
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.gettempdir()) / "pad-bench-data-path-jpegs"
    paths = make_jpegs(data_dir, n_images)
    labels = [i % args.num_classes for i in range(len(paths))]
    train_tf, eval_tf = train_transform(size, family), test_transform(size, family)
    from avalanche.benchmarks.utils.transform_groups import TransformGroups

    def dataset(transform, decode: bool):
        groups = TransformGroups({"train": (transform, None), "eval": (transform, None)})
        return make_reid_dataset(paths, labels, [0] * len(paths), [0] * len(paths), 0, groups, decode).train()

    workers = args.workers if args.workers is not None else loader_workers({"num_workers": None, "data_path": "pil"})
    pil_loader = DataLoader(dataset(train_tf, True), batch_size=batch, shuffle=True, drop_last=True,
                            num_workers=workers, pin_memory=gpu, persistent_workers=workers > 0)
    cache = ImageCache(paths, train_tf.transforms[0])
    t0 = time.perf_counter()
    cache.array  # build it now, timed apart
    build = time.perf_counter() - t0
    cached_loader = DataLoader(dataset(CacheLookup(cache), False), batch_size=batch, shuffle=True,
                               drop_last=True, num_workers=0, pin_memory=gpu)
    device_input = DeviceInput([TensorTrainTransform.from_compose(train_tf)], eval_normalize(eval_tf), seed=0)

    pil_it, cached_it = batches(pil_loader, device), batches(cached_loader, device)
    counter = iter(range(10**12))

    def pil_batch():
        return next(pil_it)

    def cached_batch():
        x, y, d = next(cached_it)
        return device_input.train_batch(x, d, next(counter)), y, d

    torch.manual_seed(0)
    x_fixed = torch.randn(batch, 3, *size, device=device)
    y_fixed = torch.arange(batch, device=device) // 4
    print(f"{args.model} ({family}), input {size[0]}x{size[1]}, batch {batch}, {len(paths)} JPEGs at "
          f"{NATIVE[0]}x{NATIVE[1]}, device {device}, PIL loader workers {workers}, torch threads "
          f"{torch.get_num_threads()}", flush=True)
    print(f"  cache build (decode + resize once): {build:.2f} s = {len(paths) / build:,.0f} img/s, "
          f"{cache.array.nbytes / 2**20:.0f} MiB", flush=True)
    results = {}
    for name, produce in (("pil", pil_batch), ("cached", cached_batch)):
        results[name + "_data"] = images_per_second(produce, device, batch, steps, args.warmup)
        print(f"  {name:7s} batches only     : {results[name + '_data']:10,.0f} img/s", flush=True)
    step = finetune_step(args, device)
    feeds = {"tensor": lambda: (x_fixed, y_fixed), "pil": lambda: pil_batch()[:2], "cached": lambda: cached_batch()[:2]}
    for name, feed in feeds.items():
        results[name] = images_per_second(lambda: step(*feed()), device, batch, steps, args.warmup)
        print(f"  {name:7s} fed training     : {results[name]:10,.0f} img/s", flush=True)
    print(f"  ratio cached / tensor-fed training: {results['cached'] / results['tensor']:.3f}  (goal on a GPU >= 0.9); "
          f"pil / tensor-fed: {results['pil'] / results['tensor']:.3f}", flush=True)


if __name__ == "__main__":
    main()
