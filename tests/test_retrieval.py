"""evaluate_retrieval against a plain per-query reference and hand-computed golden cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pad_bench.metrics import evaluate_retrieval
from pad_bench.metrics import retrieval
from pad_bench.metrics.retrieval import auto_chunk_size


def reference_eval(qf, gf, qp, gp, qc, gc, max_rank=50):
    """The evaluation semantics of docs/protocol.md#evaluation written out one query at a time, in float64."""
    dist = ((qf[:, None, :].astype(np.float64) - gf[None, :, :]) ** 2).sum(-1)
    aps, inps, cmcs = [], [], []
    ranks_k = np.arange(1, min(max_rank, len(gf)) + 1)
    for i in range(len(qf)):
        order = np.argsort(dist[i], kind="stable")
        junk = (gp[order] == qp[i]) & (gc[order] == qc[i])
        matches = (gp[order] == qp[i])[~junk]
        if not matches.any():
            continue
        hit_ranks = np.flatnonzero(matches) + 1
        aps.append(np.mean(np.arange(1, len(hit_ranks) + 1) / hit_ranks))
        inps.append(len(hit_ranks) / hit_ranks[-1])
        cmcs.append(ranks_k >= hit_ranks[0])
    return {"mAP": np.mean(aps), "mINP": np.mean(inps), "cmc": np.mean(cmcs, axis=0), "num_valid_queries": len(aps)}


def random_split(seed: int, nq: int = 60, ng: int = 240, dim: int = 6, integer: bool = True):
    """Few ids and cameras so that junk, same-camera-only queries and ties all occur.

    Integer features make every distance exact in float32 and float64, so ties are real ties.
    """
    rng = np.random.default_rng(seed)
    if integer:
        qf = rng.integers(-2, 3, (nq, dim)).astype(np.float32)
        gf = rng.integers(-2, 3, (ng, dim)).astype(np.float32)
    else:
        qf = rng.normal(size=(nq, dim)).astype(np.float32)
        gf = rng.normal(size=(ng, dim)).astype(np.float32)
        qf /= np.linalg.norm(qf, axis=1, keepdims=True)
        gf /= np.linalg.norm(gf, axis=1, keepdims=True)
    qp = rng.integers(1, 25, nq)
    qp[:3] = 99  # ids absent from the gallery: skipped
    gp = rng.integers(-1, 25, ng)  # -1 and 0 are distractors: negatives for every query
    qc = rng.integers(0, 3, nq)
    gc = rng.integers(0, 3, ng)
    # A query whose only same-pid gallery items share its camera: all junk, skipped.
    qp[3], qc[3] = 77, 1
    gp[:4], gc[:4] = 77, 1
    return qf, gf, qp, gp, qc, gc


def assert_same(result, expected):
    assert result["num_valid_queries"] == expected["num_valid_queries"]
    assert result["mAP"] == pytest.approx(expected["mAP"], abs=1e-12)
    assert result["mINP"] == pytest.approx(expected["mINP"], abs=1e-12)
    np.testing.assert_allclose(result["cmc"], expected["cmc"], atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_matches_reference_on_ties_junk_and_distractors(seed, chunk_size):
    data = random_split(seed)
    expected = reference_eval(*data, max_rank=20)
    assert 0 < expected["num_valid_queries"] < len(data[0]) - 3  # some queries really are skipped
    assert_same(evaluate_retrieval(*data, max_rank=20, chunk_size=chunk_size), expected)


def test_matches_reference_on_normalised_float_features():
    data = random_split(5, nq=40, ng=150, dim=16, integer=False)
    assert_same(evaluate_retrieval(*data, max_rank=10), reference_eval(*data, max_rank=10))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_inputs_give_the_numpy_result(dtype):
    data = random_split(3)
    tensors = [torch.as_tensor(x, dtype=dtype if x.dtype.kind == "f" else torch.int64) for x in data]
    assert_same(evaluate_retrieval(*tensors, chunk_size=9), reference_eval(*data))


@pytest.mark.parametrize("bin_bits", [1, 2, 6])
@pytest.mark.parametrize("seed", [0, 4])
def test_coarse_bins_change_nothing(monkeypatch, bin_bits, seed):
    # Few bins put most negatives, and several positives, in shared bins: the exact-comparison path.
    monkeypatch.setattr(retrieval, "_BIN_BITS", bin_bits)
    monkeypatch.setattr(retrieval, "NUM_BINS", 1 << bin_bits)
    for integer in (True, False):
        data = random_split(seed, nq=30, ng=120, integer=integer)
        assert_same(evaluate_retrieval(*data, max_rank=10, chunk_size=8), reference_eval(*data, max_rank=10))


def test_ranking_a_few_rows_of_a_block_at_a_time_changes_nothing(monkeypatch):
    data = random_split(2)
    monkeypatch.setattr(retrieval, "CPU_CACHE_BYTES", 3 * 5 * len(data[1]))  # 3 rows per step
    assert_same(evaluate_retrieval(*data, max_rank=20, chunk_size=16), reference_eval(*data, max_rank=20))


def test_all_distances_equal_rank_by_gallery_index():
    # A collapsed model: every feature is the same, so the ranking is the gallery order.
    # Query pid 1 cam 0; gallery pids [2, 1, 1, 3, 1, 0], cams [0, 0, 1, 0, 2, 0]:
    # index 1 is junk; kept order 0(neg) 2(hit) 3(neg) 4(hit) 5(neg) -> hits at ranks 2 and 4.
    # AP = (1/2 + 2/4) / 2 = 0.5, INP = 2/4, first hit at rank 2.
    out = evaluate_retrieval(np.ones((1, 4)), np.ones((6, 4)), [1], [2, 1, 1, 3, 1, 0], [0], [0, 0, 1, 0, 2, 0],
                             max_rank=3)
    assert out["mAP"] == pytest.approx(0.5, abs=1e-12)
    assert out["mINP"] == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_array_equal(out["cmc"], [0, 1, 1])


def test_ties_between_hits_and_negatives_in_the_middle_of_the_ranking():
    # Query at 0 (pid 1, cam 0). Gallery x (index: pid, cam):
    #   0: x=2 pid 5 | 1: x=1 pid 1 cam 1 | 2: x=2 pid 1 cam 2 | 3: x=2 pid 6 | 4: x=3 pid 1 cam 1 | 5: x=1 pid 7
    # Ranked by (distance, index): 1(hit) 5(neg) 0(neg) 2(hit) 3(neg) 4(hit) -> hits at ranks 1, 4, 6.
    # AP = (1/1 + 2/4 + 3/6) / 3 = 2/3; INP = 3/6.
    gx = np.array([[2.0], [1.0], [2.0], [2.0], [3.0], [1.0]])
    out = evaluate_retrieval(np.zeros((1, 1)), gx, [1], [5, 1, 1, 6, 1, 7], [0], [0, 1, 2, 0, 1, 0], max_rank=6)
    assert out["mAP"] == pytest.approx(2 / 3, abs=1e-12)
    assert out["mINP"] == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_array_equal(out["cmc"], [1, 1, 1, 1, 1, 1])


def test_non_finite_features_raise():
    feats = np.zeros((2, 3))
    feats[1, 2] = np.nan
    with pytest.raises(ValueError, match="gallery_feats holds NaN"):
        evaluate_retrieval(np.zeros((1, 3)), feats, [1], [1, 2], [0], [1, 1])


def test_golden_single_query():
    # Query pid 1 cam 0 at x=0; gallery on a line, one item per distance:
    # x=1 pid 1 cam 0 -> junk (removed); x=2 pid 2 -> negative, rank 1; x=3 pid 1 cam 1 -> hit, rank 2;
    # x=4 pid 0 (distractor) -> negative, rank 3; x=5 pid 1 cam 2 -> hit, rank 4.
    # AP = (1/2 + 2/4) / 2 = 0.5; INP = 2 hits / rank 4 = 0.5; first hit at rank 2.
    gx = np.array([[4.0], [1.0], [5.0], [3.0], [2.0]])
    out = evaluate_retrieval(np.zeros((1, 1)), gx, [1], [0, 1, 1, 1, 2], [0], [5, 0, 2, 1, 0])
    assert out["mAP"] == pytest.approx(0.5)
    assert out["mINP"] == pytest.approx(0.5)
    # max_rank 50 > 5 gallery items: the curve is cut to the gallery size, as in torchreid.
    np.testing.assert_array_equal(out["cmc"], [0, 1, 1, 1, 1])
    assert out["num_valid_queries"] == 1


@pytest.mark.parametrize("hit_index, expected_ap", [(1, 0.5), (0, 1.0)])
def test_ties_go_to_the_lower_gallery_index(hit_index, expected_ap):
    # Both gallery items are at distance 1: the one with the lower index ranks first.
    pids = [2, 2]
    pids[hit_index] = 1
    out = evaluate_retrieval(np.zeros((1, 2)), np.array([[1.0, 0.0], [0.0, 1.0]]), [1], pids, [0], [1, 1])
    assert out["mAP"] == pytest.approx(expected_ap)


def test_two_queries_average_only_the_valid_one():
    # Query 0: hit at rank 1 -> AP 1. Query 1: its only match shares its camera -> skipped.
    gx = np.array([[1.0], [2.0]])
    out = evaluate_retrieval(np.zeros((2, 1)), gx, [1, 2], [1, 2], [0, 0], [1, 0], max_rank=2)
    assert out["num_valid_queries"] == 1
    assert out["mAP"] == pytest.approx(1.0)
    np.testing.assert_array_equal(out["cmc"], [1, 1])


def test_no_valid_query_raises():
    with pytest.raises(ValueError, match="no valid query"):
        evaluate_retrieval(np.zeros((2, 3)), np.ones((4, 3)), [1, 2], [1, 2, 3, 4], [0, 0], [0, 0, 5, 5])


@pytest.mark.parametrize(
    "position, name",
    [(2, "query_pids"), (3, "gallery_pids"), (4, "query_camids"), (5, "gallery_camids")],
)
def test_length_mismatch_names_the_argument(position, name):
    args = [np.zeros((3, 2)), np.ones((4, 2)), [1, 2, 3], [1, 2, 3, 4], [0, 0, 0], [1, 1, 1, 1]]
    args[position] = args[position][:-1]
    with pytest.raises(ValueError, match=name):
        evaluate_retrieval(*args)


def test_bad_arguments_raise():
    args = [np.zeros((3, 2)), np.ones((4, 2)), [1, 2, 3], [1, 2, 3, 4], [0, 0, 0], [1, 1, 1, 1]]
    with pytest.raises(ValueError, match="dimension"):
        evaluate_retrieval(np.zeros((3, 5)), *args[1:])
    with pytest.raises(ValueError, match="chunk_size"):
        evaluate_retrieval(*args, chunk_size=0)
    with pytest.raises(ValueError, match="max_rank"):
        evaluate_retrieval(*args, max_rank=0)


def test_auto_chunk_size_shrinks_with_the_gallery():
    market, msmt = auto_chunk_size(15_913), auto_chunk_size(82_161)
    assert market > msmt >= 1
    assert auto_chunk_size(10**12) == 1
    assert auto_chunk_size(82_161, element_size=8) < msmt


def test_empty_query_set_has_no_valid_query():
    with pytest.raises(ValueError, match="no valid query"):
        evaluate_retrieval(np.zeros((0, 3)), np.ones((4, 3)), [], [1, 2, 3, 4], [], [0, 0, 5, 5])
