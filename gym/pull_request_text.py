"""The pull request's title and body: a run's report as GitHub markdown.

Goal, plan and gate output come from people and models outside Ratchet, so they are shown as
data: in fenced blocks no text can close, in code spans of harmless characters, with mentions
and issue references defanged. Nothing here touches the network; gym/github.py sends the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote, urlsplit


def pull_request_title(goal: str) -> str:
    line = _defang(" ".join(goal.split())) or "change"
    title = f"ratchet: {line}"
    return title if len(title) <= 100 else title[:99] + "…"


def render_pull_request_body(
    *,
    run_id: str,
    goal: str,
    plan: str,
    gates: Sequence[tuple[str, bool, str]],
    cost_usd: float,
    tokens: int,
    temporal_url: str,
    trace_id: str,
    trace_url: str | None = None,
    policy: str,
) -> str:
    """The run's report as markdown. Goal, plan and gate output come from people and models
    outside Ratchet: they are shown in fenced blocks, as data, never as markdown of ours."""
    lines = []
    if "scripted" in policy.lower():
        lines += ["> [!WARNING]",
                  "> **TEST DOUBLE**: this change was made by the scripted policy, which replays",
                  "> a script. No model was involved.", ""]  # fmt: skip
    lines += [
        f"Ratchet run {_code(run_id)} by {_code(policy)}.",
        "",
        "### Goal",
        _fence(goal, 4000),
        "",
        "### Plan",
        _fence(plan, 30_000),
        "",
        "### Gates",
    ]
    for name, passed, detail in gates:
        lines.append(f"- {'✅ passed' if passed else '❌ failed'}: {_code(name)}")
        if detail.strip():
            lines += ["", _fence(detail, 2000), ""]
    if not gates:
        lines.append("- none ran")
    trace = f"{_link('trace', trace_url)} {_code(trace_id)}" if trace_url else _code(trace_id)
    lines += [
        "",
        "### Cost",
        f"${cost_usd:,.4f} for {tokens:,} tokens",
        "",
        "### Links",
        f"- {_link('Temporal run', temporal_url)}",
        f"- Trace: {trace}",
    ]
    return "\n".join(lines) + "\n"


def _fence(text: str, limit: int) -> str:
    # A fence ends only at a run of the same character at least as long: one longer than any
    # backtick run inside cannot be closed by the text (tildes never close a backtick fence).
    body = text[:limit] + ("\n… (truncated)" if len(text) > limit else "")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def _code(text: str) -> str:
    # Short one-line text of ours or the operator's (a label, a gate name): a code span of
    # harmless characters, so it can neither mention, link nor open HTML.
    safe = re.sub(r"[^A-Za-z0-9 _.,:;/+=()-]", "?", " ".join(text.split()))[:120]
    return f"`{safe or '?'}`"


def _link(label: str, url: str) -> str:
    if urlsplit(url).scheme not in ("http", "https"):
        return f"{label}: {_code(url)}"
    return f"[{label}]({quote(url, safe=':/?#[]@!$&*+,;=%-._~')})"


def _defang(text: str) -> str:
    # A zero-width space after @ or # stops GitHub from notifying a team or linking an issue.
    return re.sub(r"([@#])(?=[A-Za-z0-9])", "\\1\u200b", text)
