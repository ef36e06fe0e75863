"""End-to-end runs on the tiny synthetic stream: results files, resume, CLI error paths."""
import csv
import json

import pytest
import torch
import yaml

from pad_bench.cli import main
from pad_bench.config import resolve_config
from pad_bench.errors import UserError
from pad_bench.results.store import METRIC_COLUMNS
from pad_bench.run import runner

from conftest import tiny_sets

pytestmark = pytest.mark.slow


def _cfg(synth_root, strategy="finetune", **extra):
    return resolve_config(benchmark="synth", strategy=strategy, sets=tiny_sets(synth_root, **extra))


def test_finetune_run_writes_documented_files(synth_root, tmp_path):
    run_dir = runner.execute(_cfg(synth_root), tmp_path / "ft", progress=False)
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0].keys()) == METRIC_COLUMNS
    assert sorted({int(r["step"]) for r in rows}) == [0, 1, 2]
    assert {(r["eval_domain"], r["eval_set"]) for r in rows} == {
        ("synth_d1", "seen"), ("synth_d2", "seen"), ("synth_u1", "unseen")}
    assert all(0 <= float(r["mAP"]) <= 100 for r in rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("seen_avg_final", "unseen_avg_final", "forgetting", "bwt", "fwt", "plasticity", "final"):
        assert key in summary["mAP"] and key in summary["R1"]
    assert [t["step"] for t in summary["timing"]] == [1, 2]
    assert all(t["images_per_second"] > 0 for t in summary["timing"])
    params = summary["params"]
    assert len(params) == 2 and params[1]["trainable_params"] <= params[1]["total_params"]
    assert params[1]["carried_bytes"]["model"] > 0
    for name in ("config.yaml", "manifest.csv", "run.log"):
        assert (run_dir / name).is_file()
    assert list((run_dir / "plots").glob("*.png"))
    cfg = yaml_config(run_dir)
    assert cfg["model"]["weights"] == "random"  # a tiny model without a file: recorded as such
    assert cfg["train"]["precision"] == "fp32"  # fine-tune's CUDA default is fp16; a CPU run records fp32
    hw = cfg["hardware"]
    assert hw["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and hw["threads"] == torch.get_num_threads()
    assert hw["gpu"] is None and hw["cuda"] is None and hw["deterministic_algorithms"] is False


def test_killed_run_resumes_to_identical_metrics(synth_root, tmp_path, monkeypatch, caplog):
    # bitwise: both runs in this process, on one machine, one thread count, fp32 (docs/runs.md)
    full = runner.execute(_cfg(synth_root), tmp_path / "full", progress=False)

    real_save = runner.save_checkpoint

    def save_then_die(folder, step, state):
        real_save(folder, step, state)
        raise KeyboardInterrupt  # the process is killed right after experience 1's checkpoint

    monkeypatch.setattr(runner, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(_cfg(synth_root), tmp_path / "killed", progress=False)
    monkeypatch.setattr(runner, "save_checkpoint", real_save)
    # as if started before train.precision existed, on a CPU with other kernels: it resumes, and says so
    stored = yaml_config(tmp_path / "killed")
    del stored["train"]["precision"]
    stored["hardware"]["cpu_capability"] = "OTHER"
    (tmp_path / "killed" / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    with caplog.at_level("WARNING", logger="pad_bench"):
        resumed = runner.execute(_cfg(synth_root), tmp_path / "killed", resume=True, progress=False)
    assert (resumed / "metrics.csv").read_text() == (full / "metrics.csv").read_text()
    changed = f"cpu_capability OTHER -> {torch.backends.cpu.get_cpu_capability()}"
    assert any(changed in r.getMessage() and "not be bitwise" in r.getMessage() for r in caplog.records)


def test_cli_refuses_existing_run_and_names_corrupt_checkpoint(synth_root, tmp_path, capsys):
    args = ["run", "-b", "synth", "-s", "finetune", "--out", str(tmp_path), "--name", "r", "--no-progress"]
    for k, v in tiny_sets(synth_root).items():
        args += ["--set", f"{k}={json.dumps(v)}"]
    assert main(args) == 0
    metrics_before = (tmp_path / "r" / "metrics.csv").read_text()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "--resume" in err and len(err.splitlines()) == 1
    assert (tmp_path / "r" / "metrics.csv").read_text() == metrics_before  # nothing overwritten

    ckpts = sorted((tmp_path / "r" / "checkpoints").glob("*.pt"))
    ckpts[-1].write_bytes(b"truncated")
    assert main(args + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert ckpts[-1].name in err and ckpts[-2].name in err  # names the corrupt and the good one
    assert ckpts[-2].stat().st_size > 1000


@pytest.mark.parametrize("strategy", ["finetune", "pad"])
def test_export_keeps_the_image_encoder_only(synth_root, tmp_path, strategy, capsys):
    from pad_bench.registry import load_strategy_class
    from pad_bench.training.checkpoint import load_latest_checkpoint, load_model_state

    run_dir = runner.execute(_cfg(synth_root, strategy), tmp_path / strategy, progress=False)
    stored = yaml_config(run_dir)
    stored["model"]["weights"] = str(tmp_path / "moved-away.pt")  # the pretrained file is gone
    (run_dir / "config.yaml").write_text(yaml.safe_dump(stored))
    assert main(["export", str(run_dir)]) == 0
    assert "MiB" in capsys.readouterr().out
    payload = torch.load(run_dir / "export" / "image_encoder.pt", weights_only=False)
    exported = payload["state_dict"]
    assert payload["step"] == 2 and payload["image_size"] == [64, 32]
    assert not any("classifier" in k or "token_embedding" in k or "ln_final" in k for k in exported)

    cfg = yaml_config(run_dir)
    cfg["model"]["weights"] = "random"
    cls = load_strategy_class(cfg["strategy"]["method"])
    full = cls.build_model(cfg, None)
    weights = load_latest_checkpoint(run_dir / "checkpoints")["strategy"]["model"]
    load_model_state(full, weights, check_constant=False)
    deployed = cls.build_model(cfg, None)
    deployed.load_state_dict(exported, strict=False)
    x = torch.randn(4, 3, 64, 32)
    with torch.no_grad():
        assert torch.allclose(full.eval()(x)["embedding"], deployed.eval()(x)["embedding"], atol=1e-6)


def yaml_config(run_dir):
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def test_a_run_leaves_no_log_handler_behind(synth_root, tmp_path):
    import logging

    runner.execute(_cfg(synth_root), tmp_path / "a", progress=False)
    assert not [h for h in logging.getLogger("pad_bench").handlers if isinstance(h, logging.FileHandler)]
    logging.getLogger("pad_bench").warning("after the run")
    assert "after the run" not in (tmp_path / "a" / "run.log").read_text()


def test_missing_data_is_reported_before_a_run_directory_exists(tmp_path):
    cfg = resolve_config(benchmark="aka-order1", strategy="finetune",
                         sets={"benchmark.data_root": str(tmp_path / "none"), "model.name": "clip-tiny"})
    with pytest.raises(UserError, match="dataset 'market1501' not found"):
        runner.execute(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_training_does_not_import_run_or_results():
    import ast
    from pathlib import Path

    import pad_bench.training

    for path in Path(pad_bench.training.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level != 1:
                parts = node.module.split(".")
                top = parts[1] if node.level == 0 and parts[0] == "pad_bench" and len(parts) > 1 else parts[0]
                assert top not in ("results", "run"), f"{path.name} imports {node.module}"
