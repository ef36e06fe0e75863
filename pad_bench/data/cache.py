"""Decoded-image caches for `train.data_path: cached`: every image of a set read and resized once
into a uint8 (N, 3, H, W) array, in memory or as a memory-mapped .npy file.

The resize is the PIL pipeline's own Resize step, so a cached image holds exactly the bytes the
PIL path would hand to its next step. A file is named by a hash of the image paths, their sizes
and modification times and the resize, so a change of data or input size builds a new one; it is
written to a temporary name and renamed, so a killed build leaves no half-written cache.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torchvision import transforms as T

from .images import read_image


def cache_key(paths: Sequence[str], resize: T.Resize) -> str:
    """SHA-256 over the files (path, size, mtime) and the resize (size, interpolation)."""
    h = hashlib.sha256(f"{tuple(resize.size)}|{resize.interpolation.value}\n".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class ImageCache:
    """The decoded, resized images of one list of paths; built on first use."""

    def __init__(self, paths: Sequence[str], resize: T.Resize, cache_dir: str | Path | None = None):
        self.paths, self.resize = list(paths), resize
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = self._load_or_build()
        return self._array

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.array[i]))  # a copy: memory maps are read-only

    def _decode_into(self, out: np.ndarray) -> None:
        for i, p in enumerate(self.paths):
            out[i] = np.asarray(self.resize(read_image(p))).transpose(2, 0, 1)

    def _shape(self) -> tuple[int, int, int, int]:
        height, width = self.resize.size
        return (len(self.paths), 3, height, width)

    def _load_or_build(self) -> np.ndarray:
        if self.cache_dir is None:
            out = np.empty(self._shape(), dtype=np.uint8)
            self._decode_into(out)
            return out
        path = self.cache_dir / f"{cache_key(self.paths, self.resize)}.npy"
        if not path.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=self._shape())
                self._decode_into(out)
                out.flush()
                del out
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        return np.load(path, mmap_mode="r")


class CacheLookup:
    """The transform of a cached dataset: sample index -> uint8 (3, H, W) image."""

    def __init__(self, cache: ImageCache):
        self.cache = cache

    def __call__(self, index: int) -> torch.Tensor:
        return self.cache[index]
