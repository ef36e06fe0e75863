"""Convert the raw CUHK03 release into the CUHK03-NP layout (new protocol, Zhong et al. CVPR'17).

Inputs (torchreid / LSTKC layout): `cuhk03_release/cuhk-03.mat`, MATLAB v7.3 (HDF5), whose `labeled`
and `detected` are 5x1 cells (one per camera pair) of persons x 10 image cells, each image stored
transposed; and `cuhk03_new_protocol_config_{labeled,detected}.mat` with `filelist`, `labels`, `camId`
and the 1-based `train_idx`, `query_idx`, `gallery_idx`. The split follows the config's own filelist,
labels and camId (PAD's converter flattens cuhk-03.mat its own way instead; see docs/methods/pad.md#paper-and-released-code row 9).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataFormatError, DatasetNotFoundError
from ..datasets.cuhk03 import CUHK03, EXPECTED, MODES
from .common import find_raw_root, load_mat, mat_str, staged_dir, warn_on_counts

log = logging.getLogger(__name__)

RAW_ALIASES = ("cuhk03", "CUHK03_lifelong", "")
RAW_MAT = "cuhk03_release/cuhk-03.mat"
RAW_REQUIRED = (RAW_MAT,)
CONFIG = "cuhk03_new_protocol_config_{}.mat"
INDEX_FIELDS = {"train": "train_idx", "query": "query_idx", "gallery": "gallery_idx"}
OUT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
OUT_DIR = "cuhk03-np"
FILELIST_NAME = re.compile(r"(\d+)_(\d+)_(\d+)_(\d+)\.png")  # campair_person_view_image


@dataclass(frozen=True)
class Entry:
    """One image of a new-protocol filelist; the numbers are the 1-based ones MATLAB uses."""

    index: int  # position in the filelist
    name: str  # e.g. 1_001_1_01.png
    label: int
    cam: int
    campair: int
    person: int
    image: int


def prepare_cuhk03(data_root: Path) -> Path:
    """Write <data_root>/cuhk03-np/{labeled,detected}/ for every config found; return cuhk03-np."""
    data_root = Path(data_root).expanduser()
    raw = find_raw_root(data_root, RAW_ALIASES, RAW_REQUIRED, "cuhk03", CUHK03.how_to_get)
    modes = [m for m in MODES if (raw / CONFIG.format(m)).is_file()]
    if not modes:
        raise DatasetNotFoundError(
            f"no {CONFIG.format('{labeled,detected}')} in {raw}; download the new-protocol configs "
            "(Zhong et al., person-re-ranking) next to cuhk03_release/"
        )
    out = data_root / OUT_DIR
    todo = [m for m in modes if not (out / m).exists()]
    for mode in sorted(set(modes) - set(todo)):
        log.warning("%s already exists, kept as is; delete it to convert again", out / mode)
    if todo:
        with open_hdf5(raw / RAW_MAT) as mat:
            for mode in todo:
                splits = read_config(raw / CONFIG.format(mode))
                warn_on_counts(f"cuhk03 {mode}", {s: split_size(e) for s, e in splits.items()}, EXPECTED[mode])
                with staged_dir(out / mode) as tmp:
                    write_mode(mat, raw / RAW_MAT, mode, splits, tmp)
    return out


def open_hdf5(path: Path) -> Any:
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DataFormatError(f"{path}: not a MATLAB v7.3 (HDF5) file ({err})") from None


def read_config(path: Path) -> dict[str, list[Entry]]:
    """The train / query / gallery entries of one new-protocol config, validated."""
    mat = load_mat(path, ("filelist", "labels", "camId", *INDEX_FIELDS.values()))
    names = [mat_str(x) for x in mat["filelist"].reshape(-1)]
    labels = mat["labels"].reshape(-1).astype(int)
    cams = mat["camId"].reshape(-1).astype(int)
    if not len(names) == len(labels) == len(cams):
        raise DataFormatError(
            f"{path}: filelist, labels and camId differ in length ({len(names)}, {len(labels)}, {len(cams)})"
        )
    entries = [make_entry(path, i + 1, *row) for i, row in enumerate(zip(names, labels, cams))]
    check_labels(path, entries)
    splits = {split: select(path, entries, mat[key], key) for split, key in INDEX_FIELDS.items()}
    query_idx = {e.index for e in splits["query"]}
    if any(e.index in query_idx for e in splits["gallery"]):
        raise DataFormatError(f"{path}: query_idx and gallery_idx share images")
    test_labels = {e.label for s in ("query", "gallery") for e in splits[s]}
    if any(e.label in test_labels for e in splits["train"]):
        raise DataFormatError(f"{path}: train_idx and the test indices share labels")
    return splits


def make_entry(path: Path, index: int, name: str, label: int, cam: int) -> Entry:
    m = FILELIST_NAME.fullmatch(name)
    if m is None:
        raise DataFormatError(
            f"{path}: filelist entry {index} {name!r} is not <campair>_<person>_<view>_<image>.png"
        )
    campair, person, view, image = map(int, m.groups())
    if cam != view:
        raise DataFormatError(f"{path}: camId {cam} of filelist entry {index} disagrees with its name {name!r}")
    return Entry(index, name, int(label), int(cam), campair, person, image)


def check_labels(path: Path, entries: list[Entry]) -> None:
    """Each (camera pair, person) of cuhk-03.mat must carry exactly one label, and vice versa."""
    person_of: dict[int, tuple[int, int]] = {}
    for e in entries:
        if person_of.setdefault(e.label, (e.campair, e.person)) != (e.campair, e.person):
            raise DataFormatError(
                f"{path}: label {e.label} names two persons, {person_of[e.label]} and {(e.campair, e.person)}"
            )
    if len(set(person_of.values())) != len(person_of):
        raise DataFormatError(f"{path}: one person carries several labels")


def select(path: Path, entries: list[Entry], idx: np.ndarray, key: str) -> list[Entry]:
    idx = np.asarray(idx).reshape(-1).astype(int)
    if idx.size and (idx.min() < 1 or idx.max() > len(entries)):
        raise DataFormatError(f"{path}: {key} has indices outside 1..{len(entries)}")
    if len(set(idx.tolist())) != idx.size:
        raise DataFormatError(f"{path}: {key} lists an image twice")
    return [entries[i - 1] for i in idx]


def split_size(entries: list[Entry]) -> tuple[int, int]:
    return len(entries), len({e.label for e in entries})


def write_mode(mat: Any, mat_path: Path, mode: str, splits: dict[str, list[Entry]], out: Path) -> None:
    """Save every entry as `{label:04d}_c{cam}_{index:05d}.png` in its Market-style folder."""
    from PIL import Image

    if mode not in mat:
        raise DataFormatError(f"{mat_path}: field '{mode}' is missing; is this the original cuhk-03.mat?")
    # HDF5 stores MATLAB arrays transposed: each camera pair reads as 10 x persons, each image as 3 x W x H.
    pairs = [mat[ref][()].T for ref in mat[mode][()].reshape(-1)]
    for split, entries in splits.items():
        folder = out / OUT_DIRS[split]
        folder.mkdir()
        log.info("cuhk03 %s: writing %d %s images", mode, len(entries), split)
        for e in entries:
            image = read_image(mat, mat_path, mode, pairs, e)
            Image.fromarray(image).save(folder / f"{e.label:04d}_c{e.cam}_{e.index:05d}.png")


def read_image(mat: Any, mat_path: Path, mode: str, pairs: list[np.ndarray], e: Entry) -> np.ndarray:
    """The H x W x 3 uint8 image of one entry."""
    cells = pairs[e.campair - 1] if 1 <= e.campair <= len(pairs) else np.empty((0, 0))
    if not (1 <= e.person <= cells.shape[0] and 1 <= e.image <= cells.shape[1]):
        raise DataFormatError(f"{mat_path}: '{mode}' has no cell for {e.name}")
    image = mat[cells[e.person - 1, e.image - 1]][()].T
    if image.ndim != 3 or image.size == 0:
        raise DataFormatError(f"{mat_path}: the '{mode}' cell for {e.name} holds no image")
    return np.ascontiguousarray(image, dtype=np.uint8)
