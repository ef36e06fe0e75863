"""CUHK03-NP (new protocol, 767/700 IDs): Market-style `<pid>_c<cam>_<idx>.png` in a labeled or detected folder.

`cuhk03_mode` picks the boxes: "labeled" (LSTKC family, default) or "detected" (AKA, PatchKD, PAD).
The raw release can be converted with `pad_bench.data.prepare.cuhk03`.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import DatasetNotFoundError, UserError
from .base import register_dataset
from .market1501 import MarketStyleDataset

MODES = ("labeled", "detected")
EXPECTED = {
    "labeled": {"train": (7368, 767), "query": (1400, 700), "gallery": (5328, 700)},
    "detected": {"train": (7365, 767), "query": (1400, 700), "gallery": (5332, 700)},
}
NP_PARENTS = ("cuhk03-np", "cuhk03", "CUHK03_lifelong")
PAD_FLAT = "cuhk03"  # PAD's converter writes detected boxes straight into cuhk03/


def mode_aliases(mode: str) -> tuple[str, ...]:
    """Folders that may hold the CUHK03-NP split of one box mode, in search order."""
    flat = (PAD_FLAT,) if mode == "detected" else ()
    return tuple(f"{parent}/{mode}" for parent in NP_PARENTS) + flat


@register_dataset("cuhk03")
class CUHK03(MarketStyleDataset):
    name = "cuhk03"
    root_aliases = mode_aliases("labeled")
    expected = EXPECTED["labeled"]
    how_to_get = (
        "Unpack CUHK03-NP as <data-root>/cuhk03-np/{labeled,detected}/, or put cuhk03_release/ and "
        "cuhk03_new_protocol_config_*.mat under <data-root>/cuhk03/ and run "
        "`pad-bench datasets prepare cuhk03 --root <data-root>`."
    )

    def __init__(self, data_root: str | Path, **options):
        super().__init__(data_root, **options)
        self.mode = options.get("cuhk03_mode", "labeled")
        if self.mode not in MODES:
            raise UserError(f"cuhk03_mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        self.root_aliases = mode_aliases(self.mode)
        self.expected = EXPECTED[self.mode]

    def resolve_root(self) -> Path:
        try:
            return super().resolve_root()
        except DatasetNotFoundError as err:
            other = next(m for m in MODES if m != self.mode)
            if CUHK03(self.data_root, cuhk03_mode=other).find_root() is None:
                raise
            raise DatasetNotFoundError(f"{err} Only {other} boxes were found: set cuhk03_mode: {other}.") from None
