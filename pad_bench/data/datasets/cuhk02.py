"""CUHK02: five camera pairs `P{1..5}/{cam1,cam2}/*.png`, pid = file name up to the first `_`.
P1-P4 train, P5 (239 persons) test: cam1 = query, cam2 = gallery."""
from __future__ import annotations

import random
import re
from collections import defaultdict
from pathlib import Path

from .base import DatasetSplits, ImageRecord, register_dataset
from .unseen_split import UnseenDataset, parse_names, side_split

NAME = re.compile(r"(\d+)_")
TRAIN_PAIRS = ("P1", "P2", "P3", "P4")
TEST_PAIR = "P5"


def read_camera(folder: Path, camid: int) -> list[ImageRecord]:
    return [ImageRecord(str(p), int(m.group(1)), camid) for p, m in parse_names(folder, NAME, "0001_1.png")]


def read_train(root: Path) -> list[ImageRecord]:
    """P1-P4 (those present), relabelled in sorted order so that equal numbers in two pairs,
    which are different people, get different pids; camid = 2 * pair + camera (cameras 0-7)."""
    records: list[ImageRecord] = []
    offset = 0
    for k, pair in enumerate(TRAIN_PAIRS):
        pair_records = read_camera(root / pair / "cam1", 2 * k) + read_camera(root / pair / "cam2", 2 * k + 1)
        pids = sorted({r.pid for r in pair_records})
        label = {pid: offset + i for i, pid in enumerate(pids)}
        records += [ImageRecord(r.path, label[r.pid], r.camid) for r in pair_records]
        offset += len(pids)
    return records


def one_per_id(records: list[ImageRecord], rng: random.Random) -> list[ImageRecord]:
    by_pid: dict[int, list[ImageRecord]] = defaultdict(list)
    for r in records:
        by_pid[r.pid].append(r)
    return [rng.choice(by_pid[pid]) for pid in sorted(by_pid)]


@register_dataset("cuhk02")
class CUHK02(UnseenDataset):
    """Split 0: every P5 image. PAD's single run: one random image per ID per camera (seed 123)."""

    name = "cuhk02"
    root_aliases = ("CUHK02", "cuhk02/Dataset", "cuhk02")
    required = (f"{TEST_PAIR}/cam1", f"{TEST_PAIR}/cam2")
    expected = {"query": (478, 239), "gallery": (478, 239)}
    how_to_get = "Download CUHK02 and unpack its camera pairs as <data-root>/CUHK02/P{1..5}/{cam1,cam2}."

    @staticmethod
    def read_test(root: Path) -> tuple[list[ImageRecord], list[ImageRecord]]:
        return read_camera(root / TEST_PAIR / "cam1", 0), read_camera(root / TEST_PAIR / "cam2", 1)

    def build(self, root: Path) -> DatasetSplits:
        return side_split(read_train(root), *self.read_test(root))

    def pad_multi_split(self, root: Path, base_seed: int) -> list[DatasetSplits]:
        rng = random.Random(base_seed)
        cam1, cam2 = self.read_test(root)
        return [side_split(read_train(root), one_per_id(cam1, rng), one_per_id(cam2, rng))]
