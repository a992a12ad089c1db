"""The lint gate: no new lint findings against the baseline — ruff for Python repositories,
`go vet` (and staticcheck) for Go, clippy for Rust, Biome or ESLint for JavaScript and
TypeScript (each through its JSON)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gym.gates import GateResult
from gym.runner import Limits, run_command
from gym.sandbox import WORKSPACE_INSIDE, Sandbox

_POSITION = re.compile(r":\d+(:\d+)?(?=[:\s])")


@dataclass(frozen=True)
class LintRun:
    command: str
    ok: bool
    """The command ran and its output could be read."""
    findings: list[str]
    """One key per finding, without line numbers, so moved code is not a new finding."""
    detail: str = ""


def _relative(path: str, workspace: Path) -> str:
    for root in (str(workspace.resolve()), WORKSPACE_INSIDE):
        if path.startswith(root + "/"):
            return path[len(root) + 1 :]
    return path


def parse_findings(output: str, fmt: str, workspace: Path) -> list[str] | None:
    """One key per finding, or None when the output is not in `fmt`."""
    reader = _READERS.get(fmt)
    if reader is not None:
        try:
            return [f"{_relative(path, workspace)}: {what}" for path, what in reader(output)]
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
    if fmt == "ruff-json":
        try:
            items = json.loads(output or "[]")
            return [
                f"{_relative(i['filename'], workspace)}: {i.get('code') or 'syntax'} {i['message']}"
                for i in items
            ]
        except (ValueError, KeyError, TypeError):
            return None
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return [_POSITION.sub("", _relative(ln, workspace)) for ln in lines]


def _go_vet(output: str) -> list[tuple[str, str]]:
    """`go vet -json`: after each "# package" line, {package: {analyzer: [{posn, message}]}};
    then staticcheck's `-f json`, when it ran: one {code, location: {file}, message} a line."""
    found, decoder, at = [], json.JSONDecoder(), 0
    while (start := output.find("{", at)) >= 0:
        report, at = decoder.raw_decode(output, start)
        if "code" in report and "location" in report:
            found.append((report["location"]["file"], f"{report['code']} {report['message']}"))
            continue
        for analyzers in report.values():
            for analyzer, items in analyzers.items():
                if isinstance(items, dict):  # {"error": "..."}: the package does not build
                    found.append(("", f"{analyzer} {items.get('error', '')}"))
                    continue
                found += [(i["posn"].split(":", 1)[0], f"{analyzer} {i['message']}") for i in items]
    return found


def _cargo(output: str) -> list[tuple[str, str]]:
    """cargo's --message-format=json: each compiler message (clippy's among them) with a code."""
    found = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        message = event.get("message") or {}
        if event.get("reason") != "compiler-message" or message.get("level") == "note":
            continue
        spans = [s for s in message.get("spans", []) if s.get("is_primary")]
        code = (message.get("code") or {}).get("code") or message.get("level", "")
        found.append((spans[0]["file_name"] if spans else "", f"{code} {message['message']}"))
    return found


def _eslint(output: str) -> list[tuple[str, str]]:
    """ESLint's --format json: [{filePath, messages: [{ruleId, message}]}]."""
    return [(f["filePath"], f"{m.get('ruleId') or 'syntax'} {m['message']}")
            for f in json.loads(output or "[]") for m in f["messages"]]  # fmt: skip


def _biome(output: str) -> list[tuple[str, str]]:
    """Biome's --reporter=json: {summary, diagnostics: [{category, description, location:
    {path: {file}}}]}, after any warning it prints first."""
    report, _ = json.JSONDecoder().raw_decode(output, output.index('{"'))
    found = []
    for d in report["diagnostics"]:
        path = (d.get("location") or {}).get("path") or ""
        file = path.get("file", "") if isinstance(path, dict) else str(path)
        found.append((file, f"{d['category'].removeprefix('lint/')} {d['description']}"))
    return found


_READERS = {"go-vet-json": _go_vet, "cargo-json": _cargo, "eslint-json": _eslint,
            "biome-json": _biome}  # fmt: skip
FORMATS = ("ruff-json", "lines", *_READERS)


async def run_lint(
    command: str, fmt: str, workspace: Path, *, limits: Limits, sandbox: Sandbox,
    env: dict[str, str] | None = None,
) -> LintRun:  # fmt: skip
    result = await run_command(command, workspace, limits=limits, sandbox=sandbox, env=env)
    output = result.output.decode(errors="replace")
    if result.timed_out or result.killed_by or result.exit_code in (126, 127):
        return LintRun(
            command, False, [], f"lint did not run (exit {result.exit_code}): {output[-300:]}"
        )
    findings = parse_findings(output, fmt, workspace)
    if findings is None:
        return LintRun(command, False, [], f"lint output was not {fmt}: {output[-300:]}")
    return LintRun(command, True, findings)


def lint_gate(baseline: LintRun | None, patched: LintRun | None) -> GateResult:
    if patched is None or baseline is None:
        return GateResult(
            "lint", True, "no lint command for this repository (set [lint] in ratchet.toml)"
        )
    if not patched.ok:
        if not baseline.ok:
            return GateResult(
                "lint", True, f"lint could not run at baseline either: {patched.detail}"
            )
        return GateResult("lint", False, patched.detail)
    new = Counter(patched.findings) - Counter(baseline.findings if baseline.ok else [])
    if new:
        shown = "; ".join(sorted(new.elements())[:10])
        more = f" (and {new.total() - 10} more)" if new.total() > 10 else ""
        return GateResult("lint", False, f"{new.total()} new lint findings: {shown}{more}")
    fixed = len(baseline.findings) - len(patched.findings) if baseline.ok else 0
    detail = f"no new findings ({len(patched.findings)} in all"
    detail += f", {fixed} fewer than at baseline)" if fixed > 0 else ")"
    return GateResult("lint", True, detail)
