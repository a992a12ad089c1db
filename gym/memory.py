"""A repository's knowledge base: short entries learned by runs, versioned in the artifact store.

Each version is an artifact (JSON). The versions are markers in the store,
`memory-<repo key>.<number>`: a run records version n+1 by claiming its marker, which exactly one
writer can do, so workers and API replicas on different machines agree on the history without a
lock or a shared disk (a writer that loses the race reads the winner's version and tries again).
Entries are never deleted: one a later run contradicts is marked stale, with the run that did it.
A home from before the markers keeps its versions in `$RATCHET_HOME/memory/<key>.json`; they
are read as the first versions.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Protocol

MAX_ENTRIES_IN_CONTEXT = 40
RACE_RETRIES = 50


class Store(Protocol):
    def put_text(self, text: str) -> str: ...

    def get_text(self, ref: str) -> str: ...

    def claim(self, name: str, data: bytes = b"") -> bool: ...

    def marker(self, name: str) -> bytes | None: ...

    def markers(self, prefix: str) -> list[str]: ...


def repo_key(repo: str) -> str:
    return hashlib.sha256(repo.rstrip("/").encode()).hexdigest()[:20]


class MemoryContended(RuntimeError):
    """Other writers kept winning: the step is retried (a retry reads their versions)."""


class Memory:
    def __init__(self, home: Path, store: Store) -> None:
        self.legacy = home / "memory"
        self.store = store

    def _legacy(self, repo: str) -> list[dict[str, Any]]:
        try:
            data = json.loads((self.legacy / f"{repo_key(repo)}.json").read_text())
        except (FileNotFoundError, ValueError):
            return []
        return data if isinstance(data, list) else []

    def versions(self, repo: str) -> list[dict[str, Any]]:
        versions = self._legacy(repo)
        for name in self.store.markers(f"memory-{repo_key(repo)}."):
            held = self.store.marker(name)
            if held is None:
                continue
            version = json.loads(held)
            versions.append({"version": len(versions) + 1} | version)
        return versions

    def _latest(self, repo: str) -> tuple[int, str | None]:
        """(how many versions there are, the newest one's artifact): one listing, one read."""
        legacy = self._legacy(repo)
        names = self.store.markers(f"memory-{repo_key(repo)}.")
        for name in reversed(names):
            if (held := self.store.marker(name)) is not None:
                return len(legacy) + len(names), json.loads(held)["ref"]
        return len(legacy), legacy[-1]["ref"] if legacy else None

    def entries(self, repo: str) -> list[dict[str, Any]]:
        return self._entries_at(self._latest(repo)[1])

    def _entries_at(self, ref: str | None) -> list[dict[str, Any]]:
        if ref is None:
            return []
        entries: list[dict[str, Any]] = json.loads(self.store.get_text(ref))
        return entries

    def relevant(self, repo: str, goal: str) -> list[dict[str, Any]]:
        """Entries still believed, those sharing words with the goal first."""
        words = set(re.findall(r"[a-z_]{4,}", goal.lower()))
        live = [e for e in self.entries(repo) if not e.get("stale")]
        live.sort(key=lambda e: -len(words & set(re.findall(r"[a-z_]{4,}", e["text"].lower()))))
        return live[:MAX_ENTRIES_IN_CONTEXT]

    def record(
        self, repo: str, run_id: str, new: list[dict[str, str]], contradicts: list[str]
    ) -> int:
        """Add entries and mark contradicted ones stale; returns the new version number."""
        for _ in range(RACE_RETRIES):
            count, latest = self._latest(repo)
            entries = self._entries_at(latest)
            for entry in entries:
                if entry["id"] in contradicts and not entry.get("stale"):
                    entry["stale"] = True
                    entry["stale_since"] = run_id
            known = {e["text"] for e in entries}
            for item in new:
                if item["text"] in known:
                    continue
                entry = {"id": f"m{len(entries) + 1}", "kind": item["kind"], "text": item["text"]}
                entries.append(entry | {"run_id": run_id, "stale": False})
            ref = self.store.put_text(json.dumps(entries))
            number = count + 1
            held = json.dumps({"run_id": run_id, "ref": ref}).encode()
            if self.store.claim(f"memory-{repo_key(repo)}.{number:08d}", held):
                return number
        raise MemoryContended(f"memory of {repo}: {RACE_RETRIES} writers won before this one")


def as_context(entries: list[dict[str, Any]]) -> str:
    return "\n".join(f"[{e['id']}] ({e['kind']}) {e['text']}" for e in entries)
