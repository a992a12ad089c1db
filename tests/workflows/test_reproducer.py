"""From a production error no test covers to a failing test, with the scripted model (a test
double): a reproduction that fails another way is refused with the mismatch as feedback; one that
fails the way the event did drives the bisection and ships with the fix; a latent bug goes
straight to the fix; without a policy the run says what would let it write one."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from opentelemetry.sdk.trace import TracerProvider
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from api.main import create_app
from gym.git import git
from tests.conftest import TOKEN, make_settings, serve_app
from tests.utils.fake_github import FakeGitHub
from tests.utils.history import BILLING as BILLING_APP
from tests.utils.history import BILLING_BROKEN, planted
from tests.workflows.helpers import payloads, wait_for_end
from worker import build_worker

GITHUB_TOKEN = "ghp_" + "t0k3n" * 8

BILLING = {
    "pyproject.toml": '[project]\nname = "billing"\nversion = "0"\n\n'
    '[tool.pytest.ini_options]\npythonpath = ["."]\n',
    "app/__init__.py": "",
    "app/billing.py": "def average(xs):\n    return sum(xs) / len(xs) if xs else 0.0\n",
    "app/views.py": "from app.billing import average\n\n\ndef report(values):\n"
    "    return {'average': average(values)}\n",
    # The suite never calls average() with no values: the production error is untested.
    "tests/test_billing.py": "from app.billing import average\n\n\n"
    "def test_average():\n    assert average([1, 2, 3]) == 2\n",
}
BROKEN = {"app/billing.py": "def average(xs):\n    return sum(xs) / len(xs)\n"}
TRACEBACK = """Traceback (most recent call last):
  File "/srv/app/app/views.py", line 5, in report
    return {'average': average(values)}
  File "/srv/app/app/billing.py", line 2, in average
    return sum(xs) / len(xs)
ZeroDivisionError: division by zero
"""
WRONG_TEST = "def test_empty_report():\n    raise ValueError('no values')\n"
RIGHT_TEST = (
    "from app.views import report\n\n\n"
    "def test_an_empty_report_does_not_divide_by_zero():\n    report([])\n"
)
FIX = (
    "app/billing.py\n<<<<<<< SEARCH\n    return sum(xs) / len(xs)\n=======\n"
    "    return sum(xs) / len(xs) if xs else 0.0\n>>>>>>> REPLACE\n"
)


def call(tool: str, **args: str) -> str:
    """One scripted tool call as TOML (JSON strings are valid TOML strings)."""
    table = ", ".join(f"{k} = {json.dumps(v)}" for k, v in args.items())
    return f'call = [{{ tool = "{tool}", input = {{ {table} }} }}]'


def create(path: str, content: str) -> str:
    return call("create_file", path=path, content=content)


def script(tmp_path: Path, *, wrong_first: bool) -> Path:
    lines = ["plan = 'fix the empty average'"]
    if wrong_first:  # another exception, raised from the test itself: refused
        lines += ["[[reproduce]]", "[[reproduce.turn]]", create("tests/test_repro.py", WRONG_TEST)]
        # The second attempt goes on from the first one's work: Claude's editor rewrites it.
        edit = call("str_replace_based_edit_tool", command="create", path="tests/test_repro.py",
                    file_text=RIGHT_TEST)  # fmt: skip
        lines += ["[[reproduce]]", "[[reproduce.turn]]", edit]
    else:
        lines += ["[[reproduce]]", "[[reproduce.turn]]", create("tests/test_repro.py", RIGHT_TEST)]
    lines += ["[[patch]]", f"patch = '''{FIX}'''"]
    path = tmp_path / "script.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_a_mismatch_is_refused_then_the_written_test_drives_bisection_and_ships(
    api: httpx.AsyncClient, worker: Worker, client: Client, tmp_path: Path
) -> None:
    repo = tmp_path / "billing"
    shas = planted(repo, BILLING, commits=6, bad_at=3, breaking=BROKEN)
    response = await api.post("/investigations", json={
        "repo": str(repo), "traceback": TRACEBACK, "policy": "scripted",
        "policy_script": str(script(tmp_path, wrong_first=True)),
    })  # fmt: skip
    assert response.status_code == 202, response.text
    run = await wait_for_end(api, response.json()["run_id"], timeout_s=240)
    assert run["status"] == "completed", run
    checks = [s for s in run["steps"] if s["name"] == "check reproduction"]
    assert [c["round"] for c in checks] == [1, 2]
    assert checks[0]["detail"].startswith(
        "refused: the new test failed with ValueError: no values raised in the test itself"
    ), checks[0]
    assert (
        "the event's error is ZeroDivisionError raised in average() of app/billing.py"
        in (checks[0]["detail"])
    )
    assert checks[1]["detail"].startswith("matches: fails as the event did: ZeroDivisionError")
    result = run["result"]
    assert result["culprit"]["sha"] == shas[3]
    branch = result["branch"]
    # The new test ships with the fix.
    assert git("show", f"{branch}:tests/test_repro.py", cwd=repo) == RIGHT_TEST.rstrip("\n")
    assert "if xs else 0.0" in git("show", f"{branch}:app/billing.py", cwd=repo)
    report = (await api.get(result["report_url"])).text
    assert "the policy wrote one" in report and "test_an_empty_report" in report
    assert "ZeroDivisionError" in report
    # The event travels twice: in the run's input and in the prepare step's, which keeps it as
    # an artifact; the report reads it from there (its frames are not sent apart either).
    history = await client.get_workflow_handle(run["run_id"]).fetch_history()
    carrying = [e.event_type for e in history.events
                if any(b"/srv/app/app/views.py" in p.data for p in payloads(e))]  # fmt: skip
    assert carrying == [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
                        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED], carrying  # fmt: skip
    assert "/srv/app/app/views.py" in report  # the report still names the event's frames


def test_the_mismatch_is_named_to_the_model() -> None:
    from gym.reproduction import judge

    output = (
        "Traceback (most recent call last):\n"
        '  File "/tmp/workspace/tests/test_repro.py", line 2, in test_empty_report\n'
        "    raise ValueError('no values')\nValueError: no values\n"
    )
    verdict = judge(output, 1, exception_type="ZeroDivisionError", file="app/billing.py",
                    function="average", tests=["tests/test_repro.py"])  # fmt: skip
    assert not verdict.matched
    assert "ValueError: no values raised in the test itself" in verdict.detail
    assert "ZeroDivisionError raised in average() of app/billing.py" in verdict.detail
    # Another frame: the right exception from the wrong function is refused too.
    elsewhere = output.replace("ValueError: no values", "ZeroDivisionError: division by zero")
    elsewhere = elsewhere.replace(
        "    raise ValueError('no values')\n",
        "    raise ValueError('no values')\n"
        '  File "/tmp/workspace/app/views.py", line 5, in report\n    x / 0\n',
    )
    other = judge(elsewhere, 1, exception_type="ZeroDivisionError", file="app/billing.py",
                  function="average", tests=["tests/test_repro.py"])  # fmt: skip
    assert not other.matched and "raised in report() of app/views.py" in other.detail


async def test_a_latent_bug_goes_straight_to_the_fix(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = tmp_path / "billing"
    planted(repo, {**BILLING, **BROKEN}, commits=4, bad_at=99, breaking={})
    # The error in Sentry's event shape this time, and a written reproduction asked for.
    frames = [
        {"filename": "app/views.py", "function": "report", "lineno": 5, "in_app": True,
         "context_line": "    return {'average': average(values)}", "vars": {"values": []}},
        {"filename": "app/billing.py", "function": "average", "lineno": 2, "in_app": True,
         "context_line": "    return sum(xs) / len(xs)", "vars": {"xs": []}},
    ]  # fmt: skip
    event = {"exception": {"values": [{"type": "ZeroDivisionError", "value": "division by zero",
                                       "stacktrace": {"frames": frames}}]},
             "environment": "production", "tags": [["server_name", "web-1"]]}  # fmt: skip
    response = await api.post("/investigations", json={
        "repo": str(repo), "event": event, "reproduce": {"write": True}, "policy": "scripted",
        "policy_script": str(script(tmp_path, wrong_first=False)),
    })  # fmt: skip
    assert response.status_code == 202, response.text
    run = await wait_for_end(api, response.json()["run_id"], timeout_s=240)
    assert run["status"] == "completed", run
    names = [s["name"] for s in run["steps"]]
    assert names.index("reproducer") < names.index("probe")  # written first, as asked
    assert "localize" not in names and "fix" in names
    result = run["result"]
    assert result["culprit"] is None
    assert git("show", f"{result['branch']}:tests/test_repro.py", cwd=repo)
    report = (await api.get(result["report_url"])).text
    assert "latent bug" in report


async def test_without_a_policy_the_run_says_what_would_let_it_write_a_test(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = tmp_path / "billing"
    planted(repo, BILLING, commits=3, bad_at=2, breaking=BROKEN)
    response = await api.post("/investigations", json={"repo": str(repo), "traceback": TRACEBACK})
    run = await wait_for_end(api, response.json()["run_id"])
    assert run["status"] == "failed" and run["error"]["type"] == "NotReproduced"
    assert "no existing test reproduces the event" in run["error"]["message"]
    assert "a policy (or reproduce.test_command)" in run["error"]["message"]
    refused = await api.post("/investigations", json={
        "repo": str(repo), "traceback": TRACEBACK, "reproduce": {"write": True},
    })  # fmt: skip
    assert refused.status_code == 422 and "needs a policy" in refused.json()["detail"]
    unparsed = await api.post("/investigations", json={"repo": str(repo), "traceback": "oops"})
    assert unparsed.status_code == 422 and "no Python traceback" in unparsed.json()["detail"]


UNTESTED_BILLING = {**BILLING_APP, "tests/test_totals.py": (
    "from app.billing.totals import compute_total\n\n\nclass Line:\n    amount = 4\n\n\n"
    "def test_one_line():\n    assert compute_total([Line()]) == 4\n"
)}  # fmt: skip
TOTALS_TEST = (
    "from app.billing.totals import compute_total\n\n\n"
    "def test_an_empty_invoice_does_not_divide_by_zero():\n    compute_total([])\n"
)
TOTALS_FIX = (
    "app/billing/totals.py\n<<<<<<< SEARCH\ndef compute_total(lines):\n=======\n"
    "def compute_total(lines):\n    if not lines:\n        return 0\n>>>>>>> REPLACE\n"
)


async def test_a_sentry_error_no_test_covers_ends_in_a_draft_pull_request_with_the_new_test(
    tmp_path: Path, temporal_target: str, isolated_client: Client, tracer_provider: TracerProvider
) -> None:
    from tests.utils.sentry_fixtures import fixtures_dir

    fixtures = fixtures_dir()
    signatures = json.loads((fixtures / "_signatures.json").read_text())
    remote = tmp_path / "acme" / "billing.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    repo = tmp_path / "billing"
    shas = planted(repo, UNTESTED_BILLING, commits=8, bad_at=5, breaking=BILLING_BROKEN)
    git("remote", "add", "origin", str(remote), cwd=repo)
    git("push", "--quiet", "origin", "main", cwd=repo)
    path = tmp_path / "script.toml"
    path.write_text("\n".join([
        "[[reproduce]]", "[[reproduce.turn]]", create("tests/test_empty_invoice.py", TOTALS_TEST),
        "[[patch]]", f"patch = '''{TOTALS_FIX}'''",
    ]) + "\n")  # fmt: skip
    fake = FakeGitHub(GITHUB_TOKEN, {"acme/billing": remote})
    with fake.serve() as github_url:
        settings = make_settings(
            tmp_path / "home", temporal_target, namespace=isolated_client.namespace,
            sentry_client_secret=SecretStr(signatures["secret"]),
            sentry_projects={"billing-api": {"repo": str(repo), "policy": "scripted",
                                             "policy_script": str(path)}},
            github_token=SecretStr(GITHUB_TOKEN), github_api_url=github_url,
        )  # fmt: skip
        app = create_app(settings, client=isolated_client, tracer_provider=tracer_provider)
        async with (
            build_worker(isolated_client, settings),
            serve_app(app) as base,
            httpx.AsyncClient(base_url=base, timeout=30) as hooks,
            httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"},
                              timeout=30) as api,
        ):  # fmt: skip
            name = "error_created.json"
            headers = dict(signatures["fixtures"][name]["headers"])
            delivered = await hooks.post("/webhooks/sentry", content=(fixtures / name).read_bytes(),
                                         headers=headers)  # fmt: skip
            assert delivered.status_code == 202, delivered.text
            run = await wait_for_end(api, delivered.json()["run_id"], timeout_s=240)
    assert run["status"] == "completed", run
    result = run["result"]
    assert result["culprit"]["sha"] == shas[5]
    (check,) = [s for s in run["steps"] if s["name"] == "check reproduction"]
    assert (
        "ZeroDivisionError" in check["detail"]
        and "compute_total() of app/billing/totals.py" in (check["detail"])
    )
    (posted,) = fake.posts()
    assert posted["json"]["draft"] is True
    branch = posted["json"]["head"]
    pushed = git("ls-tree", "-r", "--name-only", f"refs/heads/{branch}", git_dir=remote).split()
    assert "tests/test_empty_invoice.py" in pushed  # the new test ships with the fix
    fixed = git("show", f"refs/heads/{branch}:app/billing/totals.py", git_dir=remote)
    assert "if not lines" in fixed
    assert result["pull_request_url"] == fake.pulls[0]["html_url"]
