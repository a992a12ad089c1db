"""The gates: what "verified" means. Each gives passed/failed and a detail a person can act on."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    outcomes: dict[str, str] = field(default_factory=dict)
    """Per-test outcome by test id, when the runner could read them (JUnit XML)."""
    killed_by: tuple[str, ...] = ()


def _listed(ids: list[str], limit: int = 8) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def tests_gate(patched: TestOutcome, baseline: TestOutcome) -> GateResult:
    """The patch's tests pass and no test that passed at baseline fails, vanishes or turns flaky."""
    if patched.timed_out or patched.killed_by:
        why = ", ".join(patched.killed_by) or "timeout"
        return GateResult("tests", False, f"the test run was killed ({why}). {patched.summary}")
    if not patched.outcomes or not baseline.outcomes:
        return _exit_code_gate(patched, baseline)
    failing = ("failed", "error")
    broken = [
        t
        for t, o in patched.outcomes.items()
        if o in failing and baseline.outcomes.get(t) not in failing
    ]
    still = [
        t
        for t, o in patched.outcomes.items()
        if o in failing and baseline.outcomes.get(t) in failing
    ]
    vanished = [
        t for t, o in baseline.outcomes.items()
        if o == "passed" and patched.outcomes.get(t, "missing") in ("skipped", "missing")
    ]  # fmt: skip
    flaky = [t for t, o in patched.outcomes.items() if o == "flaky"]
    new_flaky = [t for t in flaky if t not in baseline.outcomes]
    problems = []
    if broken:
        problems.append(f"failing: {_listed(broken)}")
    if vanished:
        problems.append(f"passed at baseline but no longer run: {_listed(vanished)}")
    if new_flaky:
        problems.append(f"new tests are flaky: {_listed(new_flaky)}")
    notes = []
    if still:
        notes.append(f"already failing at baseline: {_listed(still)}")
    if flaky and not new_flaky:
        notes.append(f"flaky (failed, then passed on a re-run): {_listed(flaky)}")
    passed = sum(1 for o in patched.outcomes.values() if o == "passed")
    if not patched.passed and not broken and not still and baseline.passed:
        problems.append(f"the test command exited with {patched.exit_code} though no test failed")
    if problems:
        return GateResult("tests", False, "; ".join(problems + notes))
    detail = f"{passed} tests passed, none newly failing"
    return GateResult("tests", True, "; ".join([detail, *notes]))


def _exit_code_gate(patched: TestOutcome, baseline: TestOutcome) -> GateResult:
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


def observability_gate(required: tuple[str, ...], emitted: list[str] | None) -> GateResult:
    if not required:
        return GateResult("observability", True, "no required spans declared")
    if emitted is None:
        return GateResult("observability", False, "no spans were collected from the test run")
    missing = [name for name in required if name not in set(emitted)]
    if missing:
        return GateResult(
            "observability",
            False,
            f"required spans not emitted by the tests: {', '.join(missing)} "
            f"({len(emitted)} spans seen)",
        )
    return GateResult(
        "observability", True, f"all {len(required)} required spans emitted ({len(emitted)} seen)"
    )


def evaluate(
    *, changed: list[ChangedFile], config: RepoConfig, patched: TestOutcome, baseline: TestOutcome
) -> list[GateResult]:
    results = [
        tests_gate(patched, baseline),
        tamper_gate(changed, config),
        diff_budget_gate(changed, config),
        protected_paths_gate(changed, config),
    ]
    if not changed:
        # A submit with no change delivers nothing: it is sent back, never "verified".
        results.insert(0, GateResult("change", False, "the candidate changes nothing"))
    return results
