"""Arize Phoenix as the local trace UI: `make traces` runs it, `ratchet up` exports to it.

Two interpreters share this file without sharing packages: `ratchet up` imports it to find a
running Phoenix, and `make traces` runs it as a script with the Phoenix venv's Python
(`.venv-phoenix/bin/python -P ratchet/cli/phoenix.py`) to start one. So only the standard library is
imported at module level, and Phoenix's modules only inside `serve`.
"""

from __future__ import annotations

import http.client
import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
DEFAULT_PORT = 6006
PROJECT = "ratchet"
# Every Phoenix response carries this header: it tells Phoenix from any other server on the port
# (Ratchet's own API also answers /healthz).
VERSION_HEADER = "x-phoenix-server-version"

# Phoenix's switches, read by Phoenix 20.x (see phoenix/config.py in the installed package).
PHOENIX_OFFLINE = {
    # Its UI's analytics pixels (FullStory, Scarf).
    "PHOENIX_TELEMETRY_ENABLED": "false",
    # Nothing fetched from the internet on its own initiative: web fonts, the PyPI version check
    # and GitHub stars in the UI, the docs MCP server, the WASM sandbox download.
    "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    # The chat assistant (with server-side bash) and the code sandboxes of evaluators are no part
    # of viewing traces, and the UI has no login here.
    "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
    "PHOENIX_ALLOWED_SANDBOX_PROVIDERS": "NONE",
    # Thousands of SQL lines on the first start otherwise.
    "PHOENIX_LOG_MIGRATIONS": "false",
}


def phoenix_port(env: Mapping[str, str]) -> int:
    raw = env.get("RATCHET_PHOENIX_PORT") or str(DEFAULT_PORT)
    if not raw.isdigit():
        raise SystemExit(f"RATCHET_PHOENIX_PORT must be a port number, not {raw!r}")
    return int(raw)


def phoenix_version(port: int, host: str = HOST, timeout_s: float = 1.0) -> str | None:
    """The version of the Phoenix on host:port; None when nothing, or something else, answers."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    return response.getheader(VERSION_HEADER) if response.status == 200 else None


def trace_env(env: Mapping[str, str]) -> dict[str, str]:
    """What `ratchet up` adds to its children's environment so their spans reach a running Phoenix:
    nothing when OTEL_EXPORTER_OTLP_ENDPOINT is set (the user's collector wins) or none answers."""
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return {}
    port = phoenix_port(env)
    if phoenix_version(port) is None:
        return {}
    added = {
        # Phoenix takes OTLP/HTTP protobuf on its UI port, at /v1/traces.
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{HOST}:{port}",
        # Phoenix ingests traces only (POST /v1/metrics answers 405): OpenTelemetry's standard
        # switch says so to whatever builds the meter provider.
        "OTEL_METRICS_EXPORTER": env.get("OTEL_METRICS_EXPORTER", "none"),
    }
    # Resource.create() reads OTEL_RESOURCE_ATTRIBUTES; Phoenix files spans under the project this
    # attribute names instead of "default".
    resource = env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if "openinference.project.name=" not in resource:
        project = f"openinference.project.name={PROJECT}"
        added["OTEL_RESOURCE_ATTRIBUTES"] = f"{resource},{project}" if resource else project
    return added


def _grpc_on_loopback() -> None:
    # Phoenix binds its OTLP/gRPC receiver to [::] whatever PHOENIX_HOST says, and has no switch
    # to turn it off: keep it on loopback too. Ratchet itself exports over HTTP.
    grpc_aio: Any = importlib.import_module("grpc.aio")
    make_server = grpc_aio.server

    def loopback_server(*args: Any, **kwargs: Any) -> Any:
        server = make_server(*args, **kwargs)
        add_port = server.add_insecure_port
        server.add_insecure_port = lambda address: add_port(address.replace("[::]:", f"{HOST}:"))
        return server

    grpc_aio.server = loopback_server


def serve(port: int) -> int:
    """Phoenix in the foreground on HOST:port, data under $RATCHET_HOME/phoenix."""
    if version := phoenix_version(port):
        print(f"Phoenix {version} already runs at http://{HOST}:{port}", file=sys.stderr)
        return 1
    home = Path(os.environ.get("RATCHET_HOME") or ".ratchet").expanduser().resolve()
    os.environ.update(PHOENIX_OFFLINE)
    os.environ.update({
        "PHOENIX_HOST": HOST,
        "PHOENIX_PORT": str(port),
        "PHOENIX_WORKING_DIR": str(home / "phoenix"),
    })  # fmt: skip
    _grpc_on_loopback()
    sys.argv = ["phoenix", "serve"]
    main = importlib.import_module("phoenix.server.main").main
    main()
    return 0


if __name__ == "__main__":
    sys.exit(serve(phoenix_port(os.environ)))
