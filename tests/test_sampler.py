from collections import Counter

import numpy as np
import pytest

from pad_bench.data.sampler import PKBatchSampler
from pad_bench.errors import UserError


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


# ---- the LSTKC family's multi-gallery sampler (RandomMultipleGallerySampler + a fixed-length loader) ----
from pad_bench.data.sampler import MultiGalleryBatchSampler, make_batch_sampler  # noqa: E402

# id 0: 20 images over cameras 0/1 (10 per camera); ids 1-3: 4 images, cameras 0, 0, 1, 1
MG_LABELS = [0] * 20 + [1] * 4 + [2] * 4 + [3] * 4
MG_CAMS = [i % 2 for i in range(20)] + [0, 0, 1, 1] * 3


def _groups(batches, k=4):
    flat = [i for b in batches for i in b]
    return [flat[i:i + k] for i in range(0, len(flat), k)]


def test_multi_gallery_runs_int_n_over_batch_iterations_with_uniform_identities():
    s = MultiGalleryBatchSampler(MG_LABELS, MG_CAMS, p=2, k=4, seed=3)
    batches = list(s)
    assert len(batches) == 32 // 8 and all(len(b) == 8 for b in batches)  # int(N / batch) = 4
    # one pass = 4 identities x 4 images = 2 batches, so the epoch is 2 passes: each identity twice,
    # whatever its image count
    assert Counter(MG_LABELS[i] for b in batches for i in b) == {0: 8, 1: 8, 2: 8, 3: 8}


def test_multi_gallery_positives_come_from_other_cameras():
    s = MultiGalleryBatchSampler(MG_LABELS, MG_CAMS, p=2, k=4, seed=0)
    for epoch in range(5):
        s.set_epoch(epoch)
        for anchor, *positives in _groups(list(s)):
            assert {MG_LABELS[i] for i in positives} == {MG_LABELS[anchor]}
            assert all(MG_CAMS[i] != MG_CAMS[anchor] for i in positives)
            if MG_LABELS[anchor] == 0:  # 10 images on the other camera >= K: drawn without replacement
                assert len(set(positives)) == 3


def test_multi_gallery_single_camera_and_single_image_identities():
    labels, cams = [0] * 5 + [1] * 4 + [2], [0] * 5 + [0, 1, 1, 1] + [0]
    s = MultiGalleryBatchSampler(labels, cams, p=2, k=4, seed=1)
    stream = s._pass(np.random.default_rng(0))
    assert len(stream) == 4 + 4 + 1  # id 2 has one image: the anchor alone
    assert Counter(labels[i] for i in stream) == {0: 4, 1: 4, 2: 1}
    zeros = [i for i in stream if labels[i] == 0]
    anchor = zeros[0]
    assert anchor not in zeros[1:]  # one camera: the other images of the identity (4 >= K, no repeats)
    assert len(set(zeros)) == 4


def test_multi_gallery_is_deterministic_and_named_by_config():
    a = make_batch_sampler("multi_gallery", MG_LABELS, MG_CAMS, 2, 4, seed=5)
    b = make_batch_sampler("multi_gallery", MG_LABELS, MG_CAMS, 2, 4, seed=5)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert isinstance(make_batch_sampler("pk", MG_LABELS, MG_CAMS, 2, 4, seed=0), PKBatchSampler)
    with pytest.raises(UserError, match="train.sampler"):
        make_batch_sampler("random", MG_LABELS, MG_CAMS, 2, 4, seed=0)
