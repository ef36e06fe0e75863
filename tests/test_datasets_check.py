"""`pad-bench datasets check` on tiny trees, and image-read errors."""
import json
import re

import pytest
from PIL import Image

from pad_bench.cli import main
from pad_bench.data.images import read_image, record_reads
from pad_bench.errors import DataFormatError

from trees_seen import make_cuhk03_raw, make_market1501, make_msmt17
from trees_unseen import make_viper


def test_check_reports_found_datasets_with_counts(tmp_path, capsys):
    market = make_market1501(tmp_path).counts()
    msmt = make_msmt17(tmp_path, version="v2").counts()
    viper = make_viper(tmp_path)
    assert main(["datasets", "check", "--root", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report) == 12
    assert report["market1501"]["found"] and report["market1501"]["root"].endswith("Market-1501")
    for split in ("train", "query", "gallery"):
        assert report["market1501"][split] == market[split]
        assert report["msmt17"][split] == msmt[split]
    n_test = viper["n_ids"] - viper["n_ids"] // 2  # half the IDs are test identities
    assert report["viper"]["query"] == {"images": n_test, "ids": n_test, "cams": 1}
    assert report["viper"]["gallery"] == {"images": n_test, "ids": n_test, "cams": 1}
    assert report["dukemtmc"] == {"found": False}

    assert main(["datasets", "check", "--root", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"dukemtmc\s+not found", text) and "Market-1501" in text


def test_check_says_how_to_build_cuhk03_from_its_raw_release(tmp_path, capsys):
    make_cuhk03_raw(tmp_path)
    assert main(["datasets", "check", "--root", str(tmp_path), "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["cuhk03"]
    assert entry["found"] is False and entry["raw"] == str(tmp_path / "cuhk03")
    assert f"pad-bench datasets prepare cuhk03 --root {tmp_path}" in entry["hint"]
    assert main(["datasets", "check", "--root", str(tmp_path)]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.strip().startswith("cuhk03"))
    assert "not found" in line and "pad-bench datasets prepare cuhk03" in line


def test_corrupt_image_error_names_the_file(tmp_path):
    bad = tmp_path / "0001_c1s1_000001_00.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataFormatError, match=re.escape(str(bad))):
        read_image(str(bad))
    with pytest.raises(DataFormatError, match="missing.jpg"):
        read_image(str(tmp_path / "missing.jpg"))


def test_record_reads_sees_every_opened_path(tmp_path):
    good = tmp_path / "a.png"
    Image.new("RGB", (4, 8)).save(good)
    with record_reads() as log:
        read_image(str(good))
        read_image(str(good))
    assert log == [str(good), str(good)]
    read_image(str(good))
    assert len(log) == 2  # recording stops with the block
