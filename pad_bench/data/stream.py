"""Build the Avalanche benchmark: train, seen-test and unseen streams of ReID experiences.

Every sample is `[image, pid, camid, is_query, domain]`:
  - train: pid = the global label (domain label + the domain's class offset);
  - test/unseen: pid = the raw PID (only equality within one set matters).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from torch.utils.data import Dataset

from ..config import per_domain
from .images import read_image
from .protocol import EvalSet, Manifest, TrainDomain, build_train_domain, build_unseen_sets, unseen_for_avg
from .transforms import test_transform, train_transform


class ImageListDataset(Dataset):
    """(PIL image, target) pairs from a list of paths; transforms are applied by Avalanche."""

    def __init__(self, paths: Sequence[str], targets: Sequence[int]):
        self.paths, self.targets = list(paths), list(targets)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return read_image(self.paths[i]), self.targets[i]


def make_reid_dataset(paths, targets, camids, is_query, domain: int, transforms):
    """An Avalanche ClassificationDataset whose samples are [img, target, camid, is_query, domain]."""
    from avalanche.benchmarks.utils.classification_dataset import ClassificationDataset
    from avalanche.benchmarks.utils.data_attribute import DataAttribute

    n = len(paths)
    return ClassificationDataset(
        [ImageListDataset(paths, targets)],
        data_attributes=[
            DataAttribute(list(targets), "targets"),
            DataAttribute(list(camids), "camid", use_in_getitem=True),
            DataAttribute(list(is_query), "is_query", use_in_getitem=True),
            DataAttribute([domain] * n, "domain", use_in_getitem=True),
        ],
        transform_groups=transforms,
    )


@dataclass
class ReIDBenchmark:
    """The Avalanche scenario plus the names and sizes the harness needs alongside it."""

    scenario: object  # avalanche CLScenario with train_stream, test_stream, unseen_stream
    train_names: list[str]     # one per train experience ("joint" when merged)
    seen_names: list[str]      # one per test_stream experience
    unseen_names: list[str]    # one per unseen_stream experience (a dataset repeats under multi-split)
    num_classes: list[int]     # per train experience
    class_offsets: list[int]   # global label offset per train experience
    manifest: Manifest
    domain_sizes: dict[str, int]  # training images per domain

    @property
    def train_stream(self):
        return self.scenario.train_stream

    @property
    def test_stream(self):
        return self.scenario.test_stream

    @property
    def unseen_stream(self):
        return self.scenario.unseen_stream


def build_benchmark(cfg: dict, *, family: str, joint: bool = False) -> ReIDBenchmark:
    """Read every domain, apply the protocol, and build the three streams.

    `family` picks the normalisation ("clip" or "resnet"); `joint` merges all training domains
    into one experience (the joint-training upper bound).
    """
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.utils.transform_groups import TransformGroups

    bcfg, protocol = cfg["benchmark"], cfg["protocol"]
    root = Path(bcfg["data_root"]).expanduser()
    size = protocol["image_size"]
    eval_tf = test_transform(size, family)

    def tgroups(d_idx: int) -> TransformGroups:  # random erasing may differ per domain (PAD: CUHK03 0.6)
        erasing = per_domain(cfg["train"]["random_erasing"], d_idx)
        train_tf = train_transform(size, family, pad=cfg["train"]["pad"], erasing=erasing)
        return TransformGroups({"train": (train_tf, None), "eval": (eval_tf, None)})

    manifest = Manifest(root)
    domains = [build_train_domain(name, root, protocol) for name in bcfg["domains"]]
    unseen = unseen_for_avg([s for name in bcfg["unseen"] for s in build_unseen_sets(name, root, protocol)],
                            protocol["unseen_avg"])

    train_sets, num_classes, offsets, offset = [], [], [], 0
    for d_idx, d in enumerate(domains):
        manifest.add(d.name, "seen", "train", 0, d.train, d.labels)
        train_sets.append(make_reid_dataset(
            [r.path for r in d.train], [lab + offset for lab in d.labels],
            [r.camid for r in d.train], [0] * len(d.train), d_idx, tgroups(d_idx)))
        num_classes.append(d.num_classes)
        offsets.append(offset)
        offset += d.num_classes
    test_sets = [_eval_dataset(EvalSet(d.name, 0, d.query, d.gallery), i, tgroups(i), manifest, "seen")
                 for i, d in enumerate(domains)]
    unseen_sets = [_eval_dataset(s, len(domains) + i, tgroups(0), manifest, "unseen")
                   for i, s in enumerate(unseen)]

    train_names = [d.name for d in domains]
    if joint:
        from avalanche.benchmarks.utils.classification_dataset import ClassificationDataset

        train_sets = [ClassificationDataset(train_sets)] if len(train_sets) > 1 else train_sets
        train_names, num_classes, offsets = ["joint"], [sum(num_classes)], [0]
    streams = {"train": train_sets, "test": test_sets}
    if unseen_sets:
        streams["unseen"] = unseen_sets
    scenario = benchmark_from_datasets(**streams)
    return ReIDBenchmark(
        scenario=scenario,
        train_names=train_names,
        seen_names=[d.name for d in domains],
        unseen_names=[s.name for s in unseen],
        num_classes=num_classes,
        class_offsets=offsets,
        manifest=manifest,
        domain_sizes={d.name: len(d.train) for d in domains},
    )


def _eval_dataset(s: EvalSet, domain: int, tgroups, manifest: Manifest, role: str):
    manifest.add(s.name, role, "query", s.run, s.query)
    manifest.add(s.name, role, "gallery", s.run, s.gallery)
    records = s.query + s.gallery
    return make_reid_dataset(
        [r.path for r in records], [r.pid for r in records], [r.camid for r in records],
        [1] * len(s.query) + [0] * len(s.gallery), domain, tgroups)
