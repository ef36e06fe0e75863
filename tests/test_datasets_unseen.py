"""The 7 unseen-set adapters on tiny trees: parsing, splits, seeds, PAD runs, aliases and errors."""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from pad_bench.data.datasets.base import DATASETS
from pad_bench.data.datasets.cuhk01 import CUHK01
from pad_bench.data.datasets.cuhk02 import CUHK02
from pad_bench.data.datasets.grid import GRID
from pad_bench.data.datasets.ilids import ILIDS
from pad_bench.data.datasets.prid import PRID
from pad_bench.data.datasets.sensereid import SenseReID
from pad_bench.data.datasets.unseen_split import PAD_SEED, halve_ids, pad_runs
from pad_bench.data.datasets.viper import VIPeR
from pad_bench.errors import DataFormatError, DatasetNotFoundError, UserError
from trees_unseen import (make_cuhk01, make_cuhk02, make_grid, make_ilids, make_prid, make_sensereid,
                          make_viper, write_grid_mat, write_image)

ADAPTERS = {
    "viper": (VIPeR, make_viper),
    "prid": (PRID, make_prid),
    "grid": (GRID, make_grid),
    "ilids": (ILIDS, make_ilids),
    "cuhk01": (CUHK01, make_cuhk01),
    "cuhk02": (CUHK02, make_cuhk02),
    "sensereid": (SenseReID, make_sensereid),
}
PAD_N_RUNS = {"viper": 20, "cuhk01": 20, "prid": 10, "ilids": 10, "grid": 10, "cuhk02": 1, "sensereid": 1}
SEEDED = ("viper", "cuhk01", "prid", "ilids")
# Which view an image belongs to, read back from its path.
VIEW_OF = {
    "viper": lambda r: "A" if Path(r.path).parent.name == "cam_a" else "B",
    "cuhk01": lambda r: "A" if int(Path(r.path).stem[4:]) <= 2 else "B",
}


def pids(records) -> set[int]:
    return {r.pid for r in records}


def make(name: str, data_root: Path, **options):
    """Write the tree of `name` under data_root; return (adapter, resolved root, tree facts)."""
    cls, maker = ADAPTERS[name]
    tree = maker(data_root)
    ds = cls(data_root, **options)
    return ds, ds.resolve_root(), tree


# ---- shared helpers ---------------------------------------------------------------------------
def test_halve_ids_uses_sorted_ids_and_puts_the_odd_one_in_test():
    ids = list(range(1, 120))
    train, test = halve_ids(ids, random.Random(5))
    assert (len(train), len(test)) == (59, 60)
    assert train | test == set(ids) and not train & test
    assert halve_ids(reversed(ids), random.Random(5)) == (train, test)
    assert halve_ids(ids, random.Random(6)) != (train, test)


def test_pad_runs_alternate_direction_on_each_id_split():
    assert pad_runs(3, 10) == [(10, False), (11, False), (12, False)]
    assert pad_runs(4, 10, alternate=True) == [(10, False), (10, True), (11, False), (11, True)]


# ---- every adapter ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ADAPTERS)
def test_registered_as_unseen_and_found_at_the_first_alias(name, tmp_path):
    ds, root, tree = make(name, tmp_path)
    assert ds.kind == "unseen" and DATASETS.get(name) is type(ds)
    assert root == tree["root"] == tmp_path / type(ds).root_aliases[0]


@pytest.mark.parametrize("name", [n for n in ADAPTERS if n != "sensereid"])  # SenseReID: its file camids
def test_query_side_camid_0_gallery_side_1_and_every_query_has_a_match(name, tmp_path):
    ds, _, _ = make(name, tmp_path)
    for split in ds.load_eval_splits("single_split") + ds.load_eval_splits("pad_multi_split"):
        assert {r.camid for r in split.query} == {0}
        assert {r.camid for r in split.gallery} == {1}
        assert pids(split.query) <= pids(split.gallery)


@pytest.mark.parametrize("name", ADAPTERS)
def test_pad_multi_split_run_count(name, tmp_path):
    ds, _, _ = make(name, tmp_path)
    assert len(ds.load_eval_splits("pad_multi_split")) == PAD_N_RUNS[name]


@pytest.mark.parametrize("name", ADAPTERS)
def test_single_split_is_build(name, tmp_path):
    ds, root, _ = make(name, tmp_path)
    assert ds.build_eval_splits(root, "single_split", 0) == [ds.build(root)]


@pytest.mark.parametrize("name", ADAPTERS)
def test_unknown_protocol_lists_the_valid_ones(name, tmp_path):
    ds, root, _ = make(name, tmp_path)
    with pytest.raises(UserError, match="unseen_protocol 'multi'.*pad_multi_split, single_split"):
        ds.build_eval_splits(root, "multi", 0)


@pytest.mark.parametrize("name", ADAPTERS)
def test_every_alias_is_discovered(name, tmp_path):
    cls, maker = ADAPTERS[name]
    for k, alias in enumerate(cls.root_aliases):
        data_root = tmp_path / str(k)
        maker(data_root, alias=alias)
        assert cls(data_root).find_root() == data_root / alias


@pytest.mark.parametrize("name", ADAPTERS)
def test_missing_dataset_names_every_folder_searched(name, tmp_path):
    cls, _ = ADAPTERS[name]
    with pytest.raises(DatasetNotFoundError) as err:
        cls(tmp_path).load()
    for alias in cls.root_aliases:
        assert str(Path(alias)) in str(err.value)


@pytest.mark.parametrize("name, missing", [
    ("viper", "cam_b"), ("prid", "cam_a"), ("grid", "features_and_partitions.mat"), ("grid", "probe"),
    ("cuhk01", "campus"), ("cuhk02", "P5/cam2"), ("sensereid", "test_gallery"),
])
def test_half_present_folder_is_not_taken(name, missing, tmp_path):
    cls, maker = ADAPTERS[name]
    gone = maker(tmp_path)["root"] / missing
    shutil.rmtree(gone) if gone.is_dir() else gone.unlink()
    assert cls(tmp_path).find_root() is None


# ---- seeded single splits (VIPeR, CUHK01, PRID, i-LIDS) -----------------------------------------
@pytest.mark.parametrize("name", SEEDED)
def test_split_is_deterministic_and_follows_the_seed_option(name, tmp_path):
    ds, root, _ = make(name, tmp_path)
    cls = type(ds)
    assert cls(tmp_path, seed=3).build(root) == cls(tmp_path, seed=3).build(root)
    assert ds.build(root) == cls(tmp_path, seed=0).build(root)
    assert len({frozenset(pids(cls(tmp_path, seed=s).build(root).query)) for s in range(6)}) > 1


@pytest.mark.parametrize("name", SEEDED)
def test_seed_option_must_be_an_integer(name, tmp_path):
    cls, maker = ADAPTERS[name]
    maker(tmp_path)
    with pytest.raises(UserError, match="seed must be an integer"):
        cls(tmp_path, seed="1").load()


@pytest.mark.parametrize("name", ["prid", "ilids"])
def test_pad_runs_are_the_splits_of_seed_123_plus_s(name, tmp_path):
    ds, root, _ = make(name, tmp_path)
    runs = ds.build_eval_splits(root, "pad_multi_split", 0)
    assert runs == [type(ds)(tmp_path, seed=PAD_SEED + s).build(root) for s in range(len(runs))]
    assert ds.build_eval_splits(root, "pad_multi_split", 1)[0] == runs[1]


@pytest.mark.parametrize("name", ["viper", "cuhk01"])
def test_two_view_pad_runs_alternate_direction_on_seed_123_plus_s_div_2(name, tmp_path):
    ds, root, _ = make(name, tmp_path)
    view = VIEW_OF[name]
    for s, run in enumerate(ds.build_eval_splits(root, "pad_multi_split", 0)):
        a_to_b = type(ds)(tmp_path, seed=PAD_SEED + s // 2).build(root)
        assert pids(run.query) == pids(a_to_b.query) and run.train == a_to_b.train
        assert {view(r) for r in run.query} == ({"B"} if s % 2 else {"A"})
        assert {view(r) for r in run.gallery} == ({"A"} if s % 2 else {"B"})
        if s % 2 == 0:
            assert run == a_to_b


# ---- VIPeR ----------------------------------------------------------------------------------
def test_viper_pairs_the_cameras_by_sorted_index_and_halves_the_ids(tmp_path):
    n = make_viper(tmp_path)["n_ids"]
    split = VIPeR(tmp_path).load()
    assert len(pids(split.train)) == n // 2 and len(split.train) == 2 * (n // 2)
    assert pids(split.query) == pids(split.gallery) and not pids(split.train) & pids(split.query)
    assert len(split.query) == len(split.gallery) == n - n // 2
    assert pids(split.train) | pids(split.query) == set(range(1, n + 1))
    assert {Path(r.path).parent.name for r in split.query} == {"cam_a"}
    assert {Path(r.path).parent.name for r in split.gallery} == {"cam_b"}
    gallery_of = {r.pid: r for r in split.gallery}
    for q in split.query:
        assert Path(q.path).name.split("_")[0] == Path(gallery_of[q.pid].path).name.split("_")[0]
    assert {(Path(r.path).parent.name, r.camid) for r in split.train} == {("cam_a", 0), ("cam_b", 1)}


def test_viper_refuses_cameras_of_different_sizes(tmp_path):
    root = make_viper(tmp_path)["root"]
    sorted((root / "cam_b").iterdir())[0].unlink()
    with pytest.raises(DataFormatError, match="cam_a has 8 images but cam_b has 7"):
        VIPeR(tmp_path).load()


# ---- CUHK01 ---------------------------------------------------------------------------------
def test_cuhk01_views_a_and_b_from_the_camera_digits(tmp_path):
    n = make_cuhk01(tmp_path)["n_ids"]
    split = CUHK01(tmp_path).load()
    test_ids = set(range(1, n + 1)) - pids(split.train)
    assert len(pids(split.train)) == n // 2 and len(split.train) == 4 * (n // 2)
    assert pids(split.query) == pids(split.gallery) == test_ids
    assert len(split.query) == len(split.gallery) == 2 * len(test_ids)
    for r in split.train + split.query + split.gallery:
        assert int(Path(r.path).stem[:4]) == r.pid
    assert {VIEW_OF["cuhk01"](r) for r in split.query} == {"A"}
    assert all(r.camid == (0 if VIEW_OF["cuhk01"](r) == "A" else 1) for r in split.train)


@pytest.mark.parametrize("bad, message", [("0001005.png", "camera field 005"), ("img_01.png", "img_01.png")])
def test_cuhk01_bad_file_names(bad, message, tmp_path):
    root = make_cuhk01(tmp_path)["root"]
    write_image(root / "campus" / bad)
    with pytest.raises(DataFormatError, match=message):
        CUHK01(tmp_path).load()


# ---- PRID -----------------------------------------------------------------------------------
def distractors(split):
    return sorted(r.pid for r in split.gallery if r.pid not in pids(split.query))


def test_prid_halves_ids_1_to_200_and_adds_cam_b_201_to_749(tmp_path):
    tree = make_prid(tmp_path)
    split = PRID(tmp_path).load()
    shared = set(tree["shared"])
    assert len(pids(split.train)) == len(shared) // 2 and pids(split.train) <= shared
    assert len(split.train) == 2 * len(pids(split.train))
    assert pids(split.query) == shared - pids(split.train) and len(split.query) == len(pids(split.query))
    assert {Path(r.path).parent.name for r in split.query} == {"cam_a"}
    assert {Path(r.path).parent.name for r in split.gallery} == {"cam_b"}
    assert distractors(split) == sorted(tree["cam_b_only"])
    for r in split.train + split.query + split.gallery:
        assert r.pid <= 200 or Path(r.path).parent.name == "cam_b"
        assert Path(r.path).name == f"person_{r.pid:04d}.png"


def test_prid_pad_code_distractors_are_cam_b_386_to_749(tmp_path):
    tree = make_prid(tmp_path)
    split = PRID(tmp_path, prid_distractors="386_749").load()
    assert distractors(split) == [p for p in sorted(tree["cam_b_only"]) if p >= 386]
    assert split.query == PRID(tmp_path).load().query


def test_prid_rejects_an_unknown_distractor_option(tmp_path):
    make_prid(tmp_path)
    with pytest.raises(UserError, match="prid_distractors value '1_749'.*201_749, 386_749"):
        PRID(tmp_path, prid_distractors="1_749").load()


def test_prid_bad_file_name(tmp_path):
    write_image(make_prid(tmp_path)["root"] / "cam_b" / "0001.png")
    with pytest.raises(DataFormatError, match=r"0001\.png.*person_0001\.png"):
        PRID(tmp_path).load()


# ---- i-LIDS ---------------------------------------------------------------------------------
def test_ilids_one_query_and_one_other_gallery_image_per_test_id(tmp_path):
    per_id = make_ilids(tmp_path)["images_per_id"]
    split = ILIDS(tmp_path).load()
    eligible = {pid for pid, n in per_id.items() if n >= 2}
    assert len(pids(split.train)) == len(eligible) // 2
    assert pids(split.train) | pids(split.query) == eligible and not pids(split.train) & pids(split.query)
    assert pids(split.query) == pids(split.gallery)
    assert len(split.query) == len(split.gallery) == len(eligible) - len(eligible) // 2
    gallery_of = {r.pid: r.path for r in split.gallery}
    assert all(q.path != gallery_of[q.pid] for q in split.query)
    assert len(split.train) == sum(per_id[p] for p in pids(split.train))
    assert all(Path(r.path).name.startswith(f"{r.pid:04d}") for r in split.train + split.query)


def test_ilids_empty_folder_is_an_error(tmp_path):
    (tmp_path / "i-LIDS_Pedestrian" / "Persons").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="0 images"):
        ILIDS(tmp_path).load()


# ---- GRID -----------------------------------------------------------------------------------
def test_grid_partition_0_with_the_0000_distractors_in_the_gallery(tmp_path):
    tree = make_grid(tmp_path)
    split = GRID(tmp_path).load()
    train_ids = set(tree["partitions"][0])
    test_ids = set(tree["pids"]) - train_ids
    assert pids(split.train) == train_ids and len(split.train) == 2 * len(train_ids)
    assert pids(split.query) == test_ids and len(split.query) == len(test_ids)
    assert {Path(r.path).parent.name for r in split.query} == {"probe"}
    assert pids(split.gallery) == test_ids | {0}
    assert sum(r.pid == 0 for r in split.gallery) == tree["n_distractors"]
    assert len(split.gallery) == len(test_ids) + tree["n_distractors"]
    assert all(Path(r.path).name.startswith(f"{r.pid:04d}_") for r in split.gallery)


def test_grid_pad_runs_are_the_10_official_partitions(tmp_path):
    ds, root, tree = make("grid", tmp_path)
    runs = ds.build_eval_splits(root, "pad_multi_split", 0)
    assert [pids(run.train) for run in runs] == [set(p) for p in tree["partitions"]]
    assert [sum(r.pid == 0 for r in run.gallery) for run in runs] == [tree["n_distractors"]] * 10
    assert runs[0] == ds.build(root)


def _savemat(path: Path, content: dict) -> None:
    from scipy.io import savemat

    savemat(str(path), content)


@pytest.mark.parametrize("corrupt, message", [
    (lambda p: _savemat(p, {"other": [[1.0]]}), "field 'trainIdxAll' is missing"),
    (lambda p: _savemat(p, {"trainIdxAll": [[float(i) for i in range(10)]]}), "'trainIdxAll' partition 0"),
    (lambda p: write_grid_mat(p, [[1, 2]] * 3), "'trainIdxAll' has 3 partitions, expected 10"),
    (lambda p: p.write_bytes(b"not a mat file at all"), "not a readable .mat file"),
])
def test_grid_malformed_mat_names_file_and_field(corrupt, message, tmp_path):
    mat = make_grid(tmp_path)["root"] / "features_and_partitions.mat"
    corrupt(mat)
    with pytest.raises(DataFormatError, match=message) as err:
        GRID(tmp_path).load()
    assert str(mat) in str(err.value)


def test_grid_file_name_without_a_pid_field(tmp_path):
    write_image(make_grid(tmp_path)["root"] / "gallery" / "abcd_1_2.jpeg")
    with pytest.raises(DataFormatError, match=r"abcd_1_2\.jpeg: field 0 \(pid\)"):
        GRID(tmp_path).load()


# ---- CUHK02 ---------------------------------------------------------------------------------
def test_cuhk02_p5_cam1_is_query_cam2_gallery_and_p1_to_p4_train(tmp_path):
    tree = make_cuhk02(tmp_path)
    split = CUHK02(tmp_path).load()
    n, per_cam = tree["n_test"], tree["per_cam"]
    assert pids(split.query) == pids(split.gallery) == set(range(1, n + 1))
    assert len(split.query) == len(split.gallery) == n * per_cam
    assert {Path(r.path).parent.relative_to(tree["root"]).as_posix() for r in split.query} == {"P5/cam1"}
    assert {Path(r.path).parent.relative_to(tree["root"]).as_posix() for r in split.gallery} == {"P5/cam2"}
    # every pair numbers its persons from 1: the relabelling keeps them apart
    assert len(pids(split.train)) == tree["n_train_ids"]
    assert len(split.train) == tree["n_train_ids"] * 2 * per_cam
    assert all(len({Path(r.path).parts[-3] for r in split.train if r.pid == pid}) == 1 for pid in pids(split.train))
    assert {r.camid for r in split.train} == set(range(8))


def test_cuhk02_pad_run_keeps_one_random_image_per_id_per_camera(tmp_path):
    ds, root, tree = make("cuhk02", tmp_path)
    (run,) = ds.build_eval_splits(root, "pad_multi_split", 0)
    full = ds.build(root)
    for side, all_images in ((run.query, full.query), (run.gallery, full.gallery)):
        assert len(side) == len(pids(side)) == tree["n_test"]
        assert set(side) <= set(all_images)
    assert [run] == ds.build_eval_splits(root, "pad_multi_split", 0)
    assert len({tuple(ds.pad_multi_split(root, seed)[0].query) for seed in range(PAD_SEED, PAD_SEED + 6)}) > 1


def test_cuhk02_pad_layout_with_only_p5(tmp_path):
    make_cuhk02(tmp_path, alias="cuhk02/Dataset", train_pairs=())
    ds = CUHK02(tmp_path)
    assert ds.resolve_root() == tmp_path / "cuhk02" / "Dataset"
    split = ds.load()
    assert split.train == [] and len(split.query) == len(split.gallery) > 0


# ---- SenseReID ------------------------------------------------------------------------------
def test_sensereid_camids_come_from_the_file_names_by_default(tmp_path):
    tree = make_sensereid(tmp_path)
    split = SenseReID(tmp_path).load()
    assert split.train == []
    for side, spec in ((split.query, tree["probe"]), (split.gallery, tree["gallery"])):
        # torchreid / the LSTKC family / PAD: pid, camid = int(f) for f in name.split('_')
        assert sorted((r.pid, r.camid) for r in side) == sorted((pid, c) for pid, cams in spec.items() for c in cams)
        assert all(Path(r.path).name.startswith(f"{r.pid:07d}_") for r in side)
    assert pids(split.query) <= pids(split.gallery)
    assert SenseReID(tmp_path).load_eval_splits("pad_multi_split") == [split]


def test_sensereid_query_gallery_reading_is_a_named_option(tmp_path):
    tree = make_sensereid(tmp_path)
    split = SenseReID(tmp_path, sensereid_camids="query_gallery").load()
    n_probe = sum(len(c) for c in tree["probe"].values())
    n_gallery = sum(len(c) for c in tree["gallery"].values())
    assert [r.camid for r in split.query] == [0] * n_probe and [r.camid for r in split.gallery] == [1] * n_gallery
    with pytest.raises(UserError, match="sensereid_camids"):
        SenseReID(tmp_path, sensereid_camids="zero").load()


def test_sensereid_file_name_without_camid(tmp_path):
    write_image(make_sensereid(tmp_path)["root"] / "test_probe" / "0000009.jpg")
    with pytest.raises(DataFormatError, match=r"0000009\.jpg"):
        SenseReID(tmp_path).load()
