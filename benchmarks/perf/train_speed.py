"""Training throughput in one process: a PAD later-domain stage-2 step vs a plain full fine-tune step.

    python benchmarks/perf/train_speed.py       # ViT-B/16, random weights: CPU (batch 8), then CUDA (64) if present
    python benchmarks/perf/train_speed.py --device cuda --batch 64 --steps 20 --warmup 3 [--compile]
    python benchmarks/perf/train_speed.py --model clip-tiny --device cpu --steps 3      # smoke check
    python benchmarks/perf/train_speed.py --device cpu --profile    # the PAD step's top ops (torch.profiler)

PAD (domain >= 2): blocks [-unfreeze_last_n:] + necks + classifiers + VA-prompts (this domain's slots)
train; the step runs the student forward, L_base with the i2t term, the EMA-teacher forward, featKD
+ logitKD, backward, Adam and the fused EMA update, i.e. the code paths of strategies/pad/strategy.py and
EMAVisKDPlugin. Fine-tune: every image-side parameter trains with ID + triplet losses, no text tower.
Both use the same random batch (P×K identities), bf16 autocast on CUDA, and pad.yaml's hyperparameters.
With --compile the student forward of both runs through torch.compile (train.compile); the first
warm-up step then includes the compile time, printed apart.
"""
from __future__ import annotations

import argparse
import gc
import time
from types import SimpleNamespace
from typing import Callable

import torch

from pad_bench.config import resolve_config
from pad_bench.run.build import finalize
from pad_bench.models import create_model
from pad_bench.models.zoo import model_config
from pad_bench.strategies.pad.context import PADContext
from pad_bench.strategies.pad.plugins.ema_viskd import EMAVisKDPlugin
from pad_bench.strategies.pad.strategy import PAD, pad_base_loss, pad_plugins
from pad_bench.training.losses import reid_losses

from timing import autocast, images_per_second, sync


def pad_case(args, device: torch.device, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One PAD later-domain stage-2 step (closure over its model, optimizer and EMA teacher)."""
    layers = model_config(args.model)["vision"]["layers"]
    cfg = resolve_config(benchmark="aka-order1", strategy="pad", sets={
        "model.name": args.model, "model.weights": args.weights,
        "protocol.image_size": model_config(args.model)["image_size"],
        "strategy.unfreeze_last_n": min(4, layers)})
    hp = cfg["strategy"]
    net = finalize(cfg, check_data=False).build_model(cfg, None).to(device)
    net.va_prompt.allocate_new_domain_slots(8)  # domain 1's slots, then this domain's
    net.va_prompt.allocate_new_domain_slots(8)
    net.new_domain(args.num_classes)
    net.set_trainable(full_backbone=False, last_n=hp["unfreeze_last_n"], ln_post_proj=hp["train_ln_post_proj"],
                      neck_bias=False)
    net.train()
    groups = PAD.param_groups(SimpleNamespace(model=net, hp=hp, exp_index=1))
    optimizer = torch.optim.Adam([g for g in groups if g["params"]])
    bank = torch.randn(args.num_classes, net.backbone.embed_dim, device=device)
    ctx = PADContext(model=net, seed=0, autocast=lambda: autocast(device), exp_index=1, kd_active=True,
                     text_bank=bank)
    kd = next(p for p in pad_plugins(hp, 5, ctx) if isinstance(p, EMAVisKDPlugin))
    batch = SimpleNamespace()  # what the plugin reads from Avalanche's strategy: the batch and the student's taps
    kd.before_training_exp(batch)
    taps = net.backbone.triplet_taps

    forward = torch.compile(net) if args.compile else net

    def step() -> None:
        with autocast(device):
            out = forward(x)
        loss, _ = pad_base_loss(out, y, bank, hp, taps)
        batch.mb_x, batch.mb_output = x, out
        kd_total, _ = kd.loss(batch)
        loss = loss + kd_total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        kd.after_update(batch)

    return step


def finetune_case(args, device: torch.device, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One plain full fine-tune step: ReIDNet without prompts or text tower, ID + triplet (finetune.yaml)."""
    hp = resolve_config(benchmark="aka-order1", strategy="finetune")["strategy"]
    net = create_model(args.model, num_classes=args.num_classes, weights=args.weights,
                       image_size=tuple(model_config(args.model)["image_size"])).to(device).train()
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=hp["lr"],
                                 weight_decay=hp["weight_decay"])

    forward = torch.compile(net) if args.compile else net

    def step() -> None:
        with autocast(device):
            out = forward(x)
        ce, tri = reid_losses(out, y, hp, net.backbone.triplet_taps)
        loss = hp["id_weight"] * ce + hp["triplet_weight"] * tri
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def measure(build: Callable[[], Callable[[], None]], device: torch.device, batch: int, steps: int,
            warmup: int) -> tuple[float, float | None, float]:
    """(images/s, peak allocated GiB or None on CPU, seconds of the first step) of `steps` timed steps
    after `warmup` ones (at least one)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step = build()
    t0 = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - t0
    rate = images_per_second(step, device, batch, steps, warmup - 1)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return rate, peak, first


def profile(args, device: torch.device, x: torch.Tensor, y: torch.Tensor) -> None:
    """The top operators (self time) of one PAD later-domain step after a warm-up step."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    step = pad_case(args, device, x, y)
    step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        step()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=20), flush=True)


def run_on(args, device: torch.device, batch: int) -> None:
    torch.manual_seed(0)
    size = model_config(args.model)["image_size"]
    x = torch.randn(batch, 3, *size, device=device)
    y = torch.arange(batch // args.k, device=device).repeat_interleave(args.k)
    if args.profile:
        profile(args, device, x, y)
        return
    results = {}
    for name, case in (("pad_later_domain", pad_case), ("full_finetune", finetune_case)):
        rate, peak, first = measure(lambda: case(args, device, x, y), device, batch, args.steps, args.warmup)
        results[name] = rate
        mem = f"{peak:.2f} GiB" if peak is not None else "n/a (CPU)"
        compiled = f"   first step (compile) {first:.1f} s" if args.compile else ""
        print(f"{device.type:4s} {name:18s} {rate:9.1f} img/s   peak allocated {mem}{compiled}", flush=True)
    print(f"{device.type:4s} ratio pad/full_finetune {results['pad_later_domain'] / results['full_finetune']:.3f}  "
          f"({args.model}, batch {batch}, {args.steps} steps after {args.warmup} warm-up"
          f"{', compiled' if args.compile else ''})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="clip-vit-b16")
    ap.add_argument("--weights", default="random", help="'random' or a local CLIP weights file")
    ap.add_argument("--batch", type=int, default=64, help="batch on CUDA")
    ap.add_argument("--cpu-batch", type=int, default=8, help="batch on CPU")
    ap.add_argument("--k", type=int, default=4, help="images per identity in the batch")
    ap.add_argument("--num-classes", type=int, default=500, help="identities of the current domain")
    ap.add_argument("--device", default="auto", help="cpu, cuda, or auto: CPU, then CUDA when present")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: 3 on CPU, 20 on CUDA)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: 1 on CPU, 3 on CUDA)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the student forward")
    ap.add_argument("--profile", action="store_true", help="print the PAD step's top operators instead")
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.device == "auto" else [args.device]
    for name in devices:
        batch = args.cpu_batch if name == "cpu" else args.batch
        if batch % args.k or batch // args.k > args.num_classes:
            ap.error(f"batch {batch} must be a multiple of --k {args.k} with at most --num-classes identities")
        run = SimpleNamespace(**{**vars(args), "steps": args.steps or (3 if name == "cpu" else 20),
                                 "warmup": args.warmup or (1 if name == "cpu" else 3)})
        run_on(run, torch.device(name), batch)


if __name__ == "__main__":
    main()
