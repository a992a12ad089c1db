"""The `ratchet` command's options: each subcommand, its help, and the function that runs it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from contracts.runs import POLICY_NAMES
from ratchet.cli import local, runs, start

if TYPE_CHECKING:  # argparse's subparsers action is generic in typeshed only
    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
Command: TypeAlias = Callable[[argparse.Namespace], int]
Parents: TypeAlias = list[argparse.ArgumentParser]
POLICIES = list(POLICY_NAMES)
SETUP_HELP = (
    "a command that builds the environment (repeatable; run in order, with network through the "
    "egress proxy; default: ratchet.toml's [environment], else detected)"
)


def _command(
    sub: Subcommands, name: str, fn: Command, helptext: str, parents: Parents
) -> argparse.ArgumentParser:
    c: argparse.ArgumentParser = sub.add_parser(name, help=helptext, parents=parents)
    c.set_defaults(fn=fn, parser=c)
    return c


def _on_a_run(
    sub: Subcommands, name: str, fn: Command, helptext: str, parents: Parents
) -> argparse.ArgumentParser:
    """A command on a run that exists: its first argument is the run id."""
    c = _command(sub, name, fn, helptext, parents)
    c.add_argument("run_id")
    return c


def _policy_options(c: argparse.ArgumentParser) -> None:
    c.add_argument("--policy", choices=POLICIES)
    c.add_argument("--script", help="policy script: the scripted policy, a test double")
    c.add_argument("--follow", action="store_true", help="follow the run to its end")
    _timeout_option(c)


def _timeout_option(c: argparse.ArgumentParser) -> None:
    c.add_argument("--timeout", type=float, metavar="S",
                   help="stop following after S seconds (exit 1; the run goes on)")  # fmt: skip


def _worker_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"not a number of workers from 1 to 64: {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ratchet", description="Verified coding-agent runs.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON")
    api = argparse.ArgumentParser(add_help=False, parents=[as_json])
    api.add_argument("--api", metavar="URL", help="API base URL (default: from the settings)")
    _local_commands(sub, [as_json])
    _task_command(sub, [api])
    _investigate_command(sub, [api])
    _run_commands(sub, [api])
    return p


def _local_commands(sub: Subcommands, parents: Parents) -> None:
    """Commands that need no API: the stack, the demo, traces, the gym."""
    _command(
        sub, "up", local.cmd_up, "run Temporal, the workers and the API until Ctrl-C", []
    ).add_argument(
        "--workers", type=_worker_count, metavar="N",
        help="worker processes, each with a home of its own (default: RATCHET_WORKERS, or 1)",
    )  # fmt: skip
    _command(sub, "demo", local.cmd_demo, "run a bundled example end to end", []).add_argument(
        "--example", default="median", help="examples/<name>: median (Python) or ts (TypeScript)"
    )
    _command(
        sub, "trace", local.cmd_trace, "print a run's trace id and span tree", parents
    ).add_argument("run_id")
    c = _command(
        sub, "exec", local.cmd_exec, "run a command in a sandboxed workspace of a repo", []
    )
    c.add_argument("--repo", required=True)
    c.add_argument("--ref", default="HEAD")
    c.add_argument("--timeout", type=float, help="wall-clock limit in seconds (exit 124)")
    c.add_argument("--setup", action="append", metavar="CMD", help=SETUP_HELP)
    c.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    c = _command(
        sub, "test", local.cmd_test, "run a repo's tests through the sandboxed runner", parents
    )
    c.add_argument("--repo", required=True)
    c.add_argument("--ref", default="HEAD")
    c.add_argument("--command", help="test command (detected when absent)")
    c.add_argument("--setup", action="append", metavar="CMD", help=SETUP_HELP)


def _task_command(sub: Subcommands, remote: Parents) -> None:
    c = _command(sub, "task", start.cmd_task, "start a forward-planning run", remote)
    c.add_argument("--repo", required=True, help="local path or git URL")
    c.add_argument("--goal", required=True)
    c.add_argument("--ref", default="HEAD")
    c.add_argument("--test-command")
    c.add_argument("--setup", action="append", metavar="CMD", help=SETUP_HELP)
    _policy_options(c)
    c.add_argument("--max-repair-rounds", type=int, metavar="N")
    c.add_argument("--budget-usd", type=float, metavar="USD")
    c.add_argument("--max-tokens", type=int, metavar="N")
    c.add_argument("--max-turns", type=int, metavar="N")
    c.add_argument("--max-wall-s", type=float, metavar="S")
    c.add_argument("--perspectives", type=int, metavar="N", help="planners with distinct lenses")
    c.add_argument("--adversarial", action="store_true", help="a red team attacks the patch")
    c.add_argument("--invariants", action="store_true", help="property-based invariants guard")
    c.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None)
    c.add_argument("--require-approval", action="store_true", help="approve before delivery")
    c.add_argument("--approve-plan", action="store_true", help="approve the plan before work")
    c.add_argument("--approval-timeout-s", type=float, metavar="S")


def _investigate_command(sub: Subcommands, remote: Parents) -> None:
    c = _command(sub, "investigate", start.cmd_investigate, "find and fix what broke", remote)
    c.add_argument("--repo", required=True, help="local path or git URL")
    c.add_argument("--bad", default="HEAD", help="a ref that shows the problem (default HEAD)")
    c.add_argument("--good", help="a ref without the problem (default: searched for)")
    how = c.add_mutually_exclusive_group()
    how.add_argument("--test-command", help="a command that fails where the problem is")
    c.add_argument("--suite", metavar="CMD", help="the whole test suite, for the fix's gates")
    c.add_argument("--setup", action="append", metavar="CMD", help=SETUP_HELP)
    how.add_argument("--test-id", help="a test that fails where the problem is")
    c.add_argument("--kind", choices=["regression", "performance", "invariants"],
                   default="regression")  # fmt: skip
    c.add_argument("--parallel-probes", type=int, metavar="N")
    c.add_argument("--traceback", metavar="FILE",
                   help="the error as a printed Python traceback ('-': stdin)")  # fmt: skip
    how.add_argument("--write-reproduction", action="store_true",
                     help="have the policy write a test that fails as the error did")  # fmt: skip
    _policy_options(c)


def _run_commands(sub: Subcommands, remote: Parents) -> None:
    """Commands on runs that exist: list, show, follow, steer, fork."""
    c = _command(sub, "runs", runs.cmd_runs, "list runs (newest first)", remote)
    c.add_argument("--query", help="a Temporal visibility query")
    c.add_argument("--kind")
    c.add_argument("--repo")
    c.add_argument("--status")
    c.add_argument("--limit", "--page-size", dest="page_size", type=int, metavar="N")
    c.add_argument("--page-token")
    c.add_argument("--all", action="store_true", help="follow next_page_token to the end")

    _on_a_run(sub, "show", runs.cmd_show, "a run's status, steps, gates and cost", remote)
    _on_a_run(sub, "transcript", runs.cmd_transcript, "the agent's turns and tool calls of a run",
              remote)  # fmt: skip
    c = _on_a_run(sub, "follow", runs.cmd_follow, "follow a run live (exit 0 if it completes)",
                  remote)  # fmt: skip
    _timeout_option(c)
    c = _on_a_run(sub, "approve", runs.cmd_approve, "approve a run waiting for approval", remote)
    c.add_argument("--comment")
    c.add_argument("--by", help="who approves (default: your user name)")
    c = _on_a_run(sub, "reject", runs.cmd_reject, "reject a run waiting for approval", remote)
    c.add_argument("--reason", required=True)
    c.add_argument("--by", help="who rejects (default: your user name)")
    c = _on_a_run(sub, "budget", runs.cmd_budget, "set new budget limits (a paused run resumes)",
                  remote)  # fmt: skip
    c.add_argument("--usd", type=float)
    c.add_argument("--tokens", type=int)
    c.add_argument("--turns", type=int)
    c.add_argument("--wall-s", type=float)
    c = _on_a_run(sub, "cancel", runs.cmd_cancel, "stop a run after its step; a draft is kept",
                  remote)  # fmt: skip
    c.add_argument("--reason", default="")
    c = _on_a_run(sub, "fork", start.cmd_fork, "start a new run from a snapshot of a run", remote)
    c.add_argument("--from-step", "--from", required=True, help='e.g. "base", "patch-1"')
    c.add_argument("--goal", help="a new goal (default: the run's)")
    c.add_argument("--max-repair-rounds", type=int, metavar="N")
    _policy_options(c)
