"""The build's egress proxy and its in-sandbox bridge, against a real origin server: what the
allowlist names gets through, anything else gets a 403 and never reaches the origin."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import http.server
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gym.allowlist import Allowlist, parse_allowed_hosts
from gym.egress import BRIDGE_SOURCE, EgressProxy, bridge_command

BODY = b"hello from the origin\n"


@dataclass
class Origin:
    port: int
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    """(method, path, headers with lower-case names, body) of each request it answered."""


@pytest.fixture
def origin() -> Iterator[Origin]:
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.answer(b"")

        def do_POST(self) -> None:
            self.answer(self.rfile.read(int(self.headers["Content-Length"])))

        def answer(self, received: bytes) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            seen.append((self.command, self.path, headers, received))
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY + received)))
            self.end_headers()
            self.wfile.write(BODY + received)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield Origin(server.server_address[1], seen)
    server.shutdown()
    server.server_close()


@pytest.fixture
def sock_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # urllib would skip the proxy for hosts in no_proxy, whatever the machine sets there.
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    # Short: a Unix socket's path must fit in 108 bytes, and pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix="egress-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextlib.asynccontextmanager
async def through_bridge(
    allowlist: Allowlist, sock_dir: Path
) -> AsyncIterator[tuple[EgressProxy, int]]:
    """The proxy on a Unix socket and the real bridge in front of it: yields the bridge's port."""
    sock, port_file = sock_dir / "proxy.sock", sock_dir / "port"
    port_file.unlink(missing_ok=True)  # a previous bridge's port would be read at once
    async with EgressProxy(sock, allowlist, connect_timeout_s=3) as proxy:
        bridge = await asyncio.create_subprocess_exec(
            sys.executable, str(BRIDGE_SOURCE), str(sock), str(port_file)
        )
        try:
            for _ in range(250):
                if port_file.exists() and port_file.read_text().strip():
                    break
                await asyncio.sleep(0.02)
            yield proxy, int(port_file.read_text())
        finally:
            bridge.kill()
            await bridge.wait()


def fetch(url: str, proxy_port: int, data: bytes | None = None) -> tuple[int, bytes]:
    proxy = f"http://127.0.0.1:{proxy_port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
    try:
        with opener.open(url, data=data, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def exchange(port: int, *messages: bytes) -> list[bytes]:
    """Send each message over one connection; read one header section after each but the last,
    and everything up to the end of the stream after the last."""
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for at, message in enumerate(messages):
            sock.sendall(message)
            received = b""
            while (at == len(messages) - 1 or b"\r\n\r\n" not in received) and (
                data := sock.recv(65536)
            ):
                received += data
            answers.append(received)
    return answers


async def test_an_allowed_origin_answers_plain_http_through_the_bridge(
    origin: Origin, sock_dir: Path
) -> None:
    url = f"http://127.0.0.1:{origin.port}/simple/pkg/?x=1"
    async with through_bridge(Allowlist.of(f"127.0.0.1:{origin.port}"), sock_dir) as (proxy, port):
        assert await asyncio.to_thread(fetch, url, port) == (200, BODY)
        assert await asyncio.to_thread(fetch, url, port, b"uploaded") == (200, BODY + b"uploaded")
    assert [(method, path, body) for method, path, _, body in origin.requests] == [
        ("GET", "/simple/pkg/?x=1", b""),
        ("POST", "/simple/pkg/?x=1", b"uploaded"),
    ]
    headers = origin.requests[0][2]
    assert headers["host"] == f"127.0.0.1:{origin.port}" and headers["connection"] == "close"
    assert "proxy-connection" not in headers
    assert [(host, p, allowed) for host, p, allowed, _ in proxy.decisions] == [
        ("127.0.0.1", origin.port, True)
    ] * 2


async def test_connect_tunnels_to_an_allowed_host(origin: Origin, sock_dir: Path) -> None:
    target = f"127.0.0.1:{origin.port}"
    async with through_bridge(Allowlist.of(target), sock_dir) as (proxy, port):
        established, answer = await asyncio.to_thread(
            exchange,
            port,
            f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode(),
            f"GET /tunnelled HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n".encode(),
        )
    assert established == b"HTTP/1.1 200 Connection established\r\n\r\n"
    assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(b"\r\n\r\n" + BODY)
    assert [path for _, path, _, _ in origin.requests] == ["/tunnelled"]
    assert proxy.decisions[0][:3] == ("127.0.0.1", origin.port, True)


async def test_a_host_not_in_the_allowlist_gets_403_and_never_reaches_the_origin(
    origin: Origin, sock_dir: Path
) -> None:
    target = f"127.0.0.1:{origin.port}"
    allowlist = Allowlist.of("pypi.org", f"127.0.0.1:{origin.port % 65535 + 1}")
    async with through_bridge(allowlist, sock_dir) as (proxy, port):
        status, body = await asyncio.to_thread(fetch, f"http://{target}/", port)
        (refused,) = await asyncio.to_thread(
            exchange, port, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode()
        )
    assert status == 403
    assert body == f"ratchet egress: host {target} not in RATCHET_ENV_ALLOWED_HOSTS\n".encode()
    assert refused.startswith(b"HTTP/1.1 403 Forbidden\r\n") and refused.endswith(body)
    assert origin.requests == []
    assert [(allowed, reason) for _, _, allowed, reason in proxy.decisions] == [
        (False, f"host {target} not in RATCHET_ENV_ALLOWED_HOSTS")
    ] * 2


async def test_loopback_is_reached_only_by_an_entry_with_its_exact_port(
    origin: Origin, sock_dir: Path
) -> None:
    # Entries without a port mean 80 and 443: the worker's loopback (API, Temporal) stays shut.
    async with through_bridge(Allowlist.of("localhost", "127.0.0.1"), sock_dir) as (proxy, port):
        (tunnel,) = await asyncio.to_thread(
            exchange, port, b"CONNECT localhost:443 HTTP/1.1\r\n\r\n"
        )
        status, body = await asyncio.to_thread(fetch, "http://127.0.0.1/", port)
        other_port, _ = await asyncio.to_thread(fetch, f"http://localhost:{origin.port}/", port)
    assert tunnel.startswith(b"HTTP/1.1 403 ") and b"localhost:443 resolves to a loopback" in tunnel
    assert status == 403 and b"127.0.0.1:80 resolves to a loopback/private address" in body
    assert other_port == 403
    assert [allowed for _, _, allowed, _ in proxy.decisions] == [False] * 3
    assert origin.requests == []

    explicit = Allowlist.of(f"localhost:{origin.port}")
    async with through_bridge(explicit, sock_dir) as (proxy, port):
        url = f"http://localhost:{origin.port}/by-name"
        assert await asyncio.to_thread(fetch, url, port) == (200, BODY)
    assert [path for _, path, _, _ in origin.requests] == ["/by-name"]
    assert proxy.decisions == [
        ("localhost", origin.port, True, "allowed by its exact host:port entry")
    ]


async def test_malformed_requests_get_400_and_unreachable_upstreams_502(sock_dir: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]
    async with through_bridge(Allowlist.of(f"127.0.0.1:{closed}"), sock_dir) as (proxy, port):
        answers = [
            await asyncio.to_thread(exchange, port, request)
            for request in (
                b"nonsense\r\n\r\n",
                b"GET /relative HTTP/1.1\r\nHost: pypi.org\r\n\r\n",
                b"CONNECT pypi.org HTTP/1.1\r\n\r\n",  # no port
                b"GET http://127.0.0.1:1/ HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 70_000,
            )
        ]
        status, body = await asyncio.to_thread(fetch, f"http://127.0.0.1:{closed}/", port)
    assert [answer[0][:25] for answer in answers] == [b"HTTP/1.1 400 Bad Request\r"] * 4
    assert b"over 65536 bytes" in answers[3][0]
    assert status == 502 and body.startswith(
        f"ratchet egress: cannot reach 127.0.0.1:{closed}".encode()
    )
    assert proxy.decisions[0][:3] == ("127.0.0.1", closed, False)


async def test_leaving_the_proxy_closes_open_tunnels_and_the_socket(
    origin: Origin, sock_dir: Path
) -> None:
    sock, target = sock_dir / "proxy.sock", f"127.0.0.1:{origin.port}"
    async with EgressProxy(sock, Allowlist.of(target)):
        assert sock.stat().st_mode & 0o777 == 0o666  # the sandbox's user may not be ours
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 200 Connection established\r\n\r\n"
        started = time.monotonic()  # the tunnel stays open and idle
    assert await asyncio.wait_for(reader.read(), timeout=2) == b""
    assert time.monotonic() - started < 2 and not sock.exists()
    writer.close()


def test_parse_allowed_hosts_reads_json_and_separated_lists() -> None:
    entries = ["pypi.org", "files.pythonhosted.org", "*.example.com", "127.0.0.1:8123"]
    entries += ["localhost:8123", "[::1]:8123"]
    from_json = parse_allowed_hosts(" " + str(entries).replace("'", '"'))
    assert from_json == parse_allowed_hosts(", ".join(entries))
    assert from_json == parse_allowed_hosts("\n".join(entries) + ",")
    assert from_json == Allowlist.of(*entries)
    allows = from_json.allows
    assert allows("pypi.org", 443) and allows("PyPI.org.", 80) and not allows("pypi.org", 8080)
    assert allows("a.example.com", 443) and allows("a.b.example.com", 80)
    assert not allows("example.com", 443) and not allows("badexample.com", 443)
    assert allows("127.0.0.1", 8123) and not allows("127.0.0.1", 8124)
    assert not allows("127.0.0.1", 443) and not allows("localhost", 443)
    assert allows("::1", 8123) and allows("[0:0::1]", 8123) and allows("LOCALHOST", 8123)
    assert parse_allowed_hosts("") == parse_allowed_hosts("[]") == Allowlist()
    assert not Allowlist().allows("pypi.org", 443)


@pytest.mark.parametrize(
    "text, bad",
    [
        ("http://pypi.org", "'http://pypi.org'"),
        ("pypi.org, pypi.org/simple", "'pypi.org/simple'"),
        ("*", "'*'"),
        ("*.com", "'*.com'"),
        ("*.127.0.0.1", "'*.127.0.0.1'"),
        ("pypi.org:0", "'pypi.org:0'"),
        ("pypi.org:65536", "'pypi.org:65536'"),
        ("pypi.org:https", "'pypi.org:https'"),
        ("[::1", "'[::1'"),
        ("[::1]8123", "'[::1]8123'"),
        ("[127.0.0.1]:80", "'[127.0.0.1]:80'"),
        ("bad!host", "'bad!host'"),
        ("127.1", "'127.1'"),
        ("a..b", "'a..b'"),
        ('["pypi.org", 443]', "443"),
        ('["pypi.org"', "not a valid JSON list"),
    ],
)
def test_parse_allowed_hosts_names_the_bad_entry(text: str, bad: str) -> None:
    with pytest.raises(ValueError, match="RATCHET_ENV_ALLOWED_HOSTS") as raised:
        parse_allowed_hosts(text)
    assert bad in str(raised.value)


def test_the_bridge_is_standalone_python_3_8() -> None:
    tree = ast.parse(BRIDGE_SOURCE.read_text(), feature_version=(3, 8))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported and imported <= set(sys.stdlib_module_names)


def test_bridge_command_fails_fast_when_the_bridge_cannot_start(sock_dir: Path) -> None:
    snippet = bridge_command(
        "/bin/false", str(BRIDGE_SOURCE), "/nowhere.sock", str(sock_dir / "port")
    )
    started = time.monotonic()
    done = subprocess.run(["sh", "-c", f"{snippet}; echo reached"], capture_output=True, timeout=20)
    assert done.returncode == 1 and done.stdout == b""
    assert b"ratchet egress: the proxy bridge did not start" in done.stderr
    assert time.monotonic() - started < 5


def test_the_bridge_exports_the_proxy_and_dies_with_its_shell(sock_dir: Path) -> None:
    snippet = bridge_command(
        sys.executable, str(BRIDGE_SOURCE), "/nowhere.sock", str(sock_dir / "p")
    )
    done = subprocess.run(
        ["sh", "-c", f'{snippet} && echo "$ratchet_bridge $HTTPS_PROXY $http_proxy [$NO_PROXY]"'],
        capture_output=True,
        timeout=20,
    )
    pid, https, http, no_proxy = done.stdout.decode().split()
    port = (sock_dir / "p").read_text().strip()
    assert https == http == f"http://127.0.0.1:{port}" and no_proxy == "[]"
    for _ in range(100):
        with contextlib.suppress(FileNotFoundError):
            if Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
                time.sleep(0.05)
                continue
        break  # gone, or dead and waiting for init (here pid 1 may be slow) to reap it
    else:
        pytest.fail(f"bridge {pid} outlived its shell")


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap is not installed")
async def test_a_build_in_an_empty_network_namespace_reaches_only_the_proxy(
    origin: Origin, sock_dir: Path
) -> None:
    sock = sock_dir / "proxy.sock"
    snippet = bridge_command(sys.executable, str(BRIDGE_SOURCE), str(sock), str(sock_dir / "port"))
    fetch_inside = textwrap.dedent(f"""
        import socket, urllib.request
        url = "http://127.0.0.1:{origin.port}/inside"
        print(urllib.request.urlopen(url, timeout=5).read().decode(), end="")
        try:
            socket.create_connection(("127.0.0.1", {origin.port}), timeout=2)
            print("DIRECT CONNECTED")
        except OSError as err:
            print("direct refused:", err)
    """)
    command = f"{snippet}; {shlex.quote(sys.executable)} -c {shlex.quote(fetch_inside)}"
    argv = ["/usr/bin/bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/"]
    argv += ["--dev", "/dev", "--proc", "/proc", "--bind", str(sock_dir), str(sock_dir)]
    async with EgressProxy(sock, Allowlist.of(f"127.0.0.1:{origin.port}")) as proxy:
        build = await asyncio.create_subprocess_exec(
            *argv, "--", "sh", "-c", command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(build.communicate(), timeout=20)
    assert build.returncode == 0, out
    assert out.startswith(BODY) and b"direct refused" in out and b"DIRECT" not in out, out
    assert [path for _, path, _, _ in origin.requests] == ["/inside"]
    assert [decision[:3] for decision in proxy.decisions] == [("127.0.0.1", origin.port, True)]
