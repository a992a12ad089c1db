#!/usr/bin/env python3
"""Container health for Ratchet's image (installed as `ratchet-healthcheck`); stdlib only.

    ratchet-healthcheck http URL   the API: URL answers 2xx within 3 seconds
    ratchet-healthcheck temporal   a worker: this container holds an established TCP connection
                                   to the port of TEMPORAL_ADDRESS (default 7233)

A worker serves no HTTP, but it always keeps long polls open to Temporal's frontend: a worker that
lost Temporal has no such connection. The check reads /proc/net/tcp{,6} of the container's network
namespace, where only the worker talks to that port, so it spawns nothing and imports no Ratchet
code (a health check must stay cheap: it runs every few seconds).
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

ESTABLISHED = "01"  # the `st` column of /proc/net/tcp
TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def http_ok(url: str) -> bool:
    if not url.startswith(("http://", "https://")):
        raise SystemExit(f"not an http(s) URL: {url}")
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 (scheme checked above)
            return 200 <= int(response.status) < 300
    except OSError:
        return False


def temporal_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1]) if ":" in address else 7233


def connected_to_port(port: int, tables: tuple[Path, ...] = TCP_TABLES) -> bool:
    for table in tables:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:  # no IPv6 in this namespace
            continue
        for row in rows:
            fields = row.split()
            # fields[2] is the remote address "HEXIP:HEXPORT", fields[3] the state.
            established = len(fields) > 3 and fields[3] == ESTABLISHED
            if established and int(fields[2].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "http":
        return 0 if http_ok(argv[1]) else 1
    if argv == ["temporal"]:
        port = temporal_port(os.environ.get("TEMPORAL_ADDRESS", ""))
        return 0 if connected_to_port(port) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
