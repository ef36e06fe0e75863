import pytest

from pad_bench.config import flatten, parse_set, per_domain, resolve_config
from pad_bench.errors import UserError


def test_precedence_benchmark_strategy_profile_set():
    cfg = resolve_config(benchmark="synth", strategy="finetune")
    assert cfg["protocol"]["image_size"] == [64, 32]          # from the benchmark
    assert cfg["strategy"]["label_smoothing"] == 0.1          # from the strategy YAML
    assert cfg["model"]["name"] == "clip-tiny"                # the benchmark's default profile
    assert cfg["profile"] == "tiny"
    cfg = resolve_config(benchmark="synth", strategy="finetune", sets={"train.epochs": 2, "seed": 7})
    assert cfg["train"]["epochs"] == 2 and cfg["seed"] == 7   # --set wins over the profile


def test_real_benchmark_uses_paper_budget_and_inherits_base():
    cfg = resolve_config(benchmark="aka-order1", strategy="joint")
    assert cfg["benchmark"]["domains"][0] == "market1501"
    assert cfg["strategy"]["method"] == "joint" and cfg["strategy"]["name"] == "joint"
    assert cfg["strategy"]["milestones"] == [16, 24]          # joint.yaml overrides its base
    assert cfg["strategy"]["lr"] == 5.0e-6                    # inherited from finetune.yaml
    assert cfg["model"]["name"] == "clip-vit-b16"


def test_unknown_key_suggests_closest():
    with pytest.raises(UserError, match=r"unknown config key 'train.epoch'.*'train.epochs'"):
        resolve_config(benchmark="synth", strategy="finetune", sets={"train.epoch": 3})


def test_type_errors_name_the_key():
    with pytest.raises(UserError, match="train.epochs"):
        resolve_config(benchmark="synth", strategy="finetune", sets={"train.epochs": "abc"})
    with pytest.raises(UserError, match="train.batch_k"):
        resolve_config(benchmark="synth", strategy="finetune", sets={"train.batch_k": 2.5})


def test_unknown_names_list_valid_ones():
    with pytest.raises(UserError, match=r"unknown strategy 'fintune'.*Did you mean 'finetune'"):
        resolve_config(benchmark="synth", strategy="fintune")
    with pytest.raises(UserError, match=r"unknown benchmark 'aka-order3'.*aka-order1"):
        resolve_config(benchmark="aka-order3", strategy="finetune")
    with pytest.raises(UserError, match="no profile 'huge'"):
        resolve_config(benchmark="synth", strategy="finetune", profile="huge")


def test_cross_field_validation():
    with pytest.raises(UserError, match="train.precision must be one of fp32, bf16, fp16, got 'fp64'"):
        resolve_config(benchmark="synth", strategy="finetune", sets={"train.precision": "fp64"})
    with pytest.raises(UserError, match="train.epochs has 2 values"):
        resolve_config(benchmark="synth", strategy="finetune", sets={"train.epochs": [1, 2]})
    with pytest.raises(UserError, match="unseen_protocol"):
        resolve_config(benchmark="synth", strategy="finetune", sets={"protocol.unseen_protocol": "many"})


def test_parse_set_and_helpers():
    assert parse_set(["a.b=3", "c=[1, 2]", "d=x", "lr=3e-3", "n=inf"]) == {
        "a.b": 3, "c": [1, 2], "d": "x", "lr": 0.003, "n": "inf"}
    with pytest.raises(UserError, match="key=value"):
        parse_set(["novalue"])
    assert flatten({"a": {"b": 1, "c": {"d": [1]}}}) == {"a.b": 1, "a.c.d": [1]}
    assert per_domain([5, 6, 7], 1) == 6 and per_domain([5, 6], 9) == 6 and per_domain(4, 3) == 4


def test_base_schedule_is_pads_warmup_multistep():
    from types import SimpleNamespace

    from pad_bench.training.base import ReIDStrategy
    from pad_bench.training.params import ReIDParams

    hp = ReIDParams({"milestones": [18, 26], "warmup_epochs": 10, "warmup_factor": 0.1, "gamma": 0.1})
    fake = SimpleNamespace(hp=hp, exp_index=0)
    factors = [ReIDStrategy.lr_factor(fake, e) for e in range(30)]  # 0-based epochs
    assert factors[0] == pytest.approx(0.19)  # docs/methods/pad.md#optimisation: the first epoch runs at 0.19
    assert factors[8] == pytest.approx(0.91) and factors[9] == 1.0
    assert factors[17] == pytest.approx(0.1) and factors[25] == pytest.approx(0.01)


def test_a_recipe_layer_is_merged_before_the_file_that_uses_it(tmp_path, monkeypatch):
    folder = tmp_path / "tinyft"
    folder.mkdir()
    (folder / "strategy.py").write_text(
        "from pad_bench.registry import register_strategy\nfrom pad_bench.training.base import ReIDStrategy\n"
        "register_strategy('tinyft')(type('TinyFT', (ReIDStrategy,), {}))\n")
    (folder / "tinyft.yaml").write_text(
        "base: finetune\nuse: [cpu-tiny]\ntrain:\n  epochs: 7\nprofiles:\n  big:\n    use: [clip-reid]\n")
    monkeypatch.setenv("PAD_BENCH_STRATEGY_PATH", str(tmp_path))
    cfg = resolve_config(benchmark="aka-order1", strategy="tinyft")
    # cpu-tiny's values over finetune's, then the file's own epochs over cpu-tiny's 30
    assert (cfg["model"]["name"], cfg["strategy"]["lr"], cfg["train"]["epochs"]) == ("clip-tiny", 3e-4, 7)
    big = resolve_config(benchmark="aka-order1", strategy="tinyft", profile="big")
    assert big["model"]["name"] == "clip-vit-b16" and big["train"]["epochs"]["first"] == 30


def test_names_are_set_once(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "finetune.yaml").write_text("description: a second finetune\n")
    monkeypatch.setenv("PAD_BENCH_STRATEGY_PATH", str(tmp_path))
    with pytest.raises(UserError, match="strategy 'finetune' is defined twice"):
        resolve_config(benchmark="synth", strategy="finetune")
    (folder / "finetune.yaml").write_text("use: [no-such-recipe]\n")
    (folder / "finetune.yaml").rename(folder / "mine.yaml")
    with pytest.raises(UserError, match="unknown recipe 'no-such-recipe'"):
        resolve_config(benchmark="synth", strategy="mine")


def test_baselines_step_the_schedule_after_each_epoch_as_the_lstkc_family():
    from types import SimpleNamespace

    from pad_bench.training.base import ReIDStrategy
    from pad_bench.training.params import ReIDParams

    # LSTKC/DKP code: WarmupMultiStepLR([30], warmup_factor 0.01, warmup 10), lr_scheduler.step() after
    # each epoch, so epoch e (0-based) trains at last_epoch = e: 0.01 * (1 - e/10) + e/10 during warm-up
    hp = {"milestones": [30], "warmup_epochs": 10, "warmup_factor": 0.01, "gamma": 0.1,
          "schedule_step": "after_epoch"}
    after = [ReIDStrategy.lr_factor(SimpleNamespace(hp=ReIDParams(hp), exp_index=0), e) for e in range(60)]
    assert after[0] == pytest.approx(0.01) and after[1] == pytest.approx(0.109)
    assert after[9] == pytest.approx(0.901) and after[10] == 1.0
    assert after[29] == 1.0 and after[30] == pytest.approx(0.1)
    before = [ReIDStrategy.lr_factor(SimpleNamespace(hp=ReIDParams({**hp, "schedule_step": "before_epoch"}),
                                                     exp_index=0), e) for e in range(60)]
    assert before[0] == pytest.approx(0.109) and before[29] == pytest.approx(0.1)  # one epoch ahead
    with pytest.raises(UserError, match="schedule_step is 'never'; it must be one of before_epoch, after_epoch"):
        resolve_config(benchmark="synth", strategy="lstkc", sets={"strategy.schedule_step": "never"})


@pytest.mark.parametrize("strategy, profile, step, sampler", [
    ("lstkc", None, "after_epoch", "multi_gallery"),
    ("dkp", None, "after_epoch", "multi_gallery"),
    ("finetune", "resnet", "after_epoch", "multi_gallery"),
    ("joint", "resnet", "after_epoch", "multi_gallery"),
    ("finetune", None, "before_epoch", "pk"),
    ("pad", None, "before_epoch", "pk"),
])
def test_schedule_step_and_sampler_defaults(strategy, profile, step, sampler):
    cfg = resolve_config(benchmark="aka-order1", strategy=strategy, profile=profile)
    assert cfg["strategy"].get("schedule_step", "before_epoch") == step
    assert cfg["train"]["sampler"] == sampler
