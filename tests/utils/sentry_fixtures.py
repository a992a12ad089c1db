"""The signed Sentry webhook fixtures: the project carries its own copy (tests/fixtures/sentry),
so `make test` passes on a clone with nothing beside it. The shared fixtures beside the project's
root, when present, are used instead as an extra check (RATCHET_SHARED_DIR points elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path

OWN = Path(__file__).resolve().parents[1] / "fixtures" / "sentry"


def fixtures_dir() -> Path:
    shared = Path(
        os.environ.get("RATCHET_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared")
    )
    beside = shared / "fixtures" / "sentry"
    return beside if (beside / "_signatures.json").is_file() else OWN
