"""The assertion-rewrite cache that sandboxed pytest runs read (they cannot write it)."""

from __future__ import annotations

from pathlib import Path

import hypothesis
import pytest
from _pytest.assertion.rewrite import PYC_TAIL

from gym.warm import NO_TESTS_COLLECTED, warm


def test_warming_caches_the_rewritten_plugin_modules_though_bytecode_writing_is_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # as on this machine and in the image
    cached = Path(hypothesis.__file__).parent / "__pycache__" / f"__init__{PYC_TAIL}"
    cached.unlink(missing_ok=True)  # a cold cache; a run meanwhile would only rewrite again
    assert warm().returncode == NO_TESTS_COLLECTED
    assert cached.is_file()
