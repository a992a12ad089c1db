"""The `ratchet` command: run the stack, start and steer runs through the API, read traces.

Every API subcommand takes --api and --json; an error is one line on stderr and exit code 1,
a usage error exit code 2 (argparse's), and `follow` exits 0 only when the run completed.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from contracts.runs import POLICY_NAMES
from ratchet import cliview
from ratchet.apiclient import OPEN, ApiError, RatchetApi, follow
from ratchet.settings import load_settings

POLICIES = list(POLICY_NAMES)
Commands = Any  # argparse's subparsers action (private in typeshed)
Parents = list[argparse.ArgumentParser]


def _cmd_up(args: argparse.Namespace) -> int:
    from ratchet.stack import up

    return up(load_settings())


def _cmd_demo(args: argparse.Namespace) -> int:
    from ratchet.demo import demo

    return demo(load_settings())


def _cmd_trace(args: argparse.Namespace) -> int:
    from ratchet.traces import load_spans, render_tree, span_tree, trace_id_for_run

    settings = load_settings()
    spans = load_spans(settings.traces_file)
    trace_id = trace_id_for_run(spans, args.run_id)
    if trace_id is None:
        where = settings.otlp_endpoint or settings.traces_file
        print(f"ratchet: trace: no spans for run {args.run_id} in {where}", file=sys.stderr)
        return 1
    tree = span_tree(spans, trace_id)
    if args.json:
        cliview.emit(True, {"trace_id": trace_id, "spans": [s for _, s in tree]})
    else:
        print(f"trace_id: {trace_id}\n{render_tree(tree)}")
    return 0


SETUP_HELP = (
    "a command that builds the environment (repeatable; run in order, with network through the "
    "egress proxy; default: ratchet.toml's [environment], else detected)"
)


def _cmd_exec(args: argparse.Namespace) -> int:
    from ratchet.gymcli import exec_command

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    return exec_command(load_settings(), args.repo, args.ref, args.timeout, argv, args.setup)


def _cmd_test(args: argparse.Namespace) -> int:
    from ratchet.gymcli import test_command

    return test_command(load_settings(), args.repo, args.ref, args.command, args.json, args.setup)


def _api(args: argparse.Namespace) -> RatchetApi:
    return RatchetApi(load_settings(), args.api)


def _given(**values: Any) -> dict[str, Any]:
    """The options given: left-off options and flags are not sent, so the API's defaults hold
    (and an older API does not refuse fields it does not know)."""
    return {k: v for k, v in values.items() if v is not None and v is not False}


def _abs_or_url(repo: str) -> str:
    from gym.workspace import is_remote

    return repo if is_remote(repo) else str(Path(repo).resolve())


def _policy(args: argparse.Namespace) -> dict[str, Any]:
    """A script implies the scripted policy (a test double that replays it)."""
    if not args.script:
        return _given(policy=args.policy)
    return {"policy": args.policy or "scripted", "policy_script": str(Path(args.script).resolve())}


def _started(args: argparse.Namespace, api: RatchetApi, accepted: dict[str, Any]) -> int:
    """After a 202: print the run id (or the JSON), or follow the run to its end."""
    run_id = accepted["run_id"]
    if not args.follow:
        cliview.emit(args.json, accepted, run_id)  # just the id: RUN=$(ratchet task ...)
        return 0
    if not args.json:
        print(f"{run_id} started ({accepted.get('policy') or 'no'} policy)", flush=True)
    return _follow(args, api, run_id)


def _follow(args: argparse.Namespace, api: RatchetApi, run_id: str) -> int:
    try:
        # With --json, stdout carries only the final JSON: the progress goes to stderr.
        out = sys.stderr if args.json else sys.stdout
        run = follow(api, run_id, timeout_s=args.timeout or float("inf"), out=out)
    except KeyboardInterrupt:
        print(f"\nratchet: stopped following; the run goes on (ratchet follow {run_id})",
              file=sys.stderr)  # fmt: skip
        return 130
    cliview.emit(args.json, run, f"{cliview.run_summary(run, steps=False)}\nrun_id: {run_id}")
    if run["status"] in OPEN:
        print(f"ratchet: stopped following {run_id}: it is still {run['status']}",
              file=sys.stderr)  # fmt: skip
    return 0 if run["status"] == "completed" else 1


def _cmd_task(args: argparse.Namespace) -> int:
    budget = _given(max_cost_usd=args.budget_usd, max_tokens=args.max_tokens,
                    max_turns=args.max_turns, max_wall_s=args.max_wall_s)  # fmt: skip
    body = {
        "repo": _abs_or_url(args.repo), "goal": args.goal, "base_ref": args.ref,
        **_policy(args),
        **_given(test_command=args.test_command, max_repair_rounds=args.max_repair_rounds,
                 perspectives=args.perspectives, adversarial=args.adversarial,
                 invariants=args.invariants, require_approval=args.require_approval,
                 approve_plan=args.approve_plan, approval_timeout_s=args.approval_timeout_s,
                 budget=budget or None, environment=_environment(args)),
    }  # fmt: skip
    if args.memory is not None:  # --no-memory is a False that must be sent
        body["memory"] = args.memory
    api = _api(args)
    return _started(args, api, api.submit(body))


def _environment(args: argparse.Namespace) -> dict[str, list[str]] | None:
    return {"setup": args.setup} if args.setup else None


def _cmd_investigate(args: argparse.Namespace) -> int:
    reproduce = _given(test_command=args.test_command, test_id=args.test_id,
                       write=True if args.write_reproduction else None)  # fmt: skip
    traceback = None
    if args.traceback == "-":  # paste the error as printed
        traceback = sys.stdin.read()
    elif args.traceback:
        try:
            traceback = Path(args.traceback).read_text(errors="replace")
        except OSError as err:
            raise SystemExit(f"cannot read --traceback {args.traceback}: {err.strerror}") from None
    body = {
        "repo": _abs_or_url(args.repo), "bad_ref": args.bad, "kind": args.kind, **_policy(args),
        **_given(good_ref=args.good, reproduce=reproduce or None,
                 parallel_probes=args.parallel_probes, test_command=args.suite,
                 environment=_environment(args), traceback=traceback),
    }  # fmt: skip
    api = _api(args)
    return _started(args, api, api.investigate(body))


def _cmd_fork(args: argparse.Namespace) -> int:
    body = {"from_step": args.from_step, **_policy(args),
            **_given(goal=args.goal, max_repair_rounds=args.max_repair_rounds)}  # fmt: skip
    api = _api(args)
    return _started(args, api, api.fork(args.run_id, body))


def _cmd_runs(args: argparse.Namespace) -> int:
    api = _api(args)
    params: dict[str, str | int] = _given(
        query=args.query, kind=args.kind, status=args.status, page_size=args.page_size,
        page_token=args.page_token, repo=_abs_or_url(args.repo) if args.repo else None,
    )  # fmt: skip
    page = api.runs(params)
    runs, seen = list(page.get("runs", [])), set()
    while args.all and page.get("next_page_token") and page["next_page_token"] not in seen:
        seen.add(page["next_page_token"])
        page = api.runs(params | {"page_token": page["next_page_token"]})
        runs += page.get("runs", [])
    more = page.get("next_page_token") if not args.all else None
    table = cliview.runs_table(runs) + (f"\nmore: --page-token {more} (or --all)" if more else "")
    cliview.emit(args.json, page | {"runs": runs} if args.all else page, table)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    run = _api(args).run(args.run_id)
    cliview.emit(args.json, run, cliview.run_summary(run))
    return 0


def _cmd_transcript(args: argparse.Namespace) -> int:
    transcript = _api(args).transcript(args.run_id)
    cliview.emit(args.json, transcript, cliview.transcript_text(transcript))
    return 0


def _cmd_follow(args: argparse.Namespace) -> int:
    return _follow(args, _api(args), args.run_id)


def _control(args: argparse.Namespace, answer: dict[str, Any]) -> int:
    cliview.emit(args.json, answer, cliview.control_text(answer))
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password database
        return "unknown"


def _cmd_approve(args: argparse.Namespace) -> int:
    body = {"by": args.by or _user(), **_given(comment=args.comment)}
    return _control(args, _api(args).approve(args.run_id, body))


def _cmd_reject(args: argparse.Namespace) -> int:
    body = {"by": args.by or _user(), "reason": args.reason}
    return _control(args, _api(args).reject(args.run_id, body))


def _cmd_budget(args: argparse.Namespace) -> int:
    body = _given(max_cost_usd=args.usd, max_tokens=args.tokens, max_turns=args.turns,
                  max_wall_s=args.wall_s)  # fmt: skip
    if not body:
        args.parser.error("give at least one of --usd, --tokens, --turns, --wall-s")
    return _control(args, _api(args).budget(args.run_id, body))


def _cmd_cancel(args: argparse.Namespace) -> int:
    return _control(args, _api(args).cancel(args.run_id, args.reason))


def _command(
    sub: Any, name: str, fn: Any, helptext: str, parents: list[argparse.ArgumentParser]
) -> argparse.ArgumentParser:
    c: argparse.ArgumentParser = sub.add_parser(name, help=helptext, parents=parents)
    c.set_defaults(fn=fn, parser=c)
    return c


def _policy_options(c: argparse.ArgumentParser) -> None:
    c.add_argument("--policy", choices=POLICIES)
    c.add_argument("--script", help="policy script: the scripted policy, a test double")
    c.add_argument("--follow", action="store_true", help="follow the run to its end")
    _timeout_option(c)


def _timeout_option(c: argparse.ArgumentParser) -> None:
    c.add_argument("--timeout", type=float, metavar="S",
                   help="stop following after S seconds (exit 1; the run goes on)")  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ratchet", description="Verified coding-agent runs.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON")
    api = argparse.ArgumentParser(add_help=False, parents=[as_json])
    api.add_argument("--api", metavar="URL", help="API base URL (default: from the settings)")
    local, remote = [as_json], [api]
    _local_commands(sub, local)
    _task_command(sub, remote)
    _investigate_command(sub, remote)
    _run_commands(sub, remote)
    return p


def _local_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], local: list[argparse.ArgumentParser]
) -> None:
    """Commands that need no API: the stack, the demo, traces, the gym."""
    _command(sub, "up", _cmd_up, "run Temporal, a worker and the API until Ctrl-C", [])
    _command(sub, "demo", _cmd_demo, "run the bundled example end to end", [])
    _command(sub, "trace", _cmd_trace, "print a run's trace id and span tree", local).add_argument(
        "run_id"
    )
    c = _command(sub, "exec", _cmd_exec, "run a command in a sandboxed workspace of a repo", [])
    c.add_argument("--repo", required=True)
    c.add_argument("--ref", default="HEAD")
    c.add_argument("--timeout", type=float, help="wall-clock limit in seconds (exit 124)")
    c.add_argument("--setup", action="append", metavar="CMD", help=SETUP_HELP)
    c.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    c = _command(sub, "test", _cmd_test, "run a repo's tests through the sandboxed runner", local)
    c.add_argument("--repo", required=True)
    c.add_argument("--ref", default="HEAD")
    c.add_argument("--command", help="test command (detected when absent)")
    c.add_argument("--setup", action="append", metavar="CMD", help=SETUP_HELP)


def _task_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], remote: list[argparse.ArgumentParser]
) -> None:
    c = _command(sub, "task", _cmd_task, "start a forward-planning run", remote)
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


def _investigate_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], remote: list[argparse.ArgumentParser]
) -> None:
    c = _command(sub, "investigate", _cmd_investigate, "find and fix what broke", remote)
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


def _run_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], remote: list[argparse.ArgumentParser]
) -> None:
    """Commands on runs that exist: list, show, follow, steer, fork."""
    c = _command(sub, "runs", _cmd_runs, "list runs (newest first)", remote)
    c.add_argument("--query", help="a Temporal visibility query")
    c.add_argument("--kind")
    c.add_argument("--repo")
    c.add_argument("--status")
    c.add_argument("--limit", "--page-size", dest="page_size", type=int, metavar="N")
    c.add_argument("--page-token")
    c.add_argument("--all", action="store_true", help="follow next_page_token to the end")

    _command(sub, "show", _cmd_show, "a run's status, steps, gates and cost", remote).add_argument(
        "run_id"
    )
    _command(sub, "transcript", _cmd_transcript, "the agent's turns and tool calls of a run",
             remote).add_argument("run_id")  # fmt: skip
    c = _command(sub, "follow", _cmd_follow, "follow a run live (exit 0 if it completes)", remote)
    c.add_argument("run_id")
    _timeout_option(c)
    c = _command(sub, "approve", _cmd_approve, "approve a run waiting for approval", remote)
    c.add_argument("run_id")
    c.add_argument("--comment")
    c.add_argument("--by", help="who approves (default: your user name)")
    c = _command(sub, "reject", _cmd_reject, "reject a run waiting for approval", remote)
    c.add_argument("run_id")
    c.add_argument("--reason", required=True)
    c.add_argument("--by", help="who rejects (default: your user name)")
    c = _command(sub, "budget", _cmd_budget, "set new budget limits (a paused run resumes)", remote)
    c.add_argument("run_id")
    c.add_argument("--usd", type=float)
    c.add_argument("--tokens", type=int)
    c.add_argument("--turns", type=int)
    c.add_argument("--wall-s", type=float)
    c = _command(sub, "cancel", _cmd_cancel, "stop a run after its step; a draft is kept", remote)
    c.add_argument("run_id")
    c.add_argument("--reason", default="")
    c = _command(sub, "fork", _cmd_fork, "start a new run from a snapshot of a run", remote)
    c.add_argument("run_id")
    c.add_argument("--from-step", "--from", required=True, help='e.g. "base", "patch-1"')
    c.add_argument("--goal", help="a new goal (default: the run's)")
    c.add_argument("--max-repair-rounds", type=int, metavar="N")
    _policy_options(c)


def run(argv: list[str] | None = None) -> int:
    """The command, as an exit code: tests call this; `main` adds the hard process exit."""
    p = parser()
    try:
        args = p.parse_args(argv)
        code: int = args.fn(args)
        return code
    except SystemExit as stop:  # argparse: 2 for a usage error, 0 for --help
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(f"ratchet: {stop.code}", file=sys.stderr)
        return 1
    except ApiError as err:
        print(f"ratchet: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a person gets one line, never a traceback
        print(f"ratchet: {type(err).__name__}: {' '.join(str(err).split())}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> None:
    code = run(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: the Temporal client can abort at exit (sdk-python#300).
    os._exit(code)


if __name__ == "__main__":
    main()
