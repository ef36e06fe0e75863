"""Market-1501: `0002_c1s1_000451_03.jpg`, cams 1-6; pid -1 is junk, pid 0 distractors."""
from __future__ import annotations

from pathlib import Path

from .base import DatasetSplits, ReIDDataset, parse_market_style, register_dataset


class MarketStyleDataset(ReIDDataset):
    """Any dataset laid out as Market-1501: bounding_box_train / query / bounding_box_test."""

    required = ("bounding_box_train", "query", "bounding_box_test")

    def build(self, root: Path) -> DatasetSplits:
        return DatasetSplits(
            train=parse_market_style(root / "bounding_box_train"),
            query=parse_market_style(root / "query"),
            gallery=parse_market_style(root / "bounding_box_test"),
        )


@register_dataset("market1501")
class Market1501(MarketStyleDataset):
    name = "market1501"
    root_aliases = (
        "Market-1501",
        "market1501/Market-1501-v15.09.15",
        "market1501",
        "Market-1501-v15.09.15",
    )
    expected = {"train": (12936, 751), "query": (3368, 750), "gallery": (15913, 751)}
    how_to_get = "Download Market-1501-v15.09.15 and unpack it as <data-root>/Market-1501/."
