"""The asset step: the synthetic benchmark's data and pretrained weights, made before a run starts
and cached in the data root.

When every domain of a run's benchmark is synthetic, the run needs the domains (`domains.py`) and,
when `model.weights` is `synth-pretrained`, the model pretrained on the corpus (`pretrain.py`).
`pending_assets(cfg)` says which of them the data root lacks and writes nothing (`run --dry-run`
reports it); `make_assets(cfg)` makes them (`pad-bench run`, `demo` and `sweep` call it as a named
step before any run starts; `pad-bench datasets synth` is the same by hand). Resolving a run's config
(`run/build.py`) never makes anything: `point_at_pretrained` puts the weights file's path into the
config, so config.yaml records the file a run started from exactly as it records a user's own file.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..errors import UserError
from .domains import _DOMAIN_DIR, MANIFEST, WORLD_VERSION, SynthConfig, generate, is_complete

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


def _needs(cfg: dict) -> tuple[Path, list[str], str | None] | None:
    """(data root, domain names, model to pretrain or None) of a synthetic run, None for another
    benchmark; refuses what the asset step could not make."""
    from ..models import model_family

    bench, model = cfg["benchmark"], cfg["model"]
    model_family(model["name"])  # an unknown model fails before any data is made
    names = list(bench["domains"]) + list(bench["unseen"])
    synthetic = all(_is_synthetic(n) for n in names)
    pretrained = model.get("weights") == SYNTH_PRETRAINED
    if pretrained and not synthetic:
        raise UserError(f"model.weights={SYNTH_PRETRAINED} is for the synthetic benchmark only; "
                        f"pass a weights file (--set model.weights=PATH) or model.weights=random")
    if not synthetic:
        return None
    if pretrained:
        from .pretrain import check_pretrainable

        check_pretrainable(model["name"])
    return Path(bench["data_root"]), names, model["name"] if pretrained else None


def pending_assets(cfg: dict) -> list[str]:
    """What the asset step would make for this run, one line each ([] when the data root holds it
    all, or the benchmark is not synthetic; one line when another run's asset step is writing the
    data root now, since its half-made files would read as an interrupted generation). Reads only."""
    needs = _needs(cfg)
    if needs is None:
        return []
    root, names, model = needs
    if _being_written(root):
        return [f"what another run is making in {root} now (this run waits for it to finish)"]
    pending = [] if _domains_present(root, names) else [
        f"the synthetic domains ({', '.join(DEFAULT_SYNTH.domain_names())}) in {root}"]
    if model is not None:
        from . import pretrain
        from .corpus import corpus_dir, corpus_is_complete

        if not corpus_is_complete(root, pretrain.DEFAULT_PRETRAIN.corpus):
            pending.append(f"the pretraining corpus in {corpus_dir(root)}")
        out = pretrain.pretrained_dir(root, model, pretrain.DEFAULT_PRETRAIN)
        if not pretrain.is_cached(out, pretrain.DEFAULT_PRETRAIN):
            pending.append(f"{model} pretrained on the corpus: {out / pretrain.WEIGHTS_FILE}")
    return pending


def make_assets(cfg: dict, log=print) -> None:
    """Make what `pending_assets` lists, once: runs started together wait on the data root's lock."""
    needs = _needs(cfg)
    if needs is None:
        return
    root, names, model = needs
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / LOCK_FILE)):  # `_being_written` reads this lock
        if not _domains_present(root, names):
            ensure_synthetic(root, DEFAULT_SYNTH, log)
        if model is not None:
            from . import pretrain

            pretrain.ensure_pretrained(root, model, pretrain.DEFAULT_PRETRAIN, log=log)


def point_at_pretrained(cfg: dict) -> None:
    """`model.weights: synth-pretrained` -> the weights file the asset step makes (and its report), in place."""
    needs = _needs(cfg)
    if needs is None or needs[2] is None:
        return
    from . import pretrain

    out = pretrain.pretrained_dir(needs[0], needs[2], pretrain.DEFAULT_PRETRAIN)
    cfg["model"]["weights"] = str(out / pretrain.WEIGHTS_FILE)
    cfg["model"]["pretrained_report"] = str(out / pretrain.REPORT_FILE)


def _being_written(root: Path) -> bool:
    """True while another process holds the data root's lock in `make_assets`: what is there is half
    made, not left over from an interrupted generation. Creates nothing."""
    from filelock import FileLock, Timeout

    lock = root / LOCK_FILE
    if not lock.is_file():
        return False
    try:
        with FileLock(str(lock), timeout=0):
            return False
    except Timeout:
        return True


def _check_world_version(root: Path) -> None:
    """Refuses a data root generated for another world (docs/synthetic.md#world-criteria): its figures
    would be read as this world's."""
    try:
        found = json.loads((root / MANIFEST).read_text(encoding="utf-8")).get("world_version", 1)
    except (OSError, ValueError, AttributeError):
        return  # not a generation of ours (a user's own copy): nothing to compare
    if found != WORLD_VERSION:
        raise UserError(f"{root} holds synthetic world version {found}, this code makes version {WORLD_VERSION}; "
                        f"regenerate it with `pad-bench datasets synth --out {root}` or pass another --data-root")


def _domains_present(root: Path, names: list[str]) -> bool:
    """True when every domain is found; refuses a root holding part of a generation."""
    from ..data.datasets import create_dataset

    if all(create_dataset(n, root).find_root() is not None for n in names):
        _check_world_version(root)
        return True
    leftovers = root.is_dir() and any(p.is_dir() and _DOMAIN_DIR.fullmatch(p.name) for p in root.iterdir())
    if leftovers or (root / MANIFEST).exists():
        raise UserError(f"{root} holds an incomplete or different set of synthetic domains (the benchmark needs "
                        f"{', '.join(names)}); regenerate it with `pad-bench datasets synth --out {root}` "
                        f"or pass another --data-root")
    return False
