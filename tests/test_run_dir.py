"""The run directory: exclusive creation, the lock, names, start-up errors, compare/plot input checks."""
import json
import subprocess
import sys

import pytest

from fake_runs import write_fake_run
from pad_bench.cli import main
from pad_bench.config import resolve_config
from pad_bench.errors import UserError
from pad_bench.results.compare import compare_runs
from pad_bench.results.store import RunStore
from pad_bench.run import runner

from conftest import tiny_sets


def test_a_locked_run_directory_refuses_a_second_run_naming_the_holder(tmp_path):
    import os

    first = RunStore.open(tmp_path / "r", resume=False)
    try:
        with pytest.raises(UserError, match=rf"in use by pid {os.getpid()} on .*; wait for it"):
            RunStore.open(tmp_path / "r", resume=True)
    finally:
        first.close()
    RunStore.open(tmp_path / "r", resume=True).close()  # released: the next one gets it


def test_default_names_differ_for_different_overrides():
    cfg = resolve_config(benchmark="synth", strategy="finetune")
    plain = runner.run_name(cfg)
    assert plain == "finetune-synth-clip-tiny-s0"
    a, b = runner.run_name(cfg, {"train.epochs": 2}), runner.run_name(cfg, {"train.epochs": 3})
    assert a != b and a.startswith(plain + "-") and len(a) == len(plain) + 9
    assert runner.run_name(cfg, {"train.epochs": 2}) == a  # stable: the same command resumes the same run
    assert runner.run_name(cfg, {"seed": 0}) == plain  # already in the name


@pytest.mark.parametrize("name", ["../..", "..", "a/b", ".hidden"])
def test_name_cannot_leave_out(tmp_path, name, capsys):
    out = tmp_path / "deep" / "out"
    assert main(["run", "-b", "synth", "-s", "finetune", "--out", str(out), "--name", name]) == 2
    assert "--name" in capsys.readouterr().err
    assert not (tmp_path / "deep").exists()


def test_start_up_error_leaves_no_half_made_directory(synth_root, tmp_path, monkeypatch):
    def no_space(self, cfg):
        raise UserError("no space left on the disk")

    monkeypatch.setattr(RunStore, "write_config", no_space)
    cfg = resolve_config(benchmark="synth", strategy="finetune", sets=tiny_sets(synth_root))
    with pytest.raises(UserError, match="no space left"):
        runner.execute(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_a_directory_that_is_not_a_run_is_not_touched(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds notes.txt but no config.yaml"):
        RunStore.open(tmp_path / "r", resume=True)
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"


def test_resume_of_a_run_killed_before_its_config_starts_it(tmp_path, capsys):
    (tmp_path / "r" / "checkpoints").mkdir(parents=True)
    (tmp_path / "r" / "manifest.csv").write_text("half")  # what a kill at start-up leaves
    store = RunStore.open(tmp_path / "r", resume=True)
    store.close()
    assert not store.resuming and "starting it" in capsys.readouterr().out
    assert not (tmp_path / "r" / "manifest.csv").exists()


def test_resume_of_a_run_that_does_not_exist_starts_it_quietly(tmp_path, capsys):
    store = RunStore.open(tmp_path / "r", resume=True)  # what every sweep run does
    store.close()
    assert not store.resuming and store.created and capsys.readouterr().out == ""


@pytest.mark.slow
def test_two_simultaneous_runs_on_one_directory_exactly_one_proceeds(synth_root, tmp_path):
    args = [sys.executable, "-m", "pad_bench.cli", "run", "-b", "synth", "-s", "finetune", "--out", str(tmp_path),
            "--name", "same", "--no-progress"]
    one_domain = {"benchmark.domains": ["synth_d1"], "benchmark.unseen": []}  # the winner's run is short
    for k, v in tiny_sets(synth_root, **one_domain).items():
        args += ["--set", f"{k}={json.dumps(v)}"]
    procs = [subprocess.Popen(args + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for extra in ([], ["--resume"])]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    err = next(e for rc, e in results if rc == 2).strip().splitlines()
    assert len(err) == 1 and ("in use by pid" in err[0] or "already exists" in err[0])
    assert (tmp_path / "same" / "summary.json").is_file()


# ---- compare and plot inputs --------------------------------------------------------------
def _truncate(run_dir, last_step):
    import pandas as pd

    table = pd.read_csv(run_dir / "metrics.csv")
    table[table["step"] <= last_step].to_csv(run_dir / "metrics.csv", index=False)


def test_compare_refuses_an_unfinished_run_or_lists_it_apart(tmp_path):
    a = write_fake_run(tmp_path, "a", seed=0)
    b = write_fake_run(tmp_path, "b", seed=1)
    _truncate(b, 2)  # killed after step 2 of 3
    with pytest.raises(UserError, match=r"run 'b' did not finish \(last step 2 of 3\)"):
        compare_runs([a, b], tmp_path / "out")
    written = compare_runs([a, b], tmp_path / "out", skip_unfinished=True)
    md = written["table.md"].read_text()
    assert "| finetune (resnet50) | resnet50 | 1 |" in md and "run 'b' is unfinished (step 2 of 3)" in md


def test_compare_refuses_one_seed_twice(tmp_path):
    a, b = write_fake_run(tmp_path, "a", seed=0), write_fake_run(tmp_path, "b", seed=0)
    with pytest.raises(UserError, match="'a' and 'b' are both seed 0 of finetune"):
        compare_runs([a, b], tmp_path / "out")


def test_compare_out_must_be_a_folder_outside_the_runs(tmp_path):
    a = write_fake_run(tmp_path, "a")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        compare_runs([a], tmp_path / "file.txt")
    (a / "plots").mkdir()
    (a / "plots" / "curves.png").write_bytes(b"the run's own plot")
    with pytest.raises(UserError, match="inside run directory"):
        compare_runs([a], a / "plots")
    assert (a / "plots" / "curves.png").read_bytes() == b"the run's own plot"
    assert main(["compare", str(a), "--out", str(tmp_path / "file.txt")]) == 2


def test_plot_of_an_empty_metrics_file_is_one_line(tmp_path, capsys):
    a = write_fake_run(tmp_path, "a")
    for content in ("", "step,trained_domain,eval_domain,eval_set,mAP,mINP,R1,R5,R10\n"):
        (a / "metrics.csv").write_text(content)
        assert main(["plot", str(a)]) == 2
        err = capsys.readouterr().err.strip()
        assert "metrics.csv" in err and ("no result" in err or "empty" in err)
        assert len(err.splitlines()) == 1


def test_plot_warns_on_a_truncated_metrics_file(tmp_path, caplog):
    import pandas as pd

    from pad_bench.results.plots import plot_run

    a = write_fake_run(tmp_path, "a")
    table = pd.read_csv(a / "metrics.csv")
    table.drop(index=len(table) - 1).to_csv(a / "metrics.csv", index=False)  # the last row is lost
    with caplog.at_level("WARNING", logger="pad_bench"):
        plot_run(a)
    assert "looks truncated: 1 result row(s) missing (first: step 3: grid (unseen))" in caplog.text
