"""Atomic file writes: a temp file in the same folder, then os.replace.

Temp files are named `.<name>.<random>.tmp`; a killed process can leave one behind, and
`remove_stale_temp_files` (called on resume, under the run lock) deletes them. Files get the mode
the umask allows (like `open()`), not mkstemp's 0600, so colleagues can read shared results.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import UserError

TEMP_SUFFIX = ".tmp"
_FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(tmp_path), then rename tmp_path onto path, so readers never see a partial file.

    Any OSError (a full disk, a read-only folder) is a UserError naming the path; the temp file is
    removed and path is untouched."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as e:
        raise _disk_error(e, path) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _disk_error(e, path) from None
        raise


def _disk_error(e: OSError, path: Path) -> UserError:
    if e.errno in _FULL_DISK:
        return UserError(f"no space left on {path.parent} (writing {path.name}); free some space, "
                         f"then continue with --resume")
    return UserError(f"cannot write {path}: {e.strerror or e}")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files atomic_write left under folder (recursively) when it was killed."""
    stale = [p for p in Path(folder).rglob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink()
    return stale


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
