"""The synthetic benchmark's data and pretrained weights, made on first use and cached in the data root.

`prepare_synthetic(cfg)` runs before a run's config is written: when every domain of the benchmark
is synthetic and the data root holds none of them yet, it generates the domains (`synth.py`); when
`model.weights` is `synth-pretrained`, it makes (once) the weights of the model pretrained on the
corpus (`training/pretrain.py`) and puts the file's path into the config, so config.yaml records
the file a run started from exactly as it records a user's own weights file.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import UserError
from .domains import _DOMAIN_DIR, MANIFEST, SynthConfig, generate, is_complete

SYNTH_PRETRAINED = "synth-pretrained"  # the model.weights value that names the generated files
LOCK_FILE = ".pad-bench-synth.lock"
DEFAULT_SYNTH = SynthConfig()  # what a fresh data root of the synthetic benchmark receives


def ensure_synthetic(data_root: Path, cfg: SynthConfig = DEFAULT_SYNTH, log=print) -> None:
    """Generate `cfg` into data_root unless it already holds exactly that generation (the demo's cache)."""
    if is_complete(data_root, cfg):
        log(f"synthetic domains: cached in {data_root}")
        return
    t0 = time.perf_counter()
    log(f"synthetic domains: generating into {data_root} ...")
    generate(data_root, cfg)
    log(f"synthetic domains: done in {time.perf_counter() - t0:.0f}s")


def _is_synthetic(name: str) -> bool:
    from ..data.datasets import dataset_names

    return name in dataset_names("synthetic")


def prepare_synthetic(cfg: dict, log=print) -> None:
    """Data and weights a synthetic run needs (see the module docstring); edits cfg["model"] in place."""
    from ..models import model_family

    bench, model = cfg["benchmark"], cfg["model"]
    model_family(model["name"])  # an unknown model fails before any data is made
    root = Path(bench["data_root"])
    names = list(bench["domains"]) + list(bench["unseen"])
    synthetic = all(_is_synthetic(n) for n in names)
    pretrained = model.get("weights") == SYNTH_PRETRAINED
    if pretrained and not synthetic:
        raise UserError(f"model.weights={SYNTH_PRETRAINED} is for the synthetic benchmark only; "
                        f"pass a weights file (--set model.weights=PATH) or model.weights=random")
    if not synthetic:
        return
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / LOCK_FILE)):  # runs started together make the data once
        _ensure_domains(root, names, log)
        if pretrained:
            from . import pretrain

            path = pretrain.ensure_pretrained(root, model["name"], pretrain.DEFAULT_PRETRAIN, log=log)
            model["weights"] = str(path)
            model["pretrained_report"] = str(path.with_name(pretrain.REPORT_FILE))


def _ensure_domains(root: Path, names: list[str], log) -> None:
    from ..data.datasets import create_dataset

    if all(create_dataset(n, root).find_root() is not None for n in names):
        return
    leftovers = root.is_dir() and any(p.is_dir() and _DOMAIN_DIR.fullmatch(p.name) for p in root.iterdir())
    if leftovers or (root / MANIFEST).exists():
        raise UserError(f"{root} holds an incomplete or different set of synthetic domains (the benchmark needs "
                        f"{', '.join(names)}); regenerate it with `pad-bench datasets synth --out {root}` "
                        f"or pass another --data-root")
    ensure_synthetic(root, DEFAULT_SYNTH, log)
