"""Commands on runs that exist: list, show, follow, steer; and what every API command shares."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from ratchet.cli import view
from ratchet.cli.apiclient import OPEN, RatchetApi, follow
from ratchet.settings import load_settings


def api(args: argparse.Namespace) -> RatchetApi:
    return RatchetApi(load_settings(), args.api)


def given(**values: Any) -> dict[str, Any]:
    """The options given: left-off options and flags are not sent, so the API's defaults hold
    (and an older API does not refuse fields it does not know)."""
    return {k: v for k, v in values.items() if v is not None and v is not False}


def abs_or_url(repo: str) -> str:
    from gym.workspace import is_remote

    return repo if is_remote(repo) else str(Path(repo).resolve())


def follow_run(args: argparse.Namespace, api: RatchetApi, run_id: str) -> int:
    try:
        # With --json, stdout carries only the final JSON: the progress goes to stderr.
        out = sys.stderr if args.json else sys.stdout
        run = follow(api, run_id, timeout_s=args.timeout or float("inf"), out=out)
    except KeyboardInterrupt:
        print(f"\nratchet: stopped following; the run goes on (ratchet follow {run_id})",
              file=sys.stderr)  # fmt: skip
        return 130
    view.emit(args.json, run, f"{view.run_summary(run, steps=False)}\nrun_id: {run_id}")
    if run["status"] in OPEN:
        print(f"ratchet: stopped following {run_id}: it is still {run['status']}",
              file=sys.stderr)  # fmt: skip
    return 0 if run["status"] == "completed" else 1


def cmd_runs(args: argparse.Namespace) -> int:
    client = api(args)
    params: dict[str, str | int] = given(
        query=args.query, kind=args.kind, status=args.status, page_size=args.page_size,
        page_token=args.page_token, repo=abs_or_url(args.repo) if args.repo else None,
    )  # fmt: skip
    page = client.runs(params)
    runs, seen = list(page.get("runs", [])), set()
    while args.all and page.get("next_page_token") and page["next_page_token"] not in seen:
        seen.add(page["next_page_token"])
        page = client.runs(params | {"page_token": page["next_page_token"]})
        runs += page.get("runs", [])
    more = page.get("next_page_token") if not args.all else None
    table = view.runs_table(runs) + (f"\nmore: --page-token {more} (or --all)" if more else "")
    view.emit(args.json, page | {"runs": runs} if args.all else page, table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    run = api(args).run(args.run_id)
    view.emit(args.json, run, view.run_summary(run))
    return 0


def cmd_transcript(args: argparse.Namespace) -> int:
    transcript = api(args).transcript(args.run_id)
    view.emit(args.json, transcript, view.transcript_text(transcript))
    return 0


def cmd_follow(args: argparse.Namespace) -> int:
    return follow_run(args, api(args), args.run_id)


def _control(args: argparse.Namespace, answer: dict[str, Any]) -> int:
    view.emit(args.json, answer, view.control_text(answer))
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password database
        return "unknown"


def cmd_approve(args: argparse.Namespace) -> int:
    body = {"by": args.by or _user(), **given(comment=args.comment)}
    return _control(args, api(args).approve(args.run_id, body))


def cmd_reject(args: argparse.Namespace) -> int:
    body = {"by": args.by or _user(), "reason": args.reason}
    return _control(args, api(args).reject(args.run_id, body))


def cmd_budget(args: argparse.Namespace) -> int:
    body = given(max_cost_usd=args.usd, max_tokens=args.tokens, max_turns=args.turns,
                 max_wall_s=args.wall_s)  # fmt: skip
    if not body:
        args.parser.error("give at least one of --usd, --tokens, --turns, --wall-s")
    return _control(args, api(args).budget(args.run_id, body))


def cmd_cancel(args: argparse.Namespace) -> int:
    return _control(args, api(args).cancel(args.run_id, args.reason))
