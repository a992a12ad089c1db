"""The `ratchet` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ratchet.settings import load_settings


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
        print(f"ratchet trace: no spans for run {args.run_id} in {where}", file=sys.stderr)
        return 1
    tree = span_tree(spans, trace_id)
    if args.json:
        print(json.dumps({"trace_id": trace_id, "spans": [s for _, s in tree]}, indent=2))
    else:
        print(f"trace_id: {trace_id}")
        print(render_tree(tree))
    return 0


def _cmd_exec(args: argparse.Namespace) -> int:
    from ratchet.gymcli import exec_command

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    return exec_command(load_settings(), args.repo, args.ref, args.timeout, argv)


def _cmd_test(args: argparse.Namespace) -> int:
    from ratchet.gymcli import test_command

    return test_command(load_settings(), args.repo, args.ref, args.command, args.json)


def _cmd_task(args: argparse.Namespace) -> int:
    from ratchet.apiclient import RatchetApi, follow

    api = RatchetApi(load_settings(), args.api)
    body: dict[str, object] = {
        "repo": _abs_or_url(args.repo),
        "goal": args.goal,
        "base_ref": args.ref,
    }
    if args.test_command:
        body["test_command"] = args.test_command
    if args.policy:
        body["policy"] = args.policy
    if args.script:
        body["policy_script"] = str(Path(args.script).resolve())
    accepted = api.submit(body)
    if not args.follow:
        print(json.dumps(accepted, indent=2) if args.json else accepted["run_id"])
        return 0
    run = follow(api, accepted["run_id"])
    print(json.dumps(run, indent=2) if args.json else f"{run['status']}\nrun_id: {run['run_id']}")
    return 0 if run["status"] == "completed" else 1


def _cmd_show(args: argparse.Namespace) -> int:
    from ratchet.apiclient import RatchetApi

    run = RatchetApi(load_settings(), args.api).run(args.run_id)
    print(json.dumps(run, indent=2))
    return 0


def _cmd_follow(args: argparse.Namespace) -> int:
    from ratchet.apiclient import RatchetApi, follow

    run = follow(RatchetApi(load_settings(), args.api), args.run_id)
    print(json.dumps(run, indent=2) if args.json else f"{run['status']}\nrun_id: {run['run_id']}")
    return 0 if run["status"] == "completed" else 1


def _abs_or_url(repo: str) -> str:
    from gym.workspace import is_remote

    return repo if is_remote(repo) else str(Path(repo).resolve())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ratchet", description="Verified coding-agent runs.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run Temporal, a worker and the API until Ctrl-C").set_defaults(
        fn=_cmd_up
    )
    sub.add_parser("demo", help="run the bundled example end to end").set_defaults(fn=_cmd_demo)

    t = sub.add_parser("trace", help="print a run's trace id and span tree")
    t.add_argument("run_id")
    t.add_argument("--json", action="store_true")
    t.set_defaults(fn=_cmd_trace)

    ex = sub.add_parser("exec", help="run a command in a fresh sandboxed workspace of a repo")
    ex.add_argument("--repo", required=True)
    ex.add_argument("--ref", default="HEAD")
    ex.add_argument("--timeout", type=float, help="wall-clock limit in seconds (exit 124)")
    ex.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    ex.set_defaults(fn=_cmd_exec)

    te = sub.add_parser("test", help="run a repo's tests through the sandboxed runner")
    te.add_argument("--repo", required=True)
    te.add_argument("--ref", default="HEAD")
    te.add_argument("--command", help="test command (detected when absent)")
    te.add_argument("--json", action="store_true")
    te.set_defaults(fn=_cmd_test)

    task = sub.add_parser("task", help="submit a forward-planning task")
    task.add_argument("--repo", required=True)
    task.add_argument("--goal", required=True)
    task.add_argument("--ref", default="HEAD")
    task.add_argument("--test-command")
    task.add_argument("--policy", choices=["anthropic", "scripted"])
    task.add_argument("--script", help="policy script (scripted policy only)")
    task.add_argument("--follow", action="store_true")
    task.add_argument("--json", action="store_true")
    task.add_argument("--api", help="API base URL (default from settings)")
    task.set_defaults(fn=_cmd_task)

    for name, fn, helptext in (
        ("show", _cmd_show, "print a run as JSON"),
        ("follow", _cmd_follow, "follow a run to its end"),
    ):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("run_id")
        c.add_argument("--json", action="store_true")
        c.add_argument("--api", help="API base URL (default from settings)")
        c.set_defaults(fn=fn)
    return p


def main(argv: list[str] | None = None) -> None:
    from ratchet.apiclient import ApiError

    args = parser().parse_args(argv)
    try:
        code = args.fn(args)
    except ApiError as err:
        print(f"ratchet: {err}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: the Temporal client can abort at exit (sdk-python#300).
    os._exit(code)


if __name__ == "__main__":
    main()
