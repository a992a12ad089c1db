"""The `ratchet` command in-process (`run(argv)`) against the real API, worker and Temporal.

The CLI is synchronous while the API and the worker share the test's event loop: each command
runs in a thread so the loop keeps serving it. capsys is not a terminal, so `follow` prints
plain lines.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.worker import Worker

from ratchet.cli import run
from ratchet.cli.apiclient import RatchetApi, follow
from ratchet.settings import Settings
from tests.conftest import free_port
from tests.utils.history import CALC, CALC_BROKEN, planted
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script

UNKNOWN = "task-000000000000"
BOUND = ("--timeout", "120")  # a stuck run fails its test at once, not at pytest's timeout


class Cli:
    def __init__(self, base_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.base_url, self.capsys = base_url, capsys

    async def __call__(self, command: str, *argv: str) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of `ratchet COMMAND --api URL ARGV...`."""
        self.capsys.readouterr()
        code = await asyncio.to_thread(run, [command, "--api", self.base_url, *argv])
        out, err = self.capsys.readouterr()
        return code, out, err

    async def json(self, command: str, *argv: str) -> Any:
        code, out, err = await self(command, *argv, "--json")
        assert code == 0, out + err
        return json.loads(out)

    async def wait_for(self, run_id: str, status: str, timeout_s: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            run: dict[str, Any] = await self.json("show", run_id)
            if run["status"] == status:
                return run
            assert run["status"] == "running", run
            assert time.monotonic() < deadline, f"{run_id} never became {status}: {run}"
            await asyncio.sleep(0.3)


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("RATCHET_HOME", str(settings.home))
    monkeypatch.setenv("RATCHET_API_TOKEN", settings.token)
    return settings


@pytest.fixture
def cli(api: httpx.AsyncClient, env: Settings, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(str(api.base_url).rstrip("/"), capsys)


def scripted(tmp_path: Path, patches: list[str], name: str = "s.toml") -> list[str]:
    return ["--script", str(write_script(tmp_path / name, patches))]


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("ratchet: "), err
    return err


async def test_task_follow_shows_progress_then_gates_and_cost(
    cli: Cli, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    code, out, err = await cli(
        "task", "--repo", str(repo), "--goal", "add mul", "--follow", *BOUND,
        *scripted(tmp_path, [ADD_MUL_WRONG, FIX_MUL]),
    )  # fmt: skip
    assert code == 0, out + err
    lines = out.splitlines()
    run_id = lines[-1].removeprefix("run_id: ")
    assert lines[0] == f"{run_id} started (scripted policy)"
    # A line per step as it changes: round 1 fails verification, round 2 passes.
    assert any(line.startswith("  prepare") and "completed" in line for line in lines)
    assert any(line.startswith("  verify (round 1)") and "tests FAILED" in line for line in lines)
    assert any(line.startswith("  verify (round 2)") and "completed" in line for line in lines)
    assert "status: completed" in lines
    assert "gates:" in lines and any(line.startswith("  [PASS] tests: ") for line in lines)
    # The scripted model's turns are counted, at no cost: the plan, two per round, the refactor.
    assert any(line.startswith("cost $0.0000, 6 turns") for line in lines), lines
    assert f"branch: ratchet/{run_id}" in out

    code, out, _ = await cli("show", run_id)
    assert code == 0
    assert out.startswith(f"{run_id}  completed  (task, scripted policy (TEST DOUBLE")
    assert "steps:" in out and "[PASS] lint" in out and "cost $" in out

    # On a terminal the same run is drawn as a live table (rich), not as lines.
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    api = RatchetApi(Settings(), cli.base_url)
    done = await asyncio.to_thread(follow, api, run_id, out=screen)
    assert done["status"] == "completed"
    assert f"{run_id}: completed" in screen.getvalue() and "\x1b[" in screen.getvalue()


async def test_json_outputs_parse(cli: Cli, worker: Worker, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    accepted = await cli.json(
        "task",
        "--repo",
        str(repo),
        "--goal",
        "add mul",
        *scripted(tmp_path, [ADD_MUL_WRONG, FIX_MUL]),
    )
    assert set(accepted) >= {"run_id", "workflow_id", "status_url", "temporal_ui_url", "trace_id"}
    run_id = accepted["run_id"]

    code, out, err = await cli("follow", run_id, "--json", *BOUND)
    assert code == 0, err
    run = json.loads(out)  # only the JSON on stdout: the progress went to stderr
    assert run["status"] == "completed" and "  prepare" in err

    shown = await cli.json("show", run_id)
    assert shown["run_id"] == run_id and shown["result"]["gates"]


async def test_api_errors_are_one_line_and_exit_1(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = await cli("show", UNKNOWN)
    assert (code, out) == (1, "")
    assert one_line(err) == f"ratchet: GET /runs/{UNKNOWN}: 404: no run '{UNKNOWN}'\n"

    # A validation error (a list of problems in FastAPI's answer) is one line too.
    repo = make_repo(tmp_path / "calc", PY_REPO)
    code, _, err = await cli("task", "--repo", str(repo), "--goal", "g", "--perspectives", "99")
    assert code == 1
    assert one_line(err).startswith("ratchet: POST /tasks: 422: perspectives: ")

    monkeypatch.setenv("RATCHET_API_TOKEN", "wrong-token-0123456789")
    code, _, err = await cli("show", UNKNOWN)
    assert code == 1 and ": 401: missing or wrong API token" in one_line(err)


async def test_an_unreachable_api_is_one_line_naming_it(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert run(["runs", "--api", url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert one_line(err).startswith(f"ratchet: cannot reach the Ratchet API at {url} ")
    assert "make up" in err


def test_usage_errors_exit_2(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["show"]) == 2
    assert run(["reject", UNKNOWN]) == 2  # --reason is required
    assert run(["budget", UNKNOWN]) == 2
    assert "at least one of --usd, --tokens, --turns, --wall-s" in capsys.readouterr().err
    assert run(["investigate", "--repo", ".", "--test-id", "t", "--test-command", "c"]) == 2
    assert run(["--help"]) == 0


def test_trace_of_a_run_without_spans(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["trace", UNKNOWN, "--json"]) == 1
    assert one_line(capsys.readouterr().err).startswith(
        f"ratchet: trace: no spans for run {UNKNOWN}"
    )


def test_trace_joins_the_spans_of_workers_in_homes_of_their_own(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    trace_id, run_id = "ab" * 16, "task-0123456789ab"

    def span(name: str, span_id: str, parent: str | None, service: str) -> str:
        return json.dumps({"name": name, "trace_id": trace_id, "span_id": span_id,
                           "parent_span_id": parent, "service": service, "start_ns": 1,
                           "end_ns": 2, "attributes": {"ratchet.run_id": run_id}})  # fmt: skip

    env.home.mkdir(parents=True, exist_ok=True)
    env.traces_file.write_text(span("POST /tasks", "01", None, "ratchet-api") + "\n")
    for n in (1, 2):  # `ratchet up --workers 2`: each worker writes spans in its own home
        env.worker_home(n).mkdir(parents=True)
        line = span(f"RunActivity:step-{n}", f"1{n}", "01", "ratchet-worker")
        (env.worker_home(n) / "traces.jsonl").write_text(line + "\n")
    assert run(["trace", run_id]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"trace_id: {trace_id}"
    assert "  RunActivity:step-1" in out and "  RunActivity:step-2" in out  # under the request


async def test_budget_and_cancel_steer_a_running_run(
    cli: Cli, worker: Worker, tmp_path: Path
) -> None:
    slow = {
        **PY_REPO,
        "tests/test_slow.py": "import time\n\n\ndef test_slow():\n    time.sleep(4)\n",
    }
    repo = make_repo(tmp_path / "calc", slow)
    code, out, _ = await cli(
        "task",
        "--repo",
        str(repo),
        "--goal",
        "add mul",
        *scripted(tmp_path, [ADD_MUL_WRONG, FIX_MUL]),
    )
    assert code == 0
    run_id = out.strip()

    code, out, err = await cli("budget", run_id, "--turns", "50", "--usd", "2.5")
    assert code == 0, err
    assert out.splitlines()[0] == f"{run_id}: running - budget updated"
    assert "(budget: $2.50, 50 turns)" in out
    answer = await cli.json("budget", run_id, "--wall-s", "600")
    assert answer["budget"] == {
        "max_cost_usd": 2.5, "max_tokens": None, "max_turns": 50, "max_wall_s": 600.0
    }  # fmt: skip

    code, out, err = await cli("cancel", run_id, "--reason", "enough")
    assert code == 0, err
    assert out.startswith(f"{run_id}: cancelling - enough")

    code, out, _ = await cli("follow", run_id, *BOUND)
    assert code == 1  # followed to its end, which is not "completed"
    assert "status: cancelled" in out.splitlines()

    code, _, err = await cli("cancel", run_id)
    assert code == 1
    assert one_line(err).startswith(f"ratchet: POST /runs/{run_id}/cancel: 409: ")
    code, _, err = await cli("budget", UNKNOWN, "--turns", "3")
    assert (
        code == 1
        and one_line(err) == f"ratchet: POST /runs/{UNKNOWN}/budget: 404: no run '{UNKNOWN}'\n"
    )


async def test_fork_a_failed_run_from_its_patch(cli: Cli, worker: Worker, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    code, out, _ = await cli(
        "task", "--repo", str(repo), "--goal", "add mul", "--follow", *BOUND,
        "--max-repair-rounds", "0",
        *scripted(tmp_path, [ADD_MUL_WRONG], "one.toml"),
    )  # fmt: skip
    assert code == 1
    source = out.splitlines()[-1].removeprefix("run_id: ")
    assert "status: failed" in out and "error: VerificationFailed" in out
    assert "  [FAIL] tests: failing: tests/test_mul.py::test_mul" in out

    code, _, err = await cli("fork", source, "--from", "patch-9")
    assert code == 1
    assert one_line(err).startswith(f"ratchet: POST /runs/{source}/fork: 422: run {source} has no")
    assert "recorded: base, patch-1" in err

    code, out, err = await cli(
        "fork", source, "--from-step", "patch-1", "--follow", *BOUND,
        *scripted(tmp_path, [FIX_MUL], "two.toml"),
    )  # fmt: skip
    assert code == 0, out + err
    assert f"forked from: {source}@patch-1" in out
    assert "  [PASS] tests" in out


async def test_investigate_finds_the_culprit(cli: Cli, worker: Worker, tmp_path: Path) -> None:
    repo = tmp_path / "calc"
    shas = planted(repo, CALC, commits=20, bad_at=9, breaking=CALC_BROKEN)
    code, out, err = await cli(
        "investigate", "--repo", str(repo), "--good", shas[3], "--bad", "main",
        "--test-id", "tests/test_calc.py::test_add", "--parallel-probes", "2", "--follow", *BOUND,
    )  # fmt: skip
    assert code == 0, out + err
    assert "  completed  (investigation" in out
    assert f"culprit: {shas[9][:12]} change 9 (refactor totals)" in out
    assert "report: /runs/inv-" in out


# --- GET /runs, POST /runs/{id}/approve and /reject ----------------------------------------


async def finished_run(cli: Cli, tmp_path: Path) -> tuple[Path, str]:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    code, out, _ = await cli(
        "task", "--repo", str(repo), "--goal", "add mul", "--follow", *BOUND,
        *scripted(tmp_path, [ADD_MUL_WRONG, FIX_MUL]),
    )  # fmt: skip
    assert code == 0
    return repo, out.splitlines()[-1].removeprefix("run_id: ")


async def listed(cli: Cli, run_id: str, *argv: str) -> dict[str, Any]:
    """GET /runs until the run shows as completed: Temporal's visibility catches up late."""
    deadline = time.monotonic() + 30
    while True:
        page: dict[str, Any] = await cli.json("runs", *argv)
        rows = {r["run_id"]: r for r in page["runs"]}
        if rows.get(run_id, {}).get("status") == "completed" or time.monotonic() > deadline:
            assert run_id in rows, page
            return page
        await asyncio.sleep(0.3)


async def test_runs_lists_and_pages(cli: Cli, worker: Worker, tmp_path: Path) -> None:
    _, run_id = await finished_run(cli, tmp_path)
    only = f"WorkflowId = '{run_id}'"
    page = await listed(cli, run_id, "--query", only)
    assert [(r["run_id"], r["kind"], r["status"]) for r in page["runs"]] == [
        (run_id, "task", "completed")
    ]
    assert page["next_page_token"] is None

    code, out, _ = await cli("runs", "--kind", "task", "--status", "completed", "--query", only)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["RUN", "ID", "KIND", "STATUS", "REPO", "STARTED", "SUMMARY"]
    assert [row.split()[:3] for row in rows] == [[run_id, "task", "completed"]]
    assert "add mul" in rows[0]

    # Pages of one, followed to the end: every run of the namespace's recent tasks, this one too.
    everything = await cli.json("runs", "--kind", "task", "--all", "--limit", "1")
    assert run_id in [r["run_id"] for r in everything["runs"]]
    assert everything["next_page_token"] is None
    code, out, _ = await cli("runs", "--kind", "task", "--page-size", "1")
    assert code == 0 and "more: --page-token " in out  # this test ran at least two tasks

    code, _, err = await cli("runs", "--status", "lost")
    assert code == 1 and one_line(err).startswith("ratchet: GET /runs: 422: ")
    assert "status: Input should be 'running'" in err


async def test_runs_filters_by_repo(cli: Cli, worker: Worker, tmp_path: Path) -> None:
    """Needs Ratchet's search attributes on the namespace (`ratchet up` registers them)."""
    repo, run_id = await finished_run(cli, tmp_path)
    page = await listed(cli, run_id, "--repo", str(repo))
    assert [(r["run_id"], r["repo"]) for r in page["runs"]] == [(run_id, str(repo))]
    code, out, _ = await cli("runs", "--repo", str(repo))
    assert code == 0 and str(repo)[-30:] in out.splitlines()[1]


async def test_approve_lets_a_run_deliver(cli: Cli, worker: Worker, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    accepted = await cli.json(
        "task", "--repo", str(repo), "--goal", "add mul", "--require-approval",
        *scripted(tmp_path, [ADD_MUL_WRONG, FIX_MUL]),
    )  # fmt: skip
    run_id = accepted["run_id"]
    await cli.wait_for(run_id, "awaiting_approval")
    code, out, _ = await cli("show", run_id)
    assert f"waiting: the verified patch waits for approval: `ratchet approve {run_id}`" in out
    code, out, err = await cli("follow", run_id, "--timeout", "1")
    assert code == 1  # the run goes on: following it gave up
    waiting = "status: awaiting_approval - the verified patch waits for approval: "
    assert f"{waiting}`ratchet approve {run_id}`" in out
    assert one_line(err) == f"ratchet: stopped following {run_id}: it is still awaiting_approval\n"

    answer = await cli.json("approve", run_id, "--comment", "looks right", "--by", "alice")
    assert answer["run_id"] == run_id
    code, out, err = await cli("follow", run_id, *BOUND)
    assert code == 0, out + err
    assert f"branch: ratchet/{run_id}" in out
    assert "delivery approved by alice at " in out and ": looks right" in out

    code, _, err = await cli("approve", run_id)
    assert code == 1
    assert one_line(err).startswith(f"ratchet: POST /runs/{run_id}/approve: 409: ")


async def test_reject_the_plan_ends_the_run(cli: Cli, worker: Worker, tmp_path: Path) -> None:
    code, _, err = await cli("reject", UNKNOWN, "--reason", "no")
    assert code == 1
    assert one_line(err) == f"ratchet: POST /runs/{UNKNOWN}/reject: 404: no run '{UNKNOWN}'\n"

    repo = make_repo(tmp_path / "calc", PY_REPO)
    code, out, _ = await cli(
        "task", "--repo", str(repo), "--goal", "add mul", "--approve-plan",
        *scripted(tmp_path, [ADD_MUL_WRONG, FIX_MUL]),
    )  # fmt: skip
    assert code == 0
    run_id = out.strip()
    await cli.wait_for(run_id, "awaiting_approval")

    code, out, err = await cli("reject", run_id, "--reason", "the plan has no tests", "--by", "bob")
    assert code == 0, err
    assert out.startswith(f"{run_id}: ")
    code, out, _ = await cli("follow", run_id, *BOUND)
    assert code == 1
    assert "status: rejected" in out.splitlines()
    assert "plan rejected by bob at " in out
    assert "branch: " not in out  # nothing was delivered


async def test_investigate_a_pasted_traceback_writes_the_reproduction(
    cli: Cli, worker: Worker, tmp_path: Path
) -> None:
    from tests.workflows.test_reproducer import BILLING, BROKEN, TRACEBACK, script

    repo = tmp_path / "billing"
    planted(repo, {**BILLING, **BROKEN}, commits=2, bad_at=99, breaking={})
    (tmp_path / "error.txt").write_text(TRACEBACK)
    code, out, err = await cli(
        "investigate", "--repo", str(repo), "--traceback", str(tmp_path / "error.txt"),
        "--policy", "scripted", "--script", str(script(tmp_path, wrong_first=False)),
        "--follow", *BOUND,
    )  # fmt: skip
    assert code == 0, out + err
    assert "reproducer" in out and "check reproduction" in out and "matches" in out
    code, _, err = await cli("investigate", "--repo", str(repo), "--traceback", "/nope", *BOUND)
    assert code == 1 and "cannot read --traceback /nope" in err
