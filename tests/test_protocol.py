import pytest

from pad_bench.data.datasets import ImageRecord
from pad_bench.data.protocol import Manifest, build_train_domain, select_ids
from pad_bench.errors import UserError


def _records(pids):
    return [ImageRecord(f"/d/{p}_{i}.jpg", p, 0) for i, p in enumerate(pids)]


def test_first_500_sorted_keeps_smallest_pids():
    recs = _records([900, 3, 3, 700, 12, 5])
    assert select_ids(recs, "first_500_sorted", 2) == [3, 5]
    assert select_ids(recs, "first_500_sorted", "all") == [3, 5, 12, 700, 900]
    assert select_ids(recs, "all", 2) == [3, 5, 12, 700, 900]


def test_train_domain_relabels_in_pid_order(synth_root):
    protocol = {"id_select": "first_500_sorted", "ids_per_domain": 5, "dataset_options": {}}
    d = build_train_domain("synth_d1", synth_root, protocol)
    assert d.num_classes == 5
    pids = sorted({r.pid for r in d.train})
    assert [pids.index(r.pid) for r in d.train] == d.labels
    assert d.query and d.gallery  # test sets are never subsampled


def test_manifest_relative_paths_and_stable_hash(tmp_path):
    recs = [ImageRecord(str(tmp_path / "m" / "a.jpg"), 1, 0), ImageRecord(str(tmp_path / "m" / "b.jpg"), 2, 1)]
    m1, m2 = Manifest(tmp_path), Manifest(tmp_path)
    for m in (m1, m2):
        m.add("market1501", "seen", "train", 0, recs, [0, 1])
    assert m1.sha256() == m2.sha256()
    assert "m/a.jpg" in m1.to_csv() and str(tmp_path) not in m1.to_csv()
    m2.add("viper", "unseen", "query", 0, recs[:1])
    assert m1.sha256() != m2.sha256()
    assert m1.domain_hashes()["market1501"] == m2.domain_hashes()["market1501"]


# ---- protocol.unseen_avg ----------------------------------------------------------------------
def _two_unseen_sets():
    from pad_bench.data.protocol import EvalSet

    a = EvalSet("viper", 0, [ImageRecord("a1", 1, 0)], [ImageRecord("a2", 1, 1), ImageRecord("a3", 2, 1)])
    b = EvalSet("grid", 0, [ImageRecord("b1", 1, 0)], [ImageRecord("b2", 1, 1)])
    return a, b


def test_pooled_unseen_merges_query_and_gallery_with_pids_keyed_by_dataset():
    from pad_bench.data.protocol import unseen_for_avg

    a, b = _two_unseen_sets()
    assert unseen_for_avg([a, b], "per_dataset") == [a, b]
    (pooled,) = unseen_for_avg([a, b], "pooled")
    assert pooled.name == "pooled"
    assert [r.path for r in pooled.query] == ["a1", "b1"] and [r.path for r in pooled.gallery] == ["a2", "a3", "b2"]
    pid = {r.path: r.pid for r in pooled.query + pooled.gallery}
    # both datasets have a pid 1: after keying, viper's 1 and grid's 1 are different people
    assert pid["a1"] == pid["a2"] and pid["b1"] == pid["b2"] and pid["a1"] != pid["b1"]
    assert len({pid["a1"], pid["a3"], pid["b1"]}) == 3
    assert [r.camid for r in pooled.query + pooled.gallery] == [0, 0, 1, 1, 1]
    with pytest.raises(UserError, match="unseen_avg"):
        unseen_for_avg([a, b], "merged")
    with pytest.raises(UserError, match="single_split"):
        unseen_for_avg([a, a], "pooled")  # two runs of one dataset (pad_multi_split)


def test_pooled_unseen_ranks_every_query_against_every_gallery():
    import torch

    from pad_bench.data.protocol import unseen_for_avg
    from pad_bench.metrics.retrieval import evaluate_retrieval

    a, b = _two_unseen_sets()
    feats = {"a1": [1.0, 0.0], "a2": [0.8, 0.6], "a3": [0.0, 1.0], "b1": [0.6, 0.8], "b2": [1.0, 0.0]}
    (pooled,) = unseen_for_avg([a, b], "pooled")

    def m_ap(s):
        q, g = s.query, s.gallery
        t = lambda rs, k: torch.tensor([getattr(r, k) for r in rs])  # noqa: E731
        return evaluate_retrieval(torch.tensor([feats[r.path] for r in q]), torch.tensor([feats[r.path] for r in g]),
                                  t(q, "pid"), t(g, "pid"), t(q, "camid"), t(g, "camid"))["mAP"]

    assert m_ap(a) == pytest.approx(1.0) and m_ap(b) == pytest.approx(1.0)  # each alone: the match ranks first
    # pooled, by hand: a1 ranks b2 (cos 1) above a2 (0.8): AP 1/2; b1 ranks a2 (0.96) and a3 (0.8) above b2 (0.6): AP 1/3
    assert m_ap(pooled) == pytest.approx((1 / 2 + 1 / 3) / 2)
