"""benchmarks/world_criteria.py on fake fine-tune and joint runs whose figures follow tests/fake_runs.py's formulas.

Fine-tune (3 domains): R[0] = [11, 12, 13]; R[j][j] = level + j; R[3] = [level + 1 - 2 drop, level + 2 - drop,
level + 3]. Unseen: U[t] = [ul + 2t + 1, ul + 2t + 2], so Unseen-Avg(t) = ul + 2t + 1.5. Joint: R[1] = [level + j].
"""
from __future__ import annotations

from pathlib import Path

import yaml

from fake_runs import write_fake_run
from pad_bench.results.runs import load_run
from benchmark_scripts import world_criteria

REPO = Path(__file__).resolve().parents[1]

ATTRIBUTES = {f"a{i}": {"accuracy": 60.0 if i < 6 else 40.0, "majority": 50.0} for i in range(8)}


def _runs(tmp_path, *, ft_levels=(49, 50, 51), drop=12.0, joint_levels=(70, 70, 70), joint_unseen=36.0,
          attributes=ATTRIBUTES):
    dirs = [write_fake_run(tmp_path, f"ft{s}", seed=s, level=lv, drop=drop, unseen_level=30.0)
            for s, lv in enumerate(ft_levels)]
    dirs += [write_fake_run(tmp_path, f"joint{s}", strategy="joint", seed=s, level=lv, joint=True,
                            unseen_level=joint_unseen) for s, lv in enumerate(joint_levels)]
    cfg_path = dirs[0] / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["model"]["pretrained_report"] = {"heldout": {"zero_shot": attributes}}
    cfg_path.write_text(yaml.safe_dump(cfg))
    return [load_run(d) for d in dirs]


def _verdicts(runs, demo=None) -> dict[str, bool | None]:
    return {c.name.split()[0]: c.passed for c in world_criteria.check(runs, demo)}


def test_every_criterion_passes_on_a_world_that_meets_them(tmp_path):
    # W1: R[j][j] = 51, 52, 53 >= max(2 x 1j, 1j + 25) = 36, 37, 38. W2: joint 72 >= 12 + 25 and >= 40 + 10
    # (fine-tune final [27, 40, 53]). W3: gain 40, lost 24 >= 20. W4: 36 + 2 + 1.5 = 39.5 >= 31.5 + 5.
    # W5: 6 of 8 attributes above majority. W6: stds 1.0 and 0.
    assert _verdicts(_runs(tmp_path), demo=9.0) == {f"W{i}": True for i in range(1, 8)}


def test_each_criterion_fails_where_its_figure_falls_short(tmp_path):
    # Fine-tune level 30: R[1][1] = 31 < 11 + 25 (W1); gain 20, lost 31 - 23 = 8 < 10 (W3); its final
    # Seen-Avg is level - 2 = 26, 28, 30: std 2.0 > 1.5 (W6). Joint 47 >= 12 + 25 and >= 28 + 10 (W2 holds);
    # joint Unseen-Avg 32 + 2 + 1.5 = 35.5 < 31.5 + 5 (W4). No attribute above majority (W5); 20 min > 15 (W7).
    runs = _runs(tmp_path, ft_levels=(28, 30, 32), drop=4.0, joint_levels=(44, 45, 46), joint_unseen=32.0,
                 attributes={k: {**v, "accuracy": 40.0} for k, v in ATTRIBUTES.items()})
    assert _verdicts(runs, demo=20.0) == {"W1": False, "W2": True, "W3": False, "W4": False, "W5": False,
                                         "W6": False, "W7": False}


def test_upper_bound_fails_when_joint_is_not_ten_above_finetune(tmp_path):
    # Fine-tune final Seen-Avg level - 10 = 40; joint 47 + 2 = 49 >= 12 + 25 but < 40 + 10.
    assert _verdicts(_runs(tmp_path, joint_levels=(47, 47, 47)))["W2"] is False


def test_walltime_and_attributes_are_not_measured_without_their_inputs(tmp_path):
    verdicts = _verdicts(_runs(tmp_path, attributes={}))
    assert verdicts["W5"] is None and verdicts["W7"] is None


def test_refuses_without_a_joint_run(tmp_path, capsys):
    d = write_fake_run(tmp_path, "ft0")
    assert world_criteria.main([str(d)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no joint run" in err


def test_synth_benchmark_and_generator_record_the_same_world_version():
    from pad_bench.synthetic.domains import WORLD_VERSION

    cfg = yaml.safe_load((REPO / "benchmarks" / "synth.yaml").read_text())
    assert cfg["benchmark"]["world_version"] == WORLD_VERSION == 2


def test_the_pretrained_report_is_read_from_the_path_a_run_records(tmp_path):
    """Runs record model.pretrained_report as the path of report.json; W5 reads it from there."""
    import json

    runs = _runs(tmp_path)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"heldout": {"zero_shot": ATTRIBUTES}}))
    cfg_path = runs[0].path / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["model"]["pretrained_report"] = str(report)
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert _verdicts([load_run(r.path) for r in runs], demo=9.0)["W5"] is True
    report.unlink()  # a report that is gone is not measured, not a failure
    assert _verdicts([load_run(r.path) for r in runs], demo=9.0)["W5"] is None
