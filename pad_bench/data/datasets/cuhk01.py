"""CUHK01: `campus/0001001.png`, 971 persons; first 4 digits = pid, last 3 = camera 1-4
(cameras 1-2 = view A, 3-4 = view B)."""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import DataFormatError
from .base import ImageRecord, register_dataset
from .unseen_split import TwoViewDataset, parse_names

NAME = re.compile(r"(\d{4})(\d{3})\.")


@register_dataset("cuhk01")
class CUHK01(TwoViewDataset):
    name = "cuhk01"
    root_aliases = ("CUHK01", "cuhk01")
    required = ("campus",)
    expected = {"query": (972, 486), "gallery": (972, 486)}
    how_to_get = "Download CUHK01 (CUHK Campus) and unpack its images as <data-root>/CUHK01/campus/*.png."

    def read_views(self, root: Path) -> tuple[list[ImageRecord], list[ImageRecord]]:
        views: tuple[list[ImageRecord], list[ImageRecord]] = ([], [])
        for p, m in parse_names(root / "campus", NAME, "0001001.png"):
            cam = int(m.group(2))
            if cam not in (1, 2, 3, 4):
                raise DataFormatError(f"{p}: camera field {m.group(2)} is not 001-004")
            view = (cam - 1) // 2
            views[view].append(ImageRecord(str(p), int(m.group(1)), view))
        return views
