"""The published-results table and `compare --published`: every row sourced, labelled as not re-run,
flagged where its protocol, order or verification differs from the measured runs."""
from __future__ import annotations

from fake_runs import write_fake_run
from pad_bench.cli import main
from pad_bench.results.published import load_published, render_published_markdown, run_order, run_protocol

ORDER1 = ["market1501", "cuhk_sysu", "dukemtmc", "msmt17", "cuhk03"]
DEFAULT = {"ids_per_domain": 500, "unseen_protocol": "single_split", "dataset_options": {"cuhk03_mode": "labeled"}}


def _config(domains=ORDER1, protocol=DEFAULT):
    return {"benchmark": {"domains": domains}, "protocol": protocol}


def test_every_required_method_is_there_with_a_source():
    rows = load_published()
    names = {r.method for r in rows}
    assert {"PAD", "LSTKC", "DKP", "PAEMA", "DAFC", "LSTKC++", "DKP++", "DASK"} <= names
    assert all(r.source and r.venue is not None for r in rows)
    lstkcpp = next(r for r in rows if r.method == "LSTKC++" and r.order == "1")
    assert lstkcpp.seen[0] == 55.2 and lstkcpp.unseen[0] == 63.2
    assert not any(r.verified for r in rows if r.method in ("PAEMA", "DAFC"))  # third-party summaries


def test_run_protocol_and_order_are_recognised():
    assert run_protocol(_config()) == "lstkc-family"
    assert run_protocol(_config(protocol={"ids_per_domain": "all", "unseen_protocol": "pad_multi_split"})) == "pad"
    assert run_protocol(_config(protocol={"ids_per_domain": 100, "unseen_protocol": "single_split"})) == "custom"
    assert run_order(ORDER1) == "1" and run_order(["synth_d1"]) is None


def test_rows_are_flagged_where_they_differ_from_the_measured_runs():
    text = render_published_markdown([_config()])
    line = {r.split("|")[1].strip(): r for r in text.splitlines() if r.startswith("| ") and "not re-run" in r}
    assert "⚠" not in line["LSTKC (not re-run)"]  # order 1, default protocol, read from the authors' repository
    assert "protocol differs (pad vs measured lstkc-family)" in line["PAD (not re-run)"]
    assert "unverified" in line["PAEMA (not re-run)"]
    order2 = [r for r in text.splitlines() if "| 2 |" in r]
    assert order2 and all("order differs" in r for r in order2)
    synth = render_published_markdown([_config(domains=["synth_d1", "synth_d2"])])
    rows = [r for r in synth.splitlines() if r.startswith("| ") and "not re-run" in r]
    assert rows and all("order differs (order" in r and "other stream" in r for r in rows)
    assert "DAFC (not re-run) | arXiv 2504.15041 | CLIP ViT-B/16 | dafc | 1 | 65.6 / 75.9 | – / – |" in text
    assert "no training script), re-runnable as strategy dafc" in text


def test_compare_published_prints_them_beside_the_measured_rows(tmp_path, capsys):
    runs = [write_fake_run(tmp_path, "ft", domains=ORDER1, protocol=DEFAULT)]
    assert main(["compare", *map(str, runs), "--out", str(tmp_path / "cmp"), "--published"]) == 0
    out = capsys.readouterr().out
    assert out.index("| finetune (resnet50) |") < out.index("## Published results (not re-run)")
    assert "| DKP++ (not re-run) |" in out
    assert (tmp_path / "cmp" / "published.csv").read_text().splitlines()[0].endswith("re_run,flags")
