"""Attribute records and captions of synthetic identities (what the renderer draws, in words).

An attribute record names the clothing and accessories of a `Look`; the caption is built from the
record alone, so nothing about a domain's style (background, lighting, colour cast, noise,
cameras) can enter it. Colours are named from the look's own RGB, before any domain colour
transform, as a person would describe the clothes, not the photo.
"""
from __future__ import annotations

import colorsys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .domains import Look

RGB = tuple[float, float, float]

COLOURS = ("black", "white", "grey", "brown", "red", "orange", "yellow", "green", "blue", "purple", "pink")
# Upper hue bounds of the chromatic names (hue in [0, 1)); red also takes hue >= 0.94.
_HUES = ((0.04, "red"), (0.11, "orange"), (0.19, "yellow"), (0.45, "green"), (0.72, "blue"),
         (0.85, "purple"), (0.94, "pink"), (1.0, "red"))

# Names of the renderer's discrete palettes, index for index (synth.HAIR, synth.SHOES).
HAIR_NAMES = ("black", "dark brown", "brown", "blond", "grey", "red")
SHOE_NAMES = ("black", "white", "brown", "navy")
PATTERN_WORDS = {"plain": "plain", "stripes": "striped", "checks": "checked", "logo": "logo"}

# Every attribute with its possible values; "none" = the accessory is absent.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "upper_colour": COLOURS,
    "upper_pattern": tuple(PATTERN_WORDS),
    "sleeves": ("long", "short"),
    "lower_colour": COLOURS,
    "lower_kind": ("trousers", "shorts", "skirt"),
    "hair_colour": HAIR_NAMES,
    "hair_length": ("long", "short"),
    "shoes": SHOE_NAMES,
    "hat": ("none",) + COLOURS,
    "bag": ("none",) + COLOURS,
    "backpack": ("none",) + COLOURS,
}

ACCESSORIES = ("hat", "bag", "backpack")
ANY = "any"  # in a partial record: the accessory is present, its colour not said


def colour_name(rgb: RGB) -> str:
    """The everyday name of an sRGB colour in [0, 1]^3 (one of COLOURS)."""
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    if v < 0.22:
        return "black"
    if s < 0.18:
        return "white" if v > 0.78 else "grey"
    if 0.02 <= h < 0.12 and v < 0.6:
        return "brown"
    name = next(name for bound, name in _HUES if h < bound)
    return "purple" if name == "pink" and v < 0.5 else name  # dark pink reads as plum


def _index_of(rgb: RGB, palette: tuple[RGB, ...]) -> int:
    return min(range(len(palette)), key=lambda i: sum((a - b) ** 2 for a, b in zip(rgb, palette[i])))


def attributes_of(look: "Look") -> dict[str, str]:
    """The attribute record of a look: one value of ATTRIBUTES[name] per attribute."""
    from .domains import HAIR, SHOES

    def accessory(rgb: RGB | None) -> str:
        return "none" if rgb is None else colour_name(rgb)

    return {
        "upper_colour": colour_name(look.upper),
        "upper_pattern": look.pattern,
        "sleeves": "long" if look.long_sleeves else "short",
        "lower_colour": colour_name(look.lower),
        "lower_kind": look.lower_kind,
        "hair_colour": HAIR_NAMES[_index_of(look.hair, HAIR)],
        "hair_length": "long" if look.long_hair else "short",
        "shoes": SHOE_NAMES[_index_of(look.shoes, SHOES)],
        "hat": accessory(look.hat),
        "bag": accessory(look.bag),
        "backpack": accessory(look.backpack),
    }


def caption(attrs: dict[str, str], mention_absent: bool = False) -> str:
    """A one-sentence description of a (possibly partial) attribute record, e.g. 'a person in a red
    striped top with long sleeves and blue trousers, with short black hair and white shoes, carrying
    a green bag'. Attributes missing from `attrs` are not mentioned; an absent accessory ("none")
    only with `mention_absent` ('with no hat'); an accessory of colour ANY without its colour."""
    def words(*keys: str) -> str:
        return " ".join(PATTERN_WORDS.get(attrs[k], attrs[k]) for k in keys if k in attrs)

    worn, looks, carried, phrases = [], [], [], []
    if {"upper_colour", "upper_pattern", "sleeves"} & attrs.keys():
        sleeves = f" with {attrs['sleeves']} sleeves" if "sleeves" in attrs else ""
        worn.append(" ".join(filter(None, ["a", words("upper_colour", "upper_pattern"), "top"])) + sleeves)
    if {"lower_colour", "lower_kind"} & attrs.keys():
        lower = " ".join(filter(None, [words("lower_colour"), attrs.get("lower_kind", "bottoms")]))
        worn.append("a " + lower if attrs.get("lower_kind") == "skirt" else lower)
    if {"hair_length", "hair_colour"} & attrs.keys():
        looks.append(words("hair_length", "hair_colour") + " hair")
    if "shoes" in attrs:
        looks.append(attrs["shoes"] + " shoes")
    for k in ACCESSORIES:
        value = attrs.get(k)
        colour = "" if value == ANY else f"{value} "
        if value == "none" and mention_absent:
            phrases.append(f"with no {k}")
        elif value is None or value == "none":
            continue
        elif k == "hat":
            phrases.append(f"wearing a {colour}hat")
        else:
            carried.append(f"a {colour}{k}")
    lead = (["in " + " and ".join(worn)] if worn else []) + (["with " + " and ".join(looks)] if looks else [])
    tail = ["carrying " + " and ".join(carried)] if carried else []
    parts = lead + phrases + tail
    return "a person " + ", ".join(parts) if parts else "a person"


def zero_shot_prompts(name: str) -> tuple[list[str], list[str]]:
    """(class names, one prompt each) for zero-shot classification of attribute `name`; an accessory
    is classified as absent / present."""
    if name in ACCESSORIES:
        return ["absent", "present"], [caption({name: "none"}, True), caption({name: ANY})]
    return list(ATTRIBUTES[name]), [caption({name: v}) for v in ATTRIBUTES[name]]


def zero_shot_class(name: str, attrs: dict[str, str]) -> str:
    """The true class of attribute `name` in a record, in the classes of `zero_shot_prompts`."""
    if name in ACCESSORIES:
        return "absent" if attrs[name] == "none" else "present"
    return attrs[name]


def sample_partial(attrs: dict[str, str], rng, p_full: float = 0.7, p_keep: float = 0.5) -> dict[str, str]:
    """A random partial record of `attrs` (text augmentation for contrastive pretraining): with
    probability p_full what the full caption says (absent accessories unsaid), else each attribute
    kept with probability p_keep (at least one), a present accessory's colour said half the time."""
    if rng.random() < p_full:
        return {k: v for k, v in attrs.items() if v != "none"}
    keys = [k for k in attrs if rng.random() < p_keep] or [list(attrs)[rng.integers(len(attrs))]]
    return {k: ANY if k in ACCESSORIES and attrs[k] != "none" and rng.random() < 0.5 else attrs[k] for k in keys}


def matches(partial: dict[str, str], attrs: dict[str, str]) -> bool:
    """Whether a full record fits a partial one (ANY fits every present accessory)."""
    return all(attrs[k] == v or (v == ANY and attrs[k] != "none") for k, v in partial.items())
