"""Vitest, Jest, bun test, Biome and ESLint for real, and pnpm: a JavaScript repository's
environment is built in the sealed sandbox from an npm registry on loopback (npm ci for
package-lock.json, pnpm install for pnpm-lock.yaml, bun install for bun.lock), then the
repository's own runners and linters run there offline: the counts equal the runner's own, a
test that fails then passes is flaky, a finding a patch adds fails the lint gate."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gym.config import detect_lint_command, load_config
from gym.envdef import detect
from gym.lint import lint_gate, run_lint
from gym.runner import Limits
from gym.sandbox import Sandbox
from gym.testing import run_tests
from tests.utils.envs import built
from tests.utils.npmreg import npm_registry
from tests.utils.repos import make_repo

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "js"
LIMITS = Limits(timeout_s=600)

FLAKY = (
    "  // Fails the first time it runs in this workspace, passes after.\n"
    "  if (!fs.existsSync('.flaky.seen')) { fs.writeFileSync('.flaky.seen', ''); "
    "throw new Error('first time'); }\n"
)
SUITE = {
    "src/calc.js": "exports.add = (a, b) => a + b;\n",
    "test/calc.test.js": (
        "const fs = require('node:fs');\nconst { add } = require('../src/calc');\n"
        "describe('add', () => {\n"
        "  test('adds', () => { expect(add(1, 2)).toBe(3); });\n"
        "  test('broken', () => { expect(add(1, 2)).toBe(4); });\n"
        "  test.skip('later', () => {});\n"
        "  test('flaky', () => {\n" + FLAKY + "  });\n"
        "});\n"
    ),
    "test/more.test.js": (
        "const { add } = require('../src/calc');\n"
        "test('adds more', () => { expect(add(2, 2)).toBe(4); });\n"
    ),
}


# Each runner's ids for SUITE: the file, the describe blocks, the test.
SUITE_OUTCOMES = {
    "test/calc.test.js::add > adds": "passed",
    "test/calc.test.js::add > broken": "failed",
    "test/calc.test.js::add > later": "skipped",
    "test/calc.test.js::add > flaky": "flaky",
    "test/more.test.js::adds more": "passed",
}


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    with npm_registry() as url:
        yield url


@pytest.fixture(scope="module")
def sandbox(registry: str, tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """The sealed sandbox with the environment npm ci builds from the fixture's lockfile (every
    repository here has the same key files, so the same environment)."""
    root = tmp_path_factory.mktemp("js")
    repo = js_repo(root / "repo", registry, SUITE, "vitest run")
    definition = detect(repo)
    assert definition.source == "detected: package-lock.json"
    made, env = asyncio.run(built(root / "home", repo, list(definition.setup),
                                  allowed=[registry.removeprefix("http://")]))  # fmt: skip
    assert (env.path / "node_modules/.bin/vitest").exists()
    return made


def js_repo(path: Path, registry: str, files: dict[str, str], test: str) -> Path:
    package = json.loads((FIXTURE / "package.json").read_text()) | {"scripts": {"test": test}}
    return make_repo(path, {
        "package.json": json.dumps(package, indent=2) + "\n",
        "package-lock.json": (FIXTURE / "package-lock.json").read_text(),
        ".npmrc": f"registry={registry}/\n", ".gitignore": "node_modules\n", **files,
    })  # fmt: skip


async def test_vitest_and_jest_counts_match_their_own_in_an_environment_npm_ci_built(
    tmp_path: Path, registry: str, sandbox: Sandbox
) -> None:
    vitest_config = "export default { test: { globals: true } };\n"
    repo = js_repo(tmp_path / "vitest", registry, {**SUITE, "vitest.config.mjs": vitest_config},
                   "vitest run")  # fmt: skip

    run = await run_tests("npm test", repo, limits=LIMITS, sandbox=sandbox)
    assert run.runner == "vitest", run.result.output.decode()[-2000:]
    # Vitest's own summary of the first run: "Tests  2 failed | 2 passed | 1 skipped (5)".
    summary = re.search(
        rb"Tests\s+(\d+) failed \| (\d+) passed \| (\d+) skipped", run.result.output
    )
    assert summary is not None, run.result.output.decode()[-2000:]
    assert [int(n) for n in summary.groups()] == [2, 2, 1]
    assert {t.id: t.outcome for t in run.tests} == SUITE_OUTCOMES

    # The same suite under Jest.
    repo = js_repo(tmp_path / "jest", registry, SUITE, "jest")
    run = await run_tests("npm test", repo, limits=LIMITS, sandbox=sandbox)
    assert run.runner == "jest", run.result.output.decode()[-2000:]
    summary = re.search(rb"Tests:\s+(\d+) failed, (\d+) skipped, (\d+) passed", run.result.output)
    assert summary is not None, run.result.output.decode()[-2000:]
    assert [int(n) for n in summary.groups()] == [2, 1, 2]
    assert {t.id: t.outcome for t in run.tests} == SUITE_OUTCOMES


async def test_biome_finds_what_a_patch_introduces(
    tmp_path: Path, registry: str, sandbox: Sandbox
) -> None:
    files = {"src/calc.js": "export const add = (a, b) => a + b;\n", "biome.json": "{}\n"}
    repo = js_repo(tmp_path / "biome", registry, files, "vitest run")
    command, fmt = detect_lint_command(repo, load_config(repo)) or ("", "")
    assert (command, fmt) == ("node_modules/.bin/biome lint --reporter=json .", "biome-json")
    before = await run_lint(command, fmt, repo, limits=LIMITS, sandbox=sandbox)
    assert before.ok and before.findings == [], before
    (repo / "src/calc.js").write_text("export const add = (a, b) => { debugger; return a + b; };\n")
    after = await run_lint(command, fmt, repo, limits=LIMITS, sandbox=sandbox)
    assert after.findings == [
        "src/calc.js: suspicious/noDebugger This is an unexpected use of the debugger statement."
    ], after
    assert not lint_gate(before, after).passed


async def test_pnpm_installs_a_pnpm_lockfile_into_the_environment(
    tmp_path: Path, registry: str
) -> None:
    pnpm = FIXTURE / "pnpm"
    files = {
        "package.json": (pnpm / "package.json").read_text(),
        "pnpm-lock.yaml": (pnpm / "pnpm-lock.yaml").read_text(),
        ".npmrc": f"registry={registry}/\n", ".gitignore": "node_modules\n",
        "test/tsc.test.js": (
            "const { test } = require('node:test');\nconst assert = require('node:assert');\n"
            "test('typescript is the lockfile s', () => {\n"
            "  assert.strictEqual(require('typescript').version, '5.6.3');\n});\n"
        ),
    }  # fmt: skip
    repo = make_repo(tmp_path / "pnpm", files)
    definition = detect(repo)
    # The lockfile's format (9.0) is pnpm 10's; npx fetches pnpm from the registry.
    assert definition.setup == ("npx --yes pnpm@10 install --frozen-lockfile",)
    assert definition.key_files == ("package.json", "pnpm-lock.yaml")
    sandbox, env = await built(tmp_path / "home", repo, list(definition.setup),
                               allowed=[registry.removeprefix("http://")])  # fmt: skip
    # pnpm's layout: the package in its store under node_modules/.pnpm, linked by name.
    assert (env.path / "node_modules/.pnpm/typescript@5.6.3").is_dir()
    run = await run_tests("npm test", make_repo(tmp_path / "later", files), limits=LIMITS,
                          sandbox=sandbox)  # fmt: skip
    assert run.passed, run.result.output.decode()
    assert [(t.id, t.outcome) for t in run.tests] == [
        ("test/tsc.test.js::typescript is the lockfile s", "passed")
    ]


BUN_SUITE = (
    "import { describe, expect, test } from 'bun:test';\nimport fs from 'node:fs';\n"
    "describe('add', () => {\n"
    "  test('adds', () => { expect(1 + 2).toBe(3); });\n"
    "  test('broken', () => { expect(1 + 2).toBe(4); });\n"
    "  test.skip('later', () => {});\n"
    "  test('flaky', () => {\n" + FLAKY + "  });\n"
    "});\n"
    "test('typescript is the lockfile s', () => {\n"
    "  expect(require('typescript').version).toBe('5.6.3');\n});\n"
)


async def test_bun_installs_its_lockfile_and_bun_test_counts_match_its_own(
    tmp_path: Path, registry: str
) -> None:
    bun = FIXTURE / "bun"
    files = {
        "package.json": (bun / "package.json").read_text(),
        "bun.lock": (bun / "bun.lock").read_text(),
        ".npmrc": f"registry={registry}/\n", ".gitignore": "node_modules\n",
        "test/calc.test.ts": BUN_SUITE,
    }  # fmt: skip
    repo = make_repo(tmp_path / "bun", files)
    definition = detect(repo)
    assert definition.setup == ("bun install --frozen-lockfile",)
    sandbox, env = await built(tmp_path / "home", repo, list(definition.setup),
                               allowed=[registry.removeprefix("http://")])  # fmt: skip
    assert (env.path / "node_modules/typescript/package.json").is_file()
    run = await run_tests("npm test", make_repo(tmp_path / "later", files), limits=LIMITS,
                          sandbox=sandbox)  # fmt: skip
    assert run.runner == "bun", run.result.output.decode()[-2000:]
    # bun's own summary of the first run.
    output = run.result.output.decode()
    own = {k: int(n) for n, k in re.findall(r"^\s*(\d+) (pass|fail|skip)$", output, re.M)}
    assert own == {"pass": 2, "fail": 2, "skip": 1}, output[-2000:]
    assert {t.id: t.outcome for t in run.tests} == {
        "test/calc.test.ts::add > adds": "passed",
        "test/calc.test.ts::add > broken": "failed",
        "test/calc.test.ts::add > later": "skipped",
        "test/calc.test.ts::add > flaky": "flaky",
        "test/calc.test.ts::typescript is the lockfile s": "passed",
    }


async def test_eslint_finds_what_a_patch_introduces(
    tmp_path: Path, registry: str, sandbox: Sandbox
) -> None:
    config = "module.exports = [{ rules: { 'no-debugger': 'error' } }];\n"
    files = {"src/calc.js": "exports.add = (a, b) => a + b;\n", "eslint.config.js": config}
    repo = js_repo(tmp_path / "eslint", registry, files, "vitest run")
    command, fmt = detect_lint_command(repo, load_config(repo)) or ("", "")
    assert (command, fmt) == ("node_modules/.bin/eslint --format json .", "eslint-json")
    before = await run_lint(command, fmt, repo, limits=LIMITS, sandbox=sandbox)
    assert before.ok and before.findings == [], before
    (repo / "src/calc.js").write_text("exports.add = (a, b) => { debugger; return a + b; };\n")
    after = await run_lint(command, fmt, repo, limits=LIMITS, sandbox=sandbox)
    assert after.findings == ["src/calc.js: no-debugger Unexpected 'debugger' statement."], after
    assert not lint_gate(before, after).passed
