"""A small client of Ratchet's own API for the CLI, plus the live progress display."""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx

from ratchet.settings import Settings

TERMINAL = {"completed", "failed", "cancelled"}


class ApiError(Exception):
    """The API refused a request; the message is what it said, on one line."""


class RatchetApi:
    def __init__(self, settings: Settings, base_url: str | None = None) -> None:
        self.http = httpx.Client(
            base_url=base_url or settings.api_base,
            headers={"Authorization": f"Bearer {settings.token}"},
            timeout=30,
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise ApiError(f"cannot reach the Ratchet API at {self.http.base_url}: {err}") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(f"{method} {path}: {response.status_code}: {detail}")
        return response

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self._call("POST", "/tasks", json=body).json()
        return data

    def run(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", f"/runs/{run_id}").json()
        return data

    def patch(self, run_id: str) -> str:
        return self._call("GET", f"/runs/{run_id}/patch").text


def _step_line(step: dict[str, Any]) -> str:
    name = step["name"] + (f" (round {step['round']})" if step.get("round") else "")
    attempts = f" attempt {step['attempts']}" if step.get("attempts", 1) > 1 else ""
    detail = f" - {step['detail']}" if step.get("detail") else ""
    return f"{name:<20} {step['status']}{attempts}{detail}"


def follow(
    api: RatchetApi, run_id: str, *, poll_s: float = 0.5, timeout_s: float = 3600
) -> dict[str, Any]:
    """Poll a run until it ends, showing its steps live on a terminal and as lines otherwise."""
    deadline = time.monotonic() + timeout_s
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.live import Live
        from rich.table import Table

        def table(run: dict[str, Any]) -> Table:
            t = Table(title=f"{run_id}: {run['status']}", show_lines=False)
            for column in ("step", "status", "attempts", "detail"):
                t.add_column(column)
            for s in run["steps"]:
                style = {"completed": "green", "failed": "red", "running": "yellow"}.get(
                    s["status"]
                )
                name = s["name"] + (f" #{s['round']}" if s.get("round") else "")
                t.add_row(
                    name, s["status"], str(s["attempts"]), s.get("detail", "")[:80], style=style
                )
            return t

        run = api.run(run_id)
        with Live(table(run), console=Console(), refresh_per_second=4) as live:
            while run["status"] not in TERMINAL and time.monotonic() < deadline:
                time.sleep(poll_s)
                run = api.run(run_id)
                live.update(table(run))
        return run
    seen: dict[int, str] = {}
    while True:
        run = api.run(run_id)
        for index, step in enumerate(run["steps"]):
            line = _step_line(step)
            if seen.get(index) != line:
                seen[index] = line
                print(f"  {line}", flush=True)
        if run["status"] in TERMINAL or time.monotonic() > deadline:
            return run
        time.sleep(poll_s)
