"""MSMT17: image folders plus `list_{train,val,query,gallery}.txt`; V2 and V1 detected by probing folders.

A list line is `0000/0000_000_01_0303morning_0015_0.jpg 0`: the path relative to the train or test
folder, then the pid. The third `_` field of the file name is the camera (1-15).
"""
from __future__ import annotations

from pathlib import Path

from ...errors import DataFormatError, DatasetNotFoundError, UserError
from .base import DatasetSplits, ImageRecord, ReIDDataset, register_dataset

# (train folder, test folder) per version, probed in this order.
VERSION_DIRS = {"v2": ("mask_train_v2", "mask_test_v2"), "v1": ("train", "test")}
TRAIN_LISTS = {"train": ("list_train.txt",), "train_val": ("list_train.txt", "list_val.txt")}
LINE_FORMAT = "'<relative path> <pid>', e.g. '0000/0000_000_01_0303morning_0015_0.jpg 0'"


@register_dataset("msmt17")
class MSMT17(ReIDDataset):
    name = "msmt17"
    root_aliases = (
        "MSMT17_V2",  # LSTKC family, fast-reid
        "msmt17/MSMT17_V2",  # torchreid
        "MSMT17_V1",
        "msmt17/MSMT17_V1",  # torchreid
        "msmt17",  # PAD: V1 folder names
    )
    required = ("mask_train_v2|train", "mask_test_v2|test", "list_train.txt", "list_query.txt",
                "list_gallery.txt")
    expected = {"train": (30248, 1041), "query": (11659, 3060), "gallery": (82161, 3060)}
    how_to_get = "Request MSMT17_V2 from its authors and unpack it as <data-root>/MSMT17_V2/."

    def __init__(self, data_root: str | Path, **options):
        super().__init__(data_root, **options)
        self.train_lists = options.get("msmt17_train", "train")
        if self.train_lists not in TRAIN_LISTS:
            raise UserError(f"msmt17_train must be one of {', '.join(TRAIN_LISTS)}, not {self.train_lists!r}")
        if self.train_lists == "train_val":
            self.expected = {**self.expected, "train": (32621, 1041)}

    def version(self, root: Path) -> str:
        """'v2' or 'v1', from the folders present under the resolved root."""
        return next((v for v, dirs in VERSION_DIRS.items() if (root / dirs[0]).is_dir()), "v1")

    def build(self, root: Path) -> DatasetSplits:
        train_dir, test_dir = (root / d for d in VERSION_DIRS[self.version(root)])
        train = [r for lst in TRAIN_LISTS[self.train_lists] for r in read_list(root / lst, train_dir)]
        return DatasetSplits(
            train=train,
            query=read_list(root / "list_query.txt", test_dir),
            gallery=read_list(root / "list_gallery.txt", test_dir),
        )


def read_list(list_path: Path, image_dir: Path) -> list[ImageRecord]:
    """Records of one MSMT17 list file; every listed image must exist under `image_dir`."""
    if not list_path.is_file():
        raise DatasetNotFoundError(f"{list_path} is missing; MSMT17 ships it next to its image folders")
    records, missing = [], []
    for lineno, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rel, pid = line.split()
            record = ImageRecord(str(image_dir / rel), int(pid), int(Path(rel).name.split("_")[2]) - 1)
        except (ValueError, IndexError):
            raise DataFormatError(f"{list_path}:{lineno}: expected {LINE_FORMAT}, got {line.strip()!r}") from None
        if not Path(record.path).is_file():
            missing.append((lineno, record.path))
        records.append(record)
    if missing:
        lineno, path = missing[0]
        raise DataFormatError(
            f"{list_path}:{lineno}: listed image {path} does not exist ({len(missing)} listed images "
            f"missing under {image_dir}); re-extract MSMT17"
        )
    return records
