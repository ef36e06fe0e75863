"""LSTKC++: the one- and two-teacher rectified targets, the overlap α, the shrinking fusion, the
self-retrieval fallback and the long/last-step model timeline of the consolidation."""
import types

import pytest
import torch
import torch.nn.functional as F

from pad_bench.metrics.retrieval import evaluate_retrieval
from pad_bench.models import create_model
from pad_bench.strategies.lstkcpp.consolidation import BETA_GRID, overlap_alpha, self_retrieval_map
from pad_bench.strategies.lstkcpp.distill import dual_teacher_target, long_short_kd_loss, single_teacher_target
from pad_bench.strategies.lstkcpp.plugins.consolidation import LongShortConsolidationPlugin, LongShortMemory
from pad_bench.training.affinity import cosine_affinity
from pad_bench.training.fusion import fuse_state_dicts

LABELS = torch.tensor([0, 0, 1, 1])
# Hand-made affinity rows; thresholds per row: Thres_P = largest negative, Thres_N = smallest other positive.
SHORT = torch.tensor([
    [0.40, 0.30, 0.20, 0.10],  # right everywhere
    [0.05, 0.45, 0.40, 0.10],  # (1,0) FN (Thres_P 0.40); (1,2), (1,3) FP (Thres_N 0.05)
    [0.30, 0.10, 0.40, 0.20],  # (2,3) FN (Thres_P 0.30); (2,0) FP (Thres_N 0.20); (2,1) TN
    [0.10, 0.10, 0.30, 0.50],  # right everywhere
])
LONG = torch.tensor([
    [0.10, 0.20, 0.30, 0.40],  # (0,1) FN; (0,2), (0,3) FP: the short teacher is right there
    [0.30, 0.40, 0.20, 0.10],  # right everywhere: it corrects the short teacher's row
    [0.35, 0.05, 0.45, 0.15],  # (2,3) FN (Thres_P 0.35), (2,0) FP (Thres_N 0.15), like the short one
    [0.10, 0.10, 0.30, 0.50],
])


def _rows_normalised(rows):
    t = torch.tensor(rows)
    return t / t.sum(1, keepdim=True)


def test_single_teacher_target_uses_only_the_teachers_scores_and_thresholds():
    expected = _rows_normalised([
        [0.40, 0.30, 0.20, 0.10],
        [0.40, 0.45, 0.05, 0.05],  # FN -> Thres_P, FP -> Thres_N; sum 0.95
        [0.20, 0.10, 0.40, 0.30],
        [0.10, 0.10, 0.30, 0.50],
    ])
    torch.testing.assert_close(single_teacher_target(SHORT, LABELS), expected)


def test_dual_teacher_target_averages_agreement_and_trusts_the_right_teacher():
    expected = _rows_normalised([
        [0.25, 0.30, 0.20, 0.10],      # diagonal: both right -> mean; elsewhere only the short one is right
        [0.30, 0.425, 0.20, 0.10],     # only the long one is right at (1,0), (1,2), (1,3)
        [0.15, 0.075, 0.425, 0.35],    # both FP: min(0.20, 0.15); both FN: max(0.30, 0.35); else means
        [0.10, 0.10, 0.30, 0.50],
    ])
    torch.testing.assert_close(dual_teacher_target(SHORT, LONG, LABELS), expected)


def test_kd_loss_is_kl_of_the_target_to_the_new_affinities():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    new = torch.randn(6, 8, generator=g, requires_grad=True)
    short, long = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    a_new = cosine_affinity(new, temperature=0.1)
    for teacher_long, target in ((None, single_teacher_target(cosine_affinity(short, temperature=0.1), labels)),
                                 (long, dual_teacher_target(cosine_affinity(short, temperature=0.1),
                                                            cosine_affinity(long, temperature=0.1), labels))):
        expected = (target * (target.log() - a_new.log())).sum() / 6
        torch.testing.assert_close(long_short_kd_loss(new, short, teacher_long, labels, 0.1), expected)
    long_short_kd_loss(new, short, long, labels).backward()
    assert new.grad.abs().sum() > 0


def _dense_overlap(new, old, temperature):
    def aff(x):
        logits = F.normalize(x, dim=1) @ F.normalize(x, dim=1).t() / temperature
        return F.softmax(logits - torch.eye(len(x)) * 1e9, dim=1)
    return float((aff(new) * aff(old)).sum(1).mean())


def test_overlap_alpha_counts_shared_nearest_neighbours():
    # at a low temperature each row is one-hot on the nearest other image
    new = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])   # pairs (0,1) and (2,3)
    same = new.clone()
    swapped = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.99, 0.1], [0.1, 0.99]])  # pairs (0,2) and (1,3)
    assert overlap_alpha(new, same, temperature=1e-3) == pytest.approx(1.0)
    assert overlap_alpha(new, swapped, temperature=1e-3) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("block", [1, 3, 1024])
def test_overlap_alpha_blockwise_matches_the_dense_formula(block):
    g = torch.Generator().manual_seed(1)
    new, old = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    assert overlap_alpha(new, old, 0.05, block) == pytest.approx(_dense_overlap(new, old, 0.05), abs=1e-6)


def test_fusing_an_earlier_model_with_a_later_one_keeps_the_earlier_rows():
    early = {"cls.weight": torch.tensor([[1.0, 1.0]]), "w": torch.tensor([2.0])}
    later = {"cls.weight": torch.tensor([[3.0, 3.0], [5.0, 5.0]]), "w": torch.tensor([4.0])}
    fused = fuse_state_dicts(early, later, 0.25, allow_shrink=True)
    torch.testing.assert_close(fused["cls.weight"], torch.tensor([[2.5, 2.5]]))
    torch.testing.assert_close(fused["w"], torch.tensor([3.5]))


def test_self_retrieval_falls_back_to_one_camera_per_image():
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    labels, one_cam = torch.tensor([0, 0, 1, 1]), torch.zeros(4, dtype=torch.long)
    assert self_retrieval_map(feats, labels, one_cam) == pytest.approx(1.0)
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    # the match ranks 3rd for images 0 and 1, 2nd for images 2 and 3: mAP = (1/3 + 1/3 + 1/2 + 1/2) / 4
    assert self_retrieval_map(mixed, labels, torch.arange(4)) == pytest.approx(5 / 12)


class _Strategy:
    """Enough of a strategy for the consolidation: features are fixed points moved by the model's BN bias."""

    def __init__(self, model):
        self.model, self.exp_index = model, 0
        g = torch.Generator().manual_seed(0)
        self.points = torch.randn(12, 8, generator=g)
        self.labels, self.camids = torch.arange(12) // 3, torch.arange(12) % 3
        self.experience = types.SimpleNamespace(dataset=None)

    def features(self, state):
        return self.points + 3 * state["necks.gem.bias"][:8]

    def extract(self, data, model=None):
        return {"embedding": self.features((model or self.model).state_dict()), "labels": self.labels,
                "camids": self.camids}


def _train(strategy, seed, n_new):
    """Stand-in for an experience of training: new classifier rows and a moved BN bias."""
    torch.manual_seed(seed)
    strategy.model.grow_classifier(n_new)
    with torch.no_grad():
        strategy.model.necks["gem"].bias.copy_(torch.randn(strategy.model.necks["gem"].bias.shape))
    return {k: t.clone() for k, t in strategy.model.state_dict().items()}


def test_consolidation_timeline_of_the_last_step_and_long_term_models():
    s = _Strategy(create_model("resnet-tiny", weights="random"))
    mem = LongShortMemory()
    plugin = LongShortConsolidationPlugin(memory=mem, temperature=0.1)

    t0 = _train(s, 0, 3)
    plugin.after_training_exp(s)
    assert plugin.last_alpha is None and mem.long_state is None
    torch.testing.assert_close(mem.last_state, t0)

    s.exp_index = 1
    t1 = _train(s, 1, 3)
    plugin.after_training_exp(s)
    a1 = _dense_overlap(s.features(t1), s.features(t0), 0.1)
    assert plugin.last_alpha == pytest.approx(a1, abs=1e-6) and plugin.last_beta is None
    torch.testing.assert_close(s.model.state_dict(), fuse_state_dicts(t1, t0, a1))
    torch.testing.assert_close(mem.long_state, t0)
    torch.testing.assert_close(mem.last_state, t1)

    s.exp_index = 2
    t2 = _train(s, 2, 3)
    plugin.after_training_exp(s)
    scores = [evaluate_retrieval(f, f, s.labels, s.labels, s.camids, s.camids)["mAP"]
              for f in (s.features(fuse_state_dicts(t0, t1, b, allow_shrink=True)) for b in BETA_GRID)]
    beta = BETA_GRID[scores.index(max(scores))]
    old = fuse_state_dicts(t0, t1, beta, allow_shrink=True)
    assert old["classifiers.gem.weight"].shape[0] == 3  # the long-term model keeps its rows
    a2 = _dense_overlap(s.features(t2), s.features(old), 0.1)
    assert plugin.last_beta == beta and plugin.last_alpha == pytest.approx(a2, abs=1e-6)
    torch.testing.assert_close(s.model.state_dict(), fuse_state_dicts(t2, old, a2))
    torch.testing.assert_close(mem.long_state, old)
    torch.testing.assert_close(mem.last_state, t2)
