"""Rehearsal trees (`datasets synth --scale paper|tiny`): the real adapters read them with the declared counts,
the paper scale declares the protocol's counts, and a killed generation resumes to the same bytes."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pad_bench.cli import main
from pad_bench.data.check import check_datasets
from pad_bench.data.datasets import get_dataset_class
from pad_bench.errors import UserError
from pad_bench.synthetic.rehearsal import DATASETS, SCALES, generate_rehearsal, scaled_counts

# docs/protocol.md: train before the 500-ID cut, query, gallery (images, ids) of the seen domains; query and
# gallery of split 0 of the unseen sets.
PROTOCOL = {
    "market1501": {"train": (12936, 751), "query": (3368, 750), "gallery": (15913, 751)},
    "cuhk_sysu": {"train": (4374, 942), "query": (2900, 2900), "gallery": (5447, 2900)},
    "dukemtmc": {"train": (16522, 702), "query": (2228, 702), "gallery": (17661, 1110)},
    "msmt17": {"train": (30248, 1041), "query": (11659, 3060), "gallery": (82161, 3060)},
    "cuhk03": {"train": (7368, 767), "query": (1400, 700), "gallery": (5328, 700)},
    "viper": {"query": (316, 316), "gallery": (316, 316)},
    "prid": {"query": (100, 100), "gallery": (649, 649)},
    "grid": {"query": (125, 125), "gallery": (900, 126)},
    "ilids": {"query": (60, 60), "gallery": (60, 60)},
    "cuhk01": {"query": (972, 486), "gallery": (972, 486)},
    "cuhk02": {"query": (478, 239), "gallery": (478, 239)},
    "sensereid": {"query": (1040, 522), "gallery": (3388, 1717)},
}


def protocol_counts(name: str, c: dict[str, int]) -> dict[str, tuple[int, int]]:
    """What the protocol's split rules (docs/protocol.md) make of a tree with counts `c`, before the ID cut."""
    if "train_ids" in c:
        train = c["train_images"] + (0 if name == "msmt17" else c.get("val_images", 0))  # list_val is not default
        gallery_ids = c["query_ids"] + c.get("gallery_only_ids", 0) + (c.get("distractors", 0) > 0)
        return {"train": (train, c["train_ids"]), "query": (c["query_images"], c["query_ids"]),
                "gallery": (c["gallery_images"] + c.get("gallery_only_images", 0) + c.get("distractors", 0),
                            gallery_ids)}
    if name in ("viper", "cuhk01"):  # halved; one view each, CUHK01 two images per view
        test = c["ids"] - c["ids"] // 2
        per_view = 1 if name == "viper" else 2
        return {"query": (per_view * test, test), "gallery": (per_view * test, test)}
    if name == "prid":  # shared persons halved; gallery = their cam_b + every cam_b-only person
        test = c["shared_ids"] - c["shared_ids"] // 2
        return {"query": (test, test), "gallery": (test + c["cam_b_only_ids"], test + c["cam_b_only_ids"])}
    if name == "grid":  # half the persons train (partition 0); the distractors are one pid (0000)
        test = c["ids"] - c["ids"] // 2
        return {"query": (test, test), "gallery": (test + c["distractors"], test + 1)}
    if name == "ilids":
        test = c["ids"] - c["ids"] // 2
        return {"query": (test, test), "gallery": (test, test)}
    if name == "cuhk02":  # P5, two images per camera
        return {"query": (2 * c["p5_ids"], c["p5_ids"]), "gallery": (2 * c["p5_ids"], c["p5_ids"])}
    return {"query": (c["probe_images"], c["probe_ids"]), "gallery": (c["gallery_images"], c["gallery_ids"])}


@pytest.mark.parametrize("name", DATASETS)
def test_paper_scale_declares_the_protocol_counts(name):
    assert protocol_counts(name, scaled_counts(name, SCALES["paper"].fraction)) == PROTOCOL[name]
    assert get_dataset_class(name).expected == PROTOCOL[name]  # the adapters warn against the same table


def test_tiny_scale_by_hand():
    """fraction 0.004: identities floor(n * f + 0.5), at least 8 (train) or 4; images per identity kept."""
    market = scaled_counts("market1501", SCALES["tiny"].fraction)
    assert market["train_ids"] == 8 and market["train_images"] == 138  # 12936 / 751 * 8 = 137.8
    assert market["query_ids"] == 4 and market["query_images"] == 18  # 3368 / 750 * 4 = 17.96
    assert market["distractors"] == 11 and market["cams"] == 6  # 2793 * 0.004 = 11.2
    msmt = scaled_counts("msmt17", SCALES["tiny"].fraction)
    assert msmt["query_ids"] == 12 and msmt["gallery_images"] == 322  # 82161 / 3060 * 12 = 322.2
    sense = scaled_counts("sensereid", SCALES["tiny"].fraction)
    assert (sense["probe_ids"], sense["gallery_ids"], sense["gallery_images"]) == (4, 7, 14)  # 3388 / 1717 * 7


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rehearsal")
    assert main(["datasets", "synth", "--scale", "tiny", "--out", str(root), "--jobs", "1"]) == 0
    return root


def test_adapters_read_the_declared_counts(tiny_tree):
    """`datasets check` (the 500-ID cut keeps every tiny identity) reports what the tiny counts declare."""
    report = check_datasets(tiny_tree)
    for name in DATASETS:
        expected = protocol_counts(name, scaled_counts(name, SCALES["tiny"].fraction))
        got = {s: (report[name][s]["images"], report[name][s]["ids"]) for s in expected}
        assert got == expected, name


def test_images_are_jpegs_at_the_scale_size(tiny_tree):
    from PIL import Image

    with Image.open(next((tiny_tree / "Market-1501" / "query").iterdir())) as img:
        assert (img.format, img.size) == ("JPEG", (SCALES["tiny"].width, SCALES["tiny"].height))


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and MARKERS_DIR not in p.parts}


MARKERS_DIR = ".rehearsal"
SMALL = ("viper", "grid", "cuhk01")


def test_killed_generation_resumes_to_the_same_bytes(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    generate_rehearsal(whole, "tiny", datasets=SMALL, jobs=1, report=lambda _: None)
    first = generate_rehearsal(killed, "tiny", datasets=SMALL, jobs=2, limit=10, report=lambda _: None)
    assert first["written"] == 10 and first["unfinished"]
    assert not json.loads((killed / MARKERS_DIR / "cuhk01.json").read_text())["complete"]
    generate_rehearsal(killed, "tiny", datasets=SMALL, jobs=2, report=lambda _: None)
    assert digests(killed) == digests(whole)
    marker = killed / MARKERS_DIR / "cuhk01.json"  # as a kill inside the dataset leaves it: some files, unfinished
    for p in list((killed / "CUHK01" / "campus").iterdir())[::3]:
        p.unlink()
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "complete": False}))
    again = generate_rehearsal(killed, "tiny", datasets=SMALL, jobs=1, report=lambda _: None)
    assert again["complete"] == ["cuhk01"] and digests(killed) == digests(whole)
    assert generate_rehearsal(killed, "tiny", datasets=SMALL, report=lambda _: None)["written"] == 0


def test_other_settings_in_the_folder_are_refused(tmp_path):
    generate_rehearsal(tmp_path, "tiny", datasets=("viper",), report=lambda _: None)
    with pytest.raises(UserError, match="other settings"):
        generate_rehearsal(tmp_path, "tiny", seed=1, datasets=("viper",), report=lambda _: None)


def test_real_data_in_the_folder_is_left_alone(tmp_path):
    (tmp_path / "viper" / "VIPeR" / "cam_a").mkdir(parents=True)
    with pytest.raises(UserError, match="is no rehearsal tree"):
        generate_rehearsal(tmp_path, "tiny", datasets=("viper",), report=lambda _: None)
    assert not (tmp_path / "viper" / "VIPeR" / "cam_b").exists()


@pytest.mark.parametrize("argv, message", [
    (["--jobs", "2"], "--jobs and --limit apply to --scale paper or tiny"),
    (["--scale", "tiny", "--pretrain"], "--pretrain applies to the demo domains"),
    (["--scale", "tiny", "--jobs", "0"], "--jobs 0"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, argv, message):
    assert main(["datasets", "synth", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
