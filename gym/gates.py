"""The gates: what "verified" means. Each gives passed/failed and a detail a person can act on."""

from __future__ import annotations

from dataclasses import dataclass

from gym.config import RepoConfig
from gym.paths import matches_any
from gym.workspace import ChangedFile


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class TestOutcome:
    __test__ = False  # not a pytest class

    passed: bool
    exit_code: int
    timed_out: bool
    summary: str


def tests_gate(patched: TestOutcome, baseline: TestOutcome) -> GateResult:
    if patched.passed:
        detail = "the test command passed"
        if not baseline.passed:
            detail += " (it failed at baseline: the patch fixed it)"
        return GateResult("tests", True, detail)
    why = "timed out" if patched.timed_out else f"exited with {patched.exit_code}"
    detail = f"the test command {why}"
    if baseline.passed:
        detail += "; it passed at baseline, so the patch broke something"
    return GateResult("tests", False, f"{detail}. {patched.summary}".strip())


def tamper_gate(changed: list[ChangedFile], config: RepoConfig) -> GateResult:
    touched = [
        f"{f.path} ({'deleted' if f.status == 'D' else 'modified'})"
        for f in changed
        if f.status != "A" and matches_any(f.path, config.test_globs)
    ]
    if not touched:
        return GateResult("tamper", True, "no existing test was modified or deleted")
    if config.allow_test_changes:
        return GateResult("tamper", True, "existing tests changed (allowed): " + ", ".join(touched))
    return GateResult(
        "tamper",
        False,
        "existing tests were changed, which could weaken them: "
        + ", ".join(touched)
        + ". Add new test files instead, or set allow_test_changes in ratchet.toml.",
    )


def diff_budget_gate(changed: list[ChangedFile], config: RepoConfig) -> GateResult:
    lines = sum(f.added + f.deleted for f in changed)
    files = len(changed)
    detail = f"{files} files, {lines} lines changed (budget {config.max_changed_files} files, "
    detail += f"{config.max_changed_lines} lines)"
    if not changed:
        return GateResult("diff_budget", False, "the patch changes nothing")
    ok = lines <= config.max_changed_lines and files <= config.max_changed_files
    return GateResult("diff_budget", ok, detail)


def protected_paths_gate(changed: list[ChangedFile], config: RepoConfig) -> GateResult:
    hits = [f"{f.path} ({p})" for f in changed if (p := matches_any(f.path, config.protected))]
    if hits:
        return GateResult("protected_paths", False, "protected paths changed: " + ", ".join(hits))
    return GateResult("protected_paths", True, "no protected path changed")


def evaluate(
    *, changed: list[ChangedFile], config: RepoConfig, patched: TestOutcome, baseline: TestOutcome
) -> list[GateResult]:
    return [
        tests_gate(patched, baseline),
        tamper_gate(changed, config),
        diff_budget_gate(changed, config),
        protected_paths_gate(changed, config),
    ]
