"""Egress for environment builds: a forward proxy that lets a sandboxed build reach allowed hosts.

The build's sandbox has its own empty network namespace. This proxy runs in the worker, outside
the sandbox, on a Unix socket that is bind-mounted in; inside, egress_bridge.py turns that socket
into a TCP port on the sandbox's loopback for HTTP(S)_PROXY. So the proxy is the only way out,
and it refuses every host the allowlist (gym/allowlist.py) does not name, and every private
address unless named with its exact port (the worker's own loopback holds Ratchet's API and
Temporal).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import shlex
import socket
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

from gym.allowlist import Allowlist, is_internal, normal_host, split_host_port

log = logging.getLogger("ratchet.gym.egress")

BRIDGE_SOURCE = Path(__file__).with_name("egress_bridge.py")
HEADER_LIMIT = 64 * 1024  # a request's header section; more is refused, not buffered
HEADER_TIMEOUT_S = 30.0  # a client that never finishes its request must not hold a task forever
# Dropped when forwarding: they describe the client-proxy hop, and the credentials are not the
# origin's business.
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "proxy-authorization"}


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class EgressProxy:
    """`async with EgressProxy(path, allowlist) as proxy:` serves CONNECT and http:// requests."""

    def __init__(
        self, socket_path: Path, allowlist: Allowlist, *, connect_timeout_s: float = 15.0
    ) -> None:
        self.socket_path = socket_path
        self.allowlist = allowlist
        self.connect_timeout_s = connect_timeout_s
        self.decisions: list[tuple[str, int, bool, str]] = []
        """(host, port, allowed, reason) per request, for the build log."""
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> EgressProxy:
        self._server = await asyncio.start_unix_server(
            self._handle, path=str(self.socket_path), limit=HEADER_LIMIT
        )
        self.socket_path.chmod(0o666)  # the sandbox's user may not be ours
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def summary(self) -> list[str]:
        """Each host's decision once, in the order first seen, for the build's manifest:
        "allowed host:port" or "refused host:port (why)"."""
        return list(dict.fromkeys(
            f"{'allowed' if ok else 'refused'} {host}:{port}" + ("" if ok else f" ({why})")
            for host, port, ok, why in self.decisions
        ))  # fmt: skip

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except _Refused as refusal:
            body = f"ratchet egress: {refusal.reason}\n".encode()
            status = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[refusal.status]
            head = f"HTTP/1.1 {refusal.status} {status}\r\nContent-Type: text/plain\r\n"
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            with contextlib.suppress(OSError):
                writer.write(head.encode() + body)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or stalled: nothing to answer
        except Exception:
            log.exception("egress proxy: unexpected failure serving a connection")
        finally:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEADER_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            raise _Refused(400, f"request header section over {HEADER_LIMIT} bytes") from None
        request_line, *headers = head[:-4].decode("latin-1").split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _Refused(400, f"malformed request line {request_line[:200]!r}")
        method, target, version = parts
        if any(":" not in line or line[0] in " \t" for line in headers):
            raise _Refused(400, "malformed header line")
        if method == "CONNECT":
            host, port = _authority(target, default_port=None)
            up_reader, up_writer = await self._open(host, port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            if not target.lower().startswith("http://"):
                raise _Refused(400, "expected an absolute http:// URL (https goes by CONNECT)")
            rest = target[len("http://") :].split("#")[0]
            cut = min(
                (at for at in (rest.find("/"), rest.find("?")) if at != -1), default=len(rest)
            )
            authority, origin_form = rest[:cut], rest[cut:]
            host, port = _authority(authority, default_port=80)
            origin_form = origin_form if origin_form.startswith("/") else "/" + origin_form
            kept = [
                line for line in headers if line.split(":")[0].strip().lower() not in _HOP_HEADERS
            ]
            if not any(line.split(":")[0].strip().lower() == "host" for line in kept):
                kept.insert(0, f"Host: {authority}")
            up_reader, up_writer = await self._open(host, port)
            # The origin closes after one answer, so the rest of the stream (body, or a next
            # request the client pipelined) can be forwarded raw without parsing HTTP further.
            lines = [f"{method} {origin_form} {version}", *kept, "Connection: close", "", ""]
            up_writer.write("\r\n".join(lines).encode("latin-1"))
        self._writers.add(up_writer)
        # The client's end of sending is passed on (it may still await an answer); the
        # upstream's end is the end of the exchange.
        forward = asyncio.create_task(_pipe(reader, up_writer))
        try:
            await _pipe(up_reader, writer)
        finally:
            forward.cancel()
            await asyncio.gather(forward, return_exceptions=True)
            up_writer.close()
            self._writers.discard(up_writer)

    async def _open(self, host: str, port: int) -> Streams:
        label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        entry = self.allowlist.match(host, port)
        if entry is None:
            self._refuse(host, port, 403, f"host {label} not in RATCHET_ENV_ALLOWED_HOSTS")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                addresses = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
                internal = [
                    a[1][0] for a in addresses if is_internal(ipaddress.ip_address(a[1][0]))
                ]
                if internal and not entry.explicit:
                    reason = f"host {label} resolves to a loopback/private address ({internal[0]})"
                    self._refuse(host, port, 403, f"{reason}; only an entry naming {label} may")
                streams = await self._connect(addresses)
        except (OSError, TimeoutError) as err:
            self._refuse(host, port, 502, f"cannot reach {label}: {str(err) or 'timed out'}")
        exact = " by its exact host:port entry" if internal else ""
        self.decisions.append((host, port, True, f"allowed{exact}"))
        return streams

    async def _connect(self, addresses: Sequence[tuple[int, Any]]) -> Streams:
        # Connect to the very address that was checked: a second lookup could answer otherwise.
        loop = asyncio.get_running_loop()
        error: OSError = OSError("no address")
        for family, sockaddr in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, sockaddr)
            except BaseException as err:
                sock.close()
                if not isinstance(err, OSError):
                    raise
                error = err
                continue
            return await asyncio.open_connection(sock=sock)
        raise error

    def _refuse(self, host: str, port: int, status: int, reason: str) -> NoReturn:
        self.decisions.append((host, port, False, reason))
        log.info("egress refused: %s", reason)
        raise _Refused(status, reason)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()


def _authority(text: str, *, default_port: int | None) -> tuple[str, int]:
    parsed = split_host_port(text)
    name = normal_host(parsed[0]) if parsed is not None else None
    port = parsed[1] if parsed is not None and parsed[1] is not None else default_port
    if name is None or port is None:
        raise _Refused(400, f"malformed host:port {text[:200]!r}")
    return name, port


def bridge_command(
    python: str, script_inside: str, socket_inside: str, port_file_inside: str
) -> str:
    """/bin/sh that starts the bridge in the background and exports the proxy variables.

    Append the build's command after "; ", "&&" or a newline. The bridge is killed when the
    shell exits (and exits by itself when its parent goes away).
    """
    port_file = shlex.quote(port_file_inside)
    start = " ".join(shlex.quote(part) for part in (python, script_inside, socket_inside))
    return (
        f"rm -f {port_file}; {start} {port_file} >/dev/null & ratchet_bridge=$!; "
        "trap 'kill $ratchet_bridge 2>/dev/null' EXIT; ratchet_wait=0; "
        f"while [ ! -s {port_file} ]; do "
        "if [ $ratchet_wait -ge 200 ] || ! kill -0 $ratchet_bridge 2>/dev/null; then "
        "echo 'ratchet egress: the proxy bridge did not start' >&2; exit 1; fi; "
        "ratchet_wait=$((ratchet_wait + 1)); sleep 0.05; done; "
        f"ratchet_proxy=http://127.0.0.1:$(cat {port_file}); "
        "export HTTPS_PROXY=$ratchet_proxy HTTP_PROXY=$ratchet_proxy "
        "https_proxy=$ratchet_proxy http_proxy=$ratchet_proxy NO_PROXY= no_proxy="
    )
