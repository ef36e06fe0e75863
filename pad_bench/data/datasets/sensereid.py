"""SenseReID (test only): `{test_probe,test_gallery}/{pid}_{camid}.jpg`; 522 probe IDs (1,040
images) against a gallery of 1,717 IDs (3,388 images).

The camid field is parsed (to check the names) but not used: nothing in the naming keeps a probe
and its gallery matches apart, and where they share it the same-pid-and-camid filter would drop
true matches. The official protocol compares every probe with the whole gallery, so the query
gets camid 0 and the gallery 1, which filters nothing. (PAD's code keeps the file camids.)"""
from __future__ import annotations

import re
from pathlib import Path

from .base import DatasetSplits, ImageRecord, register_dataset
from .unseen_split import UnseenDataset, parse_names, side_split

NAME = re.compile(r"(\d+)_(\d+)\.")


def read_side(folder: Path) -> list[ImageRecord]:
    parsed = parse_names(folder, NAME, "0000001_00.jpg")
    return [ImageRecord(str(p), int(m.group(1)), int(m.group(2))) for p, m in parsed]


@register_dataset("sensereid")
class SenseReID(UnseenDataset):
    """The official probe / gallery, no train split; the same for split 0 and PAD's single run."""

    name = "sensereid"
    root_aliases = ("SenseReID", "sensereid/SenseReID")
    required = ("test_probe", "test_gallery")
    expected = {"query": (1040, 522), "gallery": (3388, 1717)}
    how_to_get = "Download SenseReID.zip and unpack it as <data-root>/SenseReID/{test_probe,test_gallery}."

    def build(self, root: Path) -> DatasetSplits:
        return side_split([], read_side(root / "test_probe"), read_side(root / "test_gallery"))

    def pad_multi_split(self, root: Path, base_seed: int) -> list[DatasetSplits]:
        return [self.build(root)]
