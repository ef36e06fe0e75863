"""An exclusive lock on a run directory, held for the whole run.

`fcntl.flock` on RUN/.lock: the kernel drops it when the process ends, however it ends (SIGKILL
included), so a stale lock never blocks a resume. The file names the holder for the error message
a second run gets.
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from ..errors import UserError

LOCK_NAME = ".lock"


class RunLock:
    """Holds RUN/.lock until release() (or the end of the process)."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, run_dir: Path) -> "RunLock":
        """Lock run_dir or raise a UserError naming the process that holds it."""
        path = Path(run_dir) / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another pad-bench process"
            os.close(fd)
            raise UserError(f"run directory {run_dir} is in use by {holder}; wait for it to finish "
                            f"or choose another --name") from None
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} (since {started})\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
