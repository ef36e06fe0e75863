"""LSTKC: R-STKT's rectified target and loss, E-LTKC's α (blockwise), state-dict fusion, one tiny run."""
import csv
import json
import math

import pytest
import torch

from pad_bench.config import resolve_config
from pad_bench.errors import UserError
from pad_bench.models import create_model
from pad_bench.strategies.lstkc.eltkc import affinity_alpha
from pad_bench.strategies.lstkc.rstkt import rectified_target, rstkt_loss
from pad_bench.training.affinity import correctness_marks, cosine_affinity
from pad_bench.training.fusion import fuse_state_dicts

from conftest import tiny_sets

LABELS = torch.tensor([0, 0, 1, 1])
# Rows of hand-made batch affinities; per row, the case it exercises:
A_OLD = torch.tensor([
    [0.40, 0.30, 0.20, 0.10],  # old right everywhere (TP, TN): target = old row, whatever new says
    [0.10, 0.50, 0.30, 0.10],  # old: (1,0) FN, (1,2) FP; new right on both -> new's scores
    [0.30, 0.10, 0.40, 0.20],  # (2,3) FN and (2,0) FP in both models -> thresholds
    [0.10, 0.10, 0.30, 0.50],  # old right everywhere
])
A_NEW = torch.tensor([
    [0.10, 0.20, 0.30, 0.40],  # new wrong everywhere (ignored: old is right)
    [0.30, 0.40, 0.20, 0.10],
    [0.35, 0.05, 0.45, 0.15],
    [0.25, 0.25, 0.25, 0.25],
])


def test_marks_follow_the_threshold_rules():
    same = LABELS[:, None] == LABELS[None, :]
    m = correctness_marks(A_OLD, same)
    assert m.thres_p[:, 0].tolist() == pytest.approx([0.2, 0.3, 0.3, 0.1])  # largest negative score
    assert m.thres_n[:, 0].tolist() == pytest.approx([0.3, 0.1, 0.2, 0.3])  # smallest other positive
    assert m.fn.nonzero().tolist() == [[1, 0], [2, 3]]
    assert m.fp.nonzero().tolist() == [[1, 2], [2, 0]]
    assert m.tp.diagonal().all()
    assert torch.equal(m.tp | m.fn, same) and torch.equal(m.fp | m.tn, ~same)


def test_diagonal_is_tp_and_a_row_without_other_positives_has_no_fp():
    a = torch.tensor([[0.2, 0.5, 0.3], [0.3, 0.4, 0.3], [0.1, 0.1, 0.8]])
    m = correctness_marks(a, torch.eye(3, dtype=torch.bool))
    assert m.tp.diagonal().all()  # row 0's own score is below a negative's: still TP
    assert not m.fp.any() and not m.fn.any()


def test_rectified_target_on_hand_made_rows():
    expected = torch.tensor([
        [0.40, 0.30, 0.20, 0.10],
        [0.30 / 1.1, 0.50 / 1.1, 0.20 / 1.1, 0.10 / 1.1],  # new's 0.3 and 0.2 where old erred
        [0.15, 0.10, 0.40, 0.35],  # both FP: min(Thres_N) = 0.15; both FN: max(Thres_P) = 0.35
        [0.10, 0.10, 0.30, 0.50],
    ])
    target = rectified_target(A_NEW, A_OLD, LABELS)
    torch.testing.assert_close(target, expected)
    torch.testing.assert_close(target.sum(1), torch.ones(4))


def test_rstkt_loss_is_kl_of_target_to_new_affinity_and_vanishes_when_both_are_right():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    f_new = torch.randn(6, 8, generator=g, requires_grad=True)
    f_old = torch.randn(6, 8, generator=g)
    a_new, a_old = cosine_affinity(f_new, temperature=0.1), cosine_affinity(f_old, temperature=0.1)
    target = rectified_target(a_new, a_old, labels)
    expected = (target * (target.log() - a_new.log())).sum() / 6
    loss = rstkt_loss(f_new, f_old, labels, temperature=0.1)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert f_new.grad is not None and f_new.grad.abs().sum() > 0

    centres = torch.eye(3, 8)[labels]  # each class its own direction: both models right everywhere
    same_model = centres + 0.01 * torch.randn(6, 8, generator=g)
    assert float(rstkt_loss(same_model, same_model, labels)) == pytest.approx(0.0, abs=1e-6)


def test_alpha_on_hand_made_affinities():
    # softmax(100 cos): new features are orthogonal -> one-hot rows; old ones merge images 0 and 1
    # -> rows (0.5, 0.5, 0) twice and (0, 0, 1). Row L1 distances 1, 1, 0 -> alpha = 1 - 2/3.
    new = torch.eye(3)
    old = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert affinity_alpha(new, old, temperature=0.01) == pytest.approx(1 / 3, abs=1e-6)
    assert affinity_alpha(new, new.clone()) == pytest.approx(1.0)


@pytest.mark.parametrize("block", [1, 5, 37, 100])
def test_alpha_blockwise_equals_full_matrix(block):
    g = torch.Generator().manual_seed(1)
    new, old = torch.randn(37, 16, generator=g), torch.randn(37, 16, generator=g)
    full = 1 - (cosine_affinity(new, temperature=0.05) - cosine_affinity(old, temperature=0.05)).abs().sum(1).mean()
    assert affinity_alpha(new, old, temperature=0.05, block=block) == pytest.approx(float(full), abs=1e-6)


def test_alpha_rejects_mismatched_features():
    with pytest.raises(UserError):
        affinity_alpha(torch.randn(4, 3), torch.randn(5, 3))


def test_fusion_mixes_every_entry_and_only_the_old_classifier_rows():
    old = {"w": torch.tensor([1.0, 2.0]), "bn.running_var": torch.tensor([4.0]),
           "bn.num_batches_tracked": torch.tensor(7), "cls.weight": torch.tensor([[1.0, 1.0], [2.0, 2.0]])}
    new = {"w": torch.tensor([3.0, 6.0]), "bn.running_var": torch.tensor([0.0]),
           "bn.num_batches_tracked": torch.tensor(11),
           "cls.weight": torch.tensor([[3.0, 3.0], [4.0, 4.0], [9.0, 9.0]])}
    fused = fuse_state_dicts(new, old, 0.25)
    torch.testing.assert_close(fused["w"], torch.tensor([1.5, 3.0]))
    torch.testing.assert_close(fused["bn.running_var"], torch.tensor([3.0]))
    assert fused["bn.num_batches_tracked"].item() == 11 and fused["bn.num_batches_tracked"].dtype == torch.int64
    torch.testing.assert_close(fused["cls.weight"], torch.tensor([[1.5, 1.5], [2.5, 2.5], [9.0, 9.0]]))
    assert new["w"].tolist() == [3.0, 6.0]  # inputs untouched

    with pytest.raises(UserError, match="different parameters"):
        fuse_state_dicts({"w": new["w"]}, {"v": new["w"]}, 0.5)
    with pytest.raises(UserError, match="did not grow"):
        fuse_state_dicts({"cls.weight": old["cls.weight"]}, {"cls.weight": new["cls.weight"]}, 0.5)


def test_fusion_of_a_grown_model_loads_back():
    torch.manual_seed(0)
    old = create_model("clip-tiny", num_classes=3, weights="random")
    new = create_model("clip-tiny", num_classes=3, weights="random")
    new.grow_classifier(2)
    n_sd, o_sd = new.state_dict(), old.state_dict()
    fused = fuse_state_dicts(n_sd, o_sd, 0.5)
    proj, cls = "backbone.clip.visual.proj", "classifiers.proj.weight"
    torch.testing.assert_close(fused[proj], 0.5 * (n_sd[proj] + o_sd[proj]))
    torch.testing.assert_close(fused[cls][:3], 0.5 * (n_sd[cls][:3] + o_sd[cls]))
    torch.testing.assert_close(fused[cls][3:], n_sd[cls][3:])
    new.load_state_dict(fused)
    assert torch.equal(new.state_dict()[proj], fused[proj]) and new.num_classes == 5


@pytest.mark.slow
def test_lstkc_two_domain_run(synth_root, tmp_path):
    from pad_bench.run import runner

    cfg = resolve_config(benchmark="synth", strategy="lstkc", sets=tiny_sets(synth_root))
    run_dir = runner.execute(cfg, tmp_path / "lstkc", progress=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    first, second = summary["params"]
    assert first["fusion_alpha"] is None  # nothing to fuse after the first domain
    assert -1.0 <= second["fusion_alpha"] <= 1.0 and math.isfinite(second["fusion_alpha"])
    assert set(second["carried_bytes"]) == {"model"}  # the old model is not kept between domains
    assert "fused experience 2 with alpha" in (run_dir / "run.log").read_text()
    # every step's terms reach losses.csv, unweighted; the tiny profile weighs id, tri and rstkt by 1
    with open(run_dir / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    steps: dict = {}
    for r in rows:
        steps.setdefault((r["experience"], r["phase"], r["step"]), {})[r["term"]] = float(r["value"])
    assert {tuple(sorted(v)) for k, v in steps.items() if k[0] == "1"} == {("id", "loss", "tri")}
    assert {tuple(sorted(v)) for k, v in steps.items() if k[0] == "2"} == {("id", "loss", "rstkt", "tri")}
    for v in steps.values():
        assert v["loss"] == pytest.approx(v["id"] + v["tri"] + v.get("rstkt", 0.0), rel=1e-4)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(run_dir / "tb"))
    tb.Reload()
    rstkt = tb.Scalars("loss/train/rstkt")
    assert [e.value for e in rstkt] == pytest.approx([v["rstkt"] for k, v in steps.items() if k[0] == "2"], rel=1e-4)
