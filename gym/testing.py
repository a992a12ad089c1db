"""Run a repository's tests: per-test outcomes from JUnit XML; re-runs tell flaky from failing."""

from __future__ import annotations

import shlex
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gym import collector, outcomes
from gym.junit import TestCase
from gym.process import Tick
from gym.rerun import Rerun, plan_rerun
from gym.runner import CommandResult, Forks, Limits, run_command
from gym.runners import IN_OUTPUT, collect, detect_runner, prepare, rerun_failing
from gym.sandbox import NoSandbox, Sandbox
from gym.spans import forward_spans
from ratchet.jsonl import read_jsonl
from ratchet.telemetry import current_trace_id

FAILING = ("failed", "error")
RESULT_FILES = ("junit.xml", "vitest.xml", "bun.xml", "node.jsonl", "jest.json")
STREAM = "output.stream"
STREAM_CAP = 256 * 1024 * 1024
"""Go's and libtest's events are read from the whole output, kept here up to this size (the
output a step keeps is shorter)."""
# pytest reads extra options from the environment, whatever wraps it (make, tox, a script).
PYTEST_OPTIONS = "--junitxml={results}/junit.xml -o junit_family=xunit1 -p no:cacheprovider"


@dataclass(frozen=True)
class TestRun:
    __test__ = False  # not a pytest class

    result: CommandResult
    tests: list[TestCase] = field(default_factory=list)
    reruns: int = 0
    spans: list[dict[str, Any]] | None = None
    """Spans the tests exported to the run's collector; None when none was run."""
    runner: str | None = None
    """The runner whose report gave the per-test outcomes (gym/runners.py)."""

    @property
    def flaky(self) -> list[str]:
        return [t.id for t in self.tests if t.outcome == "flaky"]

    def count(self, outcome: str) -> int:
        return sum(1 for t in self.tests if t.outcome == outcome)

    @property
    def passed(self) -> bool:
        """No real failure: per test when outcomes are known, else by the exit code."""
        if self.result.timed_out or self.result.killed_by:
            return False
        if self.tests:
            return not any(t.outcome in FAILING for t in self.tests) and (
                self.result.exit_code == 0 or bool(self.flaky)
            )
        return self.result.exit_code == 0

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.count("passed"),
            "failed": self.count("failed"),
            "errors": self.count("error"),
            "skipped": self.count("skipped"),
            "flaky": self.flaky,
            "tests": [
                {"id": t.id, "outcome": t.outcome, "duration_s": t.duration_s} for t in self.tests
            ],
            "runner": self.runner,
            "isolation": self.result.isolation,
            "exit_code": self.result.exit_code,
            "timed_out": self.result.timed_out,
            "killed_by": self.result.killed_by,
            "duration_s": self.result.duration_s,
        }


# Runs the collector next to the tests, in the sandbox's own network namespace, and points the
# test process's OpenTelemetry SDK at it.
# The collector (stdlib only) runs on the interpreter behind Ratchet's venv, whatever the repository
# uses; if it cannot start, the tests still run, only without a collector.
_WITH_COLLECTOR = """\
%(python)s "$RATCHET_RESULTS/collector.py" "$RATCHET_RESULTS/collector.port" \\
  "$RATCHET_RESULTS/spans.jsonl" & ratchet_collector=$!
i=0
while [ ! -s "$RATCHET_RESULTS/collector.port" ] && [ $i -lt 200 ] && \\
  kill -0 $ratchet_collector 2>/dev/null; do
  sleep 0.05; i=$((i+1))
done
export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(cat "$RATCHET_RESULTS/collector.port")"
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_TRACES_EXPORTER=otlp
( %(command)s ); ratchet_status=$?
kill $ratchet_collector 2>/dev/null
exit $ratchet_status
"""


def with_collector(command: str, python: str) -> str:
    return _WITH_COLLECTOR % {"python": shlex.quote(python), "command": command}


def rerun_command(command: str, failing: list[str], workspace: Path | None = None) -> str:
    """Re-run only the failing tests when the command is a plain pytest call (its paths swapped
    for their node ids, gym.rerun), else all of it."""
    return plan_rerun(command, failing, workspace).command


async def run_tests(
    command: str,
    workspace: Path,
    *,
    limits: Limits | None = None,
    sandbox: Sandbox | None = None,
    reruns: int = 1,
    tick: Tick | None = None,
    on_output: Callable[[bytes], None] | None = None,
    extra_env: dict[str, str] | None = None,
    collect_spans: bool = False,
    runner: str | None = None,
    forks: Forks | None = None,
) -> TestRun:
    """Run the suite's `command`; per-test outcomes come from its runner's own report (`runner`
    when given, else detected from the command: gym/runners.py); `forks` may run a plain
    `python -m pytest` in a warm interpreter (gym/forkserver.py)."""
    runner = runner or detect_runner(command, workspace)
    results = Path(tempfile.mkdtemp(prefix="ratchet-results-"))
    try:
        env = {
            "PYTEST_ADDOPTS": PYTEST_OPTIONS,
            "RATCHET_RESULTS": "{results}",
            **(extra_env or {}),
        }
        if collect_spans:
            shutil.copy(Path(collector.__file__), results / "collector.py")

        async def once(cmd: str) -> tuple[CommandResult, list[TestCase]]:
            for name in RESULT_FILES:
                (results / name).unlink(missing_ok=True)
            ready = prepare(cmd, runner, results)
            # Only Go's and libtest's events are read from the output: only they keep all of it.
            with _Stream(results / STREAM if runner in IN_OUTPUT else None, on_output) as stream:
                result = await run_command(
                    with_collector(ready.command, (sandbox or NoSandbox()).tool_python())
                    if collect_spans else ready.command, workspace, limits=limits,
                    sandbox=sandbox, env={**env, **ready.env}, results=results, tick=tick,
                    on_output=stream.write, forks=None if collect_spans else forks,
                )  # fmt: skip
            output = (results / STREAM).read_bytes() if runner in IN_OUTPUT else b""
            tests = collect(results, output, runner, workspace)
            if runner == "go":  # the log as go test prints it (its events are read above)
                result = replace(result, output=outcomes.go_text(result.output))
            return result, tests

        result, tests = await once(command)
        spans = read_jsonl(results / "spans.jsonl") if collect_spans else None
        if spans:
            forward_spans(spans, current_trace_id())
        run = TestRun(result, tests, spans=spans, runner=runner)
        return await _with_reruns(run, once, command, workspace, reruns)
    finally:
        shutil.rmtree(results, ignore_errors=True)


# One run of a command in the suite's results directory: its result and per-test outcomes.
_RunOnce = Callable[[str], Awaitable[tuple[CommandResult, list[TestCase]]]]


async def _with_reruns(
    run: TestRun, once: _RunOnce, command: str, workspace: Path, reruns: int
) -> TestRun:
    """`run` with the failing tests that pass when re-run (up to `reruns` times) as flaky."""
    for attempt in range(1, reruns + 1):
        failing = [t.id for t in run.tests if t.outcome in FAILING]
        if not failing or run.result.timed_out or run.result.killed_by:
            break
        recovered = await _recovered(once, command, failing, workspace, run.runner)
        run = replace(
            run,
            tests=[
                replace(t, outcome="flaky") if t.outcome in FAILING and t.id in recovered else t
                for t in run.tests
            ],
            reruns=attempt,
        )
    return run


async def _recovered(
    once: _RunOnce, command: str, failing: list[str], workspace: Path, runner: str | None
) -> set[str]:
    """The failing tests that pass when re-run (only them, when the command allows it)."""
    narrowed = rerun_failing(command, runner, failing) if runner != "pytest" else None
    plan = Rerun(narrowed) if narrowed else plan_rerun(command, failing, workspace)
    rerun, again = await once(plan.command)
    if plan.node_ids and not again and not (rerun.timed_out or rerun.killed_by):
        # pytest ran none of the node ids (one it did not accept stops them all): re-run
        # the whole command instead.
        plan = Rerun(command)
        _, again = await once(command)
    # Only a test that failed and then passed is flaky: one that passed stays passed.
    return plan.recovered(failing, again, workspace)


class _Stream:
    """Every chunk of a run's output, to a file (up to STREAM_CAP; none without a path) and to
    `also`."""

    def __init__(self, path: Path | None, also: Callable[[bytes], None] | None) -> None:
        self._file = path.open("wb") if path is not None else None
        self._also, self._left = also, STREAM_CAP

    def write(self, chunk: bytes) -> None:
        if self._file is not None and self._left > 0:
            self._file.write(chunk[: self._left])
            self._left -= len(chunk)
        if self._also is not None:
            self._also(chunk)

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *_: object) -> None:
        if self._file is not None:
            self._file.close()
