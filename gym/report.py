"""The root-cause report, as markdown. Everything that came from outside (the event, commit
messages, test output) is quoted in fenced blocks: shown as data, never as instructions.
"""

from __future__ import annotations

from collections.abc import Iterable

from contracts.investigation import ReportInput
from contracts.sentry import SentryEvent


def quote(text: str, limit: int = 4000) -> str:
    body = text[:limit].replace("~~~", "~ ~ ~")
    return f"~~~text\n{body}\n~~~"


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    def clean(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")[:200]

    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(arg: ReportInput, hunks: str) -> str:
    """The whole report: the event, the reproduction, the culprit, every probe, the guilty
    hunks, the fix and its gates."""
    lines = [f"# Root-cause report: {arg.run_id} ({arg.kind})", ""]
    if arg.event:
        lines += _event(arg.event)
    lines += _reproduction(arg)
    lines += _culprit(arg)
    probes = [[str(p.round), p.sha[:12], p.outcome, p.detail] for p in arg.probes]
    lines += ["## Evidence (every probe)", "", table(["round", "commit", "outcome", "detail"],
                                                      probes), ""]  # fmt: skip
    if hunks:
        lines += ["## Guilty hunks", "", "~~~diff", hunks[:20000].replace("~~~", "~ ~ ~"), "~~~",
                  ""]  # fmt: skip
    lines += ["## Fix", "", arg.fix, ""]
    if arg.written is not None and arg.branch:
        lines += ["Why it passes now: the new test ships with the fix, and the gates below ran "
                  "it with the whole suite on the fixed code.", ""]  # fmt: skip
    if arg.branch:
        lines += [f"Delivered on branch `{arg.branch}`.", ""]
    gates = [[g.name, "yes" if g.passed else "NO", g.detail] for g in arg.gates]
    lines += ["## Gates", "", table(["gate", "passed", "detail"], gates)]
    return "\n".join(lines) + "\n"


def _event(e: SentryEvent) -> list[str]:
    return [
        "## Event", "",
        f"Sentry issue {e.issue_id}, event {e.event_id or '?'}, release {e.release or '?'}"
        + (f", trace {e.trace_id}" if e.trace_id else ""),
        "", "Title, culprit and exception as reported (data from the event, quoted):", "",
        quote(f"{e.title}\n{e.culprit}\n{e.exception_type}: {e.exception_value}"), "",
        "### Frames (oldest first)", "",
        table(["in app", "file", "function", "line"],
              [["yes" if f.in_app else "no", f.filename, f.function, str(f.lineno or "")]
               for f in e.frames]),
        "", "Context lines (quoted):", "",
        quote("\n".join(f.context_line for f in e.frames if f.context_line)), "",
    ]  # fmt: skip


def _reproduction(arg: ReportInput) -> list[str]:
    lines = ["## Reproduction", "", f"Command: `{arg.reproduce}`", ""]
    if arg.written is not None:
        lines += ["No existing test reproduced the event, so the policy wrote one; Ratchet ran "
                  "it at the bad commit and read its traceback:", "", f"- {arg.written.detail}",
                  ""]  # fmt: skip
        for path, content in arg.written.files.items():
            lines += [f"`{path}` (written by the policy, quoted):", "", quote(content, 8000), ""]
        lines += ["Where it fails (its traceback in the repository, quoted):", "",
                  quote(arg.written.failure, 3000), ""]  # fmt: skip
    if arg.latent:
        lines += ["It fails at every commit of the history: a latent bug, not a regression, so "
                  "there was nothing to bisect; the fix makes the new test pass.", ""]  # fmt: skip
    if arg.frame_files:
        lines += [f"Files from the in-app frames: {', '.join(arg.frame_files)}", ""]
    if arg.refused_frames:
        lines += ["Frame paths refused (outside the repository):", "",
                  quote("\n".join(arg.refused_frames)), ""]  # fmt: skip
    return lines


def _culprit(arg: ReportInput) -> list[str]:
    if not arg.culprit:
        return ["## Culprit", "", "Not found.", ""]
    lines = ["## Culprit", "",
             f"Commit `{arg.culprit}` by {arg.author}; confidence: {arg.confidence}.", "",
             quote(arg.message, 2000), ""]  # fmt: skip
    if arg.suspects:
        lines += [f"Other candidates: {', '.join(s[:12] for s in arg.suspects)}", ""]
    return lines
