"""Image reading for the stream: one place that opens files, fails loudly, and can record reads."""
from __future__ import annotations

import contextlib
from typing import Iterator

from PIL import Image, UnidentifiedImageError

from ..errors import DataFormatError

_read_log: list[str] | None = None


def read_image(path: str) -> Image.Image:
    """Open an image as RGB. A missing or corrupt file is a DataFormatError naming it (no retries)."""
    if _read_log is not None:
        _read_log.append(path)
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError) as e:
        raise DataFormatError(f"cannot read image {path}: {e}") from None


@contextlib.contextmanager
def record_reads() -> Iterator[list[str]]:
    """Collect every path read_image opens inside the block (in-process loaders only).

    Used to prove a strategy is exemplar-free: no image of an earlier domain is read later.
    """
    global _read_log  # test instrumentation; scoped to the with-block
    previous, _read_log = _read_log, []
    try:
        yield _read_log
    finally:
        _read_log = previous
