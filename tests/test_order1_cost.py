"""benchmarks/perf/order1_cost.py at the tiny scale: it runs, prints the table, and its projection is the
documented arithmetic on its own measured rows."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["method", "model", "domain", "stage", "epochs", "images_per_epoch", "img_per_s", "measured_s",
           "projected_s"]
HEADER = ("| method | model | stage1 img/s | stage1 features img/s | train/stage2 img/s | eval round s "
          "| slowest eval set | peak GPU GiB | projected order-1 h |")
DOMAINS = ["market1501", "cuhk_sysu", "dukemtmc", "msmt17", "cuhk03"]
UNSEEN = ["cuhk01", "cuhk02", "grid", "sensereid", "viper", "ilids", "prid"]


@pytest.fixture(scope="module")
def cost(tmp_path_factory):
    out = tmp_path_factory.mktemp("cost")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks/perf/order1_cost.py"), "--device", "cpu",
                           "--scale", "tiny", "--iters", "2", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "order1_cost.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return proc.stdout, rows, (out / "order1_cost.md").read_text()


def test_prints_and_writes_the_table(cost):
    stdout, rows, md = cost
    assert HEADER in stdout and HEADER in md
    assert [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| ") and "---" not in line][1:] \
        == ["| finetune", "| lstkc", "| dkp", "| pad"]
    assert "n/a (CPU)" in md
    assert list(rows[0]) == COLUMNS


def test_projection_by_hand(cost):
    """fine-tune at the tiny profile: 30 epochs a domain (recipe cpu-tiny), P x K = 8 x 4 batches;
    train = epochs x images per epoch / img/s, other = as measured, evaluation = one round x 6."""
    _, rows, md = cost
    mine = [r for r in rows if r["method"] == "finetune"]
    assert [r["domain"] for r in mine if r["stage"] == "train"] == DOMAINS
    total = 0.0
    for r in mine:
        measured, projected = float(r["measured_s"]), float(r["projected_s"])
        if r["stage"] == "train":
            assert int(r["epochs"]) == 30 and int(r["images_per_epoch"]) % 32 == 0
            assert projected == pytest.approx(30 * int(r["images_per_epoch"]) / float(r["img_per_s"]), rel=1e-12)
        elif r["stage"] == "eval":
            assert projected == pytest.approx(6 * measured, rel=1e-12)
        else:
            assert r["stage"] == "other" and projected == measured
        total += projected
    assert sorted(r["domain"] for r in mine if r["stage"] == "eval") == sorted(DOMAINS + UNSEEN)
    line = next(line for line in md.splitlines() if line.startswith("| finetune "))
    assert line.split(" | ")[-1].rstrip(" |") == f"{total / 3600:.3f}"


def test_pad_has_two_stages(cost):
    """PAD's stage 1 (5 epochs at its tiny profile) over the domain's whole training set, and its stage 2."""
    _, rows, _ = cost
    stages = [r["stage"] for r in rows if r["method"] == "pad" and r["domain"] == "market1501"]
    assert stages == ["stage1_features", "stage1", "stage2", "other", "eval"]
    s1 = next(r for r in rows if r["method"] == "pad" and r["stage"] == "stage1" and r["domain"] == "market1501")
    assert int(s1["epochs"]) == 5 and int(s1["images_per_epoch"]) == 138  # the tiny Market training set
    assert float(s1["projected_s"]) == pytest.approx(5 * 138 / float(s1["img_per_s"]), rel=1e-12)
