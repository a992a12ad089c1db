"""Spec drift's steps (activities/drift.py): the specification gathered from the repository,
claims extracted from it by the claims role (the scripted policy, a test double, answers), and
each claim checked by running its test in the sandbox or by inspecting a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.drift import CheckInput, DriftPrepared, DriftPrepareInput
from contracts.roles import RoleInput
from tests.activities.conftest import WHEN, World
from tests.utils.repos import PY_REPO, make_repo

README = "# calc\n\n`add(a, b)` adds two numbers. `mul(a, b)` multiplies them.\n"
CLAIMS: dict[str, Any] = {"claims": [
    {"id": "add_adds", "text": "add adds", "source": "README.md", "check": {
        "kind": "test",
        "content": "from calc import add\n\n\ndef test_claim():\n    assert add(2, 2) == 4\n"}},
    {"id": "mul_exists", "text": "mul multiplies", "source": "README.md", "check": {
        "kind": "test",
        "content": "from calc import mul\n\n\ndef test_claim():\n    assert mul(2, 3) == 6\n"}},
    {"id": "no_print", "text": "calc prints nothing", "source": "README.md", "check": {
        "kind": "inspection", "path": "calc.py", "pattern": r"print\(", "expect": "absent"}},
    {"id": "licensed", "text": "it is MIT licensed", "source": "README.md",
     "check": {"kind": "inspection"}},
]}  # fmt: skip


async def test_each_claim_of_the_spec_is_checked_and_the_drift_reported(
    world: World, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO | {"README.md": README})
    prepared: DriftPrepared = await world.run(
        world.drift.prepare, DriftPrepareInput("drift-0a1b2c3d4e5f", str(repo), "HEAD", WHEN)
    )
    spec = world.store.get_text(prepared.specs_ref)
    assert spec == f'<spec source="README.md">\n{README}\n</spec>'
    assert prepared.spec_chars == len(spec)

    policy = world.script(
        "[[patch]]\npatch = ''\n[roles.claims]\nanswers = ['''" + json.dumps(CLAIMS) + "''']\n"
    )
    claims = await world.run(world.roles.role_call, RoleInput(
        prepared.run, "claims", "claims", policy, 0, "", inputs=[prepared.specs_ref],
    ))  # fmt: skip
    assert claims.summary == "4 claims"

    checked = await world.run(
        world.drift.check, CheckInput(prepared.run, claims.answer_ref, timeout_s=60)
    )
    assert (checked.holds, checked.drift, checked.unchecked) == (2, 1, 1)
    # The failing claim's test is the reproduction an investigation starts from.
    assert checked.drift_tests == {
        "tests/test_claim_mul_exists.py": CLAIMS["claims"][1]["check"]["content"]
    }
    findings = {f["id"]: f for f in json.loads(world.store.get_text(checked.findings_ref))}
    assert {k: f["verdict"] for k, f in findings.items()} == {
        "add_adds": "holds", "mul_exists": "drift", "no_print": "holds", "licensed": "unchecked",
    }  # fmt: skip
    assert findings["mul_exists"]["evidence"].startswith("tests/test_claim_mul_exists.py: failed")
    assert "cannot import name 'mul'" in findings["mul_exists"]["evidence"]
    assert findings["no_print"]["evidence"] == r"no match for /print\(/ in calc.py"
    report = world.store.get_text(checked.report_ref)
    assert report.startswith("# Spec drift report: drift-0a1b2c3d4e5f")
    assert "## mul_exists: drift" in report and "## add_adds" not in report
