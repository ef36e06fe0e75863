from collections import Counter

import pytest

from pad_bench.data.sampler import PKBatchSampler


def test_batches_are_p_ids_times_k_images():
    labels = [i // 8 for i in range(8 * 10)] + [10, 10]  # 10 ids × 8 images, id 10 with 2 images
    s = PKBatchSampler(labels, p=4, k=4, seed=1)
    batches = list(s)
    assert batches and all(len(b) == 16 for b in batches)
    for b in batches:
        counts = Counter(labels[i] for i in b)
        assert len(counts) == 4 and set(counts.values()) == {4}


def test_each_chunk_at_most_once_and_small_ids_padded_with_replacement():
    labels = [0] * 4 + [1] * 4 + [2] * 2 + [3] * 4  # one chunk each; id 2 padded from 2 images
    s = PKBatchSampler(labels, p=2, k=4, seed=0)
    batches = list(s)
    assert len(batches) == 2  # 4 chunks, 2 ids per batch: every chunk visited exactly once
    used = Counter(labels[i] for b in batches for i in b)
    assert used == {0: 4, 1: 4, 2: 4, 3: 4}
    assert {i for b in batches for i in b if labels[i] == 2} <= {8, 9}
    uneven = PKBatchSampler([0] * 12 + [1] * 4 + [2] * 4, p=2, k=4, seed=0)
    seen = [i for b in uneven for i in b]
    assert len(seen) == len(set(seen))  # no image twice: chunks are never reused


def test_deterministic_per_seed_and_epoch():
    labels = [i // 6 for i in range(60)]
    a, b = PKBatchSampler(labels, 3, 3, seed=5), PKBatchSampler(labels, 3, 3, seed=5)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert list(a) != list(PKBatchSampler(labels, 3, 3, seed=6))


def test_too_few_ids_is_an_error():
    with pytest.raises(ValueError, match="only 2 identities"):
        PKBatchSampler([0, 0, 1, 1], p=4, k=2)
