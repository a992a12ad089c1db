"""`ratchet demo`: the bundled example, end to end, through the API."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from gym.git import git
from ratchet.cli import view
from ratchet.cli.apiclient import RatchetApi, follow
from ratchet.cli.stack import wait_for_http
from ratchet.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GOAL = (
    "Add median(values) to statskit/stats.py: the middle value of the sorted values, the mean of "
    "the two middle values for an even count, and ValueError for an empty list. Add tests."
)


GOALS = {
    "median": GOAL,
    "ts": (
        "Add median(values) to src/stats.ts: the middle value of the sorted values, the mean of "
        "the two middle values for an even count, and a RangeError for an empty list. Add tests "
        "in test/median.test.ts."
    ),
}
"""Each bundled example's task (examples/<name>/)."""


def build_example(settings: Settings, name: str = "median") -> Path:
    """Copy examples/<name>/repo into a fresh git repository under $RATCHET_HOME/demo."""
    target = settings.home / "demo" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    shutil.copytree(EXAMPLES / name / "repo", target)
    git("init", "--quiet", "--initial-branch=main", cwd=target)
    git("add", "--all", cwd=target)
    git("commit", "--quiet", "-m", "statskit: mean()", cwd=target)
    return target


def _api_up(settings: Settings) -> bool:
    try:
        return httpx.get(f"{settings.api_base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def running_stack(settings: Settings) -> Iterator[bool]:
    """Use the running `make up`, or start one for the demo and stop it afterwards."""
    if _api_up(settings):
        yield False
        return
    print("No Ratchet API is running: starting one for this demo (`make up` keeps one running).")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ratchet.cli", "up"], stdout=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_http(f"{settings.api_base}/healthz", timeout_s=120, proc=proc)
        yield True
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def demo(settings: Settings, example: str = "median") -> int:
    if example not in GOALS:
        print(f"ratchet demo: no example {example!r} (examples: {', '.join(GOALS)})")
        return 2
    repo = build_example(settings, example)
    print(f"Example repository (a demo, not a real project): {repo}")
    body: dict[str, object] = {"repo": str(repo), "goal": GOALS[example]}
    if settings.anthropic_api_key is None:
        script = EXAMPLES / example / "script.toml"
        print(
            "\n*** No ANTHROPIC_API_KEY: using the SCRIPTED policy, a TEST DOUBLE that replays "
            f"{script.relative_to(EXAMPLES.parent)}. No model is involved. ***\n"
        )
        body |= {"policy": "scripted", "policy_script": str(script)}
    else:
        print(f"Using Claude ({settings.anthropic_model}) as the policy.")
    with running_stack(settings) as started:
        api = RatchetApi(settings)
        accepted = api.submit(body)
        run_id = accepted["run_id"]
        print(f"Submitted {run_id}; following it (Temporal UI: {accepted['temporal_ui_url']})")
        run = follow(api, run_id)
        patch = (
            api.patch(run_id) if run.get("result", {}) and run["result"].get("patch_url") else ""
        )
        transcript = api.transcript(run_id)
    print("\nThe agent's turns (ratchet transcript " + run_id + "):")
    print(view.transcript_text(transcript))
    print()
    print(f"Status: {run['status']}")
    if run.get("error"):
        print(f"Error: {run['error']['type']}: {run['error']['message']}")
    if patch:
        print("\nVerified patch:\n" + patch)
    result = run.get("result") or {}
    if result.get("gates"):
        print("Gates:")
        for gate in result["gates"]:
            print(f"  [{'PASS' if gate['passed'] else 'FAIL'}] {gate['name']}: {gate['detail']}")
    if result.get("isolation"):
        print(f"Sandbox: {result['isolation']}")
    if result.get("branch"):
        print(f"\nBranch: {result['branch']} in {repo} (commit {str(result.get('commit'))[:12]})")
    print(f"Usage: {view.usage_line(run.get('usage'))}")
    print(f"Temporal UI: {accepted['temporal_ui_url']}")
    print(f"Trace id: {run['trace_id']}   (ratchet trace {run_id} prints its span tree)")
    if started:
        print("(The stack started for this demo has been stopped; `make up` keeps it running.)")
    print(f"run_id: {run_id}")
    return 0 if run["status"] == "completed" else 1
