"""Commands that need no API: the stack, the demo, traces, the gym.

Each imports what it runs only when it runs, so `ratchet --help` stays quick."""

from __future__ import annotations

import argparse
import sys

from ratchet.cli import view
from ratchet.settings import load_settings


def cmd_up(args: argparse.Namespace) -> int:
    from ratchet.cli.stack import up

    settings = load_settings()
    if args.workers is not None:
        settings = settings.model_copy(update={"workers": args.workers})
    return up(settings)


def cmd_demo(args: argparse.Namespace) -> int:
    from ratchet.cli.demo import demo

    return demo(load_settings(), args.example)


def cmd_trace(args: argparse.Namespace) -> int:
    from ratchet.traces import load_spans, render_tree, span_tree, trace_id_for_run

    settings = load_settings()
    spans = [span for path in settings.local_traces() for span in load_spans(path)]
    trace_id = trace_id_for_run(spans, args.run_id)
    if trace_id is None:
        where = settings.otlp_endpoint or settings.traces_file
        print(f"ratchet: trace: no spans for run {args.run_id} in {where}", file=sys.stderr)
        return 1
    tree = span_tree(spans, trace_id)
    if args.json:
        view.emit(True, {"trace_id": trace_id, "spans": [s for _, s in tree]})
    else:
        print(f"trace_id: {trace_id}\n{render_tree(tree)}")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from ratchet.cli.gym import exec_command

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    return exec_command(load_settings(), args.repo, args.ref, args.timeout, argv, args.setup)


def cmd_test(args: argparse.Namespace) -> int:
    from ratchet.cli.gym import test_command

    return test_command(load_settings(), args.repo, args.ref, args.command, args.json, args.setup)
