"""ForwardPlanningWorkflow end to end: real API over HTTP, real Temporal, real git, real pytest."""

from __future__ import annotations

from pathlib import Path

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.worker import Worker

from gym.git import git
from ratchet.cli.demo import EXAMPLES, GOAL, build_example
from ratchet.settings import Settings
from tests.utils.envs import otel_setup
from tests.utils.pypi import PackageIndex
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from tests.workflows.helpers import payloads, wait_for_end


async def submit(
    api: httpx.AsyncClient, repo: Path, script: Path, goal: str = "add mul", **extra: object
) -> str:
    body = {"repo": str(repo), "goal": goal, "policy": "scripted", "policy_script": str(script)}
    response = await api.post("/tasks", json=body | extra)
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) >= {"run_id", "workflow_id", "status_url", "temporal_ui_url", "trace_id"}
    return str(body["run_id"])


async def test_demo_example_is_repaired_verified_and_delivered(
    api: httpx.AsyncClient,
    worker: Worker,
    settings: Settings,
    span_exporter: InMemorySpanExporter,
) -> None:
    repo = build_example(settings)
    head_before = git("rev-parse", "HEAD", cwd=repo)
    run_id = await submit(api, repo, EXAMPLES / "median" / "script.toml", GOAL)

    run = await wait_for_end(api, run_id)

    assert run["status"] == "completed", run
    assert run["error"] is None
    gates = {g["name"]: g["passed"] for g in run["result"]["gates"]}
    assert gates == {
        "tests": True, "tamper": True, "diff_budget": True, "protected_paths": True, "lint": True,
        "observability": True,
    }  # fmt: skip
    steps = [(s["name"], s["round"], s["status"]) for s in run["steps"]]
    # Round 1's patch is wrong on purpose: verify fails, the failure goes back, round 2 passes.
    verifies = [(s["round"], s["detail"]) for s in run["steps"] if s["name"] == "verify"]
    assert verifies[0][0] == 1 and "tests FAILED" in verifies[0][1]
    assert verifies[1][0] == 2 and "FAILED" not in verifies[1][1]
    assert [name for name, _, _ in steps] == [
        "prepare", "environment", "baseline", "baseline lint", "memory", "plan", "patch", "test",
        "lint", "verify",
        "patch", "test", "lint", "verify", "refactor", "test", "lint", "verify", "deliver",
    ]  # fmt: skip
    assert all(status == "completed" for _, _, status in steps), steps
    assert run["result"]["refactor_kept"] is True
    assert run["result"]["isolation"].startswith("bwrap (sealed): no network")

    # The branch holds one commit on top of the base; the user's checkout is untouched.
    branch = run["result"]["branch"]
    assert branch == f"ratchet/{run_id}"
    assert git("rev-parse", f"{branch}^", cwd=repo) == head_before
    assert git("rev-parse", "HEAD", cwd=repo) == head_before
    assert git("status", "--porcelain", cwd=repo) == ""
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo) == "main"
    shown = git("show", f"{branch}:statskit/stats.py", cwd=repo)
    assert "divmod" in shown  # the refactor was kept

    # The scripted model went through the agent loop: its turns are counted (at no cost) and
    # its tool calls are in the transcript, with what each got back.
    # The plan, round 1's 5 turns, round 2's 2 and its submit, the refactor's patch and submit.
    assert run["usage"]["turns"] == 1 + 5 + 3 + 2 and run["usage"]["cost_usd"] == 0
    transcript = (await api.get(f"/runs/{run_id}/transcript")).json()
    assert "TEST DOUBLE" in transcript["policy"]
    steps_talked = [c["step"] for c in transcript["conversations"]]
    assert steps_talked == ["patch-1", "patch-2", "refactor-1"]
    first = transcript["conversations"][0]["turns"]
    assert [c["tool"] for t in first for c in t["calls"]] == [
        "str_replace_based_edit_tool", "bash", "apply_patch", "run_tests", "submit",
    ]  # fmt: skip
    assert "def mean" in first[0]["calls"][0]["result"]
    assert "cannot import name 'median'" in first[1]["calls"][0]["result"]
    assert "changed statskit/stats.py, tests/test_median.py" in first[2]["calls"][0]["result"]
    assert first[3]["calls"][0]["result"].startswith("FAILED: 3 passed, 1 failed")

    patch = await api.get(f"/runs/{run_id}/patch")
    assert patch.status_code == 200
    assert patch.headers["content-type"].startswith("text/x-diff")
    assert git("diff", f"HEAD..{branch}", cwd=repo) + "\n" == patch.text

    # One trace from the HTTP request through the workflow to every activity.
    spans = [s for s in span_exporter.get_finished_spans() if s.context]
    request = next(
        s for s in spans if s.name == "POST /tasks" and s.attributes.get("ratchet.run_id") == run_id
    )
    trace_id = request.context.trace_id
    assert run["trace_id"] == format(trace_id, "032x")
    in_trace = {s.name for s in spans if s.context.trace_id == trace_id}
    assert "RunWorkflow:ForwardPlanningWorkflow" in in_trace
    for activity in ("prepare", "run_tests", "plan", "model_turn", "tool", "verify", "deliver"):
        assert f"RunActivity:ratchet.{activity}" in in_trace
    activity_spans = [
        s for s in spans if s.context.trace_id == trace_id and s.name.startswith("RunActivity:")
    ]
    assert all(s.attributes.get("ratchet.run_id") == run_id for s in activity_spans)


async def test_a_patch_that_never_verifies_fails_the_run_with_the_last_gates(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    retry = (
        "calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n=======\n# try {n}\ndef add(a, b):\n"
        ">>>>>>> REPLACE\n"
    )
    script = write_script(
        tmp_path / "s.toml", [ADD_MUL_WRONG, retry.format(n=2), retry.format(n=3)]
    )
    run_id = await submit(api, repo, script)
    run = await wait_for_end(api, run_id)
    assert run["status"] == "failed"
    assert run["error"]["type"] == "VerificationFailed"
    assert "3 rounds" in run["error"]["message"]
    assert [s["round"] for s in run["steps"] if s["name"] == "verify"] == [1, 2, 3]
    gates = {g["name"]: g for g in run["result"]["gates"]}
    assert not gates["tests"]["passed"]
    assert gates["tests"]["detail"] == "failing: tests/test_mul.py::test_mul"
    assert run["result"]["patch_url"] is None
    assert git("branch", "--list", "ratchet/*", cwd=repo) == ""
    assert (await api.get(f"/runs/{run_id}/patch")).status_code == 404


async def test_a_policy_that_runs_out_of_answers_fails_with_its_reason(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    run_id = await submit(api, repo, write_script(tmp_path / "s.toml", [ADD_MUL_WRONG]))
    run = await wait_for_end(api, run_id)
    assert run["status"] == "failed"
    assert run["error"]["type"] == "PolicyError"
    assert "round 2" in run["error"]["message"]


async def test_repair_round_fixes_a_failing_patch(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    run_id = await submit(api, repo, script)
    run = await wait_for_end(api, run_id)
    assert run["status"] == "completed", run
    assert "return a * b" in git("show", f"ratchet/{run_id}:calc.py", cwd=repo)
    assert run["result"]["refactor_kept"] is False  # the script proposes no refactor


async def test_a_patch_that_does_not_apply_goes_back_as_feedback(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    stale = "calc.py\n<<<<<<< SEARCH\ndef sub(a, b):\n=======\ndef sub(x, y):\n>>>>>>> REPLACE\n"
    script = write_script(tmp_path / "s.toml", [stale, ADD_MUL_WRONG, FIX_MUL])
    run_id = await submit(api, repo, script)
    run = await wait_for_end(api, run_id)
    assert run["status"] == "completed", run
    # The tool's error went back to the model; the round changed nothing, so it failed.
    transcript = (await api.get(f"/runs/{run_id}/transcript")).json()
    (applied,) = transcript["conversations"][0]["turns"][0]["calls"]
    assert applied["is_error"] and "edit block 1" in applied["result"]
    first_verify = next(s for s in run["steps"] if s["name"] == "verify")
    assert "change FAILED" in first_verify["detail"]


async def test_a_refused_patch_is_reported_to_the_model_and_never_delivered(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    evil = (
        ".git/hooks/pre-commit\n<<<<<<< SEARCH\n=======\n#!/bin/sh\necho owned\n>>>>>>> REPLACE\n"
    )
    run_id = await submit(api, repo, write_script(tmp_path / "s.toml", [evil]))
    run = await wait_for_end(api, run_id)
    assert run["status"] == "failed" and (run["result"] or {}).get("patch_url") is None
    transcript = (await api.get(f"/runs/{run_id}/transcript")).json()
    (applied,) = transcript["conversations"][0]["turns"][0]["calls"]
    assert applied["is_error"] and ".git/" in applied["result"]
    verify = next(s for s in run["steps"] if s["name"] == "verify")
    assert "change FAILED" in verify["detail"]  # nothing was written: nothing to deliver
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()


async def test_refactor_that_breaks_tests_is_discarded(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    breaking = (
        "calc.py\n<<<<<<< SEARCH\n    return a * b\n=======\n    return a ** b\n>>>>>>> REPLACE\n"
    )
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL], refactor=breaking)
    run_id = await submit(api, repo, script)
    run = await wait_for_end(api, run_id)
    assert run["status"] == "completed", run
    assert run["result"]["refactor_kept"] is False
    assert "return a * b" in git("show", f"ratchet/{run_id}:calc.py", cwd=repo)
    assert all(g["passed"] for g in run["result"]["gates"])


async def test_weakening_an_existing_test_is_flagged_and_graded_with_the_original(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    # Breaks add() and "fixes" the failing test by weakening it.
    cheat = (
        "calc.py\n<<<<<<< SEARCH\n    return a + b\n=======\n    return a - b\n>>>>>>> REPLACE\n"
        "tests/test_calc.py\n<<<<<<< SEARCH\n    assert add(2, 3) == 5\n=======\n"
        "    assert add(2, 3) is not None\n>>>>>>> REPLACE\n"
    )
    run_id = await submit(api, repo, write_script(tmp_path / "s.toml", [cheat, cheat, cheat]))
    run = await wait_for_end(api, run_id)
    assert run["status"] == "failed"
    gates = {g["name"]: g for g in run["result"]["gates"]}
    assert not gates["tamper"]["passed"]
    assert "tests/test_calc.py (modified)" in gates["tamper"]["detail"]
    # The weakened test was not used: the original one ran, and failed.
    assert gates["tests"]["detail"].startswith("failing: tests/test_calc.py::test_add")
    test_step = next(s for s in run["steps"] if s["name"] == "test")
    assert "graded with the original tests/test_calc.py" in test_step["detail"]
    assert "[sandbox: bwrap (sealed)]" in test_step["detail"]


async def test_a_test_failing_at_baseline_does_not_block_an_unrelated_change(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    files = dict(PY_REPO)
    files["tests/test_known_bug.py"] = "def test_known_bug():\n    assert 0.1 + 0.2 == 0.3\n"
    repo = make_repo(tmp_path / "calc", files)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    run_id = await submit(api, repo, script)
    run = await wait_for_end(api, run_id)
    assert run["status"] == "completed", run
    tests_gate = next(g for g in run["result"]["gates"] if g["name"] == "tests")
    assert tests_gate["passed"]
    assert (
        "already failing at baseline: tests/test_known_bug.py::test_known_bug"
        in tests_gate["detail"]
    )


async def test_a_new_lint_finding_sends_the_patch_back(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    right = ADD_MUL_WRONG.replace(
        "def mul(a, b):\n    return a + b", "def mul(a, b):\n    return a * b"
    )
    unused_import = (
        "calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n=======\nimport os\n\n\ndef add(a, b):\n"
    )
    sloppy = right + unused_import + ">>>>>>> REPLACE\n"
    tidy = "calc.py\n<<<<<<< SEARCH\nimport os\n\n\n=======\n>>>>>>> REPLACE\n"
    run_id = await submit(api, repo, write_script(tmp_path / "s.toml", [sloppy, tidy]))
    run = await wait_for_end(api, run_id)
    assert run["status"] == "completed", run
    verifies = [s["detail"] for s in run["steps"] if s["name"] == "verify"]
    assert verifies[0] == (
        "tests ok, tamper ok, diff_budget ok, protected_paths ok, lint FAILED, observability ok"
    )
    lint_gate = next(g for g in run["result"]["gates"] if g["name"] == "lint")
    assert lint_gate["passed"]
    assert "import os" not in git("show", f"ratchet/{run_id}:calc.py", cwd=repo)


async def test_a_required_span_the_patch_drops_fails_the_observability_gate(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path, otel_index: PackageIndex
) -> None:
    from tests.gym.test_observability import INSTRUMENTED

    files = {**INSTRUMENTED, "ratchet.toml": "[observability]\nrequired_spans = ['charge-card']\n"}
    files["tests/test_shop.py"] = (
        files["tests/test_shop.py"]
        .replace(
            "        with tracer.start_as_current_span('charge-card'):\n            pass\n",
            "        charge(tracer)\n",
        )
        .replace(
            "from opentelemetry.sdk.trace import",
            "from shop import charge\nfrom opentelemetry.sdk.trace import",
        )
    )
    files["shop.py"] = (
        "def charge(tracer):\n    with tracer.start_as_current_span('charge-card'):\n        pass\n"
    )
    files["pyproject.toml"] += '\n[tool.pytest.ini_options]\npythonpath = ["."]\n'
    repo = make_repo(tmp_path / "shop", files)
    # The patch makes charge() skip its span: the tests still pass, the required span is gone.
    drop = (
        "shop.py\n<<<<<<< SEARCH\n    with tracer.start_as_current_span('charge-card'):\n"
        "        pass\n=======\n    return None\n>>>>>>> REPLACE\n"
    )
    script = write_script(tmp_path / "s.toml", [drop])
    environment = {"setup": otel_setup(otel_index.url)}
    run_id = await submit(
        api, repo, script, "simplify", max_repair_rounds=0, environment=environment
    )
    run = await wait_for_end(api, run_id)
    gates = {g["name"]: g for g in run["result"]["gates"]}
    assert gates["tests"]["passed"], gates
    assert not gates["observability"]["passed"], gates
    assert "charge-card" in gates["observability"]["detail"]
    baseline = next(s for s in run["steps"] if s["name"] == "baseline")
    assert baseline["detail"].startswith("passed: 1 passed"), baseline


async def test_a_patch_that_makes_the_benchmark_slower_fails_the_performance_gate(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    files = dict(PY_REPO)
    files["ratchet.toml"] = "[performance]\ncommand = 'python bench.py'\nruns = 5\n"
    files["bench.py"] = (
        "import time\nfrom calc import add\nt = time.perf_counter()\n"
        "for i in range(20000):\n    add(i, i)\nprint(time.perf_counter() - t)\n"
    )
    repo = make_repo(tmp_path / "calc", files)
    slower = (
        "calc.py\n<<<<<<< SEARCH\n    return a + b\n=======\n"
        "    return sum(1 for _ in range(a % 7 + 20)) * 0 + a + b\n>>>>>>> REPLACE\n"
    )
    script = write_script(tmp_path / "s.toml", [slower])
    run_id = await submit(api, repo, script, "obfuscate add", max_repair_rounds=0)
    run = await wait_for_end(api, run_id, timeout_s=180)
    gates = {g["name"]: g for g in run["result"]["gates"]}
    assert gates["tests"]["passed"], gates
    assert not gates["performance"]["passed"], gates["performance"]
    assert "Mann-Whitney" in gates["performance"]["detail"]
    assert any(s["name"] == "performance" for s in run["steps"])


async def test_a_long_goal_travels_once_then_by_reference(
    api: httpx.AsyncClient, worker: Worker, client: Client, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    goal = "add mul to calc.py. " + " ".join(f"requirement-{i}" for i in range(400))
    run_id = await submit(api, repo, script, goal)
    run = await wait_for_end(api, run_id)
    assert run["status"] == "completed", run
    # In the run's input and in the prepare step's, which keeps it as an artifact; every other
    # step (plan, two rounds of agent turns, memory, delivery) reads it from there.
    history = await client.get_workflow_handle(run_id).fetch_history()
    copies = sum(
        payload.data.decode().count("requirement-399")
        for event in history.events
        for payload in payloads(event)
    )  # fmt: skip
    assert copies == 2, copies
    loop = await client.get_workflow_handle(f"{run_id}-patch-1-0").fetch_history()
    turns = [p for e in loop.events for p in payloads(e)]
    assert len(turns) > 3 and not any(b"requirement-399" in p.data for p in turns)
    # ...and the steps did get it: the delivery's commit message starts with the goal.
    message = git("log", "-1", "--format=%s", f"ratchet/{run_id}", cwd=repo)
    assert message.startswith("add mul to calc.py. requirement-0")
