"""The body of one sweep run (sweep/task.py), without Ray: every state its run directory can be in."""
from __future__ import annotations

import pytest

from conftest import tiny_sets
from pad_bench.config import resolve_config
from pad_bench.run.runner import execute
from pad_bench.sweep import task
from pad_bench.sweep.state import DONE, read_attempts

pytestmark = pytest.mark.slow  # two tiny runs


@pytest.fixture
def cfg(synth_root, monkeypatch):
    monkeypatch.setattr(task, "_node_name", lambda: "here")  # no Ray runtime in this process
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # run_one sets it; restored afterwards
    return resolve_config(benchmark="synth", strategy="finetune", sets=tiny_sets(synth_root))


def test_a_fresh_run_starts_without_claiming_to_resume(cfg, tmp_path, capsys):
    result = task.run_one(cfg, str(tmp_path / "r"), 1)
    assert result["status"] == DONE and result["error"] is None
    assert (tmp_path / "r" / "metrics.csv").is_file() and (tmp_path / "r" / "summary.json").is_file()
    assert "config.yaml" not in capsys.readouterr().out  # no "has no config.yaml ...: starting it"
    assert [(a["node"], a["resumed"]) for a in read_attempts(tmp_path, "r")] == [("here", False)]


def test_a_run_finished_by_another_attempt_after_this_one_started_is_done_not_failed(cfg, tmp_path, monkeypatch):
    # The worker looks at the directory (no config.yaml yet), then another attempt of the same run
    # finishes it before this one opens it; a stale traceback of an even earlier attempt lies next to it.
    record, other = task.record_attempt, {}

    def record_then_other_attempt(*args):
        record(*args)
        other["metrics"] = (execute(cfg, tmp_path / "r", progress=False) / "metrics.csv").read_text()
    (tmp_path / "r.traceback.txt").write_text("an earlier attempt's bug")
    monkeypatch.setattr(task, "record_attempt", record_then_other_attempt)
    result = task.run_one(cfg, str(tmp_path / "r"), 1)
    assert result["status"] == DONE, result["error"]
    assert "resumed r after step 2" in (tmp_path / "r" / "run.log").read_text()  # nothing retrained
    assert (tmp_path / "r" / "metrics.csv").read_text() == other["metrics"]
    assert not (tmp_path / "r.traceback.txt").exists()
