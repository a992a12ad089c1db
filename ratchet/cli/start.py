"""Commands that start a run: task, investigate, and fork (a new run from a run's snapshot)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ratchet.cli import view
from ratchet.cli.apiclient import RatchetApi
from ratchet.cli.runs import abs_or_url, api, follow_run, given


def _policy(args: argparse.Namespace) -> dict[str, Any]:
    """A script implies the scripted policy (a test double that replays it)."""
    if not args.script:
        return given(policy=args.policy)
    return {"policy": args.policy or "scripted", "policy_script": str(Path(args.script).resolve())}


def _environment(args: argparse.Namespace) -> dict[str, list[str]] | None:
    return {"setup": args.setup} if args.setup else None


def _started(args: argparse.Namespace, client: RatchetApi, accepted: dict[str, Any]) -> int:
    """After a 202: print the run id (or the JSON), or follow the run to its end."""
    run_id = accepted["run_id"]
    if not args.follow:
        view.emit(args.json, accepted, run_id)  # just the id: RUN=$(ratchet task ...)
        return 0
    if not args.json:
        print(f"{run_id} started ({accepted.get('policy') or 'no'} policy)", flush=True)
    return follow_run(args, client, run_id)


def cmd_task(args: argparse.Namespace) -> int:
    budget = given(max_cost_usd=args.budget_usd, max_tokens=args.max_tokens,
                   max_turns=args.max_turns, max_wall_s=args.max_wall_s)  # fmt: skip
    body = {
        "repo": abs_or_url(args.repo), "goal": args.goal, "base_ref": args.ref,
        **_policy(args),
        **given(test_command=args.test_command, max_repair_rounds=args.max_repair_rounds,
                perspectives=args.perspectives, adversarial=args.adversarial,
                invariants=args.invariants, require_approval=args.require_approval,
                approve_plan=args.approve_plan, approval_timeout_s=args.approval_timeout_s,
                budget=budget or None, environment=_environment(args)),
    }  # fmt: skip
    if args.memory is not None:  # --no-memory is a False that must be sent
        body["memory"] = args.memory
    client = api(args)
    return _started(args, client, client.submit(body))


def cmd_investigate(args: argparse.Namespace) -> int:
    reproduce = given(test_command=args.test_command, test_id=args.test_id,
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
        "repo": abs_or_url(args.repo), "bad_ref": args.bad, "kind": args.kind, **_policy(args),
        **given(good_ref=args.good, reproduce=reproduce or None,
                parallel_probes=args.parallel_probes, test_command=args.suite,
                environment=_environment(args), traceback=traceback),
    }  # fmt: skip
    client = api(args)
    return _started(args, client, client.investigate(body))


def cmd_fork(args: argparse.Namespace) -> int:
    body = {"from_step": args.from_step, **_policy(args),
            **given(goal=args.goal, max_repair_rounds=args.max_repair_rounds)}  # fmt: skip
    client = api(args)
    return _started(args, client, client.fork(args.run_id, body))
