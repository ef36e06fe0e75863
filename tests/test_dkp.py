"""DKP: sampling, the uncertainty model, prototype statistics, set triplet, DKT loss, one tiny run."""
import csv
import json
import math

import pytest
import torch

from pad_bench.config import resolve_config, resolve_dataset_tables
from pad_bench.errors import UserError
from pad_bench.models import create_model
from pad_bench.strategies.dkp.prototypes import class_prototypes, dkt_loss, sample_prototypes
from pad_bench.training.losses import set_triplet
from pad_bench.strategies.dkp.uncertainty import dkp_model, gaussian_samples

from conftest import tiny_sets


def test_gaussian_samples_shapes_norms_and_zero_variance():
    torch.manual_seed(0)
    mu, sigma = torch.randn(5, 8), torch.rand(5, 8)
    z = gaussian_samples(mu, sigma, 6)
    assert z.shape == (6, 5, 8)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(6, 5))
    assert not torch.allclose(z[0], z[1])
    still = gaussian_samples(mu, torch.zeros(5, 8), 3)
    torch.testing.assert_close(still, torch.nn.functional.normalize(mu, dim=1).expand(3, 5, 8))


@pytest.mark.parametrize("name", ["resnet-tiny", "clip-tiny"])
def test_dkp_model_outputs(name):
    torch.manual_seed(0)
    cut = {"cut_at": "layer3"} if name.startswith("resnet") else {}
    model = dkp_model(create_model(name, weights="random", **cut), dim=24, n_samples=6)
    model.grow_classifier(5)
    x = torch.randn(4, 3, *model.image_size)
    out = model.train()(x)
    assert out["mu"].shape == out["sigma"].shape == (4, 24)
    assert out["samples"].shape == (6, 4, 24) and out["sample_logits"].shape == (6, 4, 5)
    assert out["logits"]["mu"].shape == (4, 5)
    torch.testing.assert_close(out["mu"].norm(dim=1), torch.ones(4))
    assert (out["sigma"] >= 1e-4).all()
    out = model.eval()(x)
    assert out["samples"].shape[0] == 0 and torch.equal(out["embedding"], out["mu"])


def test_resnet_variance_conv_is_8x8_at_the_reid_input_size():
    model = dkp_model(create_model("resnet-tiny", weights="random", cut_at="layer3", image_size=(256, 128)),
                      dim=8, n_samples=1)  # layer3 map: 16x8
    assert model.backbone.var_conv.kernel_size == (8, 8) and model.backbone.var_conv.bias is None


def test_prototypes_follow_the_law_of_total_variance():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([3, 1, 3, 1, 1, 3, 7])
    mu, sigma = torch.randn(7, 4, generator=g), torch.rand(7, 4, generator=g)
    p = class_prototypes(mu, sigma, labels)
    assert p["labels"].tolist() == [1, 3, 7]
    for row, c in enumerate([1, 3, 7]):
        m, s = mu[labels == c], sigma[labels == c]
        direct_var = m.var(dim=0, unbiased=False) + s.square().mean(dim=0)
        torch.testing.assert_close(p["mu"][row], m.mean(dim=0))
        torch.testing.assert_close(p["sigma"][row], direct_var.sqrt())
    # ... which is the spread of samples drawn from the class's instance Gaussians
    m, s = mu[labels == 3], sigma[labels == 3]
    draws = m + torch.randn(20000, *m.shape, generator=g) * s
    torch.testing.assert_close(draws.reshape(-1, 4).std(dim=0), p["sigma"][1], rtol=0.03, atol=0.0)


def test_prototypes_reject_mismatched_inputs():
    with pytest.raises(UserError):
        class_prototypes(torch.randn(3, 2), torch.rand(2, 2), torch.tensor([0, 1, 2]))


def test_pseudo_features_one_per_class():
    p = class_prototypes(torch.randn(6, 5), torch.rand(6, 5), torch.tensor([0, 0, 1, 1, 2, 2]))
    pseudo = sample_prototypes(p)
    assert pseudo.shape == (3, 5)
    torch.testing.assert_close(pseudo.norm(dim=1), torch.ones(3))


def _softmax(row):
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_set_triplet_by_hand():
    mu = [[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]]
    samples = [[0.6, 0.8], [1.0, 0.0], [0.8, 0.6], [0.0, -1.0]]
    labels = [0, 0, 1, 1]
    expected = 0.0
    for i, a in enumerate(samples):
        d = [math.dist(a, m) for m in mu]
        d_ap = max(d[j] for j in range(4) if labels[j] == labels[i])
        d_an = min(d[j] for j in range(4) if labels[j] != labels[i])
        expected += math.log1p(math.exp(d_ap - d_an)) / 4
    got = set_triplet(torch.tensor([samples]), torch.tensor(mu), torch.tensor(labels))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_dkt_loss_by_hand():
    mu = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]
    pseudo = [[1.0, 0.0], [0.6, -0.8]]
    lam1, lam2 = 0.5, 0.25
    s = [_softmax([_cos(m, p) / lam1 for p in pseudo]) for m in mu]
    a_proto = [_softmax([_cos(si, sk) / lam2 for sk in s]) for si in s]
    a_new = [_softmax([_cos(mi, mk) / lam2 for mk in mu]) for mi in mu]
    expected = sum(t * (math.log(t) - math.log(a)) for rt, ra in zip(a_proto, a_new) for t, a in zip(rt, ra)) / 3
    got = dkt_loss(torch.tensor(mu), torch.tensor(pseudo), lam1, lam2)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_dkp_msmt17_milestones_and_proto_mode_validation():
    from pad_bench.strategies.dkp.plugins.prototypes import PrototypePlugin
    from pad_bench.strategies.dkp.strategy import DKP

    cfg = resolve_config(benchmark="aka-order1", strategy="dkp")
    DKP.finalize_config(cfg)
    resolve_dataset_tables(cfg)
    assert cfg["strategy"]["milestones"] == [[30], [30], [30], [20, 30], [30]]  # MSMT17 is 4th in order 1
    with pytest.raises(UserError, match="dkp_proto_bn"):
        PrototypePlugin(bn_mode="training")


def _proto_setup():
    from types import SimpleNamespace

    torch.manual_seed(0)
    model = dkp_model(create_model("resnet-tiny", weights="random", cut_at="layer3"), dim=8, n_samples=2)
    model.grow_classifier(3)
    x, y = torch.rand(6, 3, 64, 32), torch.tensor([0, 0, 1, 1, 2, 2])

    def extract(dataset, m, keys):  # the strategy's contract: switches the model to eval, one pass, no grad
        m.eval()
        with torch.no_grad():
            out = m(x)
        return {**{k: out[k] for k in keys}, "labels": y}

    strategy = SimpleNamespace(model=model, experience=SimpleNamespace(dataset=None), extract=extract, exp_index=0)
    return strategy, x, y


def _is_bn_buffer(key):
    return key.endswith(("running_mean", "running_var", "num_batches_tracked"))


def test_dkp_proto_bn_train_follows_the_reference_timing():
    import copy

    from pad_bench.strategies.dkp.plugins.prototypes import PrototypePlugin
    from pad_bench.training.plugins.old_model import OldModelPlugin

    strategy, x, y = _proto_setup()
    model = strategy.model
    evaluated = {k: t.clone() for k, t in model.state_dict().items()}
    old, protos = OldModelPlugin(), PrototypePlugin(bn_mode="train")
    torch.manual_seed(1)
    protos.after_training_exp(strategy)  # end of step t (after fusion)
    # step t is evaluated with its own statistics: the pass must not touch the model
    assert all(torch.equal(model.state_dict()[k], t) for k, t in evaluated.items())
    # reference (obtain_old_types at the start of step t+1): model.train(), forward under no_grad
    reference = copy.deepcopy(model).train()
    torch.manual_seed(1)
    with torch.no_grad():
        out = reference(x)
    for row, c in enumerate([0, 1, 2]):
        mu, sigma = out["mu"][y == c], out["sigma"][y == c]
        torch.testing.assert_close(protos.prototypes["mu"][row], mu.mean(0))
        var = sigma.square().mean(0) + mu.square().mean(0) - mu.mean(0).square()
        torch.testing.assert_close(protos.prototypes["sigma"][row], var.clamp_min(0).sqrt(), atol=1e-5, rtol=1e-4)
    # start of step t+1: the old model (fused with later) is copied first, with the evaluated statistics;
    # the model that trains then carries the statistics the training-mode pass left behind
    strategy.exp_index = 1
    old.before_train_dataset_adaptation(strategy)
    protos.before_train_dataset_adaptation(strategy)
    moved = reference.state_dict()
    bn_keys = [k for k in evaluated if _is_bn_buffer(k)]
    assert bn_keys and any(not torch.equal(evaluated[k], moved[k]) for k in bn_keys)
    for k, t in model.state_dict().items():
        assert torch.equal(t, moved[k] if _is_bn_buffer(k) else evaluated[k]), k
        assert torch.equal(old.model.state_dict()[k], evaluated[k]), k
    assert protos.pending_bn is None


def test_dkp_proto_bn_eval_uses_running_statistics_and_moves_nothing():
    from pad_bench.strategies.dkp.plugins.prototypes import PrototypePlugin

    strategy, x, y = _proto_setup()
    evaluated = {k: t.clone() for k, t in strategy.model.state_dict().items()}
    protos = PrototypePlugin(bn_mode="eval")
    protos.after_training_exp(strategy)
    with torch.no_grad():
        mu = strategy.model.eval()(x)["mu"]
    torch.testing.assert_close(protos.prototypes["mu"][0], mu[y == 0].mean(0))
    assert protos.pending_bn is None
    protos.before_train_dataset_adaptation(strategy)
    assert all(torch.equal(strategy.model.state_dict()[k], t) for k, t in evaluated.items())


@pytest.mark.slow
def test_dkp_two_domain_run_carries_the_last_prototypes_and_resumes(synth_root, tmp_path, monkeypatch):
    from pad_bench.run import runner

    cfg = resolve_config(benchmark="synth", strategy="dkp", sets=tiny_sets(synth_root))
    run_dir = runner.execute(cfg, tmp_path / "dkp", progress=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    carried = summary["params"][-1]["carried_bytes"]
    dim = cfg["strategy"]["dkp_dim"]
    state = torch.load(sorted((run_dir / "checkpoints").glob("*.pt"))[-1], weights_only=False)
    _, protos = state["strategy"]["carried"]["PrototypePlugin.prototypes"]
    with open(run_dir / "manifest.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    n1, n2 = (len({r["label"] for r in rows if r["domain"] == d}) for d in ("synth_d1", "synth_d2"))
    assert protos["labels"].tolist() == list(range(n1, n1 + n2))  # the last domain's identities only
    assert protos["mu"].shape == protos["sigma"].shape == (n2, dim)
    assert carried["PrototypePlugin.prototypes"] == n2 * (2 * dim * 4 + 8)
    assert set(carried) == {"model", "PrototypePlugin.prototypes", "PrototypePlugin.pending_bn"}
    assert carried["PrototypePlugin.pending_bn"] == 0  # dkp_proto_bn: eval moves no BN statistics
    assert "FusionPlugin: fused experience 2 with alpha 0.5000" in (run_dir / "run.log").read_text()

    real_save = runner.save_checkpoint

    def save_then_die(folder, step, state):
        real_save(folder, step, state)
        raise KeyboardInterrupt  # killed right after experience 1: experience 2 needs its prototypes

    monkeypatch.setattr(runner, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(cfg, tmp_path / "killed", progress=False)
    monkeypatch.setattr(runner, "save_checkpoint", real_save)
    resumed = runner.execute(cfg, tmp_path / "killed", resume=True, progress=False)
    # bitwise: one machine, one thread count, fp32 (docs/runs.md)
    assert (resumed / "metrics.csv").read_text() == (run_dir / "metrics.csv").read_text()
    final = torch.load(sorted((resumed / "checkpoints").glob("*.pt"))[-1], weights_only=False)["strategy"]["model"]
    # bit-identical weights: a resume that lost the prototypes would train experience 2 without DKT
    assert all(torch.equal(final[k], v) for k, v in state["strategy"]["model"].items())
