"""Bad values are refused with one line before anything starts (before the run directory exists)."""
import json

import pytest

from pad_bench.cli import main
from pad_bench.config import resolve_config
from pad_bench.errors import UserError
from pad_bench.run import runner

from conftest import tiny_sets


@pytest.mark.parametrize("key, value, expected", [
    ("train.epochs", 0, "train.epochs is 0; it must be >= 1"),
    ("train.epochs", -1, "train.epochs is -1"),
    ("train.epochs", [3, 0, 3, 3, 3], "train.epochs is 0"),
    ("strategy.lr", -0.001, "strategy.lr is -0.001; it must be >= 0"),
    ("train.batch_k", 0, "train.batch_k is 0; it must be >= 1"),
    ("train.batch_p", 1, "train.batch_p is 1; it must be >= 2"),
    ("train.eval_batch_size", 0, "train.eval_batch_size is 0"),
    ("train.num_workers", -1, "train.num_workers must be an int >= 0"),
    ("train.random_erasing", 1.5, "train.random_erasing is 1.5; it must be between 0 and 1"),
    ("train.pad", -2, "train.pad is -2"),
    ("seed", -1, "seed is -1; it must be between 0 and 4294967295"),
    ("seed", 2**32, "seed is 4294967296"),
    ("train.checkpoint_every_epochs", -1, "train.checkpoint_every_epochs is -1"),
])
def test_out_of_range_values_are_refused(key, value, expected):
    with pytest.raises(UserError, match=expected.replace("[", r"\[")):
        resolve_config(benchmark="synth", strategy="finetune", sets={key: value})


@pytest.mark.parametrize("key, value, expected", [
    ("strategy.lr", float("inf"), r"strategy.lr is inf; it must be >= 0 \(a finite number\)"),
    ("strategy.lr", float("nan"), r"strategy.lr is nan; it must be >= 0 \(a finite number\)"),
    ("train.random_erasing", float("nan"), "train.random_erasing is nan"),
    ("strategy.warmup_factor", -1, r"strategy.warmup_factor is -1; it must be > 0 and <= 1"),
    ("strategy.warmup_factor", 0.0, r"strategy.warmup_factor is 0.0; it must be > 0 and <= 1"),
    ("strategy.warmup_factor", 1.5, r"strategy.warmup_factor is 1.5"),
    ("strategy.gamma", 0.0, "strategy.gamma is 0.0; it must be > 0"),
    ("strategy.label_smoothing", 1.0, r"strategy.label_smoothing is 1.0; it must be >= 0 and < 1"),
    ("strategy.momentum", 1.1, "strategy.momentum is 1.1; it must be >= 0 and <= 1"),
    ("strategy.triplet_weight", -1.0, "strategy.triplet_weight is -1.0; it must be >= 0"),
    ("strategy.weight_decay", -1e-4, "strategy.weight_decay is -0.0001"),
    ("strategy.milestones", [24, -1], r"strategy.milestones is \[24, -1\]; it must be >= 0"),
])
def test_non_finite_and_shared_strategy_values_are_refused(key, value, expected):
    with pytest.raises(UserError, match=expected):
        resolve_config(benchmark="synth", strategy="finetune", sets={key: value})


@pytest.mark.parametrize("key, value, expected", [
    ("strategy.texkd_temperature", 0.0, "strategy.texkd_temperature is 0.0; it must be > 0"),
    ("strategy.stage1_warmup_epochs", -1, "strategy.stage1_warmup_epochs is -1"),
])
def test_shared_ranges_hold_for_a_methods_own_keys(key, value, expected):
    with pytest.raises(UserError, match=expected):
        resolve_config(benchmark="synth", strategy="pad", sets={key: value})


def test_an_infinite_learning_rate_is_refused_by_the_sweep_dry_run(tmp_path, capsys):
    spec = tmp_path / "inf.yaml"
    spec.write_text("benchmarks: [synth]\nstrategies: [finetune]\nset: {strategy.lr: .inf}\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "sw"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "strategy.lr is inf; it must be >= 0" in err
    assert not (tmp_path / "sw").exists()


def test_every_learning_rate_is_checked():
    with pytest.raises(UserError, match=r"strategy.prompt_lr is -0.005"):
        resolve_config(benchmark="synth", strategy="pad", sets={"strategy.prompt_lr": -5e-3})


def test_cli_seed_out_of_range_is_one_line(capsys):
    assert main(["run", "-b", "synth", "-s", "finetune", "--seed", str(2**32)]) == 2
    err = capsys.readouterr().err.strip()
    assert "seed is 4294967296" in err and len(err.splitlines()) == 1


def test_unknown_method_in_a_strategy_file_names_the_method(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "mine.yaml").write_text("strategy:\n  method: nosuchmethod\n")
    monkeypatch.setenv("PAD_BENCH_STRATEGY_PATH", str(tmp_path))
    with pytest.raises(UserError, match="strategy 'mine' uses unknown strategy method 'nosuchmethod'"):
        resolve_config(benchmark="synth", strategy="mine")  # synth's default profile 'tiny' is not in mine.yaml


@pytest.mark.parametrize("strategy, extra, expected", [
    ("finetune", {"train.batch_p": 9}, "train.batch_p is 9 but training domain synth_d1 has 8 identities"),
    ("finetune", {"protocol.ids_per_domain": 1}, "train.batch_p is 4 but training domain synth_d1 has 1 identities"),
    ("finetune", {"train.batch_k": 1000}, "train.batch_k is 1000; it must be between 1 and 5"),
    # a method's own P×K batches (DKP++'s rehearser) are checked the same way
    ("dkppp", {"strategy.rehearser_batch": [9, 2]},
     "strategy.rehearser_batch[0] is 9 but training domain synth_d1 has 8 identities"),
])
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_sampler_settings_are_checked_against_the_data_before_the_run_directory(synth_root, tmp_path, strategy,
                                                                                   extra, expected, dry_run, capsys,
                                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["run", "-b", "synth", "-s", strategy, "--out", str(tmp_path / "out"), "--name", "r", "--no-progress"]
    for k, v in tiny_sets(synth_root, **extra).items():
        args += ["--set", f"{k}={json.dumps(v)}"]
    assert main(args + (["--dry-run"] if dry_run else [])) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert expected in err and len(err.splitlines()) == 1 and not captured.out  # no plan table either
    assert not list(tmp_path.iterdir())  # the corrected command starts cleanly, with or without --resume


def test_a_negative_group_learning_rate_is_refused_by_the_optimizer_set_up(synth_root):
    cfg = resolve_config(benchmark="synth", strategy="finetune", sets=tiny_sets(synth_root))
    strategy_cls, bench = runner.prepare(cfg)
    model = strategy_cls.build_model(cfg, bench)
    strategy = strategy_cls(model=model, cfg=cfg, num_classes=bench.num_classes, class_offsets=bench.class_offsets)
    strategy.param_groups = lambda: [{"name": "all", "params": list(model.parameters()), "lr": -1.0,
                                      "weight_decay": 0.0}]
    with pytest.raises(UserError, match="learning rate -1.0 of parameter group 'all' must be >= 0"):
        strategy.make_optimizer()
