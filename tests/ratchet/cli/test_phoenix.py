"""`ratchet up` finds a Phoenix on loopback and points its children at it; no Phoenix is installed
here: a real HTTP server on a free port answers the probe as Phoenix 20.x does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import SecretStr

from ratchet.cli import phoenix
from ratchet.cli.stack import Stack
from ratchet.settings import Settings
from tests.conftest import free_port


def _server(headers: dict[str, str]) -> ThreadingHTTPServer:
    class Healthz(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def fake_phoenix() -> Iterator[int]:
    server = _server({"x-phoenix-server-version": "20.26.1"})
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_running_phoenix_receives_the_childrens_spans(fake_phoenix: int) -> None:
    env = phoenix.trace_env({"RATCHET_PHOENIX_PORT": str(fake_phoenix)})
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://127.0.0.1:{fake_phoenix}"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "openinference.project.name=ratchet"
    assert env["OTEL_METRICS_EXPORTER"] == "none"


def test_resource_attributes_of_the_user_are_kept(fake_phoenix: int) -> None:
    env = phoenix.trace_env({
        "RATCHET_PHOENIX_PORT": str(fake_phoenix), "OTEL_RESOURCE_ATTRIBUTES": "team=infra",
    })  # fmt: skip
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "team=infra,openinference.project.name=ratchet"


def test_nothing_listening_adds_nothing() -> None:
    assert phoenix.trace_env({"RATCHET_PHOENIX_PORT": str(free_port())}) == {}


def test_another_server_on_the_port_is_not_phoenix() -> None:
    server = _server({})  # e.g. Ratchet's own API, which answers /healthz too
    try:
        assert phoenix.trace_env({"RATCHET_PHOENIX_PORT": str(server.server_address[1])}) == {}
    finally:
        server.shutdown()
        server.server_close()


def test_an_explicit_collector_wins(fake_phoenix: int) -> None:
    env = {
        "RATCHET_PHOENIX_PORT": str(fake_phoenix),
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.internal:4318",
    }
    assert phoenix.trace_env(env) == {}


def test_a_port_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(SystemExit, match="RATCHET_PHOENIX_PORT"):
        phoenix.trace_env({"RATCHET_PHOENIX_PORT": "tcp://10.0.0.1:6006"})


def test_banner_names_phoenix_only_when_found(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, api_token=SecretStr("t"), otlp_endpoint=None)
    stack = Stack(settings)
    assert "make traces" in stack.banner()
    stack.phoenix_url = "http://127.0.0.1:6006"
    line = next(x for x in stack.banner().splitlines() if x.startswith("  Traces"))
    assert line == f"  Traces       http://127.0.0.1:6006 (Phoenix), and {tmp_path}/traces.jsonl"
