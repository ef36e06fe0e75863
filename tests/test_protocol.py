from pad_bench.data.datasets import ImageRecord
from pad_bench.data.protocol import Manifest, build_train_domain, select_ids


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
