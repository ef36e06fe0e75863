"""The engine knows no method by name: no identifier or string literal under pad_bench/ (the
`strategies` and `benchmarks` links aside) names a method. A method tells the engine what it is
through what it declares (its Params, `sees_union`, `experience_settings`, its YAML's `demo:` flag).

Docstrings and comments are not checked: some cite the released code whose data layout or recipe
they reproduce."""
import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

import pad_bench

METHOD_NAMES = ("pad", "lstkc", "dkp", "paema", "finetune", "joint", "lstkcpp", "dkppp", "dask", "dafc", "l2p",
                "dualprompt", "coda", "ewc", "lwf", "si", "mas")
WORD = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(METHOD_NAMES) + r")(?![A-Za-z0-9_])", re.IGNORECASE)
PROJECT = re.compile(r"pad[-_]bench", re.IGNORECASE)  # the project's own name
PACKAGE = Path(pad_bench.__file__).resolve().parent
LINKS = ("strategies", "benchmarks")

# file (relative to pad_bench/) -> the words it may use and why; nothing else is tolerated
ALLOWED = {
    "config.py": ({"pad"}, "train.pad: the padding of the crop augmentation"),
    "data/stream.py": ({"pad"}, "train.pad handed to the transforms"),
    "data/transforms.py": ({"pad"}, "the crop augmentation's padding"),
    "data/tensor_transforms.py": ({"pad"}, "the crop augmentation's padding"),
    "metrics/lifelong.py": ({"joint"}, "UNION_LABEL, the word of joint training that metrics.csv records"),
    "results/published.py": ({"pad", "lstkc", "dafc"}, "the protocol keys of the packaged published.csv"),
    "training/params.py": ({"finetune"}, "a link to the base strategy's page, docs/methods/finetune.md"),
}


def code_names(source: str) -> list[tuple[int, str]]:
    """(line, word) for every method name in an identifier or a string literal that is not a docstring."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.add((first.lineno, first.col_offset))
    hits = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME or (tok.type == tokenize.STRING and tok.start not in docstrings):
            hits += [(tok.start[0], m.group(1).lower()) for m in WORD.finditer(PROJECT.sub("", tok.string))]
    return hits


def test_the_scan_finds_names_in_code_and_skips_docstrings_comments_and_the_project_name():
    source = '"""PAD."""\ndef f(joint):  # lstkc\n    """dkp"""\n    return "x.pad" + "pad-bench" + f"{LWF}"\n'
    assert code_names(source) == [(2, "joint"), (4, "pad"), (4, "lwf")]
    assert code_names("pad_multi_split = PAD_SEED\n") == []  # a longer identifier is another word


def test_no_method_name_in_the_engine():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in LINKS:
            continue
        allowed = ALLOWED.get(rel.as_posix(), (set(), ""))[0]
        found += [f"pad_bench/{rel.as_posix()}:{line}: {word}" for line, word in
                  code_names(path.read_text(encoding="utf-8")) if word not in allowed]
    assert not found, "the engine names a method:\n" + "\n".join(found)


def test_the_allow_list_holds_only_what_is_used():
    for rel, (words, _) in ALLOWED.items():
        used = {word for _, word in code_names((PACKAGE / rel).read_text(encoding="utf-8"))}
        assert words <= used, f"{rel}: {sorted(words - used)} no longer used; drop it from ALLOWED"


def base_row(position: int) -> dict:
    """A row as ReIDStrategy.experience_settings reports it."""
    return {"domain": f"d{position}", "position": position, "epochs": 2, "milestones": [], "schedule_step": "before_epoch",
            "lr": {"head": 0.5}, "batch_p": 4, "batch_k": 2, "sampler": "pk", "random_erasing": 0.5,
            "precision": "fp32", "kd": position > 0, "unfreeze": "full", "trainable_blocks": None,
            "trainable_params": 10}


def test_the_plan_shows_the_base_columns_then_the_methods_own_keys_in_its_order():
    from pad_bench.cli import format_plan

    rows = [{**base_row(i), "zeta": i, "alpha_steps": [1, 2], "unused": None} for i in range(2)]
    header, first, second = format_plan(rows).splitlines()
    # trainable_blocks and 'unused' are None in every row: left out; batch_p x batch_k is one column
    assert header.split() == ["pos", "domain", "epochs", "milestones", "LR", "per", "group", "batch", "RE", "p",
                              "precision", "KD", "unfreeze", "trainable", "zeta", "alpha", "steps"]
    assert first.split() == ["0", "d0", "2", "-", "head=0.5", "4x2", "0.5", "fp32", "off", "full", "10", "0", "1,2"]
    assert second.split()[-5:] == ["on", "full", "10", "1", "1,2"]


def test_demo_runs_the_methods_whose_yaml_flags_them(tmp_path, monkeypatch):
    from pad_bench.demo import demo_strategies
    from pad_bench.errors import UserError

    assert demo_strategies() == ["finetune", "pad"]
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "strategy.py").write_text(
        "from pad_bench.registry import register_strategy\nfrom pad_bench.training.base import ReIDStrategy\n"
        "register_strategy('mine')(type('Mine', (ReIDStrategy,), {}))\n")
    (folder / "mine.yaml").write_text("base: finetune\ndemo: headline\n")
    monkeypatch.setenv("PAD_BENCH_STRATEGY_PATH", str(tmp_path))
    assert demo_strategies() == ["finetune", "mine", "pad"]
    (folder / "mine.yaml").write_text("base: finetune\ndemo: yes\n")
    with pytest.raises(UserError, match=r"mine\.yaml: demo: True is not a demo flag; use headline"):
        demo_strategies()


def test_a_method_that_sees_the_union_trains_one_step_labelled_as_such():
    from pad_bench.metrics.lifelong import UNION_LABEL
    from pad_bench.registry import load_strategy_class

    assert load_strategy_class("joint").sees_union and not load_strategy_class("finetune").sees_union
    assert UNION_LABEL == "joint"  # what run directories record; earlier ones must still read the same
