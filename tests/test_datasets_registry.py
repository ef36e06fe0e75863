"""Every registered dataset adapter on its tiny tree (tests/trees.py): the folder it resolves and
every record it reports (path, pid, camid, split), against what the tree writer wrote."""
from __future__ import annotations

from collections import Counter

import pytest

from pad_bench.data.datasets import create_dataset, dataset_names
from trees import TREES


def test_every_tree_writer_names_a_registered_dataset():
    assert set(TREES) - set(dataset_names()) == set()


@pytest.mark.parametrize("name", dataset_names())
def test_adapter_reads_its_tree(name, tmp_path):
    if name not in TREES:
        pytest.fail(f"dataset '{name}' has no tree writer: add TREES['{name}'] to tests/trees.py")
    expected = TREES[name](tmp_path)
    ds = create_dataset(name, tmp_path)
    assert ds.resolve_root() == expected.root
    got = ds.load()
    train_ids = {r.pid for r in got.train}
    if expected.halved is not None:
        assert train_ids <= expected.halved and len(train_ids) == len(expected.halved) // 2
    want = expected.splits(train_ids)
    assert sorted(got.train) == want.train
    for side in ("query", "gallery"):
        if expected.one_per_id:
            drawn, pool = got.split(side), want.split(side)
            assert set(drawn) <= set(pool)
            assert Counter(r.pid for r in drawn) == Counter({r.pid for r in pool})
        else:
            assert sorted(got.split(side)) == want.split(side)
    assert not {r.path for r in got.query} & {r.path for r in got.gallery}
