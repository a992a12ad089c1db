"""Environments built for real: pip installs wheels from a package index on loopback, through the
egress proxy, inside the sealed sandbox; a key is built once; what is not allowed is refused."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gym.allowlist import Allowlist
from gym.envdef import EnvDefinition, definition_for, detect, key_for
from gym.environments import EnvironmentBuildFailed, Environments, interpreter_id
from gym.runner import Limits
from gym.sandbox import BwrapSandbox
from gym.sealed_root import RUSTUP_BIN
from gym.testing import run_tests
from tests.utils.cargoreg import Crate, cargo_registry
from tests.utils.envs import built
from tests.utils.goproxy import Module, go_proxy
from tests.utils.pypi import PackageIndex, build_wheel
from tests.utils.repos import commit, make_repo

TINYFMT = "tinyfmt/__init__.py"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageIndex]:
    wheels = tmp_path_factory.mktemp("wheels")
    for version in ("1.0", "2.0"):
        build_wheel(
            wheels, "tinyfmt", version, {TINYFMT: f"def fmt(x):\n    return 'v{version}:' + x\n"}
        )
    with PackageIndex(wheels) as served:
        yield served


def app(index: PackageIndex, pin: str) -> dict[str, str]:
    return {
        "requirements.txt": f"--index-url {index.url}\ntinyfmt=={pin}\n",
        "tests/test_app.py": (
            f"from tinyfmt import fmt\n\n\ndef test_fmt():\n    assert fmt('x') == 'v{pin}:x'\n"
        ),
    }


def downloads(index: PackageIndex) -> list[str]:
    return [r for r in index.requests if r.startswith("/files/")]


async def test_a_detected_requirements_file_is_installed_and_the_suite_uses_it(
    tmp_path: Path, index: PackageIndex
) -> None:
    repo = make_repo(tmp_path / "app", app(index, "1.0"))
    definition = detect(repo)
    assert definition.source == "detected: requirements.txt"
    assert definition.key_files == ("requirements.txt",)
    before = len(downloads(index))
    sandbox, env = await built(
        tmp_path / "home", repo, list(definition.setup), allowed=[index.host]
    )
    assert not env.cache_hit and env.egress == [f"allowed {index.host}"]
    assert len(downloads(index)) == before + 1
    run = await run_tests("python -m pytest -q", repo, limits=Limits(timeout_s=60), sandbox=sandbox)
    assert run.passed and run.count("passed") == 1, run.result.output.decode()
    # The same key again is a lookup: nothing is downloaded, nothing is run.
    _, again = await built(tmp_path / "home", repo, list(definition.setup),
                                       allowed=[index.host])  # fmt: skip
    assert again.cache_hit and again.key == env.key and again.path == env.path
    assert len(downloads(index)) == before + 1


async def test_a_commit_that_changes_the_lockfile_gets_its_own_environment(
    tmp_path: Path, index: PackageIndex
) -> None:
    repo = make_repo(tmp_path / "app", app(index, "1.0"))
    setup = ["python -m pip install -r requirements.txt"]
    _, first = await built(tmp_path / "home", repo, setup, allowed=[index.host])
    commit(repo, app(index, "2.0"), "tinyfmt 2")
    sandbox, second = await built(tmp_path / "home", repo, setup, allowed=[index.host])
    assert second.key != first.key and not second.cache_hit
    run = await run_tests("python -m pytest -q", repo, limits=Limits(timeout_s=60), sandbox=sandbox)
    assert run.passed, run.result.output.decode()
    assert (first.path / "ratchet-env.json").is_file()  # the first is kept for older commits


async def test_concurrent_runs_needing_one_key_build_it_once(
    tmp_path: Path, index: PackageIndex
) -> None:
    repo = make_repo(tmp_path / "app", app(index, "1.0"))
    envs = Environments(tmp_path / "home")
    definition = EnvDefinition(
        ("python -m pip install -r requirements.txt",), ("requirements.txt",), "request"
    )
    key = key_for(str(repo), repo, definition, interpreter_id(), "bwrap")
    builds: list[Path] = []

    async def workspace() -> Path:
        builds.append(repo)
        return repo

    both = await asyncio.gather(*(
        envs.ensure(key, definition, workspace, sandbox=BwrapSandbox(),
                    limits=Limits(timeout_s=300), allowlist=Allowlist.of(index.host))
        for _ in range(2)
    ))  # fmt: skip
    assert len(builds) == 1
    assert sorted(e.cache_hit for e in both) == [False, True]


async def test_a_failing_setup_fails_with_its_command_and_log_and_leaves_nothing(
    tmp_path: Path, index: PackageIndex
) -> None:
    repo = make_repo(tmp_path / "app", app(index, "9.9"))  # no such version
    with pytest.raises(EnvironmentBuildFailed) as failure:
        await built(tmp_path / "home", repo, ["python -m pip install -r requirements.txt"],
                    allowed=[index.host])  # fmt: skip
    message = str(failure.value)
    assert "`python -m pip install -r requirements.txt` exited 1" in message
    assert "tinyfmt==9.9" in message  # the log's tail
    assert not [p for p in (tmp_path / "home" / "envs").iterdir() if p.is_dir()]


async def test_a_build_reaches_only_the_allowed_hosts(tmp_path: Path, index: PackageIndex) -> None:
    # A listener on this machine's loopback stands for the API or Temporal.
    api = socket.socket()
    api.bind(("127.0.0.1", 0))
    api.listen()
    api.setblocking(False)
    port = api.getsockname()[1]
    probe = (
        "import os, urllib.request\n"
        f"for url in ['http://127.0.0.1:{port}/', '{index.url}tinyfmt/']:\n"
        "    try:\n"
        "        print('REACHED', url, urllib.request.urlopen(url, timeout=5).status)\n"
        "    except Exception as err:\n"
        "        print('refused', url, err)\n"
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        "    print('DIRECT')\n"
        "except OSError as err:\n"
        "    print('no direct route', err)\n"
    )
    repo = make_repo(tmp_path / "app", {"probe.py": probe})
    _, env = await built(tmp_path / "home", repo, ["python probe.py > egress.txt; cat egress.txt"],
                         allowed=[index.host])  # fmt: skip
    with pytest.raises(BlockingIOError):
        api.accept()  # nothing reached the listener
    api.close()
    log = env.log.decode()
    assert f"REACHED {index.url}tinyfmt/ 200" in log
    assert f"refused http://127.0.0.1:{port}/" in log and "403" in log
    assert "no direct route" in log and "DIRECT" not in log
    assert f"refused 127.0.0.1:{port}" in " ".join(env.egress)


async def test_an_editable_install_points_at_the_workspace_of_every_later_step(
    tmp_path: Path,
) -> None:
    # What `pip install -e .` leaves in site-packages: a path file naming the workspace.
    files = {
        "mylib/__init__.py": "VALUE = 42\n",
        "tests/test_lib.py": "import mylib\n\n\ndef test_value():\n    assert mylib.VALUE == 42\n",
    }
    repo = make_repo(tmp_path / "lib", files)
    link = (
        "python -c \"import os, site; open(os.path.join(site.getsitepackages()[0], 'mylib.pth'),"
        " 'w').write(os.getcwd())\""
    )
    sandbox, _ = await built(tmp_path / "home", repo, [link], allowed=[])
    # A later step's workspace is another directory on this machine, at the same path inside.
    later = make_repo(tmp_path / "later", files)
    (later / "tests" / "conftest.py").write_text("")  # no pythonpath help from pytest
    run = await run_tests(
        "python -m pytest -q -p no:cacheprovider --import-mode=importlib", later,
        limits=Limits(timeout_s=60), sandbox=sandbox,
    )  # fmt: skip
    assert run.passed, run.result.output.decode()


def test_detection_reads_the_manifests(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, str], str, tuple[str, ...]]] = [
        ({"uv.lock": ""}, "detected: uv.lock", ("python -m pip install --no-input -q uv",
                                                "uv sync --frozen --all-extras --python python")),
        ({"poetry.lock": "", "pyproject.toml": "[tool.poetry]\n"}, "detected: poetry.lock",
         ("python -m pip install --no-input -q poetry",
          "poetry install --no-interaction --all-extras")),
        ({"requirements.txt": "x\n", "requirements-dev.txt": "y\n",
          "pyproject.toml": "[project]\nname='p'\nversion='0'\n"}, "detected: requirements-dev.txt",
         ("python -m pip install --no-input -r requirements.txt -r requirements-dev.txt -e .",)),
        ({"pyproject.toml": "[project]\nname='p'\nversion='0'\ndependencies=['x']\n"
          "[project.optional-dependencies]\ntest=['pytest']\n"}, "detected: pyproject.toml",
         ("python -m pip install --no-input -e '.[test]'",)),
        ({"setup.py": "", "setup.cfg": "[options.extras_require]\ntesting = x\n"},
         "detected: setup.py", ("python -m pip install --no-input -e '.[testing]'",)),
        ({"package-lock.json": "{}", "package.json": "{}"}, "detected: package-lock.json",
         ("npm ci --no-audit --no-fund",)),
        ({"pyproject.toml": "[project]\nname='p'\nversion='0'\n"}, "default: no manifest with "
         "dependencies (a venv with pytest)", ()),
    ]  # fmt: skip
    for i, (files, source, setup) in enumerate(cases):
        repo = make_repo(tmp_path / str(i), files)
        found = detect(repo)
        assert (found.source, found.setup) == (source, setup), files
    # The request comes first, then ratchet.toml; both key on the manifests by default.
    repo = make_repo(tmp_path / "r", {"requirements.txt": "x\n"})
    chosen = definition_for(repo, requested_setup=["make env"], requested_key_files=None,
                            toml_setup=["other"], toml_key_files=["x.lock"])  # fmt: skip
    assert (chosen.source, chosen.setup, chosen.key_files) == (
        "request",
        ("make env",),
        ("requirements.txt",),
    )
    chosen = definition_for(repo, requested_setup=None, requested_key_files=None,
                            toml_setup=["other"], toml_key_files=["x.lock"])  # fmt: skip
    assert (chosen.source, chosen.setup, chosen.key_files) == (
        "ratchet.toml",
        ("other",),
        ("x.lock",),
    )


async def test_an_npm_lockfile_is_installed_and_node_modules_is_kept_in_the_environment(
    tmp_path: Path,
) -> None:
    # A dependency from a folder of the repository: npm ci links it, offline.
    files = {
        "vendor/tiny/package.json": '{"name": "tiny", "version": "1.0.0", "main": "index.js"}',
        "vendor/tiny/index.js": "module.exports = (x) => x * 2;\n",
        "package.json": '{"name": "app", "version": "1.0.0", "scripts": {"test": "node --test"},'
        ' "dependencies": {"tiny": "file:./vendor/tiny"}}',
        "package-lock.json": json.dumps({
            "name": "app", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
            "packages": {
                "": {"name": "app", "version": "1.0.0",
                     "dependencies": {"tiny": "file:./vendor/tiny"}},
                "node_modules/tiny": {"resolved": "vendor/tiny", "link": True},
                "vendor/tiny": {"version": "1.0.0"},
            },
        }),
        "test/app.test.js": "const test = require('node:test');\n"
        "const assert = require('node:assert');\nconst tiny = require('tiny');\n"
        "test('doubles', () => assert.strictEqual(tiny(2), 4));\n",
        ".gitignore": "node_modules\n",
    }  # fmt: skip
    repo = make_repo(tmp_path / "app", files)
    definition = detect(repo)
    assert definition.source == "detected: package-lock.json"
    sandbox, env = await built(tmp_path / "home", repo, list(definition.setup), allowed=[])
    assert (env.path / "node_modules" / "tiny").is_symlink()
    later = make_repo(tmp_path / "later", files)  # a later step's workspace: no node_modules
    run = await run_tests("npm test", later, limits=Limits(timeout_s=60), sandbox=sandbox)
    assert run.result.exit_code == 0, run.result.output.decode()
    assert b"pass 1" in run.result.output
    assert not (later / "node_modules").exists() or not any((later / "node_modules").iterdir())


def test_a_key_never_reads_files_outside_the_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app", {"requirements.txt": "x\n"})
    outside = tmp_path / "outside.txt"
    definition = EnvDefinition(("pip install x",), ("../outside.txt", str(outside)), "ratchet.toml")
    keys = []
    for content in ("one", "two"):
        outside.write_text(content)
        keys.append(key_for(str(repo), repo, definition, "python 3.11", "bwrap"))
    assert keys[0] == keys[1]
    # Inside the repository, the content is the key.
    inside = EnvDefinition(("pip install x",), ("requirements.txt",), "ratchet.toml")
    first = key_for(str(repo), repo, inside, "python 3.11", "bwrap")
    (repo / "requirements.txt").write_text("y\n")
    assert key_for(str(repo), repo, inside, "python 3.11", "bwrap") != first


GREET = Module("example.com/greet", "v1.2.0", {
    "go.mod": "module example.com/greet\n\ngo 1.19\n",
    "greet.go": 'package greet\n\nfunc Hello(name string) string { return "hello " + name }\n',
})  # fmt: skip


async def test_go_modules_are_downloaded_into_the_environment_and_the_suite_reads_them_offline(
    tmp_path: Path,
) -> None:
    files = {
        "go.mod": "module example.com/app\n\ngo 1.19\n\nrequire example.com/greet v1.2.0\n",
        "go.sum": GREET.sum_lines(),
        "app/app.go": 'package app\n\nimport "example.com/greet"\n\n'
        'func Welcome() string { return greet.Hello("go") }\n',
        "app/app_test.go": 'package app\n\nimport "testing"\n\n'
        'func TestWelcome(t *testing.T) { if Welcome() != "hello go" { t.Fatal(Welcome()) } }\n',
    }  # fmt: skip
    repo = make_repo(tmp_path / "app", files)
    definition = detect(repo)
    assert definition.source == "detected: go.mod"
    assert definition.key_files == ("go.mod", "go.sum")
    with go_proxy(GREET) as url:
        # Named by this machine's name, allowed by its exact host:port entry.
        host = url.removeprefix("http://")
        # The module's checksum is in go.sum: no checksum database is asked.
        setup = [f"GOPROXY=http://{host} GONOSUMDB=example.com go mod download"]
        sandbox, env = await built(tmp_path / "home", repo, setup, allowed=[host])
    assert env.egress == [f"allowed {host}"], env.egress
    assert (env.path / "go/pkg/mod/example.com/greet@v1.2.0/greet.go").is_file()
    # A later step: the proxy is gone and the sandbox has no network; the cache is the env's.
    run = await run_tests("go test ./...", make_repo(tmp_path / "later", files),
                          limits=Limits(timeout_s=300), sandbox=sandbox)  # fmt: skip
    assert run.passed, run.result.output.decode()
    assert [(t.id, t.outcome) for t in run.tests] == [
        ("example.com/app/app::TestWelcome", "passed")
    ]


GREET_CRATE = Crate("greet", "1.2.0", {"src/lib.rs": (
    'pub fn hello(name: &str) -> String { format!("hello {name}") }\n'
)})  # fmt: skip
RUST_APP = {
    "Cargo.toml": '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n'
    '[dependencies]\ngreet = { version = "1.2", registry = "loop" }\n',
    "src/lib.rs": 'pub fn welcome() -> String { greet::hello("rust") }\n\n'
    "#[cfg(test)]\nmod tests {\n    #[test]\n    fn welcomes() { "
    'assert_eq!(super::welcome(), "hello rust"); }\n}\n',
    ".gitignore": "/target\n",
}


async def test_crates_are_fetched_into_the_environment_s_cargo_home_and_built_offline_after(
    tmp_path: Path,
) -> None:
    with cargo_registry(GREET_CRATE) as index:
        files = {**RUST_APP, ".cargo/config.toml": f'[registries.loop]\nindex = "{index}"\n'}
        # The lockfile as cargo writes it (pinning the crate's checksum), made on this machine.
        draft = make_repo(tmp_path / "draft", files)
        subprocess.run(["cargo", "generate-lockfile"], cwd=draft, check=True, capture_output=True,
                       env={**os.environ, "CARGO_HOME": str(tmp_path / "cargo-home"),
                            "PATH": f"{RUSTUP_BIN}:{os.environ['PATH']}"})  # fmt: skip
        files["Cargo.lock"] = (draft / "Cargo.lock").read_text()
        repo = make_repo(tmp_path / "app", files)
        definition = detect(repo)
        assert definition.source == "detected: Cargo.toml"
        assert definition.setup == ("cargo fetch --locked",)
        assert definition.key_files == ("Cargo.lock", "Cargo.toml")
        host = urlsplit(index.removeprefix("sparse+")).netloc
        sandbox, env = await built(tmp_path / "home", repo, list(definition.setup),
                                   allowed=[host])  # fmt: skip
    assert env.egress == [f"allowed {host}"], env.egress
    assert list((env.path / "cargo/registry/cache").glob("*/greet-1.2.0.crate"))
    # A later step: the registry is gone and the sandbox has no network; the crate is the env's,
    # and the toolchain (rustup's under /root here, or Debian's) is the sandbox's own.
    run = await run_tests("cargo test", make_repo(tmp_path / "later", files),
                          limits=Limits(timeout_s=600), sandbox=sandbox)  # fmt: skip
    assert run.passed, run.result.output.decode()
    assert [(t.id, t.outcome) for t in run.tests] == [("src/lib.rs::tests::welcomes", "passed")]
