"""Git histories with a planted problem, built commit by commit in the test."""

from __future__ import annotations

from pathlib import Path

from gym.git import git
from tests.utils.repos import commit, make_repo


def planted(path: Path, files: dict[str, str], *, commits: int, bad_at: int,
            breaking: dict[str, str]) -> list[str]:  # fmt: skip
    """A history of `commits` commits (index 0 is the first); commit `bad_at` applies
    `breaking`, every other commit touches only an unrelated notes file. Returns the shas."""
    make_repo(path, files, "initial")
    shas = [git("rev-parse", "HEAD", cwd=path)]
    for i in range(1, commits):
        change = breaking if i == bad_at else {f"notes/{i % 10}.txt": f"note {i}\n"}
        shas.append(
            commit(path, change, f"change {i}" + (" (refactor totals)" if i == bad_at else ""))
        )
    return shas


CALC = {
    "pyproject.toml": '[project]\nname = "calc"\nversion = "0"\n\n'
    '[tool.pytest.ini_options]\npythonpath = ["."]\n',
    "calc.py": "def add(a, b):\n    return a + b\n",
    "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}
CALC_BROKEN = {"calc.py": "def add(a, b):\n    return a + b + (1 if b > 2 else 0)\n"}

BILLING = {
    "pyproject.toml": '[project]\nname = "billing"\nversion = "0"\n\n'
    '[tool.pytest.ini_options]\npythonpath = ["."]\n',
    "app/__init__.py": "",
    "app/billing/__init__.py": "",
    "app/billing/totals.py": (
        "def compute_total(lines):\n    if not lines:\n        return 0\n"
        "    return sum(l.amount for l in lines) / len(lines)\n"
    ),
    "tests/test_totals.py": (
        "from app.billing.totals import compute_total\n\n\n"
        "def test_empty_invoice_totals_zero():\n    assert compute_total([]) == 0\n"
    ),
}
BILLING_BROKEN = {
    "app/billing/totals.py": (
        "def compute_total(lines):\n    return sum(l.amount for l in lines) / len(lines)\n"
    )
}

PERF = {
    "pyproject.toml": '[project]\nname = "perfkit"\nversion = "0"\n\n'
    '[tool.pytest.ini_options]\npythonpath = ["."]\n',
    "perfkit.py": "def work(n):\n    return sum(i * i for i in range(n))\n",
    "bench.py": (
        "import time\n\nfrom perfkit import work\n\nstart = time.perf_counter()\n"
        "for _ in range(10):\n    work(20000)\nprint(time.perf_counter() - start)\n"
    ),
    "tests/test_perfkit.py": (
        "from perfkit import work\n\n\ndef test_work():\n    assert work(4) == 14\n"
    ),
}
# Same results, about twenty times the work.
PERF_SLOW = {
    "perfkit.py": (
        "def work(n):\n    total = 0\n    for i in range(n):\n"
        "        total += sum([i] * 20) // 20 * i\n    return total\n"
    )
}
