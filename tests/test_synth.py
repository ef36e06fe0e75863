"""The procedural synthetic domains: determinism, Market-1501 layout through the adapters, identity
splits, evaluation-relevant structure and the completeness marker."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from pad_bench.data.datasets import synthetic
from pad_bench.data.datasets.base import DATASETS, DatasetSplits
from pad_bench.errors import UserError
from pad_bench.synthetic import domains
from pad_bench.synthetic.domains import SynthConfig, generate, is_complete

CFG = SynthConfig(seed=5, n_train_domains=2, n_unseen_domains=1, train_ids=3, test_ids=3, images_per_id=2,
                  query_per_id=2, gallery_per_id=3, distractors=2, height=64, width=32)
MARKET_NAME = re.compile(r"^(\d{4})_c(\d+)s1_\d{6}_00\.jpg$")


def tree_digest(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, dict]:
    """The reduced set under <tmp>/synth, so that the data root is <tmp> and the alias synth/<name>."""
    root = tmp_path_factory.mktemp("data") / "synth"
    return root, generate(root, CFG)


@pytest.fixture(scope="module")
def splits(generated) -> dict[str, DatasetSplits]:
    root, _ = generated
    return {name: DATASETS.get(name)(root.parent).load() for name in CFG.domain_names()}


def pids(records) -> set[int]:
    return {r.pid for r in records}


def test_same_seed_same_bytes_other_seed_differs(generated, tmp_path):
    root, _ = generated
    generate(tmp_path / "again", CFG)
    assert tree_digest(tmp_path / "again") == tree_digest(root)
    generate(tmp_path / "other", replace(CFG, seed=6))
    assert tree_digest(tmp_path / "other") != tree_digest(root)


def test_adapters_registered_for_every_domain_name():
    names = [f"synth_d{i}" for i in range(1, 9)] + [f"synth_u{i}" for i in range(1, 5)]
    assert [c.name for c in synthetic.SYNTHETIC_DATASETS] == names
    for name in names:
        cls = DATASETS.get(name)
        assert cls.kind == "synthetic"
        assert cls.root_aliases == (f"synth/{name}", f"synthetic/{name}", name)
        assert "pad-bench datasets synth --out" in cls.how_to_get


def test_layout_parses_through_adapters(generated, splits):
    root, info = generated
    assert sorted(p.name for p in root.iterdir()) == sorted(CFG.domain_names() + ["synth.json"])
    for name, s in splits.items():
        # the out dir itself also works as a data root (alias "<name>")
        assert DATASETS.get(name)(root).find_root() == root / name
        assert s.counts() == info["domains"][name]["counts"]
        n_cams = len(info["domains"][name]["style"]["cameras"])
        for split, folder in domains.FOLDERS.items():
            files = sorted((root / name / folder).iterdir())
            assert len(files) == len(s.split(split))
            for p, rec in zip(files, sorted(s.split(split))):
                m = MARKET_NAME.match(p.name)
                assert m and int(m.group(1)) == rec.pid and int(m.group(2)) - 1 == rec.camid < n_cams
        with Image.open(s.train[0].path) as img:
            assert (img.format, img.size) == ("JPEG", (CFG.width, CFG.height))


def test_counts_follow_config(splits):
    for s in splits.values():
        assert (len(s.train), len(pids(s.train))) == (CFG.train_ids * CFG.images_per_id, CFG.train_ids)
        assert len(s.query) == CFG.test_ids * CFG.query_per_id
        assert len(s.gallery) == CFG.test_ids * CFG.gallery_per_id + CFG.distractors


def test_identities_disjoint_across_domains(splits):
    seen: set[int] = set()
    for s in splits.values():
        ids = pids(s.train + s.query + s.gallery) - {0}
        assert len(ids) == CFG.train_ids + CFG.test_ids
        assert not ids & seen
        seen |= ids


def test_train_and_test_ids_disjoint_distractors_only_in_gallery(splits):
    for s in splits.values():
        assert not pids(s.train) & pids(s.query + s.gallery)
        assert pids(s.gallery) - {0} == pids(s.query)
        assert 0 not in pids(s.train) | pids(s.query)
        assert sum(r.pid == 0 for r in s.gallery) == CFG.distractors


def test_queries_have_same_camera_and_cross_camera_positives(splits):
    for s in splits.values():
        for pid in pids(s.query):
            q_cams = {r.camid for r in s.query if r.pid == pid}
            g_cams = [r.camid for r in s.gallery if r.pid == pid]
            assert q_cams & set(g_cams), "no same-camera gallery image to filter"
            for cam in q_cams:
                assert any(c != cam for c in g_cams), "a query without a valid positive"


def test_neighbouring_domains_differ_in_style():
    styles = [domains.sample_domain_style(CFG, k) for k in range(5)]
    for a, b in zip(styles, styles[1:]):
        assert a.background != b.background
        assert a.color_transform != b.color_transform
        assert a.hue_center != b.hue_center


def test_is_complete_tracks_config_and_marker(generated, tmp_path):
    root, info = generated
    assert is_complete(root, CFG)
    assert json.loads((root / "synth.json").read_text())["domains"].keys() == info["domains"].keys()
    assert not is_complete(root, replace(CFG, distractors=3))
    assert not is_complete(tmp_path, CFG)
    (tmp_path / "synth.json").write_text("{not json")
    assert not is_complete(tmp_path, CFG)


def test_interrupted_generation_leaves_no_marker_and_regeneration_replaces_stale_domains(tmp_path, monkeypatch):
    small = replace(CFG, n_train_domains=1, n_unseen_domains=0)
    generate(tmp_path, CFG)
    calls = []

    def killed(*args):
        calls.append(args)
        if len(calls) > 3:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(domains, "_save_jpeg", killed)
        with pytest.raises(KeyboardInterrupt):
            generate(tmp_path, small)
    assert not (tmp_path / "synth.json").exists()
    assert not is_complete(tmp_path, CFG) and not is_complete(tmp_path, small)
    generate(tmp_path, small)
    assert is_complete(tmp_path, small)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth.json", "synth_d1"]


@pytest.mark.parametrize("field,value", [("n_train_domains", 9), ("n_unseen_domains", -1), ("gallery_per_id", 1),
                                         ("train_ids", 0), ("height", 8), ("seed", -1), ("width", "64"),
                                         ("outfits", -1)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(UserError, match=field):
        SynthConfig(**{field: value})


def test_world_knobs_scale_the_style_draws():
    """nuisance, camera_tint and palette scale the same random draws: at 0 no blur or noise, full
    resolution, neutral camera tints and one clothing hue per domain; at 0.5 half the distance from that."""
    from dataclasses import replace

    from pad_bench.synthetic.domains import sample_domain_style

    base = replace(CFG, nuisance=1.0, camera_tint=1.0, palette=1.0)
    flat = replace(CFG, nuisance=0.0, camera_tint=0.0, palette=0.0, palette_shift=0.0)
    half = replace(base, nuisance=0.5, camera_tint=0.5)
    for d in range(3):
        s1, s0, sh = (sample_domain_style(c, d) for c in (base, flat, half))
        assert s0.blur == 0 and s0.noise == 0 and s0.resolution == 1 and s0.hue_spread == 0
        assert all(c.tint == (1.0, 1.0, 1.0) for c in s0.cameras)
        assert s0.hue_center == sample_domain_style(flat, 0).hue_center  # no palette shift between domains
        assert sh.blur == pytest.approx(s1.blur / 2, abs=1e-4) and sh.noise == pytest.approx(s1.noise / 2, abs=1e-4)
        assert 1 - sh.resolution == pytest.approx((1 - s1.resolution) / 2, abs=1e-4)
        for c1, ch in zip(s1.cameras, sh.cameras):
            assert ch.tint == pytest.approx([1 + (t - 1) / 2 for t in c1.tint], abs=1e-4)
        assert (s1.background, s1.gain, s1.color_matrix) == (sh.background, sh.gain, sh.color_matrix)


def test_cast_and_colour_transform_scale_their_draws():
    """At 0 a domain has a neutral cast and no colour transform; colour_transform 0.5 is halfway from
    the identity matrix to the drawn transform, which is the same draw."""
    import numpy as np

    from pad_bench.synthetic.domains import sample_domain_style

    none, half = replace(CFG, cast=0.0, colour_transform=0.0), replace(CFG, colour_transform=0.5)
    for d in range(4):
        full, s0, sh = (sample_domain_style(c, d) for c in (CFG, none, half))
        assert s0.cast == (1.0, 1.0, 1.0) and full.cast != (1.0, 1.0, 1.0)
        assert s0.color_matrix == ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
        assert np.asarray(sh.color_matrix) == pytest.approx((np.eye(3) + np.asarray(full.color_matrix)) / 2, abs=1e-4)
        assert (sh.color_transform, sh.gain, sh.cast) == (full.color_transform, full.gain, full.cast)


def test_outfits_repeat_captions_and_keep_each_body(tmp_path):
    """With outfits=2, identity i wears outfit i mod 2: the domain's captions take two values, identities
    0 and 2 share one, and each identity keeps its own skin and build (which no caption names)."""
    from pad_bench.synthetic.attributes import attributes_of

    cfg = replace(CFG, outfits=2, n_train_domains=1, n_unseen_domains=0)
    style = domains.sample_domain_style(cfg, 0)
    own = domains.domain_looks(replace(cfg, outfits=0), style, 0, list(range(6)))
    dressed = domains.domain_looks(cfg, style, 0, list(range(6)))
    assert attributes_of(dressed[0]) == attributes_of(dressed[2]) == attributes_of(dressed[4])
    assert attributes_of(dressed[1]) == attributes_of(dressed[3])
    for i in range(6):
        assert (dressed[i].skin, dressed[i].height, dressed[i].width) == (own[i].skin, own[i].height, own[i].width)
    assert dressed[0].skin != dressed[2].skin
    generate(tmp_path, cfg)
    records = json.loads((tmp_path / "synth_d1" / "attributes.json").read_text())
    assert len({r["caption"] for r in records.values()}) == 2


def test_a_shade_keeps_its_colour_name():
    import numpy as np

    from pad_bench.synthetic.attributes import colour_name

    rng = np.random.default_rng(0)
    colours = [tuple(float(x) for x in rng.random(3)) for _ in range(300)]
    shades = [domains._shade(c, rng) for c in colours]
    assert all(colour_name(s) == colour_name(c) for c, s in zip(colours, shades))
    assert sum(s != c for c, s in zip(colours, shades)) > 150  # most colours do get another shade


@pytest.mark.parametrize("field", ["nuisance", "camera_tint", "palette", "palette_shift", "cast", "colour_transform"])
def test_world_knobs_are_bounded(field):
    with pytest.raises(UserError, match=field):
        SynthConfig(**{field: 3.5})
