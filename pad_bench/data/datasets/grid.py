"""QMUL GRID: `{probe,gallery}/0001_1_25004_107_32_106_221.jpeg`, field 0 = pid (0000 = one of
the 775 gallery distractors), with the 10 official partitions in `features_and_partitions.mat`."""
from __future__ import annotations

from pathlib import Path

from ...errors import DataFormatError
from .base import DatasetSplits, ImageRecord, list_images, register_dataset
from .unseen_split import UnseenDataset, side_split

PARTITIONS_FILE = "features_and_partitions.mat"
N_PARTITIONS = 10


def read_side(folder: Path, camid: int) -> list[ImageRecord]:
    """Records of one folder; pid = field 0 of the `_`-separated file name."""
    records = []
    for p in list_images(folder):
        field = p.name.split("_")[0]
        if not field.isdigit():
            raise DataFormatError(
                f"{p}: field 0 (pid) of the file name is {field!r}, expected 4 digits as in 0001_1_....jpeg"
            )
        records.append(ImageRecord(str(p), int(field), camid))
    return records


def read_partitions(mat_path: Path) -> list[set[int]]:
    """The train IDs of each official partition: `trainIdxAll{s}`, a struct whose 3rd field lists them."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(mat_path))
    except Exception as e:  # a corrupt file raises MatReadError, ValueError, IndexError, ... from scipy
        raise DataFormatError(f"{mat_path}: not a readable .mat file ({e}); re-download underground_reid.zip") from e
    if "trainIdxAll" not in mat:
        raise DataFormatError(f"{mat_path}: field 'trainIdxAll' is missing; re-download underground_reid.zip")
    cells = mat["trainIdxAll"].ravel()
    if len(cells) < N_PARTITIONS:
        raise DataFormatError(f"{mat_path}: field 'trainIdxAll' has {len(cells)} partitions, expected {N_PARTITIONS}")
    partitions = []
    for s, cell in enumerate(cells[:N_PARTITIONS]):
        try:
            partitions.append({int(v) for v in cell[0][0][2].ravel()})
        except (IndexError, TypeError, ValueError) as e:
            raise DataFormatError(
                f"{mat_path}: field 'trainIdxAll' partition {s} is not a struct whose 3rd field lists train IDs ({e})"
            ) from e
    return partitions


@register_dataset("grid")
class GRID(UnseenDataset):
    """Official partition s: its 125 IDs train; query = probe images of the others, gallery = gallery
    images of the others, 0000 distractors included. Split 0 and PAD's runs use no seed."""

    name = "grid"
    root_aliases = ("grid/underground_reid", "grid", "underground_reid")
    required = ("probe", "gallery", PARTITIONS_FILE)
    expected = {"query": (125, 125), "gallery": (900, 126)}
    how_to_get = "Download underground_reid.zip and unpack it as <data-root>/grid/underground_reid/."

    def splits(self, root: Path, indices: list[int]) -> list[DatasetSplits]:
        """One DatasetSplits per official partition index."""
        probe, gallery = read_side(root / "probe", 0), read_side(root / "gallery", 1)
        partitions = read_partitions(root / PARTITIONS_FILE)
        out = []
        for s in indices:
            train_ids = partitions[s]
            out.append(side_split([r for r in probe + gallery if r.pid in train_ids],
                                  [r for r in probe if r.pid not in train_ids],
                                  [r for r in gallery if r.pid not in train_ids]))
        return out

    def build(self, root: Path) -> DatasetSplits:
        return self.splits(root, [0])[0]

    def pad_multi_split(self, root: Path, base_seed: int) -> list[DatasetSplits]:
        return self.splits(root, list(range(N_PARTITIONS)))
