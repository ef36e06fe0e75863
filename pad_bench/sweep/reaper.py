"""Stops a local Ray instance's processes and removes its temp dir when the sweep driver ends, however
it ends (SIGKILL included).

Ray's GCS and raylet die with the driver that started them, but its agents and workers notice only
after a timeout (minutes), and nothing removes the instance's temp dir. The driver starts this script
as a child in a session of its own, holding the write end of its stdin: when the driver exits or is
killed, the pipe closes and the script ends every process of that instance. Those processes are found
by a variable in their environment (`INSTANCE_VARIABLE`, set to the temp dir), which the raylet and
its workers inherit, or by the log files they hold open under the temp dir (the agents). Standard
library only, so it runs as a plain script whatever the driver's import path is.

By hand (e.g. after the reaper itself was killed):  python -m pad_bench.sweep.reaper --now TEMP_DIR
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

INSTANCE_VARIABLE = "PAD_BENCH_RAY_INSTANCE"
GRACE_SECONDS = 5.0


def instance_pids(temp_dir: str, spare: tuple[int, ...] = ()) -> list[int]:
    """Processes (other than this one and `spare`) of this Ray instance: their environment names it, or
    they hold a file under its temp dir open (Ray starts its agents with an environment of its own
    making, but each writes its logs there; so does the driver, which is spared)."""
    marker = f"{INSTANCE_VARIABLE}={temp_dir}".encode() + b"\0"
    skip = {os.getpid(), *spare}
    return [int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and int(p.name) not in skip and _belongs(p, marker, temp_dir + os.sep)]


def _belongs(proc: Path, marker: bytes, inside: str) -> bool:
    try:
        if marker in (proc / "environ").read_bytes():
            return True
        return any(os.readlink(fd).startswith(inside) for fd in (proc / "fd").iterdir())
    except OSError:  # gone, or not ours to read
        return False


def stop_instance(temp_dir: str, spare: tuple[int, ...] = ()) -> list[int]:
    """SIGTERM every process of the instance but `spare`, SIGKILL what is left after GRACE_SECONDS, remove
    the temp dir; returns the pids that were found."""
    found = instance_pids(temp_dir, spare)
    _signal(found, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and instance_pids(temp_dir, spare):
        time.sleep(0.1)
    _signal(instance_pids(temp_dir, spare), signal.SIGKILL)
    shutil.rmtree(temp_dir, ignore_errors=True)
    return found


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def main(argv: list[str]) -> int:
    now = argv[:1] == ["--now"]
    args = argv[1:] if now else argv
    if len(args) != 1 or not Path(args[0]).name.startswith("pad-bench-ray-"):
        print("usage: python -m pad_bench.sweep.reaper [--now] /tmp/pad-bench-ray-XXXX", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the driver must not stop the cleanup
    driver = () if now else (os.getppid(),)  # alive when it closed the pipe itself: it is waiting for us
    if not now:
        sys.stdin.buffer.read()  # returns when the driver closes the pipe or dies
    stop_instance(args[0], driver)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
