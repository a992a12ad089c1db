"""Why a test suite could not run at all, told apart from tests that ran and failed."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from contracts.runs import SUITE_HOW_TO_FIX

if TYPE_CHECKING:
    from gym.runner import CommandResult

# pytest's exit statuses that mean no verdict on any test.
PYTEST_STATUS = {
    2: "the run was interrupted (collection errors)",
    3: "pytest hit an internal error",
    4: "pytest was called wrongly (usage error)",
    5: "no tests ran (none were collected)",
}
SHELL_STATUS = {126: "the command is not executable", 127: "the command was not found"}
_MISSING = re.compile(rb"(ModuleNotFoundError|ImportError): [^\n]{1,200}")
HOW_TO_FIX = SUITE_HOW_TO_FIX  # workflows quote it too: it lives in contracts


def suite_problem(command: str, result: CommandResult, outcomes: list[str]) -> str:
    """ "" when the suite ran (whatever its tests did), else why it could not."""
    return diagnose(command, result, outcomes)[0]


def diagnose(command: str, result: CommandResult, outcomes: list[str]) -> tuple[str, bool]:
    """Why the suite could not run ("" when it ran), and whether no change to the code can
    make it run: a missing module or command, a wrong invocation. (No tests collected or a
    collection error may be what the change is about.)"""
    if result.timed_out or result.killed_by:
        return "", False
    status = result.exit_code
    why = SHELL_STATUS.get(status, "")
    if not why and re.search(r"\bpytest\b", command):
        why = PYTEST_STATUS.get(status, "")
    ran = any(o in ("passed", "failed", "flaky") for o in outcomes)
    missing = _MISSING.search(result.output)
    if not why and status != 0 and not ran and missing:
        why = "a module the tests import is missing"
    if not why:
        return "", False
    detail = f": {missing.group(0).decode(errors='replace')}" if missing else ""
    fatal = bool(missing) or status in (4, *SHELL_STATUS)
    return f"`{command}` exited {status}: {why}{detail}", fatal
