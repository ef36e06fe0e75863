"""Bad input and a hostile environment end with one line and exit 2, and nothing half-written (issue 25:
import errors in a user method, a refused non-run directory, full and read-only disks, unsafe weights)."""
from __future__ import annotations

import argparse
import errno
import os

import pytest
import torch

from pad_bench.cli import main
from pad_bench.errors import UserError
from pad_bench.io import atomic_write, atomic_write_text
from pad_bench.models.zoo import read_state_dict
from pad_bench.registry import STRATEGIES, load_strategy_class, unknown_name_error
from pad_bench.results.store import RunStore
from pad_bench.training.checkpoint import save_torch


def user_method(tmp_path, monkeypatch, name: str, source: str):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "strategy.py").write_text(source)
    (folder / f"{name}.yaml").write_text("base: finetune\n")
    monkeypatch.setenv("PAD_BENCH_STRATEGY_PATH", str(tmp_path))
    return folder / "strategy.py"


@pytest.mark.parametrize("source, line, error", [
    ("x = 1\ndef broken(:\n", 2, "SyntaxError: invalid syntax"),
    ("import os\nimport no_such_module_h25\n", 2, "ModuleNotFoundError: No module named 'no_such_module_h25'"),
    ("\n\n\nraise RuntimeError('bad\\nsecond line')\n", 4, "RuntimeError: bad"),
])
def test_an_error_importing_a_user_method_is_one_line(tmp_path, monkeypatch, capsys, source, line, error):
    name = f"broken{line}{len(source)}"
    path = user_method(tmp_path, monkeypatch, name, source)
    with pytest.raises(UserError) as e:
        load_strategy_class(name)
    assert str(e.value) == f"cannot import method '{name}': {path} line {line}: {error}"
    assert name not in STRATEGIES
    assert main(["sweep", str(_spec(tmp_path, name)), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path} line {line}" in err


def _spec(tmp_path, strategy: str):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"benchmarks: [synth]\nstrategies: [{strategy}]\n")
    return spec


def test_plural_of_a_kind_in_the_valid_list():
    assert "Valid strategies: a, b" in str(unknown_name_error("strategy", "c", ["a", "b"]))
    assert "Valid datasets: a" in str(unknown_name_error("dataset", "c", ["a"]))


def test_a_refused_non_run_directory_gets_no_lock_file(tmp_path):
    other = tmp_path / "existing"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds notes.txt but no config.yaml: it is not a pad-bench run"):
        RunStore.open(other, resume=False)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_unsafe_weights_are_refused_without_torchs_advice_to_allow_them(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        torch.save({"w": torch.zeros(1), "obj": argparse.Namespace(a=1)}, f)  # refused by weights_only
    with pytest.raises(UserError) as e:
        read_state_dict(path)
    message = str(e.value)
    assert "refused for safety" in message and "weights_only" not in message and "\n" not in message


def test_any_os_error_while_writing_names_the_path_and_leaves_nothing(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    ro = OSError(errno.EROFS, os.strerror(errno.EROFS))

    def fail(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("half")
        raise ro

    with pytest.raises(UserError, match=rf"^cannot write {target}: Read-only file system$"):
        atomic_write(target, fail)
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"] and target.read_text() == "old"
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=rf"^cannot write {tmp_path / 'file' / 'x.txt'}: "):
        atomic_write_text(tmp_path / "file" / "x.txt", "x")  # its folder is a file


# What torch.save raised on a 400 KiB tmpfs: its zip writer's RuntimeError, raised while handling the OSError.
UNEXPECTED_POS = "[enforce fail at inline_container.cc:672] . unexpected pos 349952 vs 349840"


@pytest.mark.parametrize("error, context", [
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), None),
    (RuntimeError(UNEXPECTED_POS), OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))),
    (RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file data/0: "
                  "file write failed"), None),
])
def test_a_full_disk_while_writing_a_checkpoint_is_one_line(tmp_path, monkeypatch, error, context):
    def full(obj, f, *args, **kwargs):
        f.write(b"partial")
        if context is None:
            raise error
        try:
            raise context
        except OSError:
            raise error

    monkeypatch.setattr(torch, "save", full)
    path = tmp_path / "checkpoints" / "step001.pt"
    with pytest.raises(UserError) as e:
        save_torch(path, {"x": torch.zeros(1)})
    message = str(e.value)
    assert "\n" not in message and str(path.parent) in message and "--resume" in message
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_run_into_an_unwritable_out_is_one_line_and_writes_nothing(tmp_path, capsys, synth_root):
    from conftest import tiny_sets

    blocker = tmp_path / "blocker"
    blocker.write_text("")  # --out under a file: mkdir fails like a read-only disk (tests run as root)
    sets = [f"--set={k}={v}" for k, v in tiny_sets(synth_root).items()]
    argv = ["run", "-b", "synth", "-s", "finetune", "--out", str(blocker / "out"), "--no-progress", *sets]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot create run directory {blocker / 'out'}" in err
    assert blocker.read_text() == ""


@pytest.mark.parametrize("command, advice", [("sweep", "the same command (finished runs are skipped"),
                                             ("run", "the same command plus --resume")])
def test_ctrl_c_advises_what_the_command_supports(monkeypatch, capsys, command, advice):
    def interrupted(args):
        raise KeyboardInterrupt

    argv = ["sweep", "spec.yaml"] if command == "sweep" else ["run", "-b", "synth", "-s", "finetune"]
    monkeypatch.setattr("pad_bench.cli.build_parser", _parser_calling(interrupted))
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err == f"pad-bench: interrupted; continue with {err.split('continue with ')[1]}" and advice in err
    assert command == "run" or "--resume" not in err


def _parser_calling(func):
    """The CLI's parser with every subcommand calling func."""
    from pad_bench.cli import build_parser

    def build():
        parser = build_parser()
        for action in parser._subparsers._group_actions:
            for sub in action.choices.values():
                sub.set_defaults(func=func)
        return parser
    return build


def test_an_os_error_outside_the_writers_is_one_line(monkeypatch, capsys):
    def denied(args):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/srv/results/x.log")

    monkeypatch.setattr("pad_bench.cli.build_parser", _parser_calling(denied))
    assert main(["list"]) == 2
    assert capsys.readouterr().err == "pad-bench: error: /srv/results/x.log: Permission denied\n"
