"""Shared steps of the raw-release converters: finding the raw files, reading .mat fields, staged output."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ...errors import DataFormatError, DatasetNotFoundError

log = logging.getLogger(__name__)


def locate_raw(data_root: Path, aliases: tuple[str, ...], required: tuple[str, ...]) -> Path | None:
    """The first alias folder under `data_root` holding every `required` path, or None."""
    for alias in aliases:
        cand = data_root / alias if alias else data_root
        if all((cand / r).exists() for r in required):
            return cand
    return None


def find_raw_root(data_root: Path, aliases: tuple[str, ...], required: tuple[str, ...], dataset: str,
                  how_to_get: str) -> Path:
    """`locate_raw`, or an error naming what was searched."""
    found = locate_raw(data_root, aliases, required)
    if found is not None:
        return found
    searched = ", ".join(a or "." for a in aliases)
    raise DatasetNotFoundError(
        f"raw {dataset} release not found under {data_root} (searched: {searched}; each needs "
        f"{', '.join(required)}). {how_to_get}"
    )


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield an empty hidden folder next to `final`, renamed onto `final` only if the block succeeds,
    so an interrupted conversion never leaves a half-filled dataset folder for the adapters to find."""
    tmp = final.with_name(f".{final.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, final)


def load_mat(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """`scipy.io.loadmat` of a MATLAB (< v7.3) file; each of `names` must be a variable in it."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as err:  # scipy raises several types for a corrupt or non-.mat file
        raise DataFormatError(f"{path}: not a readable MATLAB file ({err})") from None
    for name in names:
        if name not in mat:
            raise DataFormatError(f"{path}: field '{name}' is missing; is this the original release file?")
    return mat


def field(record: Any, key: str | int, path: Path, name: str) -> Any:
    """One field of a MATLAB struct record (by name or position), or an error naming file and field."""
    try:
        return unwrap(record)[key]
    except (IndexError, KeyError, ValueError, TypeError):
        raise DataFormatError(f"{path}: field '{name}' is missing; is this the original release file?") from None


def unwrap(x: Any) -> Any:
    """Strip loadmat's 1x1 cell / struct wrappers down to the element inside."""
    while isinstance(x, np.ndarray) and x.size == 1 and (x.dtype == object or x.dtype.names):
        x = x.reshape(-1)[0]
    return x


def mat_str(x: Any) -> str:
    return str(np.asarray(unwrap(x)).reshape(-1)[0])


def mat_numbers(x: Any) -> np.ndarray:
    """A MATLAB numeric array as a flat float vector (empty for `[]`)."""
    return np.asarray(unwrap(x), dtype=float).reshape(-1)


def mat_records(x: Any) -> np.ndarray:
    """A MATLAB struct array (any shape, possibly 1x1) as a flat array of records."""
    return np.asarray(unwrap(x)).reshape(-1)


def warn_on_counts(dataset: str, counts: dict[str, tuple[int, int]],
                   expected: dict[str, tuple[int, int]]) -> None:
    """Log loudly where (images, ids) per split differ from the official numbers."""
    for split, official in expected.items():
        if counts.get(split) != official:
            log.warning("%s %s: %s images / ids, official %s (partial or customised release?)",
                        dataset, split, counts.get(split), official)
