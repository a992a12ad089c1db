"""Inside a build's sandbox: turn the egress proxy's Unix socket into a TCP port on loopback.

    python3 egress_bridge.py <unix_socket_path> <port_file>

The sandbox has an empty network namespace, so HTTP(S)_PROXY must name a TCP port inside it;
the proxy itself runs outside, on a Unix socket bind-mounted in. This script binds 127.0.0.1 on
a free port, writes the port to <port_file> and forwards every connection to the socket.

It runs with whatever python3 the sandbox has: standard library only, Python 3.8 or newer, and
nothing from Ratchet.
"""

from __future__ import annotations  # annotations stay unevaluated on Python 3.8

import contextlib
import os
import socket
import sys
import threading
import time

BUFFER = 65536
PARENT_POLL_S = 1.0  # how soon the bridge notices that the shell that started it is gone


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write("usage: egress_bridge.py <unix_socket_path> <port_file>\n")
        return 2
    socket_path, port_file = argv[1], argv[2]
    parent = os.getppid()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    server.settimeout(PARENT_POLL_S)
    write_port(port_file, server.getsockname()[1])
    # Reparented means the shell is gone: nothing of the build needs the bridge any more.
    while os.getppid() == parent:
        try:
            client, _ = server.accept()
        except socket.timeout:  # noqa: UP041 (not yet TimeoutError on Python 3.8 and 3.9)
            continue
        except OSError as err:  # e.g. out of file descriptors: wait instead of spinning
            sys.stderr.write(f"ratchet egress bridge: accept failed: {err}\n")
            time.sleep(0.1)
            continue
        client.setblocking(True)
        threading.Thread(target=serve, args=(client, socket_path), daemon=True).start()
    return 0


def write_port(port_file: str, port: int) -> None:
    # Written under a temporary name, then renamed: a reader never sees a partial number.
    temporary = f"{port_file}.{os.getpid()}.tmp"
    with open(temporary, "w") as out:
        out.write(f"{port}\n")
    os.replace(temporary, port_file)


def serve(client: socket.socket, socket_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
    except OSError as err:
        sys.stderr.write(f"ratchet egress bridge: cannot reach the proxy: {err}\n")
        client.close()
        upstream.close()
        return
    forward = threading.Thread(target=send_to_proxy, args=(client, upstream), daemon=True)
    forward.start()
    # The proxy ending its side ends the exchange; shutdown (unlike close) also wakes the
    # thread still blocked reading the client.
    pump(upstream, client)
    shutdown(client, socket.SHUT_RDWR)
    shutdown(upstream, socket.SHUT_RDWR)
    forward.join()
    client.close()
    upstream.close()


def send_to_proxy(client: socket.socket, upstream: socket.socket) -> None:
    if pump(client, upstream):
        # The client only finished sending: it may still await the answer.
        shutdown(upstream, socket.SHUT_WR)
    else:
        shutdown(client, socket.SHUT_RDWR)
        shutdown(upstream, socket.SHUT_RDWR)


def pump(source: socket.socket, sink: socket.socket) -> bool:
    """Copy until end of stream (True) or an error on either side (False)."""
    try:
        while True:
            data = source.recv(BUFFER)
            if not data:
                return True
            sink.sendall(data)
    except OSError:
        return False


def shutdown(sock: socket.socket, how: int) -> None:
    with contextlib.suppress(OSError):  # already closed or never connected
        sock.shutdown(how)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
