"""Runs on repositories with third-party dependencies: the environment step builds them from a
package index on loopback, every sandboxed command uses them, a second run reuses them; a
hostile repository finds nothing of the host; a suite that cannot run is named as such."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.worker import Worker

from gym.git import git
from ratchet.settings import Settings
from tests.utils.history import planted
from tests.utils.pypi import PackageIndex, build_wheel
from tests.utils.repos import make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from tests.utils.settings import make_settings
from tests.workflows.helpers import wait_for_end

SLUGS = {
    "slugkit/__init__.py": (
        "import re\n\n\ndef slugify(text):\n    return re.sub(r'[^a-z0-9]+', '-', text.lower())"
        ".strip('-')\n"
    )
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageIndex]:
    wheels = tmp_path_factory.mktemp("wheels")
    build_wheel(wheels, "slugkit", "1.0", SLUGS)
    with PackageIndex(wheels) as served:
        yield served


@pytest.fixture
def settings(tmp_path: Path, temporal_target: str, index: PackageIndex) -> Settings:
    # Builds may reach the loopback index, and nothing else on this machine.
    return make_settings(
        tmp_path / "home", temporal_target, env_allowed_hosts=json.dumps([index.host])
    )


def setup(index: PackageIndex) -> list[str]:
    return [f"python -m pip install --no-cache-dir --index-url {index.url} slugkit==1.0"]


# A repository whose code and tests need a third-party package (slugkit).
TITLES = {
    "pyproject.toml": '[project]\nname = "titles"\nversion = "0"\n\n'
    '[tool.pytest.ini_options]\npythonpath = ["."]\n',
    "calc.py": "def add(a, b):\n    return a + b\n",
    "titles.py": "from slugkit import slugify\n\n\ndef title_slug(t):\n    return slugify(t)\n",
    "tests/test_titles.py": (
        "from titles import title_slug\n\n\n"
        "def test_slug():\n    assert title_slug('Hello, World') == 'hello-world'\n"
    ),
}
TITLES_BROKEN = {"titles.py": "from slugkit import slugify\n\n\ndef title_slug(t):\n    return t\n"}


def downloads(index: PackageIndex) -> list[str]:
    return [r for r in index.requests if r.startswith("/files/")]


def step(run: dict[str, object], name: str) -> dict[str, object]:
    steps = run["steps"]
    assert isinstance(steps, list)
    return next(s for s in steps if s["name"] == name)


async def test_a_task_builds_the_declared_environment_and_a_second_run_reuses_it(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path, index: PackageIndex
) -> None:
    repo = make_repo(tmp_path / "titles", TITLES)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    # Setup also leaves things in its workspace, as builds do (metadata, caches).
    litter = "mkdir -p titles.egg-info && echo x > titles.egg-info/PKG-INFO && echo c > .cache-x"
    body = {
        "repo": str(repo), "goal": "add mul", "policy": "scripted",
        "policy_script": str(script), "environment": {"setup": [*setup(index), litter]},
    }  # fmt: skip
    runs, before = [], len(downloads(index))
    for _ in range(2):
        response = await api.post("/tasks", json=body)
        assert response.status_code == 202, response.text
        runs.append(await wait_for_end(api, response.json()["run_id"], timeout_s=180))
    first, second = runs
    assert first["status"] == "completed", first
    assert str(step(first, "environment")["detail"]).startswith("built in ")
    assert "(request)" in str(step(first, "environment")["detail"])
    environment = first["result"]["environment"]
    assert environment["source"] == "request" and environment["setup"] == [*setup(index), litter]
    patch = (await api.get(f"/runs/{first['run_id']}/patch")).text
    assert "def mul" in patch and "egg-info" not in patch and ".cache-x" not in patch
    assert git("ls-tree", "-r", "--name-only", first["result"]["branch"], cwd=repo).split() == [
        "calc.py",
        "pyproject.toml",
        "tests/test_mul.py",
        "tests/test_titles.py",
        "titles.py",
    ]
    # The suite, with slugkit imported from the environment, ran at every step.
    # (the one test imports slugkit: without the environment it could not even be collected)
    assert str(step(first, "baseline")["detail"]).startswith("passed: 1 passed, 0 failed")
    assert all(g["passed"] for g in first["result"]["gates"]), first["result"]["gates"]
    assert second["status"] == "completed", second
    assert step(second, "environment")["detail"] == "cache hit (request)"
    assert second["result"]["environment"]["key"] == environment["key"]
    assert len(downloads(index)) == before + 1


async def test_an_investigation_with_a_declared_environment_and_suite_verifies_its_fix(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path, index: PackageIndex
) -> None:
    repo = tmp_path / "titles"
    shas = planted(repo, TITLES, commits=12, bad_at=7, breaking=TITLES_BROKEN)
    before = len(downloads(index))
    response = await api.post("/investigations", json={
        "repo": str(repo), "test_command": "python -m pytest -q tests",
        "environment": {"setup": setup(index)},
    })  # fmt: skip
    assert response.status_code == 202, response.text
    run = await wait_for_end(api, response.json()["run_id"], timeout_s=240)
    assert run["status"] == "completed", run
    result = run["result"]
    assert result["culprit"]["sha"] == shas[7]
    assert all(g["passed"] for g in result["gates"]), result["gates"]
    assert git("show", f"{result['branch']}:titles.py", cwd=repo) == TITLES["titles.py"].strip()
    assert result["environment"]["source"] == "request"
    # Every probe found the environment built by the first one (one key: same key files).
    assert len(downloads(index)) == before + 1


async def test_a_suite_that_cannot_run_is_named_instead_of_blaming_the_fix(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    # The reproduction runs, but the whole suite needs a module nobody installs.
    files = {
        **TITLES,
        "titles.py": "def title_slug(t):\n    return t.lower().replace(', ', '-')\n",
        "tests/test_system.py": "import psutil_not_installed\n\n\ndef test_cpu():\n    pass\n",
    }
    broken = {"titles.py": "def title_slug(t):\n    return t\n"}
    repo = tmp_path / "titles"
    planted(repo, files, commits=6, bad_at=3, breaking=broken)
    response = await api.post("/investigations", json={
        "repo": str(repo), "reproduce": {"test_id": "tests/test_titles.py::test_slug"},
    })  # fmt: skip
    run = await wait_for_end(api, response.json()["run_id"], timeout_s=180)
    assert run["status"] == "failed", run
    assert run["error"]["type"] == "SuiteDoesNotRun", run["error"]
    message = run["error"]["message"]
    assert "No module named 'psutil_not_installed'" in message
    assert "environment" in message and "test_command" in message
    assert "did not verify" not in message


SECRET_PROBE = """\
import os, pathlib


def test_look_around():
    home = os.environ.get("PROBE_HOME", "")
    found = []
    for path in [home + "/api-token", "/root", home + "/mirrors", "/work", "/home",
                 home, os.environ.get("PROBE_VENV", "")]:
        p = pathlib.Path(path)
        try:
            seen = p.read_text() if p.is_file() else str(sorted(os.listdir(p)))
            found.append(f"{path}: {seen}")
        except OSError as err:
            found.append(f"{path}: hidden ({type(err).__name__})")
    print("\\n".join(found))
    assert all("hidden" in f for f in found), found
"""


async def test_a_hostile_repository_finds_nothing_of_the_host(
    api: httpx.AsyncClient,
    worker: Worker,
    settings: Settings,
    tmp_path: Path,
    span_exporter: InMemorySpanExporter,
) -> None:
    # What a worker's home holds: the API token (as `ratchet up` writes it), other mirrors.
    token = "ratchet-api-token-that-must-not-leak"
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "api-token").write_text(token)
    venv = str(Path(sys.executable).parent.parent)
    probe = SECRET_PROBE.replace('os.environ.get("PROBE_HOME", "")', repr(str(settings.home)))
    probe = probe.replace('os.environ.get("PROBE_VENV", "")', repr(venv))
    repo = make_repo(
        tmp_path / "hostile",
        {
            **TITLES,
            "titles.py": "def title_slug(t):\n    return t\n",
            "tests/test_titles.py": "",
            "tests/test_probe.py": probe,
        },
    )
    other = make_repo(tmp_path / "other-secret-project", {"x.py": "x = 1\n"})
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    for target in (other, repo):  # the other repository gets a mirror of its own first
        response = await api.post("/tasks", json={
            "repo": str(target), "goal": "add mul", "policy": "scripted",
            "policy_script": str(script), "test_command": "python -m pytest -q -s",
        })  # fmt: skip
        run = await wait_for_end(api, response.json()["run_id"], timeout_s=180)
    baseline = step(run, "baseline")
    assert "1 passed" in str(baseline["detail"]), baseline  # every look found nothing
    leaks = [token, "other-secret-project", "pyvenv.cfg"]
    stored = [p for p in (settings.home / "artifacts").rglob("*") if p.is_file()]
    assert stored
    for path in stored:
        text = path.read_bytes().decode(errors="replace")
        assert not [leak for leak in leaks if leak in text], path
    spans = span_exporter.get_finished_spans()
    assert any(s.name == "sandbox.process" for s in spans)
    for span in spans:
        seen = json.dumps(
            [
                span.name,
                dict(span.attributes or {}),
                [(e.name, dict(e.attributes or {})) for e in span.events],
            ],
            default=str,
        )
        assert not [leak for leak in leaks if leak in seen], span.name
    assert not [leak for leak in leaks if leak in json.dumps(run)]


async def test_a_failing_setup_fails_the_run_at_once_with_the_command_and_its_log(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path, index: PackageIndex
) -> None:
    repo = make_repo(tmp_path / "titles", TITLES)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    bad = f"python -m pip install --no-cache-dir --index-url {index.url} slugkit==7.0"
    response = await api.post("/tasks", json={
        "repo": str(repo), "goal": "add mul", "policy": "scripted",
        "policy_script": str(script), "environment": {"setup": [bad]},
    })  # fmt: skip
    run = await wait_for_end(api, response.json()["run_id"], timeout_s=120)
    assert run["status"] == "failed", run
    assert run["error"]["type"] == "EnvironmentBuildFailed"
    assert f"`{bad}` exited 1" in run["error"]["message"]
    assert (
        "slugkit==7.0" in run["error"]["message"]
        and "[build log: sha256:" in run["error"]["message"]
    )
    environment = step(run, "environment")
    assert environment["status"] == "failed" and environment["attempts"] == 1
    assert [s["name"] for s in run["steps"]] == ["prepare", "environment"]


async def test_a_bad_environment_is_refused_before_anything_starts(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "titles", TITLES)
    for environment in ({"setup": []}, {"setup": ["  "]}, {"setup": ["x"], "key_files": ["/etc/x"]},
                        {"setup": ["x"], "key_files": ["../up"]}, {"setup": "pip install x"},
                        {"setup": ["x"], "extra": 1}):  # fmt: skip
        for path, body in (
            ("/tasks", {"goal": "g", "policy": "scripted"}),
            ("/investigations", {}),
        ):
            response = await api.post(
                path, json={"repo": str(repo), **body, "environment": environment}
            )
            assert response.status_code == 422, (path, environment, response.text)
            assert "detail" in response.json()


async def test_a_task_whose_suite_cannot_run_stops_before_any_model_is_paid(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    # Its tests need slugkit; nothing declares an environment that has it.
    repo = make_repo(tmp_path / "titles", TITLES)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    response = await api.post("/tasks", json={
        "repo": str(repo), "goal": "add mul", "policy": "scripted", "policy_script": str(script),
    })  # fmt: skip
    run = await wait_for_end(api, response.json()["run_id"], timeout_s=120)
    assert run["status"] == "failed", run
    assert run["error"]["type"] == "SuiteDoesNotRun"
    assert "No module named 'slugkit'" in run["error"]["message"]
    assert "environment" in run["error"]["message"]
    assert [s["name"] for s in run["steps"]] == ["prepare", "environment", "baseline"]
    assert run["result"] is None or run["result"]["environment"]["source"].startswith("default")
