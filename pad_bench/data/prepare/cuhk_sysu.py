"""Crop the raw CUHK-SYSU person-search release into LSTKC's `cuhksysu4reid/{train,query,gallery}`.

Inputs: `Image/SSM/*.jpg` scenes and `annotation/test/train_test/{Train,TestG50}.mat`. Train.mat holds
one (idname, nAppear, scene) record per training person; TestG50.mat one (Query, Gallery) record per
test person, whose Query is one box and whose Gallery lists 50 scenes, with an empty box where the
person is absent. Query = the Query crop; gallery = that person's Gallery crops only (the scenes
without the person are dropped). Boxes are (x, y, w, h). Crops are named as LSTKC names them:
`{pid:05d}_{scene stem}_{idx:07d}_{is_hard}.jpg`, idx counting crops within the split.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import DataFormatError
from ..datasets.cuhk_sysu import CUHKSYSU
from .common import field, find_raw_root, load_mat, mat_numbers, mat_records, mat_str, staged_dir, warn_on_counts

log = logging.getLogger(__name__)

RAW_ALIASES = ("CUHK-SYSU", "")
SCENES = "Image/SSM"
PROTOCOL = "annotation/test/train_test"
OUT_DIR = "cuhksysu4reid"
RAW_REQUIRED = (SCENES, f"{PROTOCOL}/Train.mat", f"{PROTOCOL}/TestG50.mat")
# (imname, idlocate, ishard): by position in Train.mat, as the reference loaders read it; by name in TestG50.mat
TRAIN_KEYS = (0, 1, 2)
TEST_KEYS = ("imname", "idlocate", "ishard")


@dataclass(frozen=True)
class Crop:
    pid: int
    scene: str  # scene file name, e.g. s15048.jpg
    box: tuple[int, int, int, int]  # x, y, w, h
    is_hard: int


def prepare_cuhk_sysu(data_root: Path) -> Path:
    """Write <raw>/cuhksysu4reid/ (raw = <data_root>/CUHK-SYSU or the root itself) and return it."""
    data_root = Path(data_root).expanduser()
    raw = find_raw_root(data_root, RAW_ALIASES, RAW_REQUIRED, "cuhk_sysu", CUHKSYSU.how_to_get)
    out = raw / OUT_DIR
    if out.exists():
        log.warning("%s already exists, kept as is; delete it to crop again", out)
        return out
    train = read_train(raw / PROTOCOL / "Train.mat")
    query, gallery = read_test(raw / PROTOCOL / "TestG50.mat")
    shared = {c.pid for c in train} & {c.pid for c in query}
    if shared:
        raise DataFormatError(f"{raw / PROTOCOL}: Train.mat and TestG50.mat share identities, e.g. p{min(shared)}")
    official = {s: n for s, n in CUHKSYSU.expected.items() if s != "train"}  # train is official after filtering
    warn_on_counts("cuhk_sysu", {"query": size(query), "gallery": size(gallery)}, official)
    with staged_dir(out) as tmp:
        for split, crops in (("train", train), ("query", query), ("gallery", gallery)):
            write_crops(crops, raw / SCENES, tmp / split)
    return out


def read_train(path: Path) -> list[Crop]:
    crops = []
    for person in load_mat(path, ("Train",))["Train"].reshape(-1):
        pid = parse_pid(path, field(person, 0, path, "idname"))
        crops += [make_crop(path, pid, s, TRAIN_KEYS) for s in mat_records(field(person, 2, path, "scene"))]
    return crops


def read_test(path: Path) -> tuple[list[Crop], list[Crop]]:
    """(query crops, gallery crops) of the TestG50 protocol."""
    query, gallery = [], []
    for item in mat_records(load_mat(path, ("TestG50",))["TestG50"]):
        probe = field(item, "Query", path, "Query")
        pid = parse_pid(path, field(probe, "idname", path, "Query.idname"))
        query.append(make_crop(path, pid, probe, TEST_KEYS))
        for scene in mat_records(field(item, "Gallery", path, "Gallery")):
            if mat_numbers(field(scene, "idlocate", path, "Gallery.idlocate")).size:  # empty: person absent
                gallery.append(make_crop(path, pid, scene, TEST_KEYS))
    return query, gallery


def parse_pid(path: Path, idname: Any) -> int:
    name = mat_str(idname)
    if not re.fullmatch(r"p\d+", name):
        raise DataFormatError(f"{path}: idname {name!r} is not p<number>")
    return int(name[1:])


def make_crop(path: Path, pid: int, record: Any, keys: tuple[int | str, ...]) -> Crop:
    imname, idlocate, ishard = (field(record, k, path, name) for k, name in zip(keys, TEST_KEYS))
    scene = mat_str(imname)
    box = mat_numbers(idlocate).astype(int)
    if box.size != 4 or box[2] <= 0 or box[3] <= 0:
        raise DataFormatError(f"{path}: idlocate of p{pid} in {scene} is {box.tolist()}, not (x, y, w, h)")
    hard = mat_numbers(ishard)
    return Crop(pid, scene, tuple(box.tolist()), int(hard[0]) if hard.size else 0)


def size(crops: list[Crop]) -> tuple[int, int]:
    """(images, ids)."""
    return len(crops), len({c.pid for c in crops})


def write_crops(crops: list[Crop], scenes: Path, folder: Path) -> None:
    from PIL import Image

    folder.mkdir()
    log.info("cuhk_sysu: writing %d crops to %s", len(crops), folder.name)
    for idx, c in enumerate(crops):
        src = scenes / c.scene
        if not src.is_file():
            raise DataFormatError(f"{src}: scene image named in the annotations is missing")
        x, y, w, h = c.box
        with Image.open(src) as scene:
            crop = scene.convert("RGB").crop((x, y, x + w, y + h))
        crop.save(folder / f"{c.pid:05d}_{Path(c.scene).stem}_{idx:07d}_{c.is_hard}.jpg")
