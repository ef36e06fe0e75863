"""QMUL i-LIDS: `Persons/0001001.jpg`, 119 persons, 476 images; first 4 digits = pid. No camera
labels, so per test ID one random image is the query and another the gallery."""
from __future__ import annotations

import random
import re
from collections import defaultdict
from pathlib import Path

from .base import DatasetSplits, ImageRecord, register_dataset
from .unseen_split import HalvedIDsDataset, halve_ids, of_ids, parse_names, side_split

NAME = re.compile(r"(\d{4})\d+\.")


@register_dataset("ilids")
class ILIDS(HalvedIDsDataset):
    """IDs with >= 2 images halved (119 -> 59 / 60); 2 random images per test ID (1 query, 1 gallery)."""

    name = "ilids"
    root_aliases = ("i-LIDS_Pedestrian/Persons", "ilids/i-LIDS_Pedestrian/Persons")
    expected = {"query": (60, 60), "gallery": (60, 60)}
    how_to_get = "Download i-LIDS_Pedestrian.tgz and unpack it as <data-root>/i-LIDS_Pedestrian/Persons/*.jpg."

    def splits(self, root: Path, runs: list[tuple[int, bool]]) -> list[DatasetSplits]:
        records = [ImageRecord(str(p), int(m.group(1)), 0) for p, m in parse_names(root, NAME, "0001001.jpg")]
        by_pid: dict[int, list[ImageRecord]] = defaultdict(list)
        for r in records:
            by_pid[r.pid].append(r)
        eligible = [pid for pid, recs in by_pid.items() if len(recs) >= 2]
        out = []
        for seed, _ in runs:  # no direction: both sides are random images
            rng = random.Random(seed)
            train_ids, test_ids = halve_ids(eligible, rng)
            pairs = [rng.sample(by_pid[pid], 2) for pid in sorted(test_ids)]
            out.append(side_split(of_ids(records, train_ids), [q for q, _ in pairs], [g for _, g in pairs]))
        return out
