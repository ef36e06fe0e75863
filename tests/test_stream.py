import torch

from pad_bench.config import resolve_config
from pad_bench.data.stream import build_benchmark

from conftest import tiny_sets


def test_stream_samples_carry_reid_attributes(synth_root):
    cfg = resolve_config(benchmark="synth", strategy="finetune", sets=tiny_sets(synth_root))
    bench = build_benchmark(cfg, family="clip")
    assert len(bench.train_stream) == 2 and len(bench.test_stream) == 2 and len(bench.unseen_stream) == 1
    assert bench.seen_names == ["synth_d1", "synth_d2"] and bench.unseen_names == ["synth_u1"]
    assert bench.class_offsets == [0, bench.num_classes[0]]

    img, pid, camid, is_query, domain = bench.train_stream[1].dataset.train()[0]
    assert isinstance(img, torch.Tensor) and img.shape == (3, 64, 32)
    assert bench.num_classes[0] <= pid < sum(bench.num_classes)  # global label, offset per domain
    assert (is_query, domain) == (0, 1)

    test = bench.test_stream[0].dataset.eval()
    flags = [test[i][3] for i in range(len(test))]
    assert 0 < sum(flags) < len(flags)  # query and gallery both present
    img_eval, raw_pid, *_ = test[0]
    assert torch.equal(img_eval, test[0][0])  # eval transform is deterministic

    rows = bench.manifest.rows
    assert {r[1] for r in rows} == {"seen", "unseen"}
    assert not any(r[4].startswith("/") for r in rows)  # relative paths


def test_joint_merges_domains_into_one_experience(synth_root):
    cfg = resolve_config(benchmark="synth", strategy="joint", sets=tiny_sets(synth_root))
    sequential = build_benchmark(cfg, family="clip")
    joint = build_benchmark(cfg, family="clip", union=True)
    assert joint.train_names == ["joint"] and len(joint.train_stream) == 1
    assert joint.num_classes == [sum(sequential.num_classes)]
    targets = sorted(set(int(t) for t in joint.train_stream[0].dataset.targets))
    assert targets == list(range(sum(sequential.num_classes)))


def test_pooled_unseen_avg_gives_one_merged_unseen_experience(synth_root):
    cfg = resolve_config(benchmark="synth", strategy="finetune",
                         sets={**tiny_sets(synth_root), "protocol.unseen_avg": "pooled"})
    per_dataset = build_benchmark(resolve_config(benchmark="synth", strategy="finetune", sets=tiny_sets(synth_root)),
                                  family="clip")
    pooled = build_benchmark(cfg, family="clip")
    assert pooled.unseen_names == ["pooled"] and len(pooled.unseen_stream) == 1
    assert len(pooled.unseen_stream[0].dataset) == sum(len(e.dataset) for e in per_dataset.unseen_stream)
