"""PRID 2011 single-shot: `{cam_a,cam_b}/person_0001.png`; cam_a has 385 persons, cam_b 749, and
only persons 1-200 appear in both (201-385 are different people in each camera)."""
from __future__ import annotations

import random
import re
from pathlib import Path

from ...registry import unknown_name_error
from .base import DatasetSplits, ImageRecord, register_dataset
from .unseen_split import HalvedIDsDataset, halve_ids, of_ids, parse_names, side_split

NAME = re.compile(r"person_(\d+)\.")
SHARED_MAX = 200
# First cam_b pid used as a gallery distractor. "386_749" is PAD's code: it matched the cameras by
# file name, took 1-385 as shared and so dropped 201-385 (docs/methods/pad.md#paper-and-released-code row 6).
DISTRACTORS_FROM = {"201_749": 201, "386_749": 386}


@register_dataset("prid")
class PRID(HalvedIDsDataset):
    """IDs 1-200 halved; query = cam_a of the test half; gallery = its cam_b + the cam_b distractors."""

    name = "prid"
    root_aliases = (
        "prid2011/single_shot",
        "prid2011/prid_2011/single_shot",
        "prid/single_shot",
        "prid_2011/single_shot",
    )
    required = ("cam_a", "cam_b")
    expected = {"query": (100, 100), "gallery": (649, 649)}
    how_to_get = "Download prid_2011.zip and unpack its single_shot folder as <data-root>/prid2011/single_shot/."

    def distractors_from(self) -> int:
        choice = self.options.get("prid_distractors", "201_749")
        if choice not in DISTRACTORS_FROM:
            raise unknown_name_error("prid_distractors value", str(choice), DISTRACTORS_FROM)
        return DISTRACTORS_FROM[choice]

    @staticmethod
    def read_camera(folder: Path, camid: int) -> list[ImageRecord]:
        return [ImageRecord(str(p), int(m.group(1)), camid) for p, m in parse_names(folder, NAME, "person_0001.png")]

    def splits(self, root: Path, runs: list[tuple[int, bool]]) -> list[DatasetSplits]:
        start = self.distractors_from()
        cam_a, cam_b = self.read_camera(root / "cam_a", 0), self.read_camera(root / "cam_b", 1)
        shared = {r.pid for r in cam_a if r.pid <= SHARED_MAX} & {r.pid for r in cam_b}
        distractors = [r for r in cam_b if r.pid >= start]
        out = []
        for seed, _ in runs:  # always A -> B
            train_ids, test_ids = halve_ids(shared, random.Random(seed))
            out.append(side_split(of_ids(cam_a + cam_b, train_ids), of_ids(cam_a, test_ids),
                                  of_ids(cam_b, test_ids) + distractors))
        return out
