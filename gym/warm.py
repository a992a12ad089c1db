"""Warm pytest's assertion-rewrite cache for this interpreter's plugins: `python -m gym.warm`,
once after installing (make install, deploy/Dockerfile).

pytest rewrites the asserts of every module of a distribution that registers a pytest plugin
(hypothesis alone is about a hundred modules) and caches the result in __pycache__ beside them,
unless PYTHONDONTWRITEBYTECODE is set. Sandboxed test runs see site-packages read-only, so
without a warm cache every one of them rewrites those modules again: about 0.9 s a test run."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

NO_TESTS_COLLECTED = 5  # pytest's exit status for an empty collection


def warm() -> subprocess.CompletedProcess[str]:
    """Collect nothing in an empty directory with bytecode writing on: loading the plugins is
    what rewrites (and now caches) their modules."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as empty:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"],
            cwd=empty, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip


def main() -> int:
    proc = warm()
    if proc.returncode not in (0, NO_TESTS_COLLECTED):
        print(f"gym.warm: pytest exited {proc.returncode}: {proc.stderr.strip()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
