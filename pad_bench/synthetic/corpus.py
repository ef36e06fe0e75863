"""The pretraining corpus: synthetic image-caption pairs for pretraining clip-tiny and resnet-tiny.

The analogue of web-scale image-text data: a pool of identities of its own (drawn from random
streams no benchmark domain uses, with clothing from the whole colour range instead of a domain
palette) and every image under a freshly randomised style: backgrounds that no benchmark domain
has (CORPUS_BACKGROUNDS), random lighting, a mild cast, blur, noise and resolution, and no colour
transform, so that the colours a caption names are the colours in the picture. A fixed share of
identities is held out for the pretraining report. Layout under `<root>/synth_pretrain/`:
`images/<pid>_<n>.jpg`, `attributes.json` (as in the benchmark domains, plus each identity's
split) and `corpus.json`, written last, which marks the corpus complete.
"""
from __future__ import annotations

import colorsys
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..io import atomic_write_json
from .domains import (check_int_bounds, CORPUS_BACKGROUNDS, MAX_TRAIN_DOMAINS, MAX_UNSEEN_DOMAINS, ATTRIBUTES_FILE, CameraStyle,
                    DomainStyle, _r, _rgb, _save_jpeg, _vec, manifest_matches, render_image, sample_look,
                    write_attributes)

CORPUS_VERSION = 1  # bump when the corpus renderer changes: it invalidates cached corpora and weights
CORPUS_DIR = "synth_pretrain"
CORPUS_MANIFEST = "corpus.json"
# The corpus's slot in the (seed, domain, purpose, index) random streams: after every benchmark domain.
_CORPUS_SLOT = MAX_TRAIN_DOMAINS + MAX_UNSEEN_DOMAINS
_LOOK, _STYLE, _IMAGE = range(3)
_BOUNDS = {"seed": (0, 2**32 - 1), "train_ids": (2, 100000), "heldout_ids": (2, 100000),
           "images_per_id": (2, 1000), "height": (32, 1024), "width": (16, 512), "jpeg_quality": (1, 100)}


@dataclass(frozen=True)
class CorpusConfig:
    """Size of the corpus; the defaults are what the synthetic benchmark pretrains on."""

    seed: int = 0
    train_ids: int = 600
    heldout_ids: int = 100
    images_per_id: int = 6
    height: int = 128
    width: int = 64
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        check_int_bounds(self, _BOUNDS, "corpus")


@dataclass(frozen=True)
class CorpusImage:
    path: str
    pid: int  # 0-based identity index
    heldout: bool


def _rng(cfg: CorpusConfig, purpose: int, index: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, _CORPUS_SLOT, purpose, index])


def sample_corpus_style(rng: np.random.Generator) -> DomainStyle:
    """A one-camera style drawn afresh for every image; its palette fields span every colour."""
    cast = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.15), 1.0))
    camera = CameraStyle(tint=_vec(rng.uniform(0.95, 1.05, 3)), p_front=_r(rng.uniform(0.2, 0.8)),
                         scale=_r(rng.uniform(0.85, 1.03)), bg_shift=(0.0, 0.0, 0.0), bg_phase=_r(rng.random()))
    return DomainStyle(
        background=CORPUS_BACKGROUNDS[rng.integers(len(CORPUS_BACKGROUNDS))],
        bg_colors=(_rgb(rng.uniform(0.05, 0.95, 3)), _rgb(rng.uniform(0.05, 0.95, 3))),
        bg_period=_r(rng.uniform(0.08, 0.25)),
        bg_contrast=_r(rng.uniform(0.2, 0.6)),
        gain=_r(rng.uniform(0.8, 1.2)),
        gamma=_r(rng.uniform(0.85, 1.2)),
        cast=_vec(cast / cast.mean()),
        color_transform="none",
        color_matrix=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        blur=_r(rng.uniform(0.0, 0.8)),
        noise=_r(rng.uniform(1.0, 8.0)),
        resolution=_r(rng.uniform(0.5, 1.0)),
        hue_center=0.5,
        hue_spread=1.0,
        saturation=(0.0, 1.0),
        value=(0.1, 1.0),
        cameras=(camera,),
    )


def corpus_dir(data_root: str | Path) -> Path:
    return Path(data_root) / CORPUS_DIR


def generate_corpus(data_root: str | Path, cfg: CorpusConfig = CorpusConfig()) -> dict:
    """Render the corpus of `cfg` into <data_root>/synth_pretrain (replacing an earlier one there)."""
    root = corpus_dir(data_root)
    (root / CORPUS_MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(root / "images", ignore_errors=True)
    n_ids = cfg.train_ids + cfg.heldout_ids
    looks, extra = {}, {}
    for pid in range(n_ids):
        look = sample_look(sample_corpus_style(_rng(cfg, _STYLE, pid)), _rng(cfg, _LOOK, pid), pid)
        looks[str(pid)] = look
        extra[str(pid)] = {"split": "heldout" if pid >= cfg.train_ids else "train"}
        for n in range(cfg.images_per_id):
            rng = _rng(cfg, _IMAGE, pid * cfg.images_per_id + n)
            style = sample_corpus_style(rng)
            img = render_image(look, style, style.cameras[0], (cfg.height, cfg.width), rng)
            _save_jpeg(img, root / "images" / f"{pid:05d}_{n:03d}.jpg", cfg.jpeg_quality)
    write_attributes(root / ATTRIBUTES_FILE, looks, extra)
    info = {"version": CORPUS_VERSION, "config": asdict(cfg),
            "counts": {"train_ids": cfg.train_ids, "heldout_ids": cfg.heldout_ids,
                       "images": n_ids * cfg.images_per_id}}
    atomic_write_json(root / CORPUS_MANIFEST, info)
    return info


def corpus_is_complete(data_root: str | Path, cfg: CorpusConfig) -> bool:
    return manifest_matches(corpus_dir(data_root) / CORPUS_MANIFEST, CORPUS_VERSION, cfg)


def load_corpus(data_root: str | Path, cfg: CorpusConfig) -> tuple[list[CorpusImage], dict[int, dict]]:
    """The corpus images (identity order) and {pid: {"attributes", "caption", "split"}}."""
    root = corpus_dir(data_root)
    records = json.loads((root / ATTRIBUTES_FILE).read_text(encoding="utf-8"))
    records = {int(pid): rec for pid, rec in records.items()}
    images = [CorpusImage(str(root / "images" / f"{pid:05d}_{n:03d}.jpg"), pid, records[pid]["split"] == "heldout")
              for pid in sorted(records) for n in range(cfg.images_per_id)]
    return images, records
