"""Real packages without the internet: wheels built by hand, served by a PEP 503 index on loopback.

`build_wheel` writes a pure-Python wheel with zipfile (no build backend, no network);
`PackageIndex` serves a directory of wheels as a "simple" index that pip installs from with
`--index-url index.url`, and records every path requested so a test can tell what was fetched.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import os
import re
import threading
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler
from pathlib import Path, PurePosixPath
from types import TracebackType
from urllib.parse import quote, unquote, urlsplit
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

from tests.utils.loopback import serve_handler

# Fixed timestamps make a wheel's bytes, and so its sha256, depend only on its contents.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def wheel_name(name: str) -> str:
    """A distribution name as the wheel spec writes it in file and .dist-info names."""
    return re.sub(r"[-_.]+", "_", name).lower()


def project_name(name: str) -> str:
    """A project name normalized per PEP 503, as in /simple/<name>/."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode('ascii')}"


def build_wheel(
    out_dir: Path,
    name: str,
    version: str,
    modules: Mapping[str, str],
    *,
    requires: Sequence[str] = (),
) -> Path:
    """Write `{name}-{version}-py3-none-any.whl` into `out_dir` and return its path.

    `modules` maps paths relative to site-packages (``"tinyfmt/__init__.py"``) to their text;
    `requires` are PEP 508 requirements, one ``Requires-Dist`` line each.
    """
    dist = wheel_name(name)
    file_version = version.replace("-", "_")
    dist_info = f"{dist}-{file_version}.dist-info"
    for path in modules:
        parts = PurePosixPath(path).parts
        if path.startswith("/") or ".." in parts or not parts or parts[0] == dist_info:
            raise ValueError(f"not a path inside site-packages: {path!r}")

    metadata = "".join(
        [
            "Metadata-Version: 2.1\n",
            f"Name: {name}\n",
            f"Version: {version}\n",
            *(f"Requires-Dist: {requirement}\n" for requirement in requires),
        ]
    )
    wheel = (
        "Wheel-Version: 1.0\n"
        "Generator: ratchet-tests (tests/utils/pypi.py)\n"
        "Root-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    )
    entries: list[tuple[str, bytes]] = [
        *((path, text.encode("utf-8")) for path, text in sorted(modules.items())),
        # The spec asks for .dist-info last, and RECORD last of all.
        (f"{dist_info}/METADATA", metadata.encode("utf-8")),
        (f"{dist_info}/WHEEL", wheel.encode("utf-8")),
    ]
    record_path = f"{dist_info}/RECORD"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in entries:
        writer.writerow([path, _record_hash(data), len(data)])
    writer.writerow([record_path, "", ""])
    entries.append((record_path, record.getvalue().encode("utf-8")))

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{dist}-{file_version}-py3-none-any.whl"
    # Written aside then renamed: an index already serving out_dir never sees half a wheel.
    partial = out_dir / f".{target.name}.part"
    with ZipFile(partial, "w", compression=ZIP_DEFLATED) as archive:
        for path, data in entries:
            info = ZipInfo(path, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = ZIP_DEFLATED
            archive.writestr(info, data)
    os.replace(partial, target)
    return target


class PackageIndex:
    """A PEP 503 simple index on 127.0.0.1 serving the wheels in `directory`.

    ``/simple/`` lists the projects, ``/simple/<normalized-name>/`` their files (with
    ``#sha256=`` fragments), ``/files/<filename>`` the files. The directory is read on every
    request, so wheels built into it after the start are served too. Use as a context manager::

        with PackageIndex(wheels) as index:
            pip install --index-url index.url ...
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.requests: list[str] = []  # every path requested, in order
        self._lock = threading.Lock()
        self._stack = ExitStack()
        self._base_url: str | None = None

    # -- the running server ------------------------------------------------------------------

    def __enter__(self) -> PackageIndex:
        if self._base_url is not None:
            raise RuntimeError("the index is already started")
        self._base_url = self._stack.enter_context(serve_handler(self._handler()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.close()
        self._base_url = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the server's root."""
        if self._base_url is None:
            raise RuntimeError("the index is not started: use it as a context manager")
        return self._base_url

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/simple/``: what pip's --index-url takes."""
        return f"{self.base_url}/simple/"

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: what pip's --trusted-host takes."""
        return self.base_url.removeprefix("http://")

    @property
    def downloads(self) -> list[str]:
        """The file names fetched from /files/, in order (a test's "did it download?")."""
        with self._lock:
            paths = list(self.requests)
        return [path.removeprefix("/files/") for path in paths if path.startswith("/files/")]

    # -- what it serves ----------------------------------------------------------------------

    def _wheels(self) -> dict[str, list[Path]]:
        """Wheels by normalized project name, read from the directory now."""
        projects: dict[str, list[Path]] = {}
        for path in sorted(self.directory.glob("*.whl")):
            projects.setdefault(project_name(path.name.split("-", 1)[0]), []).append(path)
        return projects

    def _respond(self, path: str) -> tuple[int, str, bytes, dict[str, str]]:
        """Status, content type, body and extra headers for a GET of `path`."""
        if path in ("/", "/simple"):
            return 301, "text/plain", b"", {"Location": "/simple/"}
        if path == "/simple/":
            links = [
                f'<a href="/simple/{quote(name)}/">{html.escape(name)}</a>'
                for name in sorted(self._wheels())
            ]
            return 200, "text/html", _page("Simple index", links), {}
        if path.startswith("/simple/"):
            name = path.removeprefix("/simple/").strip("/")
            normalized = project_name(name)
            wheels = self._wheels().get(normalized)
            if not wheels or "/" in name:
                return 404, "text/plain", b"no such project\n", {}
            if path != f"/simple/{normalized}/":
                return 301, "text/plain", b"", {"Location": f"/simple/{normalized}/"}
            links = []
            for wheel in wheels:
                digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
                href = f"/files/{quote(wheel.name)}#sha256={digest}"
                links.append(f'<a href="{html.escape(href)}">{html.escape(wheel.name)}</a>')
            return 200, "text/html", _page(f"Links for {normalized}", links), {}
        if path.startswith("/files/"):
            filename = path.removeprefix("/files/")
            target = self.directory / filename
            if "/" in filename or not filename.endswith(".whl") or not target.is_file():
                return 404, "text/plain", b"no such file\n", {}
            return 200, "application/octet-stream", target.read_bytes(), {}
        return 404, "text/plain", b"not found\n", {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._serve(body=True)

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def _serve(self, *, body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                with index._lock:
                    index.requests.append(path)
                try:
                    status, content_type, content, headers = index._respond(path)
                except OSError as error:  # a wheel removed between listing and reading
                    status, content_type, content, headers = (
                        500, "text/plain", f"{error}\n".encode(), {},
                    )  # fmt: skip
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if body:
                    self.wfile.write(content)

            def log_message(self, format: str, *args: object) -> None:
                pass  # pip's output, not the server's, is what a failing test should show

        return Handler


def _page(title: str, links: list[str]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        '<meta name="pypi:repository-version" content="1.0">',
        f"<title>{html.escape(title)}</title>",
        "</head>",
        "<body>",
        *(f"{link}<br>" for link in links),
        "</body>",
        "</html>",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def repack(out_dir: Path, name: str) -> Path:
    """A wheel of the distribution `name` as it is installed here (its RECORD's files, its own
    WHEEL tags): real third-party packages for a loopback index, without a download."""
    from importlib import metadata as md

    dist = md.distribution(name)
    files = [
        f for f in dist.files or [] if not str(f).startswith("..") and "__pycache__" not in str(f)
    ]
    info = next(str(f).split("/")[0] for f in files if str(f).endswith(".dist-info/METADATA"))
    wheel_meta = Path(str(dist.locate_file(f"{info}/WHEEL"))).read_text()
    tags = [
        line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")
    ]
    version = dist.version
    target = out_dir / f"{wheel_name(dist.metadata['Name'])}-{version}-{tags[0]}.whl"
    record_lines: list[list[str]] = []
    part = target.with_suffix(".part")
    with ZipFile(part, "w", ZIP_DEFLATED) as archive:
        for file in files:
            rel = str(file)
            if rel == f"{info}/RECORD" or rel.endswith(
                (".pyc", "INSTALLER", "REQUESTED", "direct_url.json")
            ):
                continue
            data = Path(str(dist.locate_file(file))).read_bytes()
            entry = ZipInfo(rel, _ZIP_DATE)
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data)
            record_lines.append([rel, _record_hash(data), str(len(data))])
        record_lines.append([f"{info}/RECORD", "", ""])
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(record_lines)
        archive.writestr(ZipInfo(f"{info}/RECORD", _ZIP_DATE), buffer.getvalue())
    os.replace(part, target)
    return target


def repack_closure(out_dir: Path, *names: str) -> list[Path]:
    """`repack` each of `names` and everything they require (markers evaluated here)."""
    from importlib import metadata as md

    from packaging.requirements import Requirement

    done: dict[str, Path] = {}
    todo = list(names)
    while todo:
        current = project_name(todo.pop())
        if current in done:
            continue
        done[current] = repack(out_dir, current)
        for line in md.distribution(current).requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(done.values())
