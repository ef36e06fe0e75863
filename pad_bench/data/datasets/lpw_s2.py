"""LPW scene 2 (the DukeMTMC-reID substitute) in PAD's Market-style layout: `<pid>_c<cam>s<seq>_*.jpg`."""
from __future__ import annotations

import re
from pathlib import Path

from .base import DatasetSplits, parse_market_style, register_dataset
from .market1501 import MarketStyleDataset

LPW_PATTERN = re.compile(r"([-\d]+)_c(\d+)s(\d+)")


@register_dataset("lpw_s2")
class LPWS2(MarketStyleDataset):
    name = "lpw_s2"
    kind = "seen"
    root_aliases = ("LPW_s2", "lpw_s2")
    how_to_get = (
        "Convert LPW scene 2 to the Market layout (<pid>_c<cam>s<seq>_*.jpg) and unpack it as "
        "<data-root>/LPW_s2/{bounding_box_train,query,bounding_box_test}."
    )

    def build(self, root: Path) -> DatasetSplits:
        # `required` lists the train, query and gallery folders in split order.
        return DatasetSplits(*(parse_market_style(root / d, LPW_PATTERN) for d in self.required))
