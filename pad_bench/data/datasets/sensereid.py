"""SenseReID (test only): `{test_probe,test_gallery}/{pid}_{camid}.jpg`; 522 probe IDs (1,040
images) against a gallery of 1,717 IDs (3,388 images).

`sensereid_camids` says where the camids come from:
  file (default): the `{camid}` field of the file name, as torchreid, the LSTKC family's loaders and
    PAD's code read it; a gallery image with the probe's pid and camid field is then filtered out.
  query_gallery: every probe camid 0 and every gallery camid 1, which filters nothing, so every
    probe is ranked against the whole gallery (the official protocol's reading). The field carries
    no camera meaning that keeps a probe apart from its own gallery matches, so this reading keeps
    true matches the file reading drops; its numbers are not comparable with published ones.
"""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import UserError
from .base import DatasetSplits, ImageRecord, register_dataset
from .unseen_split import UnseenDataset, parse_names, side_split

NAME = re.compile(r"(\d+)_(\d+)\.")
CAMID_READINGS = ("file", "query_gallery")


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
        reading = self.options.get("sensereid_camids", "file")
        if reading not in CAMID_READINGS:
            raise UserError(f"sensereid_camids must be one of {', '.join(CAMID_READINGS)}, got {reading!r}")
        query, gallery = read_side(root / "test_probe"), read_side(root / "test_gallery")
        if reading == "query_gallery":
            return side_split([], query, gallery)
        return DatasetSplits(train=[], query=query, gallery=gallery)

    def pad_multi_split(self, root: Path, base_seed: int) -> list[DatasetSplits]:
        return [self.build(root)]
