"""CUHK-SYSU re-ID crops: LSTKC's `cuhksysu4reid/{train,query,gallery}` or PAD's Market-style folders.

The crops carry no camera, so every record gets a pseudo camid per split (LSTKC family: train 0,
gallery 1, query 2): query and gallery must differ, or the same-camera filter drops every match.
`sysu_min_images` (default 4, LSTKC family; PAD code: 1) keeps training IDs with at least that many images.
The raw release can be cropped with `pad_bench.data.prepare.cuhk_sysu`.
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

from ...errors import UserError
from .base import (
    MARKET_PATTERN, SPLITS, DatasetSplits, ImageRecord, ReIDDataset, parse_market_style, register_dataset,
)

# `{pid:05d}_s{scene}_{idx:07d}_{is_hard}.jpg`
LSTKC_PATTERN = re.compile(r"([-\d]+)_s([-\d]+)_([-\d]+)_([-\d]+)")
LSTKC_DIRS = {"train": "train", "query": "query", "gallery": "gallery"}
PAD_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
PSEUDO_CAMIDS = {"train": 0, "gallery": 1, "query": 2}


@register_dataset("cuhk_sysu")
class CUHKSYSU(ReIDDataset):
    name = "cuhk_sysu"
    root_aliases = (
        "CUHK-SYSU/cuhksysu4reid",  # LSTKC family: cropped next to the raw release
        "cuhksysu4reid",
        "cuhksysu",  # PAD
    )
    required = ("train|bounding_box_train", "query", "gallery|bounding_box_test")
    expected = {"train": (4374, 942), "query": (2900, 2900), "gallery": (5447, 2900)}
    how_to_get = (
        "Put the raw release at <data-root>/CUHK-SYSU/{Image,annotation} and run "
        "`pad-bench datasets prepare cuhk_sysu --root <data-root>` to crop <data-root>/CUHK-SYSU/cuhksysu4reid/."
    )

    def __init__(self, data_root: str | Path, **options):
        super().__init__(data_root, **options)
        self.min_images = options.get("sysu_min_images", 4)
        if isinstance(self.min_images, bool) or not isinstance(self.min_images, int) or self.min_images < 1:
            raise UserError(f"sysu_min_images must be an integer >= 1, not {self.min_images!r}")
        if self.min_images != 4:  # the official train count holds for the LSTKC filter only
            self.expected = {s: c for s, c in self.expected.items() if s != "train"}

    def build(self, root: Path) -> DatasetSplits:
        cropped = (root / LSTKC_DIRS["train"]).is_dir()
        dirs, pattern = (LSTKC_DIRS, LSTKC_PATTERN) if cropped else (PAD_DIRS, MARKET_PATTERN)
        splits = {
            s: [dataclasses.replace(r, camid=PSEUDO_CAMIDS[s])
                for r in parse_market_style(root / dirs[s], pattern)]
            for s in SPLITS
        }
        splits["train"] = keep_frequent_ids(splits["train"], self.min_images)
        return DatasetSplits(**splits)


def keep_frequent_ids(records: list[ImageRecord], min_images: int) -> list[ImageRecord]:
    """The records whose pid has at least `min_images` images, in their original order."""
    n_images = Counter(r.pid for r in records)
    return [r for r in records if n_images[r.pid] >= min_images]
