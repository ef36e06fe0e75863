"""CLI error paths (exit 2, one line, no traceback) and the fast, torch-free commands."""
import json
import subprocess
import sys

import pytest
import yaml

from pad_bench.cli import main
from pad_bench.config import list_strategies, resolve_config
from pad_bench.paths import CONFIGS_DIR
from pad_bench.registry import load_strategy_class


@pytest.mark.parametrize("args, expected", [
    (["run", "-b", "synth", "-s", "fintune"], "Did you mean 'finetune'"),
    (["run", "-b", "synthh", "-s", "finetune"], "unknown benchmark 'synthh'"),
    (["run", "-b", "synth", "-s", "finetune", "-m", "clip-tiyn"], "unknown model 'clip-tiyn'"),
    (["run", "-b", "synth", "-s", "finetune", "--set", "train.epohcs=2"], "did you mean 'train.epochs'"),
    (["run", "-b", "synth", "-s", "finetune", "--set", "train.epochs=two"], "'train.epochs' must be int"),
    (["datasets", "prepare", "viper", "--root", "/nonexistent"], "unknown preparable dataset 'viper'"),
    (["demo", "--jobs", "0"], "--jobs 0: give at least 1"),
])
def test_bad_input_is_one_line_exit_2(args, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # checked before anything is written: no results/<run>/ left behind


def test_list_and_check_do_not_import_torch(tmp_path):
    code = ("import sys; from pad_bench.cli import main; "
            f"main(['list']); main(['datasets', 'check', '--root', {str(tmp_path)!r}, '--json']); "
            "print('TORCH' if 'torch' in sys.modules else 'NO_TORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("NO_TORCH")
    assert "finetune" in out and "aka-order1" in out and "clip-vit-b16" in out
    report = json.loads(out[out.index("{"):out.rindex("}") + 1])
    assert set(report) >= {"market1501", "msmt17", "viper", "prid"} and len(report) == 12
    assert all(entry == {"found": False} for entry in report.values())


def test_registry_discovers_a_method_folder_the_user_writes(tmp_path, monkeypatch):
    folder = tmp_path / "mystrat"
    folder.mkdir()
    (folder / "strategy.py").write_text(
        "from pad_bench.registry import register_strategy\n"
        "from pad_bench.training.base import ReIDStrategy\n\n\n"
        "@register_strategy('mystrat')\nclass MyStrat(ReIDStrategy):\n    carried = ()\n")
    (folder / "mystrat.yaml").write_text("description: mine\nbase: finetune\n")
    monkeypatch.setenv("PAD_BENCH_STRATEGY_PATH", str(tmp_path))
    assert "mystrat" in list_strategies()
    cfg = resolve_config(benchmark="synth", strategy="mystrat")
    tiny = yaml.safe_load((CONFIGS_DIR / "recipes" / "cpu-tiny.yaml").read_text())
    assert cfg["strategy"]["method"] == "mystrat"
    assert cfg["strategy"]["lr"] == tiny["strategy"]["lr"] != 5e-6  # finetune's tiny profile inherited
    cls = load_strategy_class("mystrat")
    assert cls.__name__ == "MyStrat"


def _aka_tree(root):
    """Every dataset of aka-order1 in its tiny test layout."""
    import trees_seen as s
    import trees_unseen as u

    for make in (s.make_market1501, s.make_dukemtmc, s.make_msmt17, s.make_cuhk_sysu,
                 u.make_viper, u.make_prid, u.make_grid, u.make_ilids, u.make_cuhk01, u.make_cuhk02, u.make_sensereid):
        make(root)
    s.make_cuhk03_np(root, "labeled")
    return root


@pytest.mark.parametrize("strategy", ["lstkc", "dkp"])
def test_lstkc_family_run_without_resnet_weights_is_one_line_exit_2(strategy, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PAD_BENCH_RESNET50_WEIGHTS", raising=False)
    root = _aka_tree(tmp_path / "data")
    out = tmp_path / "results"
    code = main(["run", "--strategy", strategy, "--benchmark", "aka-order1", "--data-root", str(root),
                 "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "model.weights" in err and "resnet50-0676ba61.pth" in err and "PAD_BENCH_RESNET50_WEIGHTS" in err
    assert not out.exists()  # no run directory is left behind
