"""Sentry webhook ingest on loopback: deliveries per second and latency of the real API app
(`api.main.create_app`, served by uvicorn as `ratchet up` serves it) backed by a real dev
server, receiving validly signed `issue_created` webhooks, most of them redeliveries of a few
issues. Side by side in one run, with the same load generator (a process of its own) and the
same count and concurrency: GET /healthz (the floor of the HTTP stack) and deliveries refused
for a bad signature (the webhook route up to the HMAC check, no Temporal).

No worker runs: the investigations stay running and idle, so what is measured is the ingest
path alone (verify, parse, SignalWithStart), and every issue must end with exactly one run.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import random
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from api.main import create_app
from bench.stack import (
    MachineCpu,
    connect,
    dev_server,
    make_settings,
    median,
    percentile,
    print_table,
    write_results,
)
from ratchet.telemetry import install
from tests.utils.repos import PY_REPO, make_repo

DELIVERIES = 2000
CONCURRENCY = 32
RATE = 200
"""Deliveries a second of the paced side (issue 18's target: p99 under 100 ms at 200/s)."""
ISSUES = 10
"""Distinct issues a repeat; the other deliveries are redeliveries of them."""
REPEATS = 3
ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RATCHET_SHARED_DIR", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "sentry"
FIXTURE = "issue_created.json"


class Fixture:
    def __init__(self) -> None:
        signatures = json.loads((FIXTURES / "_signatures.json").read_text())
        self.secret: str = signatures["secret"]
        self.raw = (FIXTURES / FIXTURE).read_text()
        self.headers: dict[str, str] = dict(signatures["fixtures"][FIXTURE]["headers"])

    def issue(self, issue_id: str) -> tuple[str, dict[str, str]]:
        """The fixture as another issue, signed as Sentry signs (HMAC-SHA256 of the raw body
        with the client secret, the check `api.sentry.verify_signature` makes)."""
        payload = json.loads(self.raw)
        payload["data"]["issue"]["id"] = issue_id
        body = json.dumps(payload)
        signature = hmac.new(self.secret.encode(), body.encode(), hashlib.sha256).hexdigest()
        return body, self.headers | {"Sentry-Hook-Signature": signature}

    def delivery(self, body: str, headers: dict[str, str]) -> dict[str, Any]:
        # A redelivery differs only in headers Sentry does not sign.
        fresh = {"Request-ID": uuid.uuid4().hex, "Sentry-Hook-Timestamp": "1767225600"}
        return {"method": "POST", "path": "/webhooks/sentry", "headers": headers | fresh,
                "body": body}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def load(base_url: str, requests: list[dict[str, Any]],
               rate: float | None = None) -> dict[str, Any]:  # fmt: skip
    spec = json.dumps({"base_url": base_url, "concurrency": CONCURRENCY, "requests": requests,
                       "rate": rate})  # fmt: skip
    machine, server_cpu = MachineCpu(), time.process_time()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.load", cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate(spec.encode())
    server_cpu, busy = time.process_time() - server_cpu, machine.share()
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator exited {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    latencies = result.pop("latencies_s")  # kept as percentiles: 2,000 numbers say no more
    result |= {
        "per_s": len(latencies) / result["wall_s"],
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
        "server_cpu_s": server_cpu,  # this process: uvicorn, the app, the Temporal client
        "machine_busy": busy,
    }
    return result


async def started_runs(client: Client, issue_ids: list[str]) -> dict[str, int]:
    counts = {}
    for issue_id in issue_ids:
        query = f"WorkflowId = 'sentry-{issue_id}'"
        counts[issue_id] = (await client.count_workflows(query)).count
    return counts


async def signals(client: Client, issue_id: str) -> int:
    """Signals in an issue's investigation history: the first delivery is one (SignalWithStart),
    and so is each redelivery that arrived before the API remembered the first one's answer."""
    history = await client.get_workflow_handle(f"sentry-{issue_id}").fetch_history()
    kind = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    return sum(1 for event in history.events if event.event_type == kind)


async def measure(base_url: str, client: Client, fixture: Fixture) -> dict[str, Any]:
    shuffle = random.Random(8)
    sides: dict[str, list[dict[str, Any]]] = {
        "healthz": [], "refused": [], "webhook": [], "paced": []
    }  # fmt: skip
    for repeat in range(REPEATS):
        deliveries, issue_ids, signed = _deliveries(fixture, shuffle, 7_000_000_000 + repeat * 1000)
        paced, paced_ids, _ = _deliveries(fixture, shuffle, 8_000_000_000 + repeat * 1000)
        body, headers = signed[0]
        forged = fixture.delivery(body, headers | {"Sentry-Hook-Signature": "0" * 64})
        health = {"method": "GET", "path": "/healthz"}
        runs: dict[str, list[dict[str, Any]]] = {
            "healthz": [health] * DELIVERIES, "refused": [forged] * DELIVERIES,
            "webhook": deliveries, "paced": paced,
        }  # fmt: skip
        for side, requests in runs.items():
            result = await load(base_url, requests, RATE if side == "paced" else None)
            expected = {"healthz": "200", "refused": "401"}.get(side, "202")
            assert result["statuses"] == {expected: DELIVERIES}, (side, result["statuses"])
            if side == "paced":
                assert result["run_ids"] == sorted(f"sentry-{i}" for i in paced_ids), result
                assert set((await started_runs(client, paced_ids)).values()) == {1}
            if side == "webhook":
                assert result["run_ids"] == sorted(f"sentry-{i}" for i in issue_ids), result
                result["runs_started"] = await started_runs(client, issue_ids)
                assert set(result["runs_started"].values()) == {1}, result["runs_started"]
                result["signals_in_first_issue"] = await signals(client, issue_ids[0])
                result["deliveries_of_first_issue"] = DELIVERIES // ISSUES
            del result["run_ids"]
            sides[side].append(result)
            print(f"  {side}: {result['per_s']:.0f}/s, p50 {result['p50_ms']:.1f} ms, "
                  f"p99 {result['p99_ms']:.1f} ms; CPU: server {result['server_cpu_s']:.1f} s, "
                  f"client {result['client_cpu_s']:.1f} s in {result['wall_s']:.1f} s; "
                  f"machine {result['machine_busy']:.0%} busy", flush=True)  # fmt: skip
    summary: dict[str, Any] = {}
    for side, repeats in sides.items():
        summary[side] = {key: median([r[key] for r in repeats])
                         for key in ("per_s", "p50_ms", "p99_ms", "wall_s", "client_cpu_s",
                                     "server_cpu_s", "machine_busy")}  # fmt: skip
    for side in summary.values():
        side["server_cpu_ms_per_request"] = side["server_cpu_s"] / DELIVERIES * 1000
        side["per_s_vs_healthz"] = side["per_s"] / summary["healthz"]["per_s"]
        side["p99_vs_healthz"] = side["p99_ms"] / summary["healthz"]["p99_ms"]
    return {"repeats": sides, "median": summary}


def _deliveries(fixture: Fixture, shuffle: random.Random,
                first_id: int) -> tuple[list[dict[str, Any]], list[str], list[Any]]:  # fmt: skip
    """DELIVERIES deliveries of ISSUES new issues: their ids and signed bodies."""
    issue_ids = [str(first_id + i) for i in range(ISSUES)]
    signed = [fixture.issue(i) for i in issue_ids]
    deliveries = [fixture.delivery(*signed[n % ISSUES]) for n in range(DELIVERIES)]
    shuffle.shuffle(deliveries)  # an issue's redeliveries arrive mixed, many at once
    return deliveries, issue_ids, signed


async def run(root: Path) -> dict[str, Any]:
    (root / "temporal").mkdir()
    fixture = Fixture()
    repo = make_repo(root / "billing", PY_REPO)
    async with dev_server(root / "temporal") as target:
        settings = make_settings(
            root / "home", target, sentry_client_secret=SecretStr(fixture.secret),
            sentry_projects={"billing-api": {"repo": str(repo)}},
        )  # fmt: skip
        provider, _ = install(settings, "ratchet-api")  # the API process's own telemetry
        client = await connect(target, provider)
        app = create_app(settings, client=client, tracer_provider=provider)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
        ))  # fmt: skip  # as `ratchet up` serves it: --no-access-log
        serving = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
            await asyncio.sleep(0.02)
        base_url = f"http://127.0.0.1:{port}"
        try:
            # Warm-up, and a check of the fixture itself: its bytes and recorded signature.
            verbatim = {"method": "POST", "path": "/webhooks/sentry", "headers": fixture.headers,
                        "body": fixture.raw}  # fmt: skip
            warm = await load(base_url, [verbatim] * CONCURRENCY)
            assert warm["statuses"] == {"202": CONCURRENCY}, warm["statuses"]
            results = await measure(base_url, client, fixture)
        finally:
            server.should_exit = True
            await serving
        provider.shutdown()
    return {"deliveries": DELIVERIES, "concurrency": CONCURRENCY, "issues": ISSUES,
            "repeats": REPEATS, **results}  # fmt: skip


def report(results: dict[str, Any]) -> None:
    names = {"healthz": "GET /healthz", "refused": "webhook, bad signature (401)",
             "webhook": "webhook, signed (202)",
             "paced": f"webhook, signed, {RATE}/s on schedule"}  # fmt: skip
    print_table(
        f"webhooks: {DELIVERIES} requests at concurrency {CONCURRENCY}, {ISSUES} distinct issues "
        f"(median of {REPEATS})",
        ["requests", "per second", "p50", "p99", "rate vs healthz", "p99 vs healthz",
         "API CPU a request"],
        [[names[side], f"{r['per_s']:.0f}", f"{r['p50_ms']:.1f} ms", f"{r['p99_ms']:.1f} ms",
          f"{r['per_s_vs_healthz']:.2f}x", f"{r['p99_vs_healthz']:.1f}x",
          f"{r['server_cpu_ms_per_request']:.2f} ms"]
         for side, r in results["median"].items()],
    )  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ratchet-webhooks-") as tmp:
        results = asyncio.run(run(Path(tmp)))
    write_results("webhooks", results)
    report(results)


if __name__ == "__main__":
    main()
