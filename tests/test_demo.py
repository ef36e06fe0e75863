"""`pad-bench demo` runs its methods in parallel processes: same results as one run, readable output."""
import io
import sys

import pandas as pd
import pytest
import torch

from conftest import TINY_SYNTH, tiny_sets
from pad_bench.config import resolve_config
from pad_bench.demo import _Prefixed, prefix_stdout, run_demo
from pad_bench.errors import UserError
from pad_bench.run.runner import execute

pytestmark = pytest.mark.slow


def test_prefixed_stream_marks_every_line_once():
    out = io.StringIO()
    stream = _Prefixed(out, "[x] ")
    stream.write("a\nb")
    stream.write("c\n\nd\n")
    assert out.getvalue() == "[x] a\n[x] bc\n[x] \n[x] d\n"


def test_a_worker_that_runs_a_second_method_prefixes_its_lines_once(capfd, monkeypatch):
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # restored after the test
    prefix_stdout("[a] ")
    print("one", flush=True)
    prefix_stdout("[b] ")
    print("two", flush=True)
    assert capfd.readouterr().out.splitlines()[-2:] == ["[a] one", "[b] two"]


def test_parallel_demo_equals_runs_made_one_by_one(synth_root, tmp_path, capfd):
    # bitwise: the same machine, one thread per run in both, fp32 (docs/runs.md)
    sets = {k: v for k, v in tiny_sets(synth_root).items() if k != "benchmark.data_root"}
    runs = run_demo(out=tmp_path / "demo", data_root=synth_root, only=["finetune", "lstkc"], jobs=2, sets=sets,
                    synth=TINY_SYNTH)
    out = capfd.readouterr().out  # the workers write to the inherited file descriptor
    assert "2 at a time with 1 thread(s) each" in out
    assert "[lstkc] step 2 (synth_d2)" in out and "[finetune] finished in" in out
    assert (tmp_path / "demo" / "compare" / "table.md").is_file()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each demo worker ran with
    try:
        cfg = resolve_config(benchmark="synth", strategy="lstkc", sets={**tiny_sets(synth_root), "seed": 0})
        alone = execute(cfg, tmp_path / "lstkc-alone", progress=False)
        assert (runs[1] / "metrics.csv").read_bytes() == (alone / "metrics.csv").read_bytes()
    finally:
        torch.set_num_threads(threads)
    assert len(pd.read_csv(runs[0] / "metrics.csv")["step"].unique()) == 3  # before training, then 2 domains


def test_a_user_error_inside_a_demo_run_reaches_the_caller(synth_root, tmp_path):
    sets = {**tiny_sets(synth_root), "train.batch_p": 1000}  # refused by the run's sampler check, in the worker
    with pytest.raises(UserError, match="batch_p"):
        run_demo(out=tmp_path / "demo", data_root=synth_root, only=["finetune"], jobs=1, sets=sets,
                 synth=TINY_SYNTH)
