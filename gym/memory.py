"""A repository's knowledge base: short entries learned by runs, versioned in the artifact store.

Each version is an artifact (JSON); a small index file per repository under $RATCHET_HOME/memory
lists the versions, newest last. Entries are never deleted: one a later run contradicts is
marked stale, with the run that did it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

MAX_ENTRIES_IN_CONTEXT = 40


class Store(Protocol):
    def put_text(self, text: str) -> str: ...

    def get_text(self, ref: str) -> str: ...


def repo_key(repo: str) -> str:
    return hashlib.sha256(repo.rstrip("/").encode()).hexdigest()[:20]


class Memory:
    def __init__(self, home: Path, store: Store) -> None:
        self.root = home / "memory"
        self.store = store

    def _index(self, repo: str) -> Path:
        return self.root / f"{repo_key(repo)}.json"

    @contextmanager
    def _locked(self, repo: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self._index(repo).with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def versions(self, repo: str) -> list[dict[str, Any]]:
        try:
            data = json.loads(self._index(repo).read_text())
        except (FileNotFoundError, ValueError):
            return []
        return data if isinstance(data, list) else []

    def entries(self, repo: str) -> list[dict[str, Any]]:
        versions = self.versions(repo)
        if not versions:
            return []
        entries: list[dict[str, Any]] = json.loads(self.store.get_text(versions[-1]["ref"]))
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
        with self._locked(repo):
            entries = self.entries(repo)
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
            versions = self.versions(repo)
            ref = self.store.put_text(json.dumps(entries))
            versions.append({"version": len(versions) + 1, "run_id": run_id, "ref": ref})
            self._index(repo).write_text(json.dumps(versions))
            return len(versions)


def as_context(entries: list[dict[str, Any]]) -> str:
    return "\n".join(f"[{e['id']}] ({e['kind']}) {e['text']}" for e in entries)
