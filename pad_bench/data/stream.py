"""Build the Avalanche benchmark: train, seen-test and unseen streams of ReID experiences.

Every sample is `[image, pid, camid, is_query, domain]`:
  - train: pid = the global label (domain label + the domain's class offset);
  - test/unseen: pid = the raw PID (only equality within one set matters).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

from torch.utils.data import Dataset

from ..config import per_domain
from ..metrics.lifelong import UNION_LABEL
from .images import read_image
from .protocol import EvalSet, Manifest, build_train_domain, build_unseen_sets, unseen_for_avg
from .transforms import test_transform, train_transform


class ImageListDataset(Dataset):
    """(PIL image, target) pairs from a list of paths; transforms are applied by Avalanche.

    With `decode=False` (the cached data path) a sample is (its index, target): the transform
    groups look the index up in a decoded-image cache."""

    def __init__(self, paths: Sequence[str], targets: Sequence[int], decode: bool = True):
        self.paths, self.targets, self.decode = list(paths), list(targets), decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return (read_image(self.paths[i]) if self.decode else i), self.targets[i]


def make_reid_dataset(paths, targets, camids, is_query, domain: int, transforms, decode: bool = True):
    """An Avalanche ClassificationDataset whose samples are [img, target, camid, is_query, domain]."""
    from avalanche.benchmarks.utils.classification_dataset import ClassificationDataset
    from avalanche.benchmarks.utils.data_attribute import DataAttribute

    n = len(paths)
    return ClassificationDataset(
        [ImageListDataset(paths, targets, decode)],
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
    train_names: list[str]     # one per train experience (UNION_LABEL when merged)
    seen_names: list[str]      # one per test_stream experience
    unseen_names: list[str]    # one per unseen_stream experience (a dataset repeats under multi-split)
    num_classes: list[int]     # per train experience
    class_offsets: list[int]   # global label offset per train experience
    manifest: Manifest
    domain_sizes: dict[str, int]  # training images per domain
    device_input: object = None  # cached data path: the DeviceInput the strategy applies to batches

    @property
    def train_stream(self):
        return self.scenario.train_stream

    @property
    def test_stream(self):
        return self.scenario.test_stream

    @property
    def unseen_stream(self):
        return self.scenario.unseen_stream


def build_benchmark(cfg: dict, *, family: str, union: bool = False) -> ReIDBenchmark:
    """Read every domain, apply the protocol, and build the three streams.

    `family` picks the normalisation ("clip" or "resnet"); `union` merges all training domains
    into one experience (for a method that declares `sees_union`).
    """
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.utils.transform_groups import TransformGroups

    bcfg, protocol = cfg["benchmark"], cfg["protocol"]
    root = Path(bcfg["data_root"]).expanduser()
    size = protocol["image_size"]
    eval_tf = test_transform(size, family)

    def train_tf(d_idx: int):  # random erasing may differ per domain (PAD: CUHK03 0.6)
        erasing = per_domain(cfg["train"]["random_erasing"], d_idx)
        return train_transform(size, family, pad=cfg["train"]["pad"], erasing=erasing)

    cached = cfg["train"]["data_path"] == "cached"
    if cached:
        from .cache import CacheLookup, ImageCache

    def tgroups(d_idx: int, paths: Sequence[str]) -> TransformGroups:
        if not cached:
            return TransformGroups({"train": (train_tf(d_idx), None), "eval": (eval_tf, None)})
        train_resize, eval_resize = train_tf(d_idx).transforms[0], eval_tf.transforms[0]
        eval_cache = ImageCache(paths, eval_resize, cfg["train"]["cache_dir"])
        same = (train_resize.size, train_resize.interpolation) == (eval_resize.size, eval_resize.interpolation)
        train_cache = eval_cache if same else ImageCache(paths, train_resize, cfg["train"]["cache_dir"])
        return TransformGroups({"train": (CacheLookup(train_cache), None), "eval": (CacheLookup(eval_cache), None)})

    manifest = Manifest(root)
    domains = [build_train_domain(name, root, protocol) for name in bcfg["domains"]]
    unseen = unseen_for_avg([s for name in bcfg["unseen"] for s in build_unseen_sets(name, root, protocol)],
                            protocol["unseen_avg"])

    train_sets, num_classes, offsets, offset = [], [], [], 0
    for d_idx, d in enumerate(domains):
        manifest.add(d.name, "seen", "train", 0, d.train, d.labels)
        paths = [r.path for r in d.train]
        train_sets.append(make_reid_dataset(
            paths, [lab + offset for lab in d.labels],
            [r.camid for r in d.train], [0] * len(d.train), d_idx, tgroups(d_idx, paths), decode=not cached))
        num_classes.append(d.num_classes)
        offsets.append(offset)
        offset += d.num_classes
    test_sets = [_eval_dataset(EvalSet(d.name, 0, d.query, d.gallery), i, partial(tgroups, i), manifest, "seen",
                               decode=not cached) for i, d in enumerate(domains)]
    unseen_sets = [_eval_dataset(s, len(domains) + i, partial(tgroups, 0), manifest, "unseen", decode=not cached)
                   for i, s in enumerate(unseen)]

    train_names = [d.name for d in domains]
    if union:
        from avalanche.benchmarks.utils.classification_dataset import ClassificationDataset

        train_sets = [ClassificationDataset(train_sets)] if len(train_sets) > 1 else train_sets
        train_names, num_classes, offsets = [UNION_LABEL], [sum(num_classes)], [0]
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
        device_input=_device_input(cfg, [train_tf(i) for i in range(len(domains))], eval_tf) if cached else None,
    )


def _eval_dataset(s: EvalSet, domain: int, tgroups, manifest: Manifest, role: str, decode: bool):
    """`tgroups(paths)` gives the dataset's transform groups."""
    manifest.add(s.name, role, "query", s.run, s.query)
    manifest.add(s.name, role, "gallery", s.run, s.gallery)
    records = s.query + s.gallery
    paths = [r.path for r in records]
    return make_reid_dataset(
        paths, [r.pid for r in records], [r.camid for r in records],
        [1] * len(s.query) + [0] * len(s.gallery), domain, tgroups(paths), decode)


def _device_input(cfg: dict, train_tfs, eval_tf):
    from .device_input import DeviceInput
    from .tensor_transforms import TensorTrainTransform, eval_normalize

    return DeviceInput([TensorTrainTransform.from_compose(t) for t in train_tfs], eval_normalize(eval_tf),
                       seed=int(cfg["seed"]))
