from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ratchet.settings import Settings


def test_defaults_and_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "RATCHET_API_PORT",
        "RATCHET_TEMPORAL_PORT",
        "RATCHET_UI_PORT",
        "TEMPORAL_ADDRESS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RATCHET_HOME", raising=False)
    s = Settings()
    assert (s.api_port, s.temporal_port, s.ui_port) == (8000, 7233, 8233)
    assert s.home == tmp_path / ".ratchet"
    assert s.temporal_target == "127.0.0.1:7233"
    monkeypatch.setenv("RATCHET_API_PORT", "9001")
    monkeypatch.setenv("RATCHET_UI_PORT", "9002")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.internal:7233")
    s = Settings()
    assert s.api_port == 9001 and s.ui_base == "http://127.0.0.1:9002"
    assert s.temporal_target == "temporal.internal:7233"


def test_token_is_generated_once_and_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RATCHET_API_TOKEN", raising=False)
    first = Settings(home=tmp_path).token
    assert len(first) >= 32
    assert Settings(home=tmp_path).token == first
    mode = (tmp_path / "api-token").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    monkeypatch.setenv("RATCHET_API_TOKEN", "from-env")
    assert Settings(home=tmp_path).token == "from-env"
