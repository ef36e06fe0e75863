"""A tiny tree for every registered dataset, by name, and the records its adapter must report.

`TREES[name](data_root)` writes the dataset's tree with the writers of trees_seen / trees_unseen and
returns an `Expected`, computed from what the writer says it wrote (which person and camera each
file shows) and the dataset's documented split rule (docs/protocol.md), never from the adapter.
A dataset registered without an entry here fails tests/test_datasets_registry.py.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import trees_seen as seen
import trees_unseen as unseen
from pad_bench.data.datasets import dataset_names
from pad_bench.data.datasets.base import DatasetSplits, ImageRecord

QUERY, GALLERY = 0, 1  # the side camids of the unseen sets


@dataclass
class Expected:
    """What an adapter must report for a tree written under a data root (default options).

    root: the folder it must resolve. splits(train_ids): the records of each split (sorted), given
    the identities the adapter trained on. Where `halved` is set, those are drawn at random: floor(n/2)
    of `halved`, the rest are tested. `one_per_id`: query and gallery hold one random image per test
    identity out of the records `splits` lists for them, not all of them.
    """

    root: Path
    splits: Callable[[set[int]], DatasetSplits]
    halved: frozenset[int] | None = None
    one_per_id: bool = False


Images = list[tuple[Path, int, int]]  # (path, pid, camera) of every file a writer wrote


def records(images: Images, keep: Callable[[int, int], bool], camid: Callable[[int], int]) -> list[ImageRecord]:
    """Sorted records of the images whose (pid, camera) `keep` accepts, with camid(camera)."""
    return sorted(ImageRecord(str(p), pid, camid(cam)) for p, pid, cam in images if keep(pid, cam))


def fixed(writer: Callable[[Path], DatasetSplits]) -> Callable[[Path], Expected]:
    """A seen-style tree, whose records do not depend on a draw; its root holds all its files."""
    def write(data_root: Path) -> Expected:
        splits = writer(data_root)
        paths = [r.path for s in ("train", "query", "gallery") for r in splits.split(s)]
        return Expected(Path(os.path.commonpath(paths)), lambda _: splits)
    return write


def two_sides(writer: Callable[[Path], dict], side: Callable[[int], int], *, halved: str | None = None,
              train_partition: bool = False, distractor: Callable[[int], bool] = lambda pid: False,
              ) -> Callable[[Path], Expected]:
    """A set whose cameras form two sides (side(camera) = QUERY or GALLERY): the train identities' images
    keep their side as camid; the test identities' query-side images are the query and their
    gallery-side images plus the gallery-side distractors the gallery. The train identities are half
    of tree[halved] (every pid when halved is None) drawn at random, or GRID's official partition 0."""
    def write(data_root: Path) -> Expected:
        tree = writer(data_root)
        images = tree["images"]
        pool = frozenset(tree[halved] if halved else {pid for _, pid, _ in images})

        def splits(train_ids: set[int]) -> DatasetSplits:
            train_ids = set(tree["partitions"][0]) if train_partition else train_ids
            test = pool - train_ids
            return DatasetSplits(
                train=records(images, lambda pid, cam: pid in train_ids, side),
                query=records(images, lambda pid, cam: pid in test and side(cam) == QUERY, lambda _: QUERY),
                gallery=records(images, lambda pid, cam: side(cam) == GALLERY and (pid in test or distractor(pid)),
                                lambda _: GALLERY),
            )
        return Expected(tree["root"], splits, None if train_partition else pool)
    return write


def ilids(data_root: Path) -> Expected:
    """IDs with two or more images halved; one random image of a test ID is its query, another its gallery."""
    tree = unseen.make_ilids(data_root)
    images = tree["images"]
    eligible = frozenset(pid for pid, n in tree["images_per_id"].items() if n >= 2)

    def splits(train_ids: set[int]) -> DatasetSplits:
        test = eligible - train_ids
        return DatasetSplits(train=records(images, lambda pid, cam: pid in train_ids, lambda cam: cam),
                             query=records(images, lambda pid, cam: pid in test, lambda _: QUERY),
                             gallery=records(images, lambda pid, cam: pid in test, lambda _: GALLERY))
    return Expected(tree["root"], splits, eligible, one_per_id=True)


def cuhk02(data_root: Path) -> Expected:
    """P1-P4 train, persons numbered apart per pair in pair order (camid 2 * pair + camera - 1);
    P5's cam1 is the query, its cam2 the gallery."""
    tree = unseen.make_cuhk02(data_root)
    pair_of = {p: p.parent.parent.name for p, _, _ in tree["images"]}
    train, offset = [], 0
    for k, pair in enumerate(("P1", "P2", "P3", "P4")):
        mine = [(p, pid, cam) for p, pid, cam in tree["images"] if pair_of[p] == pair]
        label = {pid: offset + i for i, pid in enumerate(sorted({pid for _, pid, _ in mine}))}
        train += [ImageRecord(str(p), label[pid], 2 * k + cam - 1) for p, pid, cam in mine]
        offset += len(label)
    test = [(p, pid, cam) for p, pid, cam in tree["images"] if pair_of[p] == "P5"]
    splits = DatasetSplits(train=sorted(train),
                           query=records(test, lambda pid, cam: cam == 1, lambda _: QUERY),
                           gallery=records(test, lambda pid, cam: cam == 2, lambda _: GALLERY))
    return Expected(tree["root"], lambda _: splits)


def sensereid(data_root: Path) -> Expected:
    """No train split; probe and gallery keep the camid field of their file names."""
    tree = unseen.make_sensereid(data_root)
    in_folder = {f: [i for i in tree["images"] if i[0].parent.name == f] for f in ("test_probe", "test_gallery")}
    splits = DatasetSplits(train=[], query=records(in_folder["test_probe"], lambda pid, cam: True, lambda cam: cam),
                           gallery=records(in_folder["test_gallery"], lambda pid, cam: True, lambda cam: cam))
    return Expected(tree["root"], lambda _: splits)


TREES: dict[str, Callable[[Path], Expected]] = {
    "market1501": fixed(seen.make_market1501),
    "dukemtmc": fixed(seen.make_dukemtmc),
    "lpw_s2": fixed(seen.make_lpw_s2),
    "msmt17": fixed(seen.make_msmt17),
    "cuhk03": fixed(seen.make_cuhk03_np),  # the default cuhk03_mode: labeled
    "cuhk_sysu": fixed(seen.make_cuhk_sysu),
    "viper": two_sides(unseen.make_viper, lambda cam: cam),
    "cuhk01": two_sides(unseen.make_cuhk01, lambda cam: QUERY if cam <= 2 else GALLERY),  # cameras 1-2: view A
    "prid": two_sides(unseen.make_prid, lambda cam: cam, halved="shared", distractor=lambda pid: pid > 200),
    "grid": two_sides(unseen.make_grid, lambda cam: cam, train_partition=True),
    "ilids": ilids,
    "cuhk02": cuhk02,
    "sensereid": sensereid,
    # every synthetic domain is a Market-style folder named after it
    **{name: fixed(lambda root, name=name: seen.make_market1501(root, f"synth/{name}"))
       for name in dataset_names("synthetic")},
}
