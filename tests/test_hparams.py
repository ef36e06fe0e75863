"""Typed hyperparameters: every method declares its keys, and a wrong key, type or range in any layer
(a user's YAML, --set, a sweep spec, demo) stops with one line naming the key, the file and the
closest valid key, exit 2, before any run directory exists."""
import re
from typing import Literal

import pytest

from pad_bench.cli import main
from pad_bench.config import hparams_of, list_strategies, resolve_config
from pad_bench.errors import UserError
from pad_bench.hparams import HParams, hp
from pad_bench.paths import PROJECT_ROOT
from pad_bench.registry import METHODS, load_strategy_class

MYPAD_STRATEGY = ("from pad_bench.registry import register_strategy\n"
                  "from pad_bench.strategies.pad.strategy import PAD\n"
                  "register_strategy('mypad')(type('MyPAD', (PAD,), {}))\n")


def _mypad(tmp_path, monkeypatch, strategy_section: str):
    """A user's method folder `mypad/` built on PAD, with the given `strategy:` lines."""
    folder = tmp_path / "methods" / "mypad"
    folder.mkdir(parents=True)
    (folder / "strategy.py").write_text(MYPAD_STRATEGY)
    (folder / "mypad.yaml").write_text(f"base: pad\nstrategy:\n{strategy_section}")
    monkeypatch.setenv("PAD_BENCH_STRATEGY_PATH", str(tmp_path / "methods"))
    monkeypatch.chdir(tmp_path)
    return folder / "mypad.yaml"


@pytest.mark.parametrize("line, expected", [
    ("  texkd_wieght: 5.0\n", "unknown hyperparameter 'strategy.texkd_wieght'; did you mean 'strategy.texkd_weight'?"),
    ("  texkd_weight: -1.0\n", "strategy.texkd_weight is -1.0; it must be >= 0"),
    ("  texkd_extra_classes: 2.5\n", "strategy.texkd_extra_classes is 2.5; it must be >= 0 (an int)"),
    ("  featkd_reduction: max\n", "strategy.featkd_reduction is 'max'; it must be one of mean, sum"),
    ("  ema_alpha: .nan\n", "strategy.ema_alpha is nan"),
])
@pytest.mark.parametrize("command", [
    ["run", "-b", "synth", "-s", "mypad"],
    ["run", "-b", "synth", "-s", "mypad", "--dry-run"],
    ["sweep", "SPEC", "--dry-run"],
    ["sweep", "SPEC"],
    ["demo", "--strategies", "mypad"],
])
def test_a_bad_hyperparameter_in_a_user_yaml_is_one_line_exit_2(line, expected, command, tmp_path, monkeypatch,
                                                                   capsys):
    yaml_file = _mypad(tmp_path, monkeypatch, line)  # keys the `tiny` profile leaves alone
    spec = tmp_path / "spec.yaml"
    spec.write_text("benchmarks: [synth]\nstrategies: [mypad]\n")
    args = [str(spec) if a == "SPEC" else a for a in command] + ["--out", str(tmp_path / "out")]
    before = set(tmp_path.iterdir())
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert expected in err and str(yaml_file) in err  # the key, the file, the closest valid key
    assert set(tmp_path.iterdir()) == before  # no run or sweep directory


def test_set_and_profiles_are_checked_like_files():
    with pytest.raises(UserError, match=r"--set: unknown hyperparameter 'strategy.rstkt_wieght'; did you mean "
                                        r"'strategy.rstkt_weight'\?"):
        resolve_config(benchmark="synth", strategy="lstkc", sets={"strategy.rstkt_wieght": 2.0})
    with pytest.raises(UserError, match=r"--set: strategy.lr is inf; it must be >= 0"):
        resolve_config(benchmark="synth", strategy="finetune", sets={"strategy.lr": float("inf")})
    with pytest.raises(UserError, match=r"--set: strategy.dkp_proto_bn is 'training'; it must be one of eval, train"):
        resolve_config(benchmark="synth", strategy="dkp", sets={"strategy.dkp_proto_bn": "training"})


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_declares_what_its_yamls_set(method):
    """Each packaged strategy YAML and profile resolves against its method's declaration, and each
    declared key has a type, a one-line doc and a default of that type (checked at class creation)."""
    params = hparams_of(method)
    assert issubclass(params, HParams)
    assert all(spec.doc and "\n" not in spec.doc for spec in params.specs.values())
    for name in list_strategies():
        cfg = resolve_config(benchmark="aka-order1", strategy=name)
        if cfg["strategy"]["method"] == method:
            assert set(cfg["strategy"]) == set(params.specs)


@pytest.mark.parametrize("method", [m for m in METHODS.names() if "Params" in vars(load_strategy_class(m))])
def test_method_docs_page_names_every_own_hyperparameter(method):
    """docs/methods/<method>.md names each hyperparameter the method adds to its base's."""
    page = PROJECT_ROOT / "docs" / "methods" / f"{method.replace('_', '-')}.md"  # coda_prompt: coda-prompt.md
    params = hparams_of(method)
    base = next(c for c in params.__mro__[1:] if issubclass(c, HParams) and c.specs is not params.specs)
    own = set(params.specs) - set(base.specs)
    text = page.read_text()
    missing = sorted(k for k in own if not re.search(rf"(?<![\w.-]){k}(?![\w-])|strategy\.{k}\b", text))
    assert not missing, f"{page} does not name {missing}"


def test_declaration_types_ranges_and_defaults():
    class Demo(HParams):
        w: float = hp(1.0, "a weight", ge=0)
        t: float = hp(0.1, "a temperature", gt=0)
        n: int | None = hp(None, "a count or null", ge=1)
        mode: Literal["a", "b"] = hp("a", "a choice")
        steps: list[int] = hp([3], "per-domain milestones", per_domain=True, ge=0)

    class Child(Demo):
        w = 2.0  # a new default for an inherited key

    assert Child.defaults() == {"w": 2.0, "t": 0.1, "n": None, "mode": "a", "steps": [3]}
    ok = {"w": 1, "t": 1e-9, "n": 3, "mode": "b", "steps": {"msmt17": [1, 2], "default": [4]}}
    Child.check(ok)
    assert Child(ok).steps == {"msmt17": [1, 2], "default": [4]} and Child({}).w == 2.0
    Child.check({"steps": [[1], [2, 3]]})  # one list per domain
    for bad, words in [({"w": -1e-12}, ">= 0"), ({"t": 0.0}, "> 0"), ({"n": 0}, ">= 1"), ({"n": 1.0}, "an int"),
                       ({"mode": "c"}, "one of a, b"), ({"w": True}, "finite number"), ({"w": float("nan")}, ">= 0"),
                       ({"steps": [[-1]]}, "list"), ({"steps": {"msmt17": [1]}}, "list")]:
        with pytest.raises(UserError, match=f"src: {next(iter(bad))}"):
            Child.check(bad, origin={f"{next(iter(bad))}": "src"}, prefix="")
        assert words in Child.specs[next(iter(bad))].describe() or words == "list"
    with pytest.raises(TypeError, match="default -1"):
        type("Bad", (HParams,), {"__annotations__": {"x": float}, "x": hp(-1.0, "x", ge=0)})


def test_list_params_prints_the_declared_table(capsys):
    assert main(["list", "--params", "pad-s2"]) == 0
    out = capsys.readouterr().out
    assert "method 'pad'" in out and "| texkd_weight | float | 0.5 | >= 0 |" in out
    assert "| featkd_reduction | mean | sum | null |" in out.replace("\\|", "|")
