"""How the `ratchet` command shows runs to a person: plain text, plus a rich view for terminals.

Everything here takes the API's JSON and returns text, so the CLI and `follow` share one wording.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType

Json = dict[str, Any]
STEP_STYLE = {"completed": "green", "failed": "red", "running": "yellow"}


def step_line(step: Json) -> str:
    name = step["name"] + (f" (round {step['round']})" if step.get("round") else "")
    attempts = f" attempt {step['attempts']}" if (step.get("attempts") or 1) > 1 else ""
    detail = f" - {step['detail']}" if step.get("detail") else ""
    return f"{name:<20} {step['status']}{attempts}{detail}"


def money(usd: float | None) -> str:
    return f"${usd:.4f}" if usd is not None and usd < 1 else f"${usd or 0:.2f}"


def usage_line(usage: Json | None, budget: Json | None = None) -> str:
    u = usage or {}
    cached = u.get("cache_read_input_tokens", 0)
    text = (
        f"cost {money(u.get('cost_usd', 0.0))}"
        + (" + price unknown" if u.get("price_unknown") else "")
        + f", {u.get('turns', 0)} turns, "
        f"{u.get('input_tokens', 0) + u.get('cache_creation_input_tokens', 0) + cached} tokens "
        f"in ({u.get('cache_read_share', 0.0):.0%} from cache) / {u.get('output_tokens', 0)} out"
    )
    limits = budget_text(budget)
    return text + (f" (budget: {limits})" if limits else "")


def budget_text(budget: Json | None) -> str:
    b = budget or {}
    parts = []
    if b.get("max_cost_usd") is not None:
        parts.append(money(b["max_cost_usd"]))
    if b.get("max_tokens") is not None:
        parts.append(f"{b['max_tokens']} tokens")
    if b.get("max_turns") is not None:
        parts.append(f"{b['max_turns']} turns")
    if b.get("max_wall_s") is not None:
        parts.append(f"{b['max_wall_s']:g}s")
    return ", ".join(parts)


def gate_lines(gates: list[Json]) -> list[str]:
    return [f"  [{'PASS' if g['passed'] else 'FAIL'}] {g['name']}: {g['detail']}" for g in gates]


def status_hint(run: Json) -> str:
    """What a person can do about a run that waits for them."""
    rid = run["run_id"]
    if run["status"] == "paused":
        reason = run.get("pause_reason") or "budget spent"
        return f"{reason}; `ratchet budget {rid} ...` resumes it, `ratchet cancel {rid}` ends it"
    if run["status"] == "awaiting_approval":
        what = {"plan": "the plan", "delivery": "the verified patch"}.get(run.get("awaiting", ""))
        ask = f"{what} waits for approval: " if what else ""
        return f"{ask}`ratchet approve {rid}` or `ratchet reject {rid} --reason TEXT`"
    return ""


def run_summary(run: Json, *, steps: bool = True) -> str:
    """`ratchet show`: status, steps, gates, cost, and where the result is."""
    about = ", ".join(filter(None, (run.get("kind"), run.get("policy"))))
    lines = [f"{run['run_id']}  {run['status']}" + (f"  ({about})" if about else "")]
    if run.get("forked_from"):
        lines.append(f"forked from: {run['forked_from']}")
    if hint := status_hint(run):
        lines.append(f"waiting: {hint}")
    if run.get("error"):
        lines.append(f"error: {run['error']['type']}: {run['error']['message']}")
    for a in run.get("approvals") or []:
        comment = f": {a['comment']}" if a.get("comment") else ""
        lines.append(f"{a['stage']} {a['decision']} by {a['by']} at {a['at']}{comment}")
    if steps and run.get("steps"):
        lines += ["steps:", *(f"  {step_line(s)}" for s in run["steps"])]
    result = run.get("result") or {}
    if culprit := result.get("culprit"):
        lines.append(
            f"culprit: {culprit['sha'][:12]} {culprit['message'].splitlines()[0]} "
            f"({culprit['author']}; confidence {culprit['confidence']})"
        )
    if result.get("gates"):
        lines += ["gates:", *gate_lines(result["gates"])]
    lines.append(usage_line(run.get("usage"), run.get("budget")))
    if result.get("branch"):
        draft = " (draft, unverified)" if result.get("draft") else ""
        commit = f" commit {str(result.get('commit'))[:12]}" if result.get("commit") else ""
        lines.append(f"branch: {result['branch']}{commit}{draft}")
    for what in ("patch", "plan", "report"):
        if result.get(f"{what}_url"):
            lines.append(f"{what}: {result[f'{what}_url']}")
    if result.get("isolation"):
        lines.append(f"sandbox: {result['isolation']}")
    if run.get("temporal_ui_url"):
        lines.append(f"Temporal UI: {run['temporal_ui_url']}")
    if run.get("trace_id"):
        lines.append(f"trace: {run['trace_id']} (ratchet trace {run['run_id']})")
    return "\n".join(lines)


def emit(as_json: bool, data: object, text: str = "") -> None:
    """Print the API's JSON as it came (--json), or the text for a person."""
    print(json.dumps(data, indent=2) if as_json else text)


def control_text(answer: Json) -> str:
    """The answer to budget, cancel, approve and reject."""
    text = f"{answer['run_id']}: {answer['phase']}"
    if answer.get("message"):
        text += f" - {answer['message']}"
    return f"{text}\n{usage_line(answer.get('usage'), answer.get('budget'))}"


def _clip(text: str, width: int, *, keep_end: bool = False) -> str:
    if len(text) <= width:
        return text
    return "…" + text[-(width - 1) :] if keep_end else text[: width - 1] + "…"


def runs_table(runs: list[Json]) -> str:
    if not runs:
        return "no runs"
    header = ("RUN ID", "KIND", "STATUS", "REPO", "STARTED", "SUMMARY")
    rows = [
        (
            r.get("run_id", ""),
            r.get("kind", ""),
            r.get("status", ""),
            _clip(r.get("repo") or "", 40, keep_end=True),
            (r.get("started_at") or "")[:19].replace("T", " "),
            _clip(" ".join((r.get("summary") or "").split()), 60),
        )
        for r in runs
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in (header, *rows)
    ).rstrip()


def live_view(run: Json) -> RenderableType:
    """The terminal view `follow` keeps up to date."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{run['run_id']}: {run['status']}", title_justify="left")
    for column in ("step", "status", "attempts", "detail"):
        table.add_column(column, overflow="fold" if column == "detail" else "ellipsis")
    for s in run["steps"]:
        name = s["name"] + (f" #{s['round']}" if s.get("round") else "")
        attempts = str(s.get("attempts") or 1)
        style = STEP_STYLE.get(s["status"])
        if (s.get("attempts") or 1) > 1 and s["status"] == "running":
            style = "magenta"  # being retried
        table.add_row(name, s["status"], attempts, (s.get("detail") or "")[:120], style=style)
    parts: list[RenderableType] = [table, Text(usage_line(run.get("usage"), run.get("budget")))]
    if hint := status_hint(run):
        parts.append(Text(f"waiting: {hint}", style="bold"))
    return Group(*parts)  # the gates come after, in the summary the CLI prints at the end


def transcript_text(transcript: Json, width: int = 110) -> str:
    """The agent's conversations, one line per turn and per tool call."""
    lines = []
    for conversation in transcript.get("conversations", []):
        lines.append(f"{conversation['step']}:")
        for turn in conversation["turns"]:
            said = f" {_clip(' '.join(turn['text'].split()), width - 12)}" if turn["text"] else ""
            lines.append(f"  turn {turn['turn']}:{said}")
            for call in turn["calls"]:
                shown = call["input"]
                if isinstance(shown, dict) and len(shown) == 1:
                    shown = next(iter(shown.values()))
                brief = " ".join(str(shown).split())
                lines.append(f"    {call['tool']} {_clip(brief, width - len(call['tool']) - 6)}")
                result = " ".join(str(call["result"]).split())
                if result:
                    mark = "error: " if call["is_error"] else ""
                    lines.append(f"      -> {mark}{_clip(result, width - 10 - len(mark))}")
    return "\n".join(lines) or "(no agent conversations)"
