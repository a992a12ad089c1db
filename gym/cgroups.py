"""Per-run control groups: a hard cap on processes and memory, and a kill that reaches every
process of a run, even one that left its process group.

Works on cgroup v2 and on v1 (pids and memory hierarchies) when the worker may create groups
(root, or a delegated subtree); otherwise `CgroupLimits.create` returns None and only rlimits apply.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


@dataclass
class CgroupLimits:
    dirs: list[Path]
    description: str
    version: int

    @classmethod
    def create(cls, pids_max: int, memory_bytes: int, root: Path = ROOT) -> CgroupLimits | None:
        name = f"ratchet-{uuid.uuid4().hex[:12]}"
        try:
            if (root / "cgroup.controllers").exists():
                group = root / name
                group.mkdir()
                made = cls([group], "", 2)
                made._write(group / "pids.max", str(pids_max))
                made._write(group / "memory.max", str(memory_bytes))
                made._write(group / "memory.swap.max", "0", required=False)
            elif (root / "pids").is_dir() and (root / "memory").is_dir():
                pids, memory = root / "pids" / name, root / "memory" / name
                pids.mkdir()
                made = cls([pids], "", 1)
                memory.mkdir()
                made.dirs.append(memory)
                made._write(pids / "pids.max", str(pids_max))
                made._write(memory / "memory.limit_in_bytes", str(memory_bytes))
            else:
                return None
        except OSError:
            with contextlib.suppress(UnboundLocalError):
                made.remove()
            return None
        made.description = (
            f"cgroup v{made.version}: pids.max={pids_max}, memory={memory_bytes // 2**20} MiB"
        )
        return made

    @staticmethod
    def _write(path: Path, value: str, *, required: bool = True) -> None:
        try:
            path.write_text(value)
        except OSError:
            if required:
                raise

    def join(self, pid: int = 0) -> None:
        """Move `pid` in: by default the calling process (called in the child before exec)."""
        for group in self.dirs:
            (group / "cgroup.procs").write_text(str(pid or os.getpid()))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for group in self.dirs:
            with contextlib.suppress(OSError):
                found |= {int(p) for p in (group / "cgroup.procs").read_text().split()}
        return found

    def kill_all(self, attempts: int = 100) -> None:
        for _ in range(attempts):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def limit_hits(self) -> list[str]:
        """Which limits were hit during the run ("processes", "memory")."""
        hits = []
        for group in self.dirs:
            events = group / "pids.events"
            if events.exists() and _count(events.read_text(), "max") > 0:
                hits.append("processes")
            if self.version == 2 and (group / "memory.events").exists():
                text = (group / "memory.events").read_text()
                if _count(text, "oom_kill") > 0 or _count(text, "max") > 0:
                    hits.append("memory")
            elif (group / "memory.failcnt").exists():
                with contextlib.suppress(ValueError):
                    if int((group / "memory.failcnt").read_text()) > 0:
                        hits.append("memory")
        return hits

    def remove(self) -> None:
        self.kill_all()
        for group in self.dirs:
            with contextlib.suppress(OSError):
                group.rmdir()


def _count(events: str, key: str) -> int:
    for line in events.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            with contextlib.suppress(ValueError):
                return int(value)
    return 0
