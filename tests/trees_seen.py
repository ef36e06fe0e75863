"""Tiny seen-domain dataset trees in each dataset's exact naming scheme, and tiny raw releases.

Every `make_*` of a dataset tree writes under a data root and returns the records the adapter
should report for it: a `DatasetSplits` of `ImageRecord(path, pid, camid)`, each list sorted. The
raw releases' writers return the counts of the prepared tree (`DatasetSplits.counts()`). Both are
derived from the (pid, camid) lists written here, never typed in.
Image files are 8x4 pixels; adapters never open them.
"""
from __future__ import annotations

import functools
import io
import itertools
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from pad_bench.data.datasets.base import DatasetSplits, ImageRecord

MARKET_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
SYSU_CAMIDS = {"train": 0, "gallery": 1, "query": 2}

# (pid, camera as written in the name) per split; Market-1501 has junk (-1) and distractors (0).
MARKET_SPEC = {
    "train": [(2, 1), (2, 1), (2, 2), (7, 3), (7, 6)],
    "query": [(2, 2), (7, 1)],
    "gallery": [(2, 3), (7, 4), (0, 1), (0, 5), (-1, 5), (-1, 2)],
}
# Duke: cameras 1-8, gallery-only distractor identities (7140).
DUKE_SPEC = {
    "train": [(5, 2), (5, 8), (5, 2), (12, 1), (12, 7)],
    "query": [(5, 1), (12, 3)],
    "gallery": [(5, 8), (12, 5), (7140, 4), (7140, 6)],
}
LPW_SPEC = {
    "train": [(1, 1), (1, 2), (4, 3), (4, 4)],
    "query": [(1, 3), (4, 1)],
    "gallery": [(1, 4), (4, 2), (9, 1)],
}
CUHK03_NP_SPEC = {
    "labeled": {
        "train": [(1, 1), (1, 2), (3, 1), (3, 2), (3, 2)],
        "query": [(8, 1), (8, 2), (9, 1)],
        "gallery": [(8, 2), (9, 2)],
    },
    "detected": {
        "train": [(1, 1), (1, 2), (3, 2)],
        "query": [(8, 1), (9, 2)],
        "gallery": [(8, 2), (8, 1), (9, 1), (9, 1)],
    },
}
CUHK03_PAD_SPEC = {  # PAD's converter: cameras 1-10 (camera pair x view)
    "train": [(1, 1), (1, 2), (2, 9), (2, 10)],
    "query": [(5, 3), (6, 7)],
    "gallery": [(5, 4), (6, 8)],
}
# CUHK-SYSU pids; with the default filter (>= 4 images) only 1 and 3 stay in train.
SYSU_SPEC = {
    "train": [1] * 5 + [3] * 4 + [8] * 2 + [10],
    "query": [20, 21, 22],
    "gallery": [20, 20, 21, 22, 22, 22],
}
# MSMT17 per list: (pid, camera); test pids are numbered apart from train pids, as in the release.
MSMT_SPEC = {
    "train": [(0, 1), (0, 3), (1, 15), (1, 2)],
    "val": [(0, 4), (1, 2)],
    "query": [(0, 7), (1, 9), (2, 11)],
    "gallery": [(0, 8), (1, 1), (2, 12), (2, 13)],
}
MSMT_VERSIONS = {  # version -> (default folder, train folder, test folder)
    "v2": ("MSMT17_V2", "mask_train_v2", "mask_test_v2"),
    "v1": ("MSMT17_V1", "train", "test"),
    "pad": ("msmt17", "train", "test"),
}


@functools.cache
def image_bytes(suffix: str) -> bytes:
    """An encoded 8x4 (H x W) RGB image; written byte for byte to every file of a tree."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 8), (120, 60, 30)).save(buf, format="PNG" if suffix == ".png" else "JPEG")
    return buf.getvalue()


def write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(image_bytes(Path(name).suffix))


def counts_of(kept: dict[str, list[tuple[int, int]]]) -> dict[str, dict[str, int]]:
    """The counts dict of (pid, camid) lists, one per split."""
    return {
        s: {"images": len(pc), "ids": len({p for p, _ in pc}), "cams": len({c for _, c in pc})}
        for s, pc in kept.items()
    }


def splits_of(kept: dict[str, list[tuple[Path, int, int]]]) -> DatasetSplits:
    """The records of (path, pid, camid) lists per split, each list sorted."""
    return DatasetSplits(**{s: sorted(ImageRecord(str(path), pid, camid) for path, pid, camid in items)
                            for s, items in kept.items()})


def sorted_splits(splits: DatasetSplits) -> DatasetSplits:
    """`splits` with each list sorted, to compare with what a tree writer returns."""
    return DatasetSplits(sorted(splits.train), sorted(splits.query), sorted(splits.gallery))


def market_style(folder: Path, spec: dict[str, list[tuple[int, int]]], name: Callable[[int, int, int], str],
                 dirs: dict[str, str] = MARKET_DIRS) -> DatasetSplits:
    """Write spec[split] as name(pid, cam, serial) into folder/dirs[split]; junk (-1) is not reported."""
    serial = itertools.count(1)
    kept: dict[str, list[tuple[Path, int, int]]] = {}
    for split, items in spec.items():
        names = [(name(pid, cam, next(serial)), pid, cam) for pid, cam in items]
        write_images(folder / dirs[split], [n for n, _, _ in names])
        kept[split] = [(folder / dirs[split] / n, pid, cam - 1) for n, pid, cam in names if pid != -1]
    return splits_of(kept)


def market_pid(pid: int) -> str:
    return "-1" if pid == -1 else f"{pid:04d}"


def make_market1501(root: Path, folder: str = "Market-1501") -> DatasetSplits:
    """`0002_c1s1_000451_03.jpg`; junk `-1_c5s1_...` and distractors `0000_...` in the gallery."""
    return market_style(Path(root) / folder, MARKET_SPEC,
                        lambda p, c, i: f"{market_pid(p)}_c{c}s1_{i * 25:06d}_0{i % 3 + 1}.jpg")


def make_dukemtmc(root: Path, folder: str = "DukeMTMC-reID") -> DatasetSplits:
    """`0005_c2_f0046985.jpg`, cameras 1-8."""
    return market_style(Path(root) / folder, DUKE_SPEC, lambda p, c, i: f"{p:04d}_c{c}_f{i * 977:07d}.jpg")


def make_lpw_s2(root: Path, folder: str = "LPW_s2") -> DatasetSplits:
    """`0001_c3s2_000123.jpg` (PAD's Market-style conversion of LPW scene 2)."""
    return market_style(Path(root) / folder, LPW_SPEC, lambda p, c, i: f"{p:04d}_c{c}s2_{i * 41:06d}.jpg")


def make_cuhk03_np(root: Path, mode: str = "labeled", parent: str = "cuhk03-np") -> DatasetSplits:
    """CUHK03-NP `{parent}/{mode}/...`: `0001_c1_12.png`, cameras 1-2; the two modes differ in counts."""
    return market_style(Path(root) / parent / mode, CUHK03_NP_SPEC[mode], lambda p, c, i: f"{p:04d}_c{c}_{i}.png")


def make_cuhk03_pad(root: Path) -> DatasetSplits:
    """PAD's converted CUHK03 (detected): `cuhk03/bounding_box_train/0001_c9_00012.jpg`, cameras 1-10."""
    return market_style(Path(root) / "cuhk03", CUHK03_PAD_SPEC, lambda p, c, i: f"{p:04d}_c{c}_{i:05d}.jpg")


def make_cuhk_sysu(root: Path, layout: str = "lstkc", folder: str | None = None,
                   min_images: int = 4) -> DatasetSplits:
    """LSTKC's `CUHK-SYSU/cuhksysu4reid/{train,query,gallery}/00001_s1234_0000007_0.jpg` (layout "lstkc")
    or PAD's `cuhksysu/{bounding_box_train,...}/0001_c1_00007.jpg`, every file `c1` (layout "pad").
    The records are those under `sysu_min_images: min_images`, with the split's pseudo camid."""
    if layout == "lstkc":
        dirs = {s: s for s in SYSU_CAMIDS}
        name, default = (lambda p, i: f"{p:05d}_s{300 + i}_{i:07d}_{i % 2}.jpg"), "CUHK-SYSU/cuhksysu4reid"
    else:
        dirs, name, default = MARKET_DIRS, (lambda p, i: f"{p:04d}_c1_{i:05d}.jpg"), "cuhksysu"
    base = Path(root) / (folder or default)
    n_images = Counter(SYSU_SPEC["train"])
    kept = {}
    for split, pids in SYSU_SPEC.items():
        names = [(name(p, i), p) for i, p in enumerate(pids)]
        write_images(base / dirs[split], [n for n, _ in names])
        kept[split] = [(base / dirs[split] / n, p, SYSU_CAMIDS[split]) for n, p in names
                       if split != "train" or n_images[p] >= min_images]
    return splits_of(kept)


def msmt_name(pid: int, cam: int, serial: int) -> str:
    """`0000/0000_000_01_0303morning_0015_0.jpg`: pid folder, pid, serial, camera, date+time, frame, box."""
    return f"{pid:04d}/{pid:04d}_{serial:03d}_{cam:02d}_0303morning_{serial * 7:04d}_0.jpg"


def make_msmt17(root: Path, version: str = "v2", folder: str | None = None,
                msmt17_train: str = "train") -> DatasetSplits:
    """MSMT17 image folders plus `list_*.txt` (lines `<relative path> <pid>`); version "v2"
    (mask_train_v2 / mask_test_v2), "v1" or "pad" (train / test). Records under `msmt17_train`."""
    default, train_dir, test_dir = MSMT_VERSIONS[version]
    base = Path(root) / (folder or default)
    serial = itertools.count()
    listed = {}
    for lst, items in MSMT_SPEC.items():
        names = [(msmt_name(p, c, next(serial)), p, c) for p, c in items]
        image_dir = base / (train_dir if lst in ("train", "val") else test_dir)
        for rel, _, _ in names:
            write_images(image_dir / Path(rel).parent, [Path(rel).name])
        (base / f"list_{lst}.txt").write_text("".join(f"{rel} {p}\n" for rel, p, _ in names))
        listed[lst] = [(image_dir / rel, p, c - 1) for rel, p, c in names]
    train = listed["train"] + (listed["val"] if msmt17_train == "train_val" else [])
    return splits_of({"train": train, "query": listed["query"], "gallery": listed["gallery"]})


# ---- raw releases for the prepare steps ----------------------------------------------------------
# CUHK03: images per (camera pair, person) as (column 1-10, i.e. views 1-5 = cam 1, 6-10 = cam 2).
CUHK03_RAW_PERSONS = {  # camera pair -> persons -> image columns present (others are empty cells)
    1: [(1, 2, 6, 7), (1, 6)],
    2: [(1, 6, 7)],
    3: [(2, 3, 8)],
    4: [(1, 6)],
    5: [(1, 2, 6)],
}
CUHK03_TRAIN_PERSONS = 3  # the first persons (in camera-pair order) train, the rest test
CUHK03_DETECTED_MISSING = (3, 1, 8)  # (pair, person, column): an image only the labeled boxes have


def cuhk03_pixel(mode: str, pair: int, person: int, column: int) -> int:
    """The value filling a raw CUHK03 image, so that tests can tell which cell a file came from."""
    return (mode == "detected") * 100 + pair * 15 + person * 10 + column


def cuhk03_label(person_index: int, n_persons: int) -> int:
    """Labels run backwards, so that the config's labels differ from a naive enumeration of persons."""
    return 1000 + n_persons - person_index


def make_cuhk03_raw(root: Path, folder: str = "cuhk03") -> dict[str, dict]:
    """`{folder}/cuhk03_release/cuhk-03.mat` (HDF5, MATLAB v7.3 layout) and both new-protocol configs.
    Query = first image of each view of a test person, gallery = the rest. Returns counts per mode."""
    import h5py
    from scipy.io import savemat

    base = Path(root) / folder
    (base / "cuhk03_release").mkdir(parents=True)
    with h5py.File(base / "cuhk03_release" / "cuhk-03.mat", "w") as mat:
        refs = mat.create_group("#refs#")
        for mode in ("labeled", "detected"):
            pair_refs = [write_cuhk03_pair(refs, mode, pair, persons)
                         for pair, persons in CUHK03_RAW_PERSONS.items()]
            mat.create_dataset(mode, data=np.array([pair_refs], dtype=h5py.ref_dtype))  # 5x1 cell, transposed
    return {mode: write_cuhk03_config(base / f"cuhk03_new_protocol_config_{mode}.mat", mode, savemat)
            for mode in ("labeled", "detected")}


def cuhk03_columns(mode: str, pair: int, person: int) -> tuple[int, ...]:
    columns = CUHK03_RAW_PERSONS[pair][person - 1]
    drop = CUHK03_DETECTED_MISSING
    return tuple(c for c in columns if not (mode == "detected" and (pair, person, c) == drop))


def write_cuhk03_pair(refs, mode: str, pair: int, persons: list) -> object:
    """One camera-pair cell: persons x 10 image cells, stored transposed (10 x persons) like MATLAB."""
    import h5py

    cells = np.empty((len(persons), 10), dtype=h5py.ref_dtype)
    for person in range(1, len(persons) + 1):
        present = cuhk03_columns(mode, pair, person)
        for column in range(1, 11):
            name = f"{mode}_{pair}_{person}_{column}"
            if column in present:
                image = np.full((8, 4, 3), cuhk03_pixel(mode, pair, person, column), dtype=np.uint8)
                image[..., 1] += 1  # tell the channels apart
                refs.create_dataset(name, data=image.T)
            else:  # MATLAB's empty cell
                refs.create_dataset(name, data=np.zeros(2, dtype=np.uint64)).attrs["MATLAB_empty"] = 1
            cells[person - 1, column - 1] = refs[name].ref
    refs.create_dataset(f"{mode}_pair{pair}", data=cells.T)
    return refs[f"{mode}_pair{pair}"].ref


def as_column(values: list) -> np.ndarray:
    """An n x 1 double matrix, as MATLAB saves index and label vectors."""
    return np.array(values, dtype=float).reshape(-1, 1)


def write_cuhk03_config(path: Path, mode: str, savemat: Callable) -> dict:
    persons = [(pair, p) for pair, ps in CUHK03_RAW_PERSONS.items() for p in range(1, len(ps) + 1)]
    names, labels, cams, splits = [], [], [], {"train": [], "query": [], "gallery": []}
    for k, (pair, person) in enumerate(persons):
        seen_views = set()
        for column in cuhk03_columns(mode, pair, person):
            view = 1 if column <= 5 else 2
            names.append(f"{pair}_{person:03d}_{view}_{column:02d}.png")
            labels.append(cuhk03_label(k, len(persons)))
            cams.append(view)
            split = "train" if k < CUHK03_TRAIN_PERSONS else "gallery" if view in seen_views else "query"
            seen_views.add(view)
            splits[split].append(len(names))  # 1-based, as MATLAB
    filelist = np.empty((len(names), 1), dtype=object)
    filelist[:, 0] = names
    savemat(str(path), {
        "filelist": filelist, "labels": as_column(labels), "camId": as_column(cams),
        **{f"{s}_idx": as_column(idx) for s, idx in splits.items()},
    })
    return counts_of({s: [(labels[i - 1], cams[i - 1] - 1) for i in idx] for s, idx in splits.items()})


# CUHK-SYSU: scenes s1..s8 (40 x 30); boxes (x, y, w, h) per person and scene.
SYSU_RAW_TRAIN = {  # pid -> [(scene, box, is_hard)]
    1: [(1, (2, 3, 10, 20), 0), (2, (5, 1, 9, 22), 1), (3, (0, 0, 8, 16), 0), (4, (20, 5, 12, 24), 0)],
    3: [(1, (15, 2, 7, 14), 0), (2, (20, 4, 6, 12), 0)],
}
SYSU_RAW_TEST = {  # pid -> (query (scene, box, is_hard), gallery [(scene, box or None = person absent)])
    20: ((5, (1, 1, 10, 20), 0), [(6, (3, 4, 11, 21)), (7, None), (8, (0, 2, 9, 18))]),
    21: ((6, (20, 3, 8, 16), 1), [(5, None), (8, (25, 5, 10, 20))]),
}


def make_cuhk_sysu_raw(root: Path, folder: str = "CUHK-SYSU", min_images: int = 4) -> dict:
    """`{folder}/Image/SSM/s*.jpg` and `annotation/test/train_test/{Train,TestG50}.mat` in the release's
    structure. Returns the counts the adapter reports on the crops under `sysu_min_images: min_images`."""
    from PIL import Image
    from scipy.io import savemat

    base = Path(root) / folder
    (base / "Image" / "SSM").mkdir(parents=True)
    for scene in range(1, 9):
        Image.new("RGB", (40, 30), (scene * 20, 90, 150)).save(base / "Image" / "SSM" / f"s{scene}.jpg")
    ann = base / "annotation" / "test" / "train_test"
    ann.mkdir(parents=True)
    savemat(str(ann / "Train.mat"), {"Train": sysu_train_cells()})
    savemat(str(ann / "TestG50.mat"), {"TestG50": sysu_test_structs()})
    n_images = Counter({pid: len(v) for pid, v in SYSU_RAW_TRAIN.items()})
    return counts_of({
        "train": [(p, 0) for p, rows in SYSU_RAW_TRAIN.items() for _ in rows if n_images[p] >= min_images],
        "query": [(p, 2) for p in SYSU_RAW_TEST],
        "gallery": [(p, 1) for p, (_, gal) in SYSU_RAW_TEST.items() for _, box in gal if box],
    })


SCENE_FIELDS = [("imname", "O"), ("idlocate", "O"), ("ishard", "O")]


def sysu_scene(scene: int, box, is_hard: int) -> tuple:
    located = np.array([box], dtype=float) if box else np.zeros((0, 0))
    return np.array([f"s{scene}.jpg"]), located, np.array([[float(is_hard)]])


def sysu_struct(fields: list, rows: list[tuple]) -> np.ndarray:
    """A 1 x n MATLAB struct array."""
    out = np.zeros((1, len(rows)), dtype=fields)
    for i, row in enumerate(rows):
        out[0, i] = row
    return out


def sysu_train_cells() -> np.ndarray:
    """Train.mat's `Train`: an n x 1 cell of (idname, nAppear, scene) structs."""
    cells = np.empty((len(SYSU_RAW_TRAIN), 1), dtype=object)
    person_fields = [("idname", "O"), ("nAppear", "O"), ("scene", "O")]
    for i, (pid, rows) in enumerate(SYSU_RAW_TRAIN.items()):
        scenes = sysu_struct(SCENE_FIELDS, [sysu_scene(*r) for r in rows])
        cells[i, 0] = sysu_struct(person_fields, [(np.array([f"p{pid}"]), np.array([[float(len(rows))]]), scenes)])
    return cells


def sysu_test_structs() -> np.ndarray:
    """TestG50.mat's `TestG50`: a 1 x n struct array of (Query, Gallery)."""
    query_fields = SCENE_FIELDS + [("idname", "O")]
    rows = []
    for pid, (query, gallery) in SYSU_RAW_TEST.items():
        probe = sysu_struct(query_fields, [(*sysu_scene(*query), np.array([f"p{pid}"]))])
        rows.append((probe, sysu_struct(SCENE_FIELDS, [sysu_scene(s, box, 0) for s, box in gallery])))
    return sysu_struct([("Query", "O"), ("Gallery", "O")], rows)
