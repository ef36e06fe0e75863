"""`pad-bench run --dry-run [--json]` and summary.json["experiences"]: the settings every domain runs
with, checked against the released PAD code's rule on dataset trees in each dataset's real layout."""
from __future__ import annotations

import json

import pytest

from pad_bench.cli import main
from pad_bench.run import runner

import trees_seen as seen
import trees_unseen as unseen
from conftest import tiny_sets
from test_pad import released_rows


@pytest.fixture(scope="module")
def real_trees(tmp_path_factory):
    """Tiny trees of every AKA dataset, in the layouts the `code` profile reads."""
    root = tmp_path_factory.mktemp("trees")
    seen.make_market1501(root)
    seen.make_dukemtmc(root)
    seen.make_msmt17(root, msmt17_train="train_val")
    seen.make_cuhk_sysu(root, min_images=1)
    seen.make_cuhk03_np(root, "detected")
    for make in (unseen.make_cuhk01, unseen.make_cuhk02, unseen.make_grid, unseen.make_sensereid,
                 unseen.make_viper, unseen.make_ilids, unseen.make_prid):
        make(root)
    return root


def dry_run(capsys, *args) -> str:
    assert main(["run", *args, "--dry-run"]) == 0
    return capsys.readouterr().out


def test_order2_code_reading_matches_the_released_rule(real_trees, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The trees hold 2-3 identities per domain, too few for the released batches: record the sampler
    # check (a real run's, which the dry run makes too) instead of letting it refuse them.
    checked = []
    monkeypatch.setattr(runner, "check_pk_settings", lambda name, labels, p, k: checked.append((name, p, k)))
    args = ["--benchmark", "aka-order2", "--strategy", "pad", "--profile", "code", "--data-root", str(real_trees),
            "--model", "clip-tiny", "--set", "strategy.unfreeze_last_n=2"]
    rows = json.loads(dry_run(capsys, *args, "--json"))
    domains = ["dukemtmc", "msmt17", "market1501", "cuhk_sysu", "cuhk03"]
    assert [r["domain"] for r in rows] == domains and [r["position"] for r in rows] == list(range(5))
    for row, ref in zip(rows, released_rows(domains)):
        assert (row["stage1_epochs"], row["epochs"], row["milestones"], row["kd"]) == (
            ref["stage1_epochs"], ref["epochs"], ref["milestones"], ref["kd"])
        assert (row["lr"]["prompt"], row["batch_p"] * row["batch_k"], row["stage1_batch"]) == (
            ref["prompt_lr"], ref["batch"], ref["stage1_batch"])
        assert (row["random_erasing"], row["new_slots"]) == (ref["random_erasing"], ref["new_slots"])
        assert row["lr"]["backbone"] == 5e-6 and row["trainable_params"] > 0
    duke, msmt, market = rows[:3]
    assert duke["kd"] is False and duke["unfreeze"] == "full" and duke["trainable_blocks"] == [0, 1, 2]
    assert (msmt["stage1_epochs"], msmt["epochs"]) == (15, 32)
    assert market["kd"] is False and market["unfreeze"] == "partial" and market["trainable_blocks"] == [1, 2]
    assert (market["stage1_epochs"], market["epochs"], market["milestones"], market["lr"]["prompt"]) == (
        20, 30, [18, 26], 2e-3)
    assert all(r["unfreeze"] == "partial" for r in rows[1:]) and rows[1]["trainable_params"] < duke["trainable_params"]
    table = dry_run(capsys, *args).splitlines()  # the human-readable table: one line per domain
    assert checked[:5] == [(r["domain"], r["batch_p"], r["batch_k"]) for r in rows]
    assert len(table) == 7 and table[3].split()[:4] == ["2", "market1501", "30", "18,26"]
    # PAD's own keys (stage-1 epochs and batch, new slots) come after the base columns
    assert table[0].index("trainable") < min(table[0].index(h) for h in ("stage1 epochs", "stage1 batch", "new slots"))
    assert sorted(table[3].split()[-3:]) == sorted(str(market[k]) for k in ("stage1_epochs", "stage1_batch", "new_slots"))
    assert "precision" in table[0] and all(r["precision"] == "fp32" for r in rows)  # a CPU run
    assert table[6] == "precision: fp32 on cpu (the method's on cuda: fp16)"  # PAD's released engine: fp16
    assert "partial" in table[3] and "off" in table[3] and "full" in table[1]
    assert not list(tmp_path.iterdir())  # no run directory


def test_json_needs_dry_run(capsys):
    assert main(["run", "-b", "synth", "-s", "finetune", "--json"]) == 2
    assert "--json only applies to --dry-run" in capsys.readouterr().err


@pytest.mark.slow
def test_summary_records_what_each_experience_ran(synth_root, tmp_path, capsys):
    sets = tiny_sets(synth_root, **{"train.epochs": [1, 2], "strategy.stage1_epochs": 1})
    args = ["-b", "synth", "-s", "pad", "--out", str(tmp_path), "--name", "r", "--no-progress"]
    for key, value in sets.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    planned = json.loads(dry_run(capsys, *args, "--json"))
    assert main(["run", *args]) == 0
    ran = json.loads((tmp_path / "r" / "summary.json").read_text())["experiences"]
    assert ran == planned  # the dry run sets each experience up exactly as training does
    assert [r["epochs"] for r in ran] == [1, 2] and [r["kd"] for r in ran] == [False, True]
    assert ran[1]["new_slots"] == 10 and ran[0]["stage1_epochs"] == 1


def test_a_dry_run_on_an_empty_data_root_makes_nothing_and_says_what_the_run_would(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "empty"
    root.mkdir()
    assert main(["run", "-b", "synth", "-s", "finetune", "--data-root", str(root), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert list(tmp_path.rglob("*")) == [root]  # no file, lock or run directory anywhere
    assert "would first make" in out and f"synth_d1, synth_d2, synth_d3, synth_d4, synth_d5, synth_u1, synth_u2) " \
        f"in {root}" in out
    assert f"the pretraining corpus in {root / 'synth_pretrain'}" in out
    assert f"clip-tiny pretrained on the corpus: {root / 'pretrained' / 'clip-tiny-s0' / 'weights.pt'}" in out
    assert main(["run", "-b", "synth", "-s", "finetune", "--data-root", str(root), "--dry-run",
                 "--set", "model.weights=random"]) == 0
    out = capsys.readouterr().out
    assert "synth_u2) in" in out and "corpus" not in out and list(tmp_path.rglob("*")) == [root]
