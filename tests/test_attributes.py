"""Attribute records and captions of synthetic identities, and the pretraining corpus."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from pad_bench.synthetic import corpus, domains
from pad_bench.synthetic.attributes import (ANY, ATTRIBUTES, attributes_of, caption, colour_name, matches,
                                       sample_partial, zero_shot_class, zero_shot_prompts)
from pad_bench.synthetic.domains import SynthConfig, generate

CFG = SynthConfig(seed=2, n_train_domains=2, n_unseen_domains=1, train_ids=3, test_ids=2, images_per_id=1,
                  query_per_id=1, gallery_per_id=2, distractors=2, height=64, width=32)
CORPUS = corpus.CorpusConfig(seed=4, train_ids=5, heldout_ids=3, images_per_id=2, height=64, width=32)
RECORD = {"upper_colour": "red", "upper_pattern": "stripes", "sleeves": "long", "lower_colour": "blue",
          "lower_kind": "trousers", "hair_colour": "black", "hair_length": "short", "shoes": "white",
          "hat": "none", "bag": "green", "backpack": "none"}


@pytest.mark.parametrize("rgb, name", [
    ((1.0, 0.0, 0.0), "red"), ((0.0, 0.0, 1.0), "blue"), ((0.0, 0.8, 0.0), "green"), ((1.0, 0.5, 0.0), "orange"),
    ((1.0, 1.0, 0.0), "yellow"), ((0.6, 0.0, 0.9), "purple"), ((1.0, 0.4, 0.7), "pink"),
    ((0.05, 0.05, 0.05), "black"), ((0.95, 0.95, 0.95), "white"), ((0.5, 0.5, 0.5), "grey"),
    ((0.45, 0.25, 0.10), "brown"),   # hue 0.067, value 0.45: a dark orange
    ((0.40, 0.10, 0.30), "purple"),  # hue 0.89 (pink) but value 0.4: plum
])
def test_colour_names(rgb, name):
    assert colour_name(rgb) == name


def test_caption_of_a_full_record():
    assert caption(RECORD) == ("a person in a red striped top with long sleeves and blue trousers, "
                               "with short black hair and white shoes, carrying a green bag")
    assert caption({**RECORD, "lower_kind": "skirt", "hat": "yellow", "backpack": "grey"}) == (
        "a person in a red striped top with long sleeves and a blue skirt, with short black hair and white shoes, "
        "wearing a yellow hat, carrying a green bag and a grey backpack")


def test_partial_captions_and_prompts():
    assert caption({"lower_colour": "red"}) == "a person in red bottoms"
    assert caption({"hat": "none"}) == "a person"
    assert caption({"hat": "none"}, mention_absent=True) == "a person with no hat"
    assert caption({"bag": ANY, "shoes": "white"}) == "a person with white shoes, carrying a bag"
    classes, prompts = zero_shot_prompts("backpack")
    assert classes == ["absent", "present"]
    assert prompts == ["a person with no backpack", "a person carrying a backpack"]
    classes, prompts = zero_shot_prompts("upper_pattern")
    assert prompts == ["a person in a plain top", "a person in a striped top", "a person in a checked top",
                       "a person in a logo top"]
    assert zero_shot_class("bag", RECORD) == "present" and zero_shot_class("hat", RECORD) == "absent"


def test_matches_and_partial_records():
    assert matches({"hat": ANY}, {**RECORD, "hat": "red"}) and not matches({"hat": ANY}, RECORD)
    assert matches({"bag": "green", "shoes": "white"}, RECORD) and not matches({"bag": "blue"}, RECORD)
    rng = np.random.default_rng(0)
    for _ in range(50):
        part = sample_partial(RECORD, rng)
        assert part and matches(part, RECORD)  # a record always fits its own partial captions


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return root, generate(root, CFG)


def test_every_identity_has_a_record_and_its_caption(generated):
    root, _ = generated
    words = set(re.findall(r"[a-z]+", " ".join(" ".join(v) for v in ATTRIBUTES.values())))
    words |= {"a", "person", "in", "top", "with", "sleeves", "and", "hair", "shoes", "wearing", "carrying",
              "striped", "checked", "hat", "bag", "backpack"}
    for k, name in enumerate(CFG.domain_names()):
        records = json.loads((root / name / domains.ATTRIBUTES_FILE).read_text())
        pids = {int(p.name[:4]) for p in (root / name).rglob("*.jpg")} - {0}  # 0: distractors
        assert set(map(int, records)) == pids
        style = domains.sample_domain_style(CFG, k)
        for rec in records.values():
            assert set(rec["attributes"]) == set(ATTRIBUTES)
            assert all(v in ATTRIBUTES[a] for a, v in rec["attributes"].items())
            assert rec["caption"] == caption(rec["attributes"])
            # only attribute words: nothing of the domain's style (background, transform, ...)
            assert set(re.findall(r"[a-z]+", rec["caption"])) <= words
            assert style.background not in rec["caption"] and style.color_transform not in rec["caption"]


def test_record_names_what_the_look_holds():
    look = domains.sample_look(domains.sample_domain_style(CFG, 0), np.random.default_rng(1), 0)
    attrs = attributes_of(look)
    assert attrs["upper_colour"] == colour_name(look.upper)
    assert attrs["upper_pattern"] == look.pattern and attrs["lower_kind"] == look.lower_kind
    assert (attrs["hat"] == "none") == (look.hat is None) and (attrs["bag"] == "none") == (look.bag is None)
    assert attrs["hair_colour"] == ("black", "dark brown", "brown", "blond", "grey", "red")[domains.HAIR.index(look.hair)]


def test_corpus_is_deterministic_split_and_styled_apart(tmp_path):
    corpus.generate_corpus(tmp_path / "a", CORPUS)
    corpus.generate_corpus(tmp_path / "b", CORPUS)
    files_a = sorted((tmp_path / "a" / corpus.CORPUS_DIR).rglob("*.*"))
    assert [p.read_bytes() for p in files_a] == [
        (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes() for p in files_a]
    assert corpus.corpus_is_complete(tmp_path / "a", CORPUS)
    images, records = corpus.load_corpus(tmp_path / "a", CORPUS)
    assert len(images) == 8 * 2 and sorted(records) == list(range(8))
    assert [records[p]["split"] for p in range(8)] == ["train"] * 5 + ["heldout"] * 3
    assert {im.pid for im in images if im.heldout} == {5, 6, 7}
    # the corpus's styles are none of the benchmark domains': backgrounds of its own, no colour transform
    for i in range(20):
        style = corpus.sample_corpus_style(np.random.default_rng(i))
        assert style.background in domains.CORPUS_BACKGROUNDS and style.background not in domains.BACKGROUNDS
        assert style.color_transform == "none"
