"""DukeMTMC-reID: Market-style names (`0005_c2_f0046985.jpg`), cams 1-8."""
from __future__ import annotations

from .base import register_dataset
from .market1501 import MarketStyleDataset


@register_dataset("dukemtmc")
class DukeMTMC(MarketStyleDataset):
    name = "dukemtmc"
    root_aliases = (
        "DukeMTMC-reID",  # LSTKC family, fast-reid
        "dukemtmc-reid/DukeMTMC-reID",  # torchreid
        "dukemtmcreid",  # PAD
    )
    expected = {"train": (16522, 702), "query": (2228, 702), "gallery": (17661, 1110)}
    how_to_get = (
        "DukeMTMC-reID has been withdrawn by its authors: unpack a copy you already hold as "
        "<data-root>/DukeMTMC-reID/, or use the substitute dataset lpw_s2."
    )
