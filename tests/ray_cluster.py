"""A real two-node Ray cluster on 127.0.0.1 for tests, and what its processes listen on.

Each node is `python -m pad_bench.sweep.loopback start --block ...` in a session of its own, with its
own CPU count, free ports and this cluster's temp dir and auth token; it is stopped by the ids of
its process tree (never `ray stop`, which would stop every Ray on the machine).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pad_bench.paths import PROJECT_ROOT

LOOPBACK_HOSTS = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}
# Fast failure detection: a node is declared dead after ~3 missed 0.5 s health checks (default ~15 s).
FAST_HEALTH_CHECKS = {"RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "1000",
                      "RAY_health_check_failure_threshold": "3", "RAY_health_check_initial_delay_ms": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    """A head and one worker node, one CPU each; `address` for `pad-bench sweep --address`."""

    def __init__(self) -> None:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="pb-ray-", dir="/tmp"))  # short: Ray's socket paths
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.env = {**os.environ, **FAST_HEALTH_CHECKS, "PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16), "OMP_NUM_THREADS": "1"}
        self.nodes: dict[str, subprocess.Popen] = {}
        try:
            self._start("head", "--head", "--port", str(self.port), "--include-dashboard", "false",
                        "--temp-dir", str(self.temp_dir), "--ray-client-server-port", str(free_port()))
            self._start("worker", "--address", self.address)
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str, *args: str, timeout: float = 90.0) -> None:
        log = self.temp_dir / f"{name}.out"
        cmd = [sys.executable, "-m", "pad_bench.sweep.loopback", "start", "--block", "--node-name", name,
               "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0", "--disable-usage-stats",
               "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
               "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port()), *args]
        with open(log, "w") as f:
            self.nodes[name] = subprocess.Popen(cmd, env=self.env, stdout=f, stderr=subprocess.STDOUT,
                                                start_new_session=True, cwd=PROJECT_ROOT)
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if self.nodes[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ray {name} node did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def pids(self) -> list[int]:
        return [p for node in self.nodes.values() for p in process_tree(node.pid)]

    def kill_node(self, name: str) -> None:
        """The node dies as a machine would: every process of it at once, no clean-up."""
        kill_tree(self.nodes.pop(name).pid, graceful=False)

    def stop(self) -> None:
        for name in list(self.nodes):
            kill_tree(self.nodes.pop(name).pid, graceful=True)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def process_tree(root: int) -> list[int]:
    """root and all its descendants (by parent id)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    tree, i = [root], 0
    while i < len(tree):
        tree += children.get(tree[i], [])
        i += 1
    return tree


def kill_tree(root: int, *, graceful: bool) -> None:
    """SIGTERM (graceful: wait up to 10 s) then SIGKILL for root and its descendants, found before any dies."""
    pids = process_tree(root)
    if graceful:
        _signal(pids, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
    else:
        _signal(pids, signal.SIGSTOP)  # frozen first, so none reacts to the others' death
    _signal(pids, signal.SIGKILL)
    for p in pids:
        try:
            os.waitpid(p, os.WNOHANG)  # reap our own child
        except ChildProcessError:
            pass


def _signal(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def tcp_endpoints(pids: list[int]) -> list[tuple[str, str, bool]]:
    """(local host, remote host, listening) of every TCP socket the given processes hold."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] in inodes:
                out.append((_host(cols[1]), _host(cols[2]), cols[3] == "0A"))
    return out


def _host(hex_addr: str) -> str:
    """/proc/net/tcp{,6} address (little-endian 32-bit words) -> text."""
    raw = hex_addr.split(":")[0]
    words = [bytes.fromhex(raw[i:i + 8])[::-1] for i in range(0, len(raw), 8)]
    packed = b"".join(words)
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)
