"""Resume after a kill anywhere: between the last checkpoint and the results files, inside an
experience (bitwise on CPU), with changed or moved data, stale temp files, foreign checkpoints."""
import csv
import io
import json
import os
import shutil
import stat

import pytest
import torch

from pad_bench.cli import main
from pad_bench.config import resolve_config
from pad_bench.results.store import RunStore
from pad_bench.run import runner
from pad_bench.training.base import ReIDStrategy
from pad_bench.training.checkpoint import list_checkpoints

from conftest import tiny_sets

pytestmark = pytest.mark.slow
EPOCHS = {"finetune": 2, "pad": 2, "lstkc": 2}


def _cfg(root, strategy="finetune"):
    return resolve_config(benchmark="synth", strategy=strategy,
                          sets=tiny_sets(root, **{"train.epochs": EPOCHS.get(strategy, 1),
                                                  "train.checkpoint_every_epochs": 1}))


def _results(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("run", "timing"):
        summary.pop(key)
    return (run_dir / "metrics.csv").read_text(), summary


def _losses(run_dir):
    return (run_dir / "losses.csv").read_text()


def _experiences(losses):
    """The experiences losses.csv has rows of."""
    return {row["experience"] for row in csv.DictReader(io.StringIO(losses))}


def _final_weights(run_dir):
    return torch.load(list_checkpoints(run_dir / "checkpoints")[-1], weights_only=True)["strategy"]["model"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (the tests in crash_resume.py use real SIGKILLs)."""


@pytest.fixture(scope="module")
def full_runs(synth_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    return {s: runner.execute(_cfg(synth_root, s), root / s, progress=False) for s in EPOCHS}


def test_a_kill_after_the_last_checkpoint_loses_nothing(synth_root, full_runs, tmp_path, monkeypatch):
    real = RunStore.write_metrics

    def die_on_last_step(self, rows):
        if max(r["step"] for r in rows) == 2:
            raise Killed  # the final checkpoint exists, metrics.csv and summary.json are still at step 1
        real(self, rows)

    monkeypatch.setattr(RunStore, "write_metrics", die_on_last_step)
    with pytest.raises(Killed):
        runner.execute(_cfg(synth_root), tmp_path / "r", progress=False)
    monkeypatch.setattr(RunStore, "write_metrics", real)
    runner.execute(_cfg(synth_root), tmp_path / "r", resume=True, progress=False)
    assert _results(tmp_path / "r") == _results(full_runs["finetune"])
    assert _losses(tmp_path / "r") == _losses(full_runs["finetune"])
    assert list((tmp_path / "r" / "plots").glob("*.png"))


@pytest.mark.parametrize("strategy", ["finetune", "pad"])
def test_a_kill_between_experiences_resumes_with_every_loss_row(synth_root, full_runs, tmp_path, monkeypatch,
                                                               strategy):
    real = runner.save_checkpoint

    def die_after_experience_1(folder, step, state, epoch=None):
        path = real(folder, step, state, epoch)
        if step == 1 and epoch is None:
            raise Killed  # experience 1 is done and its rows are in losses.csv; experience 2 has not begun
        return path

    monkeypatch.setattr(runner, "save_checkpoint", die_after_experience_1)
    with pytest.raises(Killed):
        runner.execute(_cfg(synth_root, strategy), tmp_path / "r", progress=False)
    monkeypatch.setattr(runner, "save_checkpoint", real)
    assert _experiences(_losses(tmp_path / "r")) == {"1"}
    runner.execute(_cfg(synth_root, strategy), tmp_path / "r", resume=True, progress=False)
    full = _losses(full_runs[strategy])
    assert _experiences(full) == {"1", "2"}
    assert _losses(tmp_path / "r") == full


@pytest.mark.parametrize("strategy", list(EPOCHS))
def test_a_kill_inside_an_experience_resumes_bitwise(synth_root, full_runs, tmp_path, monkeypatch, strategy):
    # bitwise: both runs on this machine, with this process's thread count, in fp32 (docs/runs.md)
    real = runner.save_checkpoint

    def die_inside_step_2(folder, step, state, epoch=None):
        path = real(folder, step, state, epoch)
        if step == 1 and epoch == 1:
            raise Killed  # after epoch 1 of experience 2 (PAD: the EMA teacher is live)
        return path

    monkeypatch.setattr(runner, "save_checkpoint", die_inside_step_2)
    with pytest.raises(Killed):
        runner.execute(_cfg(synth_root, strategy), tmp_path / "r", progress=False)
    monkeypatch.setattr(runner, "save_checkpoint", real)
    assert list_checkpoints(tmp_path / "r" / "checkpoints")[-1].name == "step002-epoch001.pt"
    epochs_run = []
    real_epoch = ReIDStrategy._before_training_epoch
    monkeypatch.setattr(ReIDStrategy, "_before_training_epoch",
                        lambda self, **kw: epochs_run.append(self.epoch) or real_epoch(self, **kw))
    runner.execute(_cfg(synth_root, strategy), tmp_path / "r", resume=True, progress=False)
    assert epochs_run == [1]  # only the second epoch of experience 2 was trained again
    assert _results(tmp_path / "r") == _results(full_runs[strategy])
    assert _losses(tmp_path / "r") == _losses(full_runs[strategy])
    expected, got = _final_weights(full_runs[strategy]), _final_weights(tmp_path / "r")
    assert expected.keys() == got.keys()
    assert all(torch.equal(v, got[k]) if isinstance(v, torch.Tensor) else v == got[k] for k, v in expected.items())


def _run_args(root, out, name="r"):
    args = ["run", "-b", "synth", "-s", "finetune", "--out", str(out), "--name", name, "--no-progress"]
    for k, v in tiny_sets(root).items():
        args += ["--set", f"{k}={json.dumps(v)}"]
    return args


def test_resume_checks_image_content_follows_moved_data_and_cleans_temp_files(synth_root, tmp_path, monkeypatch,
                                                                               capsys):
    old_umask = os.umask(0o022)
    try:
        data = tmp_path / "data"
        shutil.copytree(synth_root, data)  # copy2: sizes and mtimes kept
        real = runner.save_checkpoint

        def die_after_step_1(folder, step, state, epoch=None):
            real(folder, step, state, epoch)
            raise Killed

        monkeypatch.setattr(runner, "save_checkpoint", die_after_step_1)
        with pytest.raises(Killed):
            main(_run_args(data, tmp_path))
        monkeypatch.setattr(runner, "save_checkpoint", real)
        run = tmp_path / "r"

        assert main(["export", str(run)]) == 0
        assert "from step 1 (the run is unfinished: step 1 of 2)" in capsys.readouterr().out

        changed = tmp_path / "changed"
        shutil.copytree(data, changed)
        image = sorted((changed / "synth_d2").rglob("*.jpg"))[0]
        image.write_bytes(image.read_bytes() + b"\0")  # same name, other content
        capsys.readouterr()
        assert main(_run_args(changed, tmp_path) + ["--resume"]) == 2
        err = capsys.readouterr().err.strip()
        assert "1 image(s) changed since the run started (first: synth_d2/" in err and len(err.splitlines()) == 1

        stale = [run / "checkpoints" / ".step002.pt.k3x.tmp", run / "plots" / ".curves.png.q1.tmp"]
        for p in stale:
            p.parent.mkdir(exist_ok=True)
            p.write_bytes(b"partial")
        moved = tmp_path / "moved"
        data.rename(moved)  # moving the data keeps its fingerprint: resume goes on
        assert main(_run_args(moved, tmp_path) + ["--resume"]) == 0
        assert not any(p.exists() for p in stale)
        for name in ("config.yaml", "metrics.csv", "summary.json", "checkpoints/step002.pt", "plots/curves.png"):
            assert stat.S_IMODE((run / name).stat().st_mode) == 0o644, name
    finally:
        os.umask(old_umask)


def test_a_checkpoint_of_another_model_is_a_one_line_error(full_runs, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(full_runs["finetune"], run)
    path = list_checkpoints(run / "checkpoints")[-1]
    state = torch.load(path, weights_only=True)
    state["strategy"]["model"] = torch.load(list_checkpoints(full_runs["pad"] / "checkpoints")[-1],
                                            weights_only=True)["strategy"]["model"]
    torch.save(state, path)
    assert main(["export", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{path} was written by a different model" in err and len(err.splitlines()) == 1
