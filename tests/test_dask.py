"""DASK: the affinity distillation and drift-based α against hand computations, one tiny run."""
import csv
import json

import pytest
import torch

from pad_bench.config import resolve_config
from pad_bench.strategies.dask.affinity import affinity_kd, drift_alpha

from conftest import tiny_sets


def _softmax_rows(logits: list[list[float]]) -> torch.Tensor:
    t = torch.tensor(logits, dtype=torch.float64)
    e = t.exp()
    return e / e.sum(1, keepdim=True)


def test_affinity_kd_is_kl_of_the_old_affinities_to_the_new_ones():
    new = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    old = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    c = 2 ** -0.5  # cos 45°
    cos_new = [[1, 0, c], [0, 1, c], [c, c, 1]]
    cos_old = [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    a_new = _softmax_rows([[v / 0.5 for v in row] for row in cos_new])
    a_old = _softmax_rows([[v / 0.5 for v in row] for row in cos_old])
    expected = float((a_old * (a_old.log() - a_new.log())).sum() / 3)
    loss = affinity_kd(new, old, temperature=0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert new.grad.abs().sum() > 0  # the new model's side carries the gradient
    assert float(affinity_kd(old, old, 0.5)) == pytest.approx(0.0, abs=1e-6)


def test_drift_alpha_leaves_each_image_out_of_its_own_row():
    new = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    old = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    c = 2 ** -0.5
    t = 0.5
    # off-diagonal cosines only: the released -100 on the diagonal drives its softmax weight to ~0
    a_new = [[0.0, *_softmax_rows([[0 / t, c / t]])[0].tolist()],
             [_softmax_rows([[0 / t, c / t]])[0, 0].item(), 0.0, _softmax_rows([[0 / t, c / t]])[0, 1].item()],
             [*_softmax_rows([[c / t, c / t]])[0].tolist(), 0.0]]
    a_old = [[0.0, *_softmax_rows([[1 / t, 0 / t]])[0].tolist()],
             [_softmax_rows([[1 / t, 0 / t]])[0, 0].item(), 0.0, _softmax_rows([[1 / t, 0 / t]])[0, 1].item()],
             [*_softmax_rows([[0 / t, 0 / t]])[0].tolist(), 0.0]]
    diff = sum(abs(a - b) for ra, rb in zip(a_new, a_old) for a, b in zip(ra, rb))
    expected = 1 - diff / 3
    assert drift_alpha(new, old, temperature=t) == pytest.approx(expected, rel=1e-5)
    for block in (1, 2):  # blockwise gives the same α
        assert drift_alpha(new, old, temperature=t, block=block) == pytest.approx(expected, rel=1e-5)
    assert drift_alpha(old, old, temperature=t) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("fusion", ["fixed", "adaptive"])
def test_dask_two_domain_run(synth_root, tmp_path, fusion):
    from pad_bench.run import runner

    sets = tiny_sets(synth_root, **{"strategy.rehearser_iters": 2, "strategy.rehearser_batch": [4, 2],
                                    "strategy.dask_fusion": fusion})
    cfg = resolve_config(benchmark="synth", strategy="dask", sets=sets)
    run_dir = runner.execute(cfg, tmp_path / "dask", progress=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    first, second = summary["params"]
    assert first["fusion_alpha"] is None
    if fusion == "fixed":
        assert second["fusion_alpha"] == 0.5
    else:
        assert -1.0 <= second["fusion_alpha"] <= 1.0
    log = (run_dir / "run.log").read_text()
    assert "DASK: trained the rehearser of experience 1" in log
    with open(run_dir / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    steps: dict = {}
    for r in rows:
        steps.setdefault((r["experience"], r["step"]), {})[r["term"]] = float(r["value"])
    assert {tuple(sorted(v)) for k, v in steps.items() if k[0] == "1"} == {("id", "loss", "tri")}
    second_terms = {"id", "tri", "kd", "rehearsed_id", "rehearsed_tri", "rehearsed_kd", "loss"}
    assert {frozenset(v) for k, v in steps.items() if k[0] == "2"} == {frozenset(second_terms)}
    for k, v in steps.items():  # tiny profile: id, triplet and KD weigh 1, the rehearsed view beta = 4.5
        own = v["id"] + v["tri"] + v.get("kd", 0.0)
        rehearsed = v.get("rehearsed_id", 0.0) + v.get("rehearsed_tri", 0.0) + v.get("rehearsed_kd", 0.0)
        assert v["loss"] == pytest.approx(own + 4.5 * rehearsed, rel=1e-4)


def test_random_rehearser_draws_each_epoch_among_all_earlier_domains():
    from types import SimpleNamespace

    from pad_bench.strategies.dask.plugins.random_rehearser import RandomRehearserPlugin
    from pad_bench.training.rehearser import KernelPredictor

    torch.manual_seed(0)
    first, second = (KernelPredictor().state_dict() for _ in range(2))
    plugin = RandomRehearserPlugin(seed=3, iters=1, batch=[2, 2], lr=1e-3, weights=None)
    plugin.state = first
    done = SimpleNamespace(exp_index=1, num_classes_per_exp=[4, 4])  # the last domain: nothing left to train
    plugin.after_training_exp(done)
    assert plugin.earlier == [first] and plugin.state is None
    plugin.state = second
    key = next(iter(first))

    def drawn(epoch: int) -> int:
        plugin.before_training_epoch(SimpleNamespace(exp_index=2, epoch=epoch, device="cpu"))
        w = plugin.current.state_dict()[key]
        return 0 if torch.equal(w, first[key]) else 1 if torch.equal(w, second[key]) else -1

    draws = [drawn(e) for e in range(20)]
    assert set(draws) == {0, 1}  # both domains' rehearsers are used (P(one only) = 2 / 2^20)
    assert [drawn(e) for e in range(20)] == draws  # the draw depends on seed, experience and epoch only


def test_compare_published_lists_the_dask_and_dafc_rows_beside_a_real_dask_run(synth_root, tmp_path, capsys):
    from pad_bench.cli import main
    from pad_bench.run import runner

    sets = tiny_sets(synth_root, **{"strategy.rehearser_iters": 2, "strategy.rehearser_batch": [4, 2]})
    run_dir = runner.execute(resolve_config(benchmark="synth", strategy="dask", sets=sets), tmp_path / "dask",
                             progress=False)
    capsys.readouterr()
    assert main(["compare", str(run_dir), "--out", str(tmp_path / "cmp"), "--published"]) == 0
    out = capsys.readouterr().out
    published = out[out.index("## Published results (not re-run)"):]
    assert out.index("| dask") < len(out) - len(published)  # the measured run comes first
    rows = {r.split("|")[1].strip(): r for r in published.splitlines() if r.startswith("| ")}
    assert "DASK authors' repository, README results figure" in rows["DASK (not re-run)"]
    assert "| 55.4 / 69.3 | 65.3 / 58.4 |" in rows["DASK (not re-run)"]
    dafc = [r for r in published.splitlines() if r.startswith("| DAFC (not re-run) |")]
    assert len(dafc) == 2 and all("LiuShiBen/DAFC at ef2f0c3" in r and "re-runnable as strategy dafc" in r
                                  for r in dafc)
    assert all("other stream" in r for r in [*dafc, rows["DASK (not re-run)"]])  # flagged: not the synthetic stream
