"""Policy scripts for the scripted policy (a test double) used by workflow tests."""

from __future__ import annotations

from pathlib import Path

ADD_MUL_WRONG = """
calc.py
<<<<<<< SEARCH
def add(a, b):
    return a + b
=======
def add(a, b):
    return a + b


def mul(a, b):
    return a + b
>>>>>>> REPLACE

tests/test_mul.py
<<<<<<< SEARCH
=======
from calc import mul


def test_mul():
    assert mul(3, 4) == 12
>>>>>>> REPLACE
"""

FIX_MUL = """
calc.py
<<<<<<< SEARCH
def mul(a, b):
    return a + b
=======
def mul(a, b):
    return a * b
>>>>>>> REPLACE
"""


def write_script(
    path: Path, patches: list[str], *, refactor: str = "", plan: str = "scripted plan",
    pause_s: float = 0,
) -> Path:  # fmt: skip
    lines = [f"pause_s = {pause_s}", f"plan = '''{plan}'''"]
    for patch in patches:
        lines += ["[[patch]]", f"patch = '''{patch}'''"]
    if refactor:
        lines += ["[refactor]", f"patch = '''{refactor}'''"]
    path.write_text("\n".join(lines) + "\n")
    return path
