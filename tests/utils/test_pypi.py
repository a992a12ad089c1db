"""The offline package index: hand-built wheels that a real pip, in a fresh venv, installs."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path
from zipfile import ZipFile

import httpx

from tests.utils.pypi import PackageIndex, build_wheel

TINYFMT_1 = 'def fmt(value):\n    return f"v1:{value}"\n'
TINYFMT_2 = 'def fmt(value, *, width=0):\n    return f"v2<{value}>".rjust(width)\n'
TINYAPP = "from tinyfmt import fmt\n\n\ndef render(value):\n    return fmt(value).upper()\n"


def pip_env() -> dict[str, str]:
    """This machine's environment without its pip settings (extra indexes, find-links)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PIP_") and key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["PIP_CONFIG_FILE"] = os.devnull  # pip's word for "read no configuration file at all"
    return env


def test_a_wheel_has_the_metadata_and_a_record_that_matches_its_files(tmp_path: Path) -> None:
    wheel = build_wheel(
        tmp_path,
        "Tiny.Fmt-Extra",
        "1.0",
        {"tiny_fmt_extra/__init__.py": TINYFMT_1},
        requires=["tinyfmt>=1", "tinyapp; python_version >= '3'"],
    )
    assert wheel.name == "tiny_fmt_extra-1.0-py3-none-any.whl"
    with ZipFile(wheel) as archive:
        names = archive.namelist()
        info = "tiny_fmt_extra-1.0.dist-info"
        assert names[-1] == f"{info}/RECORD"
        metadata = archive.read(f"{info}/METADATA").decode()
        assert metadata.splitlines() == [
            "Metadata-Version: 2.1",
            "Name: Tiny.Fmt-Extra",
            "Version: 1.0",
            "Requires-Dist: tinyfmt>=1",
            "Requires-Dist: tinyapp; python_version >= '3'",
        ]
        assert "Root-Is-Purelib: true" in archive.read(f"{info}/WHEEL").decode()
        rows = list(csv.reader(io.StringIO(archive.read(f"{info}/RECORD").decode())))
        assert sorted(row[0] for row in rows) == sorted(names)
        for path, digest, size in rows:
            if path.endswith("/RECORD"):
                assert (digest, size) == ("", "")
                continue
            data = archive.read(path)
            raw = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert (digest, size) == (f"sha256={raw.decode()}", str(len(data)))
    # The same contents give the same bytes: a hash in a test stays put.
    again = build_wheel(tmp_path / "again", "Tiny.Fmt-Extra", "1.0", {
        "tiny_fmt_extra/__init__.py": TINYFMT_1,
    }, requires=["tinyfmt>=1", "tinyapp; python_version >= '3'"])  # fmt: skip
    assert again.read_bytes() == wheel.read_bytes()


def test_the_index_lists_normalized_projects_and_serves_only_its_files(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    first = build_wheel(wheels, "Tiny_Fmt", "1.0", {"tiny_fmt.py": TINYFMT_1})
    with PackageIndex(wheels) as index:
        assert index.url == f"http://{index.host}/simple/"
        assert index.host.startswith("127.0.0.1:")
        root = httpx.get(index.url)
        assert root.status_code == 200
        assert 'href="/simple/tiny-fmt/"' in root.text
        # A wheel built after the start is served too.
        second = build_wheel(wheels, "tiny-fmt", "2.0", {"tiny_fmt.py": TINYFMT_2})
        page = httpx.get(f"{index.url}tiny-fmt/")
        for wheel in (first, second):
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            assert f'href="/files/{wheel.name}#sha256={digest}"' in page.text
        # Other spellings of the name redirect to the normalized one.
        moved = httpx.get(f"{index.url}Tiny.FMT/")
        assert (moved.status_code, moved.headers["location"]) == (301, "/simple/tiny-fmt/")
        assert httpx.get(f"{index.url}nothing/").status_code == 404
        download = httpx.get(f"{index.base_url}/files/{second.name}")
        assert download.content == second.read_bytes()
        (tmp_path / "secret.whl").write_text("outside the directory")
        outside = httpx.get(f"{index.base_url}/files/..%2Fsecret.whl")
        assert outside.status_code == 404
        assert index.downloads == [second.name, "../secret.whl"]
        assert index.requests[:2] == ["/simple/", "/simple/tiny-fmt/"]


def test_pip_in_a_fresh_venv_installs_the_wheels_and_their_dependencies(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "tinyfmt", "1.0", {"tinyfmt/__init__.py": TINYFMT_1})
    build_wheel(wheels, "tinyfmt", "2.0", {"tinyfmt/__init__.py": TINYFMT_2})
    env_dir = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", str(env_dir)],
        env=pip_env(), capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    python = env_dir / "bin" / "python"
    with PackageIndex(wheels) as index:
        # Added while the index runs, as a test building a repository's requirements would.
        build_wheel(wheels, "tinyapp", "1.0", {"tinyapp.py": TINYAPP}, requires=["tinyfmt"])
        pip = subprocess.run(
            [
                str(python), "-m", "pip", "install", "--index-url", index.url,
                "--no-cache-dir", "--disable-pip-version-check", "--no-input",
                "tinyapp", "tinyfmt==1.0",
            ],
            env=pip_env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert pip.returncode == 0, pip.stdout + pip.stderr
        assert "WARNING" not in pip.stderr, pip.stderr
        assert "Successfully installed tinyapp-1.0 tinyfmt-1.0" in pip.stdout, pip.stdout
        assert sorted(index.downloads) == [
            "tinyapp-1.0-py3-none-any.whl",
            "tinyfmt-1.0-py3-none-any.whl",
        ]
        assert {"/simple/tinyapp/", "/simple/tinyfmt/"} <= set(index.requests)

    check = (
        "import importlib.metadata as m, tinyapp, tinyfmt\n"
        "print(tinyfmt.fmt('x'), tinyapp.render('x'), m.version('tinyfmt'), sep='\\n')\n"
        "print(m.requires('tinyapp'), tinyfmt.__file__, sep='\\n')\n"
    )
    ran = subprocess.run(
        [str(python), "-c", check],
        env=pip_env(), capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    fmt, render, version, requires, location = ran.stdout.splitlines()
    assert (fmt, render, version, requires) == ("v1:x", "V1:X", "1.0", "['tinyfmt']")
    assert Path(location).is_relative_to(env_dir)  # the new venv's, not this interpreter's
