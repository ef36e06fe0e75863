"""compare_runs tables, refusals and plots on fake run directories (fake_runs.py formulas)."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from fake_runs import write_fake_run
from pad_bench.errors import UserError
from pad_bench.results.compare import compare_runs
from pad_bench.results.plots import plot_run

FIGURES = ("curves", "averages", "forgetting", "heatmap")
SQRT8 = math.sqrt(8)  # sample std of two values 4 apart


def write_four_runs(root):
    """finetune x seeds 0/1 (level 50/54, drop 4) and pad x seeds 0/1 (level 60, drop 1).

    With 3 domains, final R[3][j] = level + j - drop * (3 - j):
      finetune: [43, 48, 53] and [47, 52, 57] -> mean [45, 50, 55], std sqrt(8) = 2.83; Seen-Avg 48 / 52
      pad:      [59, 61, 63] twice            -> std 0; Seen-Avg 61
    Forgetting F_j = drop * (3 - j): finetune [8, 4] -> 6, pad [2, 1] -> 1.5.
    Unseen viper (u = 1) final = unseen_level + 6 + 1: finetune 37 / 39 -> 38, pad 47.
    """
    return [
        write_fake_run(root, "finetune-s0", strategy="finetune", model="resnet50", seed=0, level=50, unseen_level=30),
        write_fake_run(root, "finetune-s1", strategy="finetune", model="resnet50", seed=1, level=54, unseen_level=32),
        write_fake_run(root, "pad-s0", strategy="pad", model="clip-tiny", seed=0, level=60, drop=1, unseen_level=40),
        write_fake_run(root, "pad-s1", strategy="pad", model="clip-tiny", seed=1, level=60, drop=1, unseen_level=40),
    ]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    dirs = write_four_runs(root)
    out = root / "comparison"
    return dirs, out, compare_runs(dirs, out)


def test_csv_has_means_and_stds(compared):
    _, out, written = compared
    table = pd.read_csv(written["table.csv"]).set_index("label")
    ft, pad = table.loc["finetune (resnet50)"], table.loc["pad (clip-tiny)"]
    assert ft["n"] == 2 and pad["n"] == 2
    assert ft["market1501_mAP_mean"] == pytest.approx(45)
    assert ft["market1501_mAP_std"] == pytest.approx(SQRT8, abs=1e-5)
    assert ft["msmt17_R1_mean"] == pytest.approx(65)
    assert ft["seen_avg_mAP_mean"] == pytest.approx(50)
    assert ft["seen_avg_R1_mean"] == pytest.approx(60)
    assert ft["forgetting_mAP_mean"] == pytest.approx(6)
    assert ft["forgetting_mAP_std"] == pytest.approx(0)
    assert ft["viper_mAP_mean"] == pytest.approx(38)
    assert ft["unseen_avg_mAP_mean"] == pytest.approx(38.5)  # (37 + 38) / 2 and (39 + 40) / 2
    assert pad["seen_avg_mAP_mean"] == pytest.approx(61)
    assert pad["forgetting_mAP_mean"] == pytest.approx(1.5)
    assert pad["viper_mAP_mean"] == pytest.approx(47)


def test_markdown_and_latex_show_mean_std_and_best(compared):
    _, out, written = compared
    md = written["table.md"].read_text()
    assert "| finetune (resnet50) | resnet50 | 2 | 45.0 ± 2.8 / 55.0 ± 2.8 |" in md
    # pad's Seen-Avg is the best, but over 2 seeds (differences 13 and 9: paired t = 5.5, df 1,
    # p = 1 - 2 atan(5.5) / pi = 0.115) it is inside the noise: not bold
    assert "| 61.0 ± 0.0 / 71.0 ± 0.0 |" in md and "**61.0" not in md
    assert "**1.5 ± 0.0**" in md  # forgetting, lower is better: every seed's difference is -4.5, p = 0
    assert "Bold: best and significantly better" in md
    assert "## Unseen datasets" in md and "38.0 ± 1.4" in md
    tex = written["table.tex"].read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"cuhk\_sysu" in tex
    assert r"45.0\,{\scriptsize$\pm$2.8}" in tex
    assert r"\textbf{61.0}" not in tex and r"\textbf{1.5}" in tex
    assert r"\textbf{45.0}" not in tex


def test_comparison_plots_are_written(compared):
    _, out, written = compared
    for name in FIGURES:
        png, svg = out / f"{name}.png", out / f"{name}.svg"
        assert written[png.name] == png and written[svg.name] == svg
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in svg.read_text()[:2000]
    assert not list(out.glob("*.tmp"))


def test_plot_run_writes_into_plots_folder(compared):
    dirs, _, _ = compared
    paths = plot_run(dirs[0])
    assert sorted(p.name for p in paths) == sorted(f"{n}.{e}" for n in FIGURES for e in ("png", "svg"))
    assert all(p.parent == dirs[0] / "plots" and p.stat().st_size > 1000 for p in paths)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"benchmark": "other-order"}, "benchmark.name"),
        ({"domains": ["cuhk_sysu", "market1501", "msmt17"]}, "benchmark.domains"),
        ({"unseen_names": ["viper"]}, "benchmark.unseen"),
        ({"protocol": {"ids_per_domain": 500, "unseen_protocol": "single_split", "cuhk03_mode": "labeled", "image_size": [224, 224]}}, "protocol.image_size"),
    ],
)
def test_refuses_runs_with_different_settings(tmp_path, kwargs, key):
    a = write_fake_run(tmp_path, "a")
    b = write_fake_run(tmp_path, "b", strategy="pad", **kwargs)
    with pytest.raises(UserError, match=rf"'a' and 'b' differ in {key}: .* vs .*--force"):
        compare_runs([a, b], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_force_marks_the_differing_rows(tmp_path):
    a = write_fake_run(tmp_path, "a")
    b = write_fake_run(tmp_path, "b", strategy="pad", level=60, protocol={"image_size": [224, 224]})
    written = compare_runs([a, b], tmp_path / "out", force=True)
    md = written["table.md"].read_text()
    assert "| pad (resnet50)† | resnet50 | 1 |" in md
    assert "| finetune (resnet50) | resnet50 | 1 | 43.0 / 53.0 |" in md  # one run: no std
    assert "protocol.image_size = [224, 224] (reference: [256, 128])" in md
    assert "protocol.cuhk03_mode = <unset> (reference: labeled)" in md
    assert r"$^{\dagger}$" in written["table.tex"].read_text()
    assert pd.read_csv(written["table.csv"])["marker"].fillna("").tolist() == ["", "†"]


def _with_weights(run_dir, weights):
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg["model"]["weights"] = weights
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    return run_dir


def test_rows_show_their_backbone_and_a_mixed_table_warns(compared, tmp_path, caplog):
    _, _, written = compared  # finetune on resnet50 next to pad on clip-tiny
    md = written["table.md"].read_text()
    assert "| method | backbone | n |" in md and "| pad (clip-tiny) | clip-tiny | 2 |" in md
    assert "! this table mixes backbones (resnet50, clip-tiny)" in md
    assert r"$^{!}$ this table mixes backbones" in written["table.tex"].read_text()
    assert pd.read_csv(written["table.csv"])["backbone"].tolist() == ["resnet50", "clip-tiny"]

    same = [_with_weights(write_fake_run(tmp_path, n, strategy=s, seed=0), "/w/resnet50-0676ba61.pth")
            for n, s in (("ft", "finetune"), ("lstkc", "lstkc"))]
    with caplog.at_level("WARNING", logger="pad_bench"):
        md = compare_runs(same, tmp_path / "same")["table.md"].read_text()
    assert "mixes backbones" not in md and not caplog.records
    assert "| lstkc (resnet50) | resnet50 (resnet50-0676ba61.pth) | 1 |" in md

    random = _with_weights(write_fake_run(tmp_path, "lstkc-random", strategy="lstkc", seed=1), "random")
    with caplog.at_level("WARNING", logger="pad_bench"):
        written = compare_runs(same + [random], tmp_path / "mixed", force=True)
    md = written["table.md"].read_text()
    # a random init is another backbone: its own row, never averaged with the ImageNet seeds
    assert "| lstkc (resnet50) [model.weights=random] | resnet50 (random) | 1 |" in md
    assert "mixes backbones (resnet50 (resnet50-0676ba61.pth), resnet50 (random))" in md
    assert any("mixes backbones" in r.getMessage() for r in caplog.records)


def test_missing_files_name_the_run(tmp_path):
    run = write_fake_run(tmp_path, "broken")
    (run / "metrics.csv").unlink()
    with pytest.raises(UserError, match=r"broken has no metrics\.csv"):
        compare_runs([run], tmp_path / "out")
    with pytest.raises(UserError, match="no run directory"):
        compare_runs([], tmp_path / "out")


def test_runs_of_one_strategy_with_other_settings_are_separate_rows(tmp_path):
    runs = [write_fake_run(tmp_path, f"s3-{s}", strategy="pad", seed=s, strategy_settings={"preset": "S3"})
            for s in (0, 1)]
    runs.append(write_fake_run(tmp_path, "s5", strategy="pad", strategy_settings={"preset": "S5"}, level=60.0))
    compare_runs(runs, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "table.csv")
    assert len(table) == 2
    assert table.iloc[0]["n"] == 2 and table.iloc[1]["n"] == 1
    assert "strategy.preset=S5" in table.iloc[1].iloc[0]  # the row says what differs


def _with_config(run_dir, **sections):
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg.update(sections)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    return run_dir


HW_A = {"cpu": "AMD EPYC", "cpu_capability": "AVX2", "gpu": None, "threads": 1}


def test_a_row_mixing_hardware_or_precision_warns_and_old_runs_still_group(tmp_path, caplog):
    # s0 was recorded before config.yaml had a hardware block and train.precision
    old = _with_config(write_fake_run(tmp_path, "s0", seed=0), train={"epochs": 60})
    same = [_with_config(write_fake_run(tmp_path, f"s{s}", seed=s), hardware=HW_A,
                         train={"epochs": 60, "precision": "fp32"})
            for s in (1, 2)]
    with caplog.at_level("WARNING", logger="pad_bench"):
        written = compare_runs([old, *same], tmp_path / "same")
    assert pd.read_csv(written["table.csv"])["n"].tolist() == [3] and not caplog.records

    other_cpu = _with_config(write_fake_run(tmp_path, "s3", seed=3), hardware={**HW_A, "cpu_capability": "AVX512"},
                             train={"epochs": 60})
    gpu_bf16 = _with_config(write_fake_run(tmp_path, "s4", seed=4), device="cuda", train={"epochs": 60})  # old: bf16
    with caplog.at_level("WARNING", logger="pad_bench"):
        written = compare_runs([old, *same, other_cpu, gpu_bf16], tmp_path / "mixed")
    assert pd.read_csv(written["table.csv"])["n"].tolist() == [5]  # still one row: seeds group as before
    line = ("row 'finetune (resnet50)' mixes hardware (AMD EPYC / AVX2 / no GPU; AMD EPYC / AVX512 / no GPU) "
            "and precision (fp32; bf16) across its seeds")
    assert [r.getMessage() for r in caplog.records if "mixes" in r.getMessage()][0].startswith(line)
    assert line in written["table.md"].read_text()


def test_a_nan_result_is_named_in_a_warning_and_a_note(tmp_path, caplog):
    """Issue 25 case 12: a seed that diverged (NaN in metrics.csv) is not averaged silently."""
    runs = [write_fake_run(tmp_path, f"ft-s{s}", seed=s) for s in (0, 1)]
    table = pd.read_csv(runs[1] / "metrics.csv")
    table.loc[(table["step"] == 3) & (table["eval_domain"] == "msmt17"), "mAP"] = float("nan")
    table.to_csv(runs[1] / "metrics.csv", index=False)
    with caplog.at_level("WARNING", logger="pad_bench"):
        md = compare_runs(runs, tmp_path / "out")["table.md"].read_text()
    expected = ("run 'ft-s1' has 1 NaN result(s) in metrics.csv (first: step 3: msmt17 mAP): every mean it "
                "enters shows –, and paired differences leave its seed out")
    assert [r.getMessage() for r in caplog.records] == [expected]
    assert expected in md
    assert "| finetune (resnet50) | resnet50 | 2 |" in md  # both seeds listed; the msmt17 mean is missing
