"""Keep Ray on 127.0.0.1 when asked to.

Ray 2.60 rewrites a loopback `--node-ip-address` / `_node_ip_address` (127.0.0.1, localhost) into
the machine's outward address (`services.resolve_ip_for_localhost`), so a plain
`ray start --node-ip-address 127.0.0.1` still binds its GCS, raylet and agents to that address.
`keep_loopback()` turns the rewrite off in this process; the processes Ray starts from it are
handed the address explicitly. `python -m pad_bench.sweep.loopback start ...` is the `ray` command
line with that fix, for starting nodes that listen on 127.0.0.1 only.
"""
from __future__ import annotations

import os
import sys

LOOPBACK = "127.0.0.1"


def keep_loopback() -> None:
    """Make Ray use a loopback node address as given; also switch off Ray's usage-stats upload."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray._private.services as services

    if getattr(services.resolve_ip_for_localhost, "keeps_loopback", False):
        return
    original = services.resolve_ip_for_localhost

    def resolve(host: str) -> str:
        return LOOPBACK if host in (LOOPBACK, "localhost") else original(host)

    resolve.keeps_loopback = True  # type: ignore[attr-defined]
    services.resolve_ip_for_localhost = resolve


def main() -> int:
    keep_loopback()
    from ray.scripts.scripts import main as ray_main

    return ray_main()


if __name__ == "__main__":
    sys.exit(main())
