"""What the unseen-set adapters share (docs/protocol.md#unseen-datasets): seeded ID halving, query/gallery
construction with side camids, file-name parsing, and the `pad_multi_split` run loop."""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import ClassVar, Iterable

from ...errors import DataFormatError, UserError
from ...registry import unknown_name_error
from .base import DatasetSplits, ImageRecord, ReIDDataset, list_images

PROTOCOLS = ("single_split", "pad_multi_split")
PAD_SEED = 123  # zu-zi/PAD scripts/eval_unseen.sh: EVAL.SEED 123
QUERY_CAM, GALLERY_CAM = 0, 1


def halve_ids(pids: Iterable[int], rng: random.Random) -> tuple[set[int], set[int]]:
    """Shuffle the sorted distinct pids; the first floor(n/2) train, the rest test (119 -> 59 / 60)."""
    ids = sorted(set(pids))
    rng.shuffle(ids)
    cut = len(ids) // 2
    return set(ids[:cut]), set(ids[cut:])


def of_ids(records: Iterable[ImageRecord], ids: set[int]) -> list[ImageRecord]:
    return [r for r in records if r.pid in ids]


def with_camid(records: Iterable[ImageRecord], camid: int) -> list[ImageRecord]:
    return [ImageRecord(r.path, r.pid, camid) for r in records]


def side_split(train: list[ImageRecord], query: Iterable[ImageRecord],
               gallery: Iterable[ImageRecord]) -> DatasetSplits:
    """Splits with query camids 0 and gallery camids 1: the same-pid-and-camid filter then never
    drops a cross-side match, whatever cameras the files came from."""
    return DatasetSplits(train=train, query=with_camid(query, QUERY_CAM),
                         gallery=with_camid(gallery, GALLERY_CAM))


def pad_runs(n_runs: int, base_seed: int, *, alternate: bool = False) -> list[tuple[int, bool]]:
    """(seed, reverse) of each PAD run s: seed base+s; with `alternate`, seed base+s//2 and the
    odd runs reversed (B -> A), so each ID split is evaluated in both directions."""
    if alternate:
        return [(base_seed + s // 2, s % 2 == 1) for s in range(n_runs)]
    return [(base_seed + s, False) for s in range(n_runs)]


def parse_names(folder: Path, pattern: re.Pattern, example: str) -> list[tuple[Path, re.Match]]:
    """(path, match) for every image in `folder`; a name that does not match is a DataFormatError."""
    parsed = []
    for p in list_images(folder):
        m = pattern.match(p.name)
        if m is None:
            raise DataFormatError(f"{p}: file name does not match {pattern.pattern!r} (expected e.g. {example})")
        parsed.append((p, m))
    return parsed


class UnseenDataset(ReIDDataset):
    """An evaluation-only set: `build` gives split 0 (single_split), `pad_multi_split` the released code's runs."""

    kind = "unseen"

    def build_eval_splits(self, root: Path, protocol: str, seed: int) -> list[DatasetSplits]:
        """single_split: [split 0]. pad_multi_split: PAD's runs, their seeds offset by `seed`
        (0 reproduces PAD's 123 + s)."""
        if protocol == "single_split":
            return [self.build(root)]
        if protocol == "pad_multi_split":
            return self.pad_multi_split(root, PAD_SEED + seed)
        raise unknown_name_error("unseen_protocol", protocol, PROTOCOLS)

    def pad_multi_split(self, root: Path, base_seed: int) -> list[DatasetSplits]:
        raise NotImplementedError


class HalvedIDsDataset(UnseenDataset):
    """A set split by halving its IDs at random: split 0 is seeded by the dataset option `seed`
    (default 0), PAD's runs by `pad_runs`."""

    pad_n_runs: ClassVar[int] = 10
    pad_alternate: ClassVar[bool] = False

    def splits(self, root: Path, runs: list[tuple[int, bool]]) -> list[DatasetSplits]:
        """One DatasetSplits per (seed, reverse) run."""
        raise NotImplementedError

    def split_seed(self) -> int:
        seed = self.options.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserError(f"dataset '{self.name}': option seed must be an integer, got {seed!r}")
        return seed

    def build(self, root: Path) -> DatasetSplits:
        return self.splits(root, [(self.split_seed(), False)])[0]

    def pad_multi_split(self, root: Path, base_seed: int) -> list[DatasetSplits]:
        return self.splits(root, pad_runs(self.pad_n_runs, base_seed, alternate=self.pad_alternate))


class TwoViewDataset(HalvedIDsDataset):
    """Every person seen from two views (VIPeR cam_a/cam_b, CUHK01 A/B): halve the IDs; one view
    of the test IDs is the query, the other the gallery. PAD alternates the direction."""

    pad_n_runs = 20
    pad_alternate = True

    def read_views(self, root: Path) -> tuple[list[ImageRecord], list[ImageRecord]]:
        """All records of view A (camid 0) and view B (camid 1)."""
        raise NotImplementedError

    def splits(self, root: Path, runs: list[tuple[int, bool]]) -> list[DatasetSplits]:
        view_a, view_b = self.read_views(root)
        both = view_a + view_b
        out = []
        for seed, reverse in runs:
            train_ids, test_ids = halve_ids((r.pid for r in both), random.Random(seed))
            query, gallery = (view_b, view_a) if reverse else (view_a, view_b)
            out.append(side_split(of_ids(both, train_ids), of_ids(query, test_ids), of_ids(gallery, test_ids)))
        return out
