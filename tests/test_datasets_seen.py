"""Seen-domain adapters on tiny trees, the raw-release prepare steps, and their error paths."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import trees_seen as trees
from pad_bench.data.datasets.base import ImageRecord
from pad_bench.data.datasets.cuhk03 import CUHK03, mode_aliases
from pad_bench.data.datasets.cuhk_sysu import CUHKSYSU
from pad_bench.data.datasets.dukemtmc import DukeMTMC
from pad_bench.data.datasets.lpw_s2 import LPWS2
from pad_bench.data.datasets.market1501 import Market1501
from pad_bench.data.datasets.msmt17 import MSMT17
from pad_bench.data.prepare import PREPARERS
from pad_bench.errors import DataFormatError, DatasetNotFoundError, UserError

ALL = [Market1501, DukeMTMC, LPWS2, MSMT17, CUHK03, CUHKSYSU]
MARKET_STYLE = [(Market1501, trees.make_market1501), (DukeMTMC, trees.make_dukemtmc), (LPWS2, trees.make_lpw_s2)]


def by_name(records: list[ImageRecord]) -> dict[str, ImageRecord]:
    return {Path(r.path).name: r for r in records}


# ---- Market-style adapters --------------------------------------------------------------------------
@pytest.mark.parametrize("cls,make", MARKET_STYLE, ids=lambda x: getattr(x, "name", ""))
def test_market_style_every_alias(tmp_path, cls, make):
    for i, alias in enumerate(cls.root_aliases):
        root = tmp_path / str(i)
        expected = make(root, alias)
        ds = cls(root)
        assert ds.find_root() == root / alias
        assert trees.sorted_splits(ds.load()) == expected


def test_market1501_drops_junk_keeps_distractors(tmp_path):
    trees.make_market1501(tmp_path)
    splits = Market1501(tmp_path).load()
    gallery = splits.gallery
    assert -1 not in {r.pid for r in gallery}
    assert sum(r.pid == 0 for r in gallery) == 2
    junk = [p for p in (tmp_path / "Market-1501" / "bounding_box_test").iterdir() if p.name.startswith("-1_")]
    assert len(junk) == 2 and not {str(p) for p in junk} & {r.path for r in gallery}
    rec = next(r for r in splits.train if Path(r.path).name.startswith("0007_c6s1_"))
    assert (rec.pid, rec.camid) == (7, 5)


def test_dukemtmc_cameras_1_to_8(tmp_path):
    trees.make_dukemtmc(tmp_path)
    splits = DukeMTMC(tmp_path).load()
    rec = next(r for r in splits.train if Path(r.path).name.startswith("0005_c8_"))
    assert (rec.pid, rec.camid) == (5, 7)
    assert {r.pid for r in splits.gallery} - {r.pid for r in splits.query} == {7140}


def test_lpw_s2_parses_and_requires_sequence(tmp_path):
    trees.make_lpw_s2(tmp_path)
    rec = next(r for r in LPWS2(tmp_path).load().train if Path(r.path).name.startswith("0004_c3s2_"))
    assert (rec.pid, rec.camid) == (4, 2)
    assert LPWS2.kind == "seen"
    trees.write_images(tmp_path / "LPW_s2" / "query", ["0001_c1_000001.jpg"])  # Market name, no s<seq>
    with pytest.raises(DataFormatError, match=r"0001_c1_000001\.jpg"):
        LPWS2(tmp_path).load()


# ---- MSMT17 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("version,folder", [
    ("v2", "MSMT17_V2"), ("v2", "msmt17/MSMT17_V2"),
    ("v1", "MSMT17_V1"), ("v1", "msmt17/MSMT17_V1"), ("pad", "msmt17"),
])
def test_msmt17_versions_and_aliases(tmp_path, version, folder):
    expected = trees.make_msmt17(tmp_path, version, folder)
    ds = MSMT17(tmp_path)
    root = ds.find_root()
    assert root == tmp_path / folder
    assert ds.version(root) == ("v2" if version == "v2" else "v1")
    splits = ds.load()
    assert trees.sorted_splits(splits) == expected
    train_dir, test_dir = trees.MSMT_VERSIONS[version][1:]
    rec = by_name(splits.train)["0001_002_15_0303morning_0014_0.jpg"]
    assert (rec.pid, rec.camid) == (1, 14)
    assert Path(rec.path) == root / train_dir / "0001" / "0001_002_15_0303morning_0014_0.jpg"
    assert all(Path(r.path).is_relative_to(root / test_dir) for r in splits.query + splits.gallery)


def test_msmt17_train_val(tmp_path):
    expected = trees.make_msmt17(tmp_path, msmt17_train="train_val")
    splits = MSMT17(tmp_path, msmt17_train="train_val").load()
    assert trees.sorted_splits(splits) == expected
    assert len(splits.train) == len(trees.MSMT_SPEC["train"]) + len(trees.MSMT_SPEC["val"])
    with pytest.raises(UserError, match="msmt17_train"):
        MSMT17(tmp_path, msmt17_train="val")


def test_msmt17_malformed_line_names_file_and_line(tmp_path):
    trees.make_msmt17(tmp_path)
    lst = tmp_path / "MSMT17_V2" / "list_query.txt"
    lst.write_text(lst.read_text() + "0002/0002_bad.jpg\n")
    n = len(lst.read_text().splitlines())
    with pytest.raises(DataFormatError, match=rf"list_query\.txt:{n}:"):
        MSMT17(tmp_path).load()


def test_msmt17_missing_listed_image(tmp_path):
    trees.make_msmt17(tmp_path)
    gone = next((tmp_path / "MSMT17_V2" / "mask_test_v2").rglob("*.jpg"))
    gone.unlink()
    with pytest.raises(DataFormatError, match=re.escape(str(gone))):
        MSMT17(tmp_path).load()


def test_msmt17_train_val_needs_list_val(tmp_path):
    trees.make_msmt17(tmp_path)
    (tmp_path / "MSMT17_V2" / "list_val.txt").unlink()
    assert MSMT17(tmp_path).load().train  # the default does not read list_val
    with pytest.raises(DatasetNotFoundError, match="list_val.txt"):
        MSMT17(tmp_path, msmt17_train="train_val").load()


# ---- CUHK03 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["labeled", "detected"])
def test_cuhk03_np_mode_and_aliases(tmp_path, mode):
    for parent in ("cuhk03-np", "cuhk03", "CUHK03_lifelong"):
        root = tmp_path / parent
        expected = {m: trees.make_cuhk03_np(root, m, parent) for m in ("labeled", "detected")}
        assert expected["labeled"] != expected["detected"]
        ds = CUHK03(root, cuhk03_mode=mode)
        assert ds.find_root() == root / parent / mode
        assert trees.sorted_splits(ds.load()) == expected[mode]
        assert ds.expected["gallery"] == {"labeled": (5328, 700), "detected": (5332, 700)}[mode]


def test_cuhk03_default_mode_is_labeled(tmp_path):
    trees.make_cuhk03_np(tmp_path, "labeled")
    trees.make_cuhk03_np(tmp_path, "detected")
    assert CUHK03(tmp_path).find_root() == tmp_path / "cuhk03-np" / "labeled"
    with pytest.raises(UserError, match="cuhk03_mode"):
        CUHK03(tmp_path, cuhk03_mode="Labelled")


def test_cuhk03_pad_flat_layout_is_detected_only(tmp_path):
    expected = trees.make_cuhk03_pad(tmp_path)
    splits = CUHK03(tmp_path, cuhk03_mode="detected").load()
    assert trees.sorted_splits(splits) == expected
    assert by_name(splits.train)["0002_c10_00004.jpg"].camid == 9
    with pytest.raises(DatasetNotFoundError, match="cuhk03_mode: detected"):
        CUHK03(tmp_path).load()


def test_cuhk03_hints_at_the_other_mode(tmp_path):
    trees.make_cuhk03_np(tmp_path, "labeled")
    with pytest.raises(DatasetNotFoundError, match="set cuhk03_mode: labeled"):
        CUHK03(tmp_path, cuhk03_mode="detected").load()


# ---- CUHK-SYSU --------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout,folder", [
    ("lstkc", "CUHK-SYSU/cuhksysu4reid"), ("lstkc", "cuhksysu4reid"), ("pad", "cuhksysu"),
])
def test_cuhk_sysu_layouts_and_pseudo_camids(tmp_path, layout, folder):
    expected = trees.make_cuhk_sysu(tmp_path, layout, folder)
    ds = CUHKSYSU(tmp_path)
    assert ds.find_root() == tmp_path / folder
    splits = ds.load()
    assert trees.sorted_splits(splits) == expected
    for split, camid in (("train", 0), ("gallery", 1), ("query", 2)):
        assert {r.camid for r in splits.split(split)} == {camid}
    assert {r.pid for r in splits.query} == set(trees.SYSU_SPEC["query"])


@pytest.mark.parametrize("min_images", [1, 2, 4, 5])
def test_cuhk_sysu_min_images(tmp_path, min_images):
    expected = trees.make_cuhk_sysu(tmp_path, min_images=min_images)
    splits = CUHKSYSU(tmp_path, sysu_min_images=min_images).load()
    assert trees.sorted_splits(splits) == expected
    per_id = {p: trees.SYSU_SPEC["train"].count(p) for p in trees.SYSU_SPEC["train"]}
    assert {r.pid for r in splits.train} == {p for p, n in per_id.items() if n >= min_images}
    assert len(splits.gallery) == len(trees.SYSU_SPEC["gallery"])  # test splits are never filtered


def test_cuhk_sysu_bad_option_and_filter_to_nothing(tmp_path):
    trees.make_cuhk_sysu(tmp_path)
    for bad in (0, "4", True):
        with pytest.raises(UserError, match="sysu_min_images"):
            CUHKSYSU(tmp_path, sysu_min_images=bad)
    with pytest.raises(DataFormatError, match="0 images in its train split"):
        CUHKSYSU(tmp_path, sysu_min_images=100).load()


# ---- errors shared by every adapter -----------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_missing_dataset_names_dataset_and_folders(tmp_path, cls):
    (tmp_path / cls.root_aliases[0]).mkdir(parents=True)  # an empty folder is not the dataset
    with pytest.raises(DatasetNotFoundError) as err:
        cls(tmp_path).load()
    msg = str(err.value)
    assert f"'{cls.name}'" in msg and str(tmp_path) in msg
    assert all(alias in msg for alias in cls.root_aliases)


@pytest.mark.parametrize("cls", [DukeMTMC, CUHK03, CUHKSYSU], ids=lambda c: c.name)
def test_empty_split_folder_is_an_error(tmp_path, cls):
    root = tmp_path / cls.root_aliases[0]
    for d in cls.required:
        (root / d.split("|")[0]).mkdir(parents=True)
    with pytest.raises(DataFormatError, match="0 images"):
        cls(tmp_path).load()


def test_msmt17_empty_list_is_an_error(tmp_path):
    trees.make_msmt17(tmp_path)
    (tmp_path / "MSMT17_V2" / "list_gallery.txt").write_text("")
    with pytest.raises(DataFormatError, match="0 images in its gallery split"):
        MSMT17(tmp_path).load()


# ---- prepare: CUHK03 --------------------------------------------------------------------------------
@pytest.mark.parametrize("folder", ["cuhk03", "CUHK03_lifelong"])
def test_prepare_cuhk03_end_to_end(tmp_path, folder):
    from PIL import Image
    from scipy.io import loadmat

    expected = trees.make_cuhk03_raw(tmp_path, folder)
    out = PREPARERS["cuhk03"](tmp_path)
    assert out == tmp_path / "cuhk03-np"
    n_persons = sum(len(p) for p in trees.CUHK03_RAW_PERSONS.values())
    for mode in ("labeled", "detected"):
        ds = CUHK03(tmp_path, cuhk03_mode=mode)
        assert ds.find_root() == out / mode
        splits = ds.load()
        assert splits.counts() == expected[mode]
        assert {r.pid for r in splits.train} == {
            trees.cuhk03_label(k, n_persons) for k in range(trees.CUHK03_TRAIN_PERSONS)}
        filelist = loadmat(str(tmp_path / folder / f"cuhk03_new_protocol_config_{mode}.mat"))["filelist"]
        for r in splits.train + splits.query + splits.gallery:
            index = int(Path(r.path).stem.split("_")[2])
            pair, person, view, column = map(int, str(filelist[index - 1, 0][0]).removesuffix(".png").split("_"))
            assert r.camid == view - 1
            with Image.open(r.path) as im:
                assert im.size == (4, 8)  # W x H: the transposed HDF5 image was turned back
                v = trees.cuhk03_pixel(mode, pair, person, column)
                assert im.getpixel((0, 0)) == (v, v + 1, v)
    assert not list(out.glob(".*partial"))
    before = sorted(out.rglob("*.png"))
    assert PREPARERS["cuhk03"](tmp_path) == out and sorted(out.rglob("*.png")) == before


def test_prepare_cuhk03_missing_config_field(tmp_path):
    from scipy.io import loadmat, savemat

    trees.make_cuhk03_raw(tmp_path)
    cfg = tmp_path / "cuhk03" / "cuhk03_new_protocol_config_labeled.mat"
    fields = {k: v for k, v in loadmat(str(cfg)).items() if not k.startswith("__") and k != "labels"}
    savemat(str(cfg), fields)
    with pytest.raises(DataFormatError, match=r"cuhk03_new_protocol_config_labeled\.mat: field 'labels'"):
        PREPARERS["cuhk03"](tmp_path)


def test_prepare_cuhk03_empty_cell_leaves_no_folder(tmp_path):
    from scipy.io import loadmat, savemat

    trees.make_cuhk03_raw(tmp_path)
    cfg = tmp_path / "cuhk03" / "cuhk03_new_protocol_config_labeled.mat"
    fields = {k: v for k, v in loadmat(str(cfg)).items() if not k.startswith("__")}
    fields["filelist"][0, 0] = np.array(["1_001_1_03.png"])  # column 3 of person 1 is an empty cell
    savemat(str(cfg), fields)
    with pytest.raises(DataFormatError, match=r"cuhk-03\.mat: the 'labeled' cell for 1_001_1_03\.png"):
        PREPARERS["cuhk03"](tmp_path)
    assert not (tmp_path / "cuhk03-np" / "labeled").exists()
    assert not list((tmp_path / "cuhk03-np").glob(".*partial"))


def test_prepare_cuhk03_bad_inputs(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"raw cuhk03 .*CUHK03_lifelong"):
        PREPARERS["cuhk03"](tmp_path)
    raw = tmp_path / "cuhk03" / "cuhk03_release"
    raw.mkdir(parents=True)
    (raw / "cuhk-03.mat").write_bytes(b"MATLAB 5.0 MAT-file, not HDF5")
    with pytest.raises(DatasetNotFoundError, match="cuhk03_new_protocol_config"):
        PREPARERS["cuhk03"](tmp_path)
    trees.make_cuhk03_raw(tmp_path / "other")
    for mode in ("labeled", "detected"):
        name = f"cuhk03_new_protocol_config_{mode}.mat"
        (tmp_path / "cuhk03" / name).write_bytes((tmp_path / "other" / "cuhk03" / name).read_bytes())
    with pytest.raises(DataFormatError, match=r"cuhk-03\.mat: not a MATLAB v7\.3"):
        PREPARERS["cuhk03"](tmp_path)


# ---- prepare: CUHK-SYSU -----------------------------------------------------------------------------
def sysu_box(pid: int, scene: str) -> tuple[int, int, int, int]:
    """The (x, y, w, h) the raw tree gave `pid` in `scene`."""
    rows = [(s, b) for s, b, _ in trees.SYSU_RAW_TRAIN.get(pid, [])]
    if pid in trees.SYSU_RAW_TEST:
        query, gallery = trees.SYSU_RAW_TEST[pid]
        rows += [query[:2], *gallery]
    return next(b for s, b in rows if f"s{s}" == scene and b)


@pytest.mark.parametrize("min_images", [1, 4])
def test_prepare_cuhk_sysu_end_to_end(tmp_path, min_images):
    from PIL import Image

    expected = trees.make_cuhk_sysu_raw(tmp_path, min_images=min_images)
    out = PREPARERS["cuhk_sysu"](tmp_path)
    assert out == tmp_path / "CUHK-SYSU" / "cuhksysu4reid"
    ds = CUHKSYSU(tmp_path, sysu_min_images=min_images)
    assert ds.find_root() == out
    splits = ds.load()
    assert splits.counts() == expected
    for split, camid in (("train", 0), ("gallery", 1), ("query", 2)):
        for r in splits.split(split):
            assert r.camid == camid
            pid, scene, _, _ = Path(r.path).stem.split("_")
            assert int(pid) == r.pid
            with Image.open(r.path) as im:
                assert im.size == sysu_box(r.pid, scene)[2:]
    assert not list(out.parent.glob(".*partial"))


def test_prepare_cuhk_sysu_missing_field(tmp_path):
    from scipy.io import savemat

    trees.make_cuhk_sysu_raw(tmp_path)
    ann = tmp_path / "CUHK-SYSU" / "annotation" / "test" / "train_test"
    no_box = [("imname", "O"), ("ishard", "O"), ("idname", "O")]
    probe = trees.sysu_struct(no_box, [(np.array(["s5.jpg"]), np.array([[0.0]]), np.array(["p20"]))])
    gallery = trees.sysu_struct(trees.SCENE_FIELDS, [trees.sysu_scene(6, (1, 1, 5, 5), 0)])
    savemat(str(ann / "TestG50.mat"), {"TestG50": trees.sysu_struct([("Query", "O"), ("Gallery", "O")],
                                                                    [(probe, gallery)])})
    with pytest.raises(DataFormatError, match=r"TestG50\.mat: field 'idlocate'"):
        PREPARERS["cuhk_sysu"](tmp_path)
    savemat(str(ann / "Train.mat"), {"Persons": np.zeros((1, 1))})
    with pytest.raises(DataFormatError, match=r"Train\.mat: field 'Train'"):
        PREPARERS["cuhk_sysu"](tmp_path)


def test_prepare_cuhk_sysu_missing_scene_leaves_no_folder(tmp_path):
    trees.make_cuhk_sysu_raw(tmp_path)
    scene = tmp_path / "CUHK-SYSU" / "Image" / "SSM" / "s8.jpg"
    scene.unlink()
    with pytest.raises(DataFormatError, match=re.escape(str(scene))):
        PREPARERS["cuhk_sysu"](tmp_path)
    assert not (tmp_path / "CUHK-SYSU" / "cuhksysu4reid").exists()
    assert not list((tmp_path / "CUHK-SYSU").glob(".*partial"))


def test_prepare_cuhk_sysu_missing_release(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"raw cuhk_sysu .*CUHK-SYSU.*TestG50\.mat"):
        PREPARERS["cuhk_sysu"](tmp_path)
