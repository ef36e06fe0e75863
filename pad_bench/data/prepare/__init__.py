"""Converters from a raw release to a folder layout an adapter reads.

`PREPARERS[name](data_root)` writes the converted folder under the data root and returns it. The
modules import h5py, scipy and PIL only when a conversion runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .cuhk03 import prepare_cuhk03
from .cuhk_sysu import prepare_cuhk_sysu

PREPARERS: dict[str, Callable[[Path], Path]] = {
    "cuhk03": prepare_cuhk03,
    "cuhk_sysu": prepare_cuhk_sysu,
}

__all__ = ["PREPARERS", "prepare_cuhk03", "prepare_cuhk_sysu"]
