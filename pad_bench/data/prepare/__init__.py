"""Converters from a raw release to a folder layout an adapter reads.

`PREPARERS[name](data_root)` writes the converted folder under the data root and returns it. The
modules import h5py, scipy and PIL only when a conversion runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import cuhk03, cuhk_sysu
from .common import locate_raw
from .cuhk03 import prepare_cuhk03
from .cuhk_sysu import prepare_cuhk_sysu

PREPARERS: dict[str, Callable[[Path], Path]] = {
    "cuhk03": prepare_cuhk03,
    "cuhk_sysu": prepare_cuhk_sysu,
}
_RAW = {"cuhk03": (cuhk03.RAW_ALIASES, cuhk03.RAW_REQUIRED), "cuhk_sysu": (cuhk_sysu.RAW_ALIASES, cuhk_sysu.RAW_REQUIRED)}


def find_raw_release(name: str, data_root: Path) -> Path | None:
    """Where the raw release of a preparable dataset lies under `data_root`, or None."""
    if name not in _RAW:
        return None
    return locate_raw(Path(data_root).expanduser(), *_RAW[name])


__all__ = ["PREPARERS", "find_raw_release", "prepare_cuhk03", "prepare_cuhk_sysu"]
