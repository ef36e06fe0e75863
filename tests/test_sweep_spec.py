"""Sweep specs: expansion into named runs, one-line errors before anything starts, sweep.yaml bookkeeping,
compare inputs. No Ray here (tests/test_sweep_ray.py runs sweeps)."""
from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import pytest
import yaml

from pad_bench.cli import main
from pad_bench.errors import UserError
from pad_bench.paths import PROJECT_ROOT
from pad_bench.sweep.spec import load_spec
from pad_bench.sweep.state import DONE, FAILED, SweepState, expand_compare_inputs, read_entries, record_attempt

BASE = {"benchmarks": ["synth"], "strategies": ["finetune"], "set": {"benchmark.data_root": "/data/synth"}}


def write_spec(tmp_path, name="spec", **keys):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**BASE, **keys}, sort_keys=False))
    return path


def test_expansion_order_names_and_configs(tmp_path):
    spec = load_spec(write_spec(tmp_path, strategies=["finetune", "pad"], seeds=[0, 2],
                                grid={"train.random_erasing": [0.0, 0.5], "strategy.texkd_weight": [1.0]},
                                resources={"cpus": 2}))
    with pytest.raises(UserError, match=r"run finetune-synth-random_erasing=0.0-texkd_weight=1.0-s0: --set: "
                                        r"unknown hyperparameter 'strategy.texkd_weight'"):
        spec.expand()  # finetune has no TEXKD weight: found before anything runs

    spec = load_spec(write_spec(tmp_path, strategies=["pad"], seeds=[0, 2], profiles=["tiny", "code,tiny"],
                                grid={"train.random_erasing": [0.0, 0.5], "strategy.texkd_weight": [1.0, 2.0]}))
    runs = spec.expand()
    assert len(runs) == 2 * 2 * 2 * 2
    assert [r.name for r in runs[:5]] == [
        "pad-synth-tiny-random_erasing=0.0-texkd_weight=1.0-s0",
        "pad-synth-tiny-random_erasing=0.0-texkd_weight=1.0-s2",
        "pad-synth-tiny-random_erasing=0.0-texkd_weight=2.0-s0",
        "pad-synth-tiny-random_erasing=0.0-texkd_weight=2.0-s2",
        "pad-synth-tiny-random_erasing=0.5-texkd_weight=1.0-s0",
    ]
    assert runs[8].name == "pad-synth-code+tiny-random_erasing=0.0-texkd_weight=1.0-s0"
    cfg = runs[3].config
    assert cfg["seed"] == 2 and cfg["strategy"]["texkd_weight"] == 2.0 and cfg["train"]["random_erasing"] == 0.0
    assert cfg["benchmark"]["data_root"] == "/data/synth" and cfg["profile"] == "tiny"
    assert runs[8].config["strategy"]["faithful_to"] == "code"
    assert [r.name for r in load_spec(spec.path).expand()] == [r.name for r in runs]  # stable


def test_keys_sharing_a_last_part_keep_their_full_name(tmp_path):
    spec = load_spec(write_spec(tmp_path, strategies=["pad"], grid={"strategy.lr": [0.1], "strategy.prompt_lr": [0.2],
                                                                     "train.pad": [1], "strategy.warmup_epochs": [2]}))
    name = spec.expand()[0].name
    assert name == "pad-synth-lr=0.1-prompt_lr=0.2-pad=1-warmup_epochs=2-s0"
    spec = load_spec(write_spec(tmp_path, strategies=["pad"], grid={"strategy.warmup_epochs": [1],
                                                                     "train.epochs": [3], "strategy.stage1_epochs": [2]}))
    assert spec.expand()[0].name == "pad-synth-warmup_epochs=1-epochs=3-stage1_epochs=2-s0"
    from pad_bench.sweep.spec import _short_keys

    assert _short_keys(["model.name", "strategy.name", "train.pad"]) == {
        "model.name": "model.name", "strategy.name": "strategy.name", "train.pad": "pad"}


@pytest.mark.parametrize("keys, message", [
    ({"grids": {"train.epochs": [1]}}, r"unknown key 'grids'; did you mean 'grid'\?"),
    ({"grid": {}}, r"'grid' is empty"),
    ({"grid": {"train.epochs": []}}, r"grid key 'train.epochs' needs a non-empty list"),
    ({"grid": {"train.epochs": 3}}, r"grid key 'train.epochs' needs a non-empty list of values, got 3"),
    ({"grid": {"train.epochs": [1, 1]}}, r"'grid.train.epochs' lists 1 twice"),
    ({"grid": {"train.epochs": ["many"]}}, r"run finetune-synth-epochs=many-s0: --set: 'train.epochs' must be int"),
    ({"grid": {"train.epochs": [1.5]}}, r"'train.epochs' must be int .* got float 1.5"),
    ({"grid": {"seed": [1, 2]}}, r"grid key 'seed' is also given in seeds"),
    ({"grid": {"train.epochs": [1]}, "set": {"train.epochs": 2}}, r"grid key 'train.epochs' is also given in set"),
    ({"set": {"seed": 3}}, r"set.seed: list the seeds under 'seeds'"),
    ({"set": {"train.epoch": 3}}, r"unknown config key 'train.epoch'; did you mean 'train.epochs'\?"),
    ({"strategies": []}, r"'strategies' must be a non-empty list"),
    ({"strategies": None}, r"'strategies' is missing"),
    ({"strategies": ["fine-tune"]}, r"unknown strategy 'fine-tune'"),
    ({"benchmarks": ["synthetic"]}, r"unknown benchmark 'synthetic'"),
    ({"profiles": ["huge"]}, r"has no profile 'huge'"),
    ({"seeds": [0, -1]}, r"'seeds' must be a non-empty list of non-negative integers"),
    ({"seeds": [1, 1]}, r"'seeds' lists 1 twice"),
    ({"resources": {"cpus": 0}}, r"resources.cpus must be a positive number, got 0"),
    ({"resources": {"gpu": 1}}, r"unknown resources key 'gpu'"),
    ({"set": {"device": "cuda"}}, r"uses device cuda but resources.gpus is 0"),
    ({"strategies": ["pad"], "set": {"strategy.preset": "S9"}}, r"run pad-synth-s0: .*S9"),
])
def test_bad_specs_fail_with_one_line_before_anything_starts(tmp_path, capsys, keys, message):
    spec = write_spec(tmp_path, **keys)
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("pad-bench: error: ")
    assert str(spec) in err
    assert __import__("re").search(message, err), err
    assert not out.exists()


def test_dry_run_lists_runs_and_writes_nothing(tmp_path, capsys):
    spec = write_spec(tmp_path, seeds=[0, 1], grid={"train.epochs": [1, 2]})
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"sweep spec: 4 runs, 0 finished, 4 to run -> {out}"
    assert [line.split()[0] for line in lines[1:5]] == [
        "finetune-synth-epochs=1-s0", "finetune-synth-epochs=1-s1", "finetune-synth-epochs=2-s0", "finetune-synth-epochs=2-s1"]
    # the data root does not exist: said once for the four runs, made by the sweep before they start
    assert lines[5:] == ["  the sweep would first make (its asset step): the synthetic domains (synth_d1, synth_d2, "
                         "synth_d3, synth_d4, synth_d5, synth_u1, synth_u2) in /data/synth; the pretraining corpus in "
                         "/data/synth/synth_pretrain; clip-tiny pretrained on the corpus: "
                         "/data/synth/pretrained/clip-tiny-s0/weights.pt"]
    assert not out.exists() and not Path("/data/synth").exists()
    assert main(["sweep", str(spec), "--cpus", "1", "--address", "auto"]) == 2
    assert "--cpus sizes the local Ray instance" in capsys.readouterr().err


def test_state_keeps_finished_runs_and_refuses_a_changed_config(tmp_path, capsys):
    spec = load_spec(write_spec(tmp_path, grid={"train.epochs": [1, 2]}))
    runs = spec.expand()
    sweep = tmp_path / "sweep"
    state = SweepState.open(sweep, spec, runs)
    (sweep / runs[0].name).mkdir(parents=True)
    for name in ("config.yaml", "summary.json"):
        (sweep / runs[0].name / name).write_text("{}")
    (sweep / runs[1].name).mkdir()  # failed before its config was written: nothing to protect
    record_attempt(sweep, runs[0].name, "node-a", False, 1)
    record_attempt(sweep, runs[0].name, "node-b", True, 1)
    assert state.refresh_attempts() and not state.refresh_attempts()
    state.update(runs[0].name, status=DONE, seen_avg_mAP=40.0)
    state.update(runs[1].name, status=FAILED, error="boom")
    state.save()
    entries = read_entries(sweep)
    assert [(e["status"], e["attempts"], e["node"], e["resumed"]) for e in entries] == [
        (DONE, 2, "node-b", True), (FAILED, 0, None, False)]

    again = SweepState.open(sweep, spec, spec.expand())
    assert again.is_complete(runs[0].name) and not again.is_complete(runs[1].name)
    assert again.entries[runs[0].name]["seen_avg_mAP"] == 40.0
    assert main(["sweep", str(spec.path), "--out", str(sweep), "--dry-run"]) == 0
    assert "2 runs, 1 finished, 1 to run" in capsys.readouterr().out  # a re-run skips the finished one

    changed = load_spec(write_spec(tmp_path, grid={"train.epochs": [1, 2]}, set={"benchmark.data_root": "/elsewhere"}))
    with pytest.raises(UserError, match=rf"holds run {runs[0].name} made with another config .* another --out"):
        SweepState.open(sweep, changed, changed.expand())


def test_compare_inputs_expand_a_sweep_to_its_finished_runs(tmp_path, capsys):
    sweep = tmp_path / "sw"
    sweep.mkdir()
    doc = {"grid_keys": ["strategy.texkd_weight"], "runs": [
        {"name": "a", "status": DONE}, {"name": "b", "status": FAILED}, {"name": "c", "status": DONE}]}
    (sweep / "sweep.yaml").write_text(yaml.safe_dump(doc))
    runs, keys, out = expand_compare_inputs([sweep], None)
    assert runs == [sweep / "a", sweep / "c"] and keys == ["strategy.texkd_weight"] and out == sweep / "comparison"
    assert "1 of 3 runs are not finished" in capsys.readouterr().out
    with pytest.raises(UserError, match="--out is required"):
        expand_compare_inputs([sweep, tmp_path / "run"], None)
    runs, keys, out = expand_compare_inputs([tmp_path / "run", sweep], tmp_path / "o")
    assert runs == [tmp_path / "run", sweep / "a", sweep / "c"] and out == tmp_path / "o"


def test_the_example_spec_resolves(tmp_path):
    spec = load_spec(PROJECT_ROOT / "sweeps" / "pad-texkd-weight.yaml")
    runs = spec.expand()
    assert len(runs) == 12 and spec.grid == {"strategy.texkd_weight": [0.1, 0.5, 1.0, 2.0]} and spec.seeds == [0, 1, 2]
    assert {r.config["strategy"]["texkd_weight"] for r in runs} == {0.1, 0.5, 1.0, 2.0}
    assert all(r.config["model"]["name"] == "clip-tiny" and r.config["benchmark"]["name"] == "synth" for r in runs)
    assert spec.resources.threads == 1


def test_cli_help_imports_neither_ray_nor_torch():
    code = ("import sys; from pad_bench.cli import build_parser; build_parser(); "
            "import pad_bench.sweep.command, pad_bench.sweep.state; "
            "print(json.dumps(sorted(m for m in ('ray', 'torch', 'scipy') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True,
                         cwd=PROJECT_ROOT)
    assert json.loads(out.stdout) == []


def test_a_changed_spec_keeps_the_finished_runs_of_the_earlier_one(tmp_path, capsys):
    """Issue 25 case 2: seeds [0, 1] finished, then the same --out with seeds [0]."""
    both = load_spec(write_spec(tmp_path, "both", seeds=[0, 1]))
    sweep = tmp_path / "sweep"
    state = SweepState.open(sweep, both, both.expand())
    for name in state.entries:
        (sweep / name).mkdir(parents=True)
        for file in ("config.yaml", "summary.json"):
            (sweep / name / file).write_text("{}")
        state.update(name, status=DONE, seen_avg_mAP=10.0)
    state.save()

    one = write_spec(tmp_path, "one", seeds=[0])
    assert main(["sweep", str(one), "--out", str(sweep), "--dry-run"]) == 0
    assert "1 run(s) of an earlier spec stay recorded in sweep.yaml, not run: finetune-synth-s1" in capsys.readouterr().out
    narrowed = SweepState.open(sweep, load_spec(one), load_spec(one).expand())
    assert narrowed.earlier() == ["finetune-synth-s1"]
    narrowed.save()
    entries = {e["name"]: e for e in read_entries(sweep)}
    assert entries["finetune-synth-s1"]["status"] == DONE and entries["finetune-synth-s1"]["in_spec"] is False
    assert entries["finetune-synth-s0"]["in_spec"] is True

    runs, _, _ = expand_compare_inputs([sweep], None)
    assert runs == [sweep / "finetune-synth-s0"]
    assert ("left out 1 finished run(s) of an earlier spec, not in the current one (finetune-synth-s1)"
            in capsys.readouterr().out)

    again = SweepState.open(sweep, both, both.expand())  # the earlier spec again: nothing to re-run
    assert again.earlier() == [] and all(again.is_complete(n) for n in again.entries)
