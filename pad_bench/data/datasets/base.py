"""The shared base of every dataset adapter.

An adapter only builds records: lists of `ImageRecord(path, pid, camid)` for train, query and
gallery. The base class resolves the dataset folder under a data root (trying every folder name
used by the LSTKC family, torchreid and PAD), checks that something was found, and compares the
counts with the official ones. ID selection, relabelling and manifests live in `protocol.py`.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterable

from ...errors import DataFormatError, DatasetNotFoundError, UserError
from ...registry import Registry

log = logging.getLogger(__name__)

SPLITS = ("train", "query", "gallery")


@dataclass(frozen=True, order=True)
class ImageRecord:
    """One image: absolute path, raw identity label, 0-based camera index."""

    path: str
    pid: int
    camid: int


@dataclass
class DatasetSplits:
    """Train / query / gallery records of one dataset (or one evaluation split of an unseen set)."""

    train: list[ImageRecord] = field(default_factory=list)
    query: list[ImageRecord] = field(default_factory=list)
    gallery: list[ImageRecord] = field(default_factory=list)

    def split(self, name: str) -> list[ImageRecord]:
        return getattr(self, name)

    def counts(self) -> dict[str, dict[str, int]]:
        """{"train": {"images", "ids", "cams"}, "query": ..., "gallery": ...}."""
        return {s: split_counts(self.split(s)) for s in SPLITS}


def split_counts(records: Iterable[ImageRecord]) -> dict[str, int]:
    records = list(records)
    return {
        "images": len(records),
        "ids": len({r.pid for r in records}),
        "cams": len({r.camid for r in records}),
    }


class ReIDDataset:
    """Base adapter. Subclasses set the class attributes and implement `build`.

    Class attributes:
      name:          canonical name (also the registry key).
      kind:          "seen" (a training domain) or "unseen" (evaluation only) or "synthetic".
      root_aliases:  folder paths relative to the data root, tried in order. "" means the root itself.
      required:      sub-paths (relative to a candidate folder) that must all exist for it to count;
                     a tuple of alternatives may be given as one entry ("a|b" means a or b).
      expected:      official counts {"train": (images, ids), "query": ..., "gallery": ...};
                     a mismatch is logged loudly, not an error.
      how_to_get:    one sentence telling the user how to obtain or prepare the data.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "seen"
    root_aliases: ClassVar[tuple[str, ...]] = ()
    required: ClassVar[tuple[str, ...]] = ()
    expected: ClassVar[dict[str, tuple[int, int]]] = {}
    how_to_get: ClassVar[str] = ""

    def __init__(self, data_root: str | Path, **options):
        self.data_root = Path(data_root).expanduser()
        self.options = options

    # ---- to implement -------------------------------------------------------------------
    def build(self, root: Path) -> DatasetSplits:
        """Read the resolved folder and return the records. Seen sets: train/query/gallery.
        Unseen sets: query/gallery of the default single split (train may be empty)."""
        raise NotImplementedError

    def build_eval_splits(self, root: Path, protocol: str, seed: int) -> list[DatasetSplits]:
        """Evaluation splits of an unseen set under `protocol` ("single_split" or
        "pad_multi_split"). The default returns the single split from `build`."""
        if protocol != "single_split":
            raise UserError(f"dataset '{self.name}' does not support unseen_protocol '{protocol}'")
        return [self.build(root)]

    # ---- shared machinery ---------------------------------------------------------------
    def candidate_dirs(self) -> list[Path]:
        return [self.data_root / a if a else self.data_root for a in self.root_aliases]

    def is_valid_root(self, path: Path) -> bool:
        if not path.is_dir():
            return False
        for req in self.required:
            if not any((path / alt).exists() for alt in req.split("|")):
                return False
        return True

    def find_root(self) -> Path | None:
        for cand in self.candidate_dirs():
            if self.is_valid_root(cand):
                return cand
        return None

    def resolve_root(self) -> Path:
        root = self.find_root()
        if root is None:
            searched = ", ".join(str(Path(a)) if a else "." for a in self.root_aliases)
            raise DatasetNotFoundError(
                f"dataset '{self.name}' not found under {self.data_root} "
                f"(searched: {searched}; each needs {', '.join(self.required) or 'images'}). {self.how_to_get}"
            )
        return root

    def load(self) -> DatasetSplits:
        """Resolve, build, refuse empty results, warn on counts that differ from the official ones."""
        root = self.resolve_root()
        splits = self.build(root)
        self.check_not_empty(splits, root, SPLITS if self.kind != "unseen" else ("query", "gallery"))
        self.warn_on_count_mismatch(splits)
        return splits

    def load_eval_splits(self, protocol: str = "single_split", seed: int = 0) -> list[DatasetSplits]:
        root = self.resolve_root()
        runs = self.build_eval_splits(root, protocol, seed)
        for s in runs:
            self.check_not_empty(s, root, ("query", "gallery"))
        if protocol == "single_split":
            self.warn_on_count_mismatch(runs[0])
        return runs

    def check_not_empty(self, splits: DatasetSplits, root: Path, names: Iterable[str]) -> None:
        for s in names:
            if not splits.split(s):
                raise DataFormatError(
                    f"dataset '{self.name}' at {root} has 0 images in its {s} split; "
                    f"the folder is incomplete. {self.how_to_get}"
                )

    def warn_on_count_mismatch(self, splits: DatasetSplits) -> None:
        for s, (n_img, n_ids) in self.expected.items():
            c = split_counts(splits.split(s))
            if (c["images"], c["ids"]) != (n_img, n_ids):
                log.warning(
                    "%s %s: %d images / %d ids, official %d / %d (partial or customised copy?)",
                    self.name, s, c["images"], c["ids"], n_img, n_ids,
                )


# ---- helpers adapters share ----------------------------------------------------------------
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def list_images(folder: Path) -> list[Path]:
    """Sorted image files directly inside `folder` (sorted for determinism)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


MARKET_PATTERN = re.compile(r"([-\d]+)_c(\d+)")


def parse_market_style(folder: Path, pattern: re.Pattern = MARKET_PATTERN, *, drop_junk: bool = True,
                       cam_offset: int = 1) -> list[ImageRecord]:
    """Records from Market-style file names (`0002_c1s1_000451_03.jpg`): pid, camid = cam - cam_offset.
    pid -1 (junk) is dropped when drop_junk; pid 0 (distractors) is kept."""
    records = []
    for p in list_images(folder):
        m = pattern.search(p.name)
        if not m:
            raise DataFormatError(f"{p}: file name does not match {pattern.pattern!r}")
        pid, cam = int(m.group(1)), int(m.group(2))
        if drop_junk and pid == -1:
            continue
        records.append(ImageRecord(str(p), pid, cam - cam_offset))
    return records


DATASETS: Registry[type[ReIDDataset]] = Registry("dataset")
register_dataset = DATASETS.register
