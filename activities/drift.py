"""Spec drift: gather the specification, check each claim by a test or an inspection."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from temporalio import activity

from activities.common import tag_span
from activities.envs import sandbox_for
from activities.errors import permanent_errors
from activities.runner import RunnerConfig
from agents.context import tracked_files
from contracts.drift import (
    CHECK_CLAIMS,
    DRIFT_PREPARE,
    CheckInput,
    CheckOutput,
    DriftPrepared,
    DriftPrepareInput,
)
from contracts.runs import RunRef
from gym import specs
from gym.config import load_config
from gym.errors import PatchRefused
from gym.paths import write_safely
from gym.report import quote, table
from gym.sandbox import Sandbox
from gym.snapshots import Snapshots
from gym.test_files import Convention, convention_for
from gym.testing import run_tests
from ratchet.artifacts import ArtifactStore


class DriftActivities:
    def __init__(self, *, home: Path, store: ArtifactStore, runner: RunnerConfig) -> None:
        self.home, self.store, self.runner = home, store, runner
        self.snapshots = Snapshots(home, store)
        self.mirrors = self.snapshots.mirrors

    @activity.defn(name=DRIFT_PREPARE)
    @permanent_errors
    async def prepare(self, arg: DriftPrepareInput) -> DriftPrepared:
        tag_span(arg.run_id)
        mirror, sha = await asyncio.to_thread(self.mirrors.sync, arg.repo, arg.ref)
        run = RunRef(arg.run_id, arg.repo, str(mirror), sha, arg.when, arg.environment)
        ws = await asyncio.to_thread(self.snapshots.materialize, run, sha, "base")
        config = load_config(ws)
        text = specs.spec_text(ws, tracked_files(ws), config.spec_globs, config.spec_docstrings)
        return DriftPrepared(run, self.store.put_text(text), len(text), activity.info().attempt)

    @activity.defn(name=CHECK_CLAIMS)
    @permanent_errors
    async def check(self, arg: CheckInput) -> CheckOutput:
        tag_span(arg.run.run_id)
        claims = json.loads(self.store.get_text(arg.claims_ref))["claims"]
        ws = await asyncio.to_thread(self.snapshots.materialize, arg.run, arg.run.base_sha, "drift")
        sandbox = await sandbox_for(self.snapshots, self.runner, arg.run, ws)
        findings, drift_tests, reproductions = [], {}, []
        tests_are = convention_for(ws, load_config(ws))
        for claim in claims:
            check = claim["check"]
            if check["kind"] == "inspection" and check.get("path") and check.get("pattern"):
                holds, evidence = specs.inspect(ws, check["path"], check["pattern"],
                                                check.get("expect", "present"))  # fmt: skip
            elif check["kind"] == "test" and check.get("content"):
                named = str(check.get("path") or "")
                # Where the policy put it, if the runner runs a test there; else the form's path.
                path = (
                    named
                    if tests_are.allows("claim", named)
                    else tests_are.path("claim", claim["id"])
                )
                command = tests_are.command(path, check["content"])
                holds, evidence = await self._test(
                    ws, path, command, check["content"], arg.timeout_s, sandbox
                )
                if not holds:
                    drift_tests[path] = check["content"]
                    reproductions.append(command)
            else:
                findings.append({**claim, "verdict": "unchecked", "evidence": "no usable check"})
                continue
            findings.append(
                {**claim, "verdict": "holds" if holds else "drift", "evidence": evidence}
            )
        counts = {
            v: sum(1 for f in findings if f["verdict"] == v)
            for v in ("holds", "drift", "unchecked")
        }
        # The failing claim tests, run the way each was checked: an investigation's reproduction.
        reproduce = _together(tests_are, sorted(drift_tests)) or " && ".join(reproductions)
        return CheckOutput(
            report_ref=self.store.put_text(render(arg.run, findings)),
            findings_ref=self.store.put_text(json.dumps(findings)),
            holds=counts["holds"], drift=counts["drift"], unchecked=counts["unchecked"],
            drift_tests=drift_tests, attempt=activity.info().attempt,
            reproduce=reproduce,
        )  # fmt: skip

    async def _test(
        self, ws: Path, path: str, command: str, content: str, timeout_s: float, sandbox: Sandbox
    ) -> tuple[bool, str]:
        try:
            write_safely(ws, path, content)
        except PatchRefused as err:
            return False, str(err)
        run = await run_tests(
            command, ws,
            limits=replace(self.runner.limits, timeout_s=timeout_s), sandbox=sandbox,
            reruns=1, tick=activity.heartbeat,
        )  # fmt: skip
        tail = run.result.output[-600:].decode(errors="replace").strip()
        return run.passed, f"{path}: {'passed' if run.passed else 'failed'}\n{tail}"

    def all(self) -> list[Callable[..., Any]]:
        return [self.prepare, self.check]


def _together(tests_are: Convention, paths: list[str]) -> str:
    """One command running every failing claim test, where the runner takes several files."""
    if not paths or tests_are.runner in ("go", "cargo"):
        return ""
    first = tests_are.command(paths[0], "")
    return " ".join([first, *(shlex.quote(p) for p in paths[1:])])


def render(run: RunRef, findings: list[dict[str, Any]]) -> str:
    lines = [
        f"# Spec drift report: {run.run_id}",
        "",
        f"Repository {run.repo} at `{run.base_sha}`.",
        "",
    ]
    rows = [[f["id"], f["verdict"], f["source"], re.sub(r"\s+", " ", f["text"])] for f in findings]
    lines += [table(["claim", "verdict", "where it lives", "claim text"], rows), ""]
    for f in findings:
        if f["verdict"] != "holds":
            lines += [f"## {f['id']}: {f['verdict']}", "", quote(f["evidence"], 2000), ""]
    return "\n".join(lines)
