"""A real HTTP server on a free loopback port, for the fakes of outside services."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serve_handler(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` in a thread; yields the base URL, stops the server on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll makes shutdown quick: the default half-second adds up over many tests.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


Files = dict[str, tuple[str, bytes]]
"""URL path -> (content type, body)."""


@contextmanager
def serve_files(files: Callable[[str], Files], name: str = "127.0.0.1") -> Iterator[str]:
    """Serve fixed answers to GET (404 for any other path), reached as `name` (bound to the
    address it resolves to); `files` gets the base URL. Yields the base URL."""
    answers: Files = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = answers.get(self.path.split("?", 1)[0])
            if found is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", found[0])
            self.send_header("Content-Length", str(len(found[1])))
            self.end_headers()
            self.wfile.write(found[1])

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer((socket.gethostbyname(name), 0), Handler)
    base = f"http://{name}:{server.server_address[1]}"
    answers.update(files(base))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()
