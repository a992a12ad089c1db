"""A small client of Ratchet's own API for the CLI, plus the live progress display."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import httpx

from ratchet.cli import view
from ratchet.settings import Settings

OPEN = {"running", "paused", "awaiting_approval"}
"""A run in any other status (completed, failed, cancelled, rejected, expired...) has ended."""
Json = dict[str, Any]


class ApiError(Exception):
    """The API refused a request, or could not be asked; the message is one line."""


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _detail(response: httpx.Response) -> str:
    """FastAPI's `detail`: a message, or (a validation error) a list of {loc, msg}."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        return response.text or response.reason_phrase
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if not isinstance(item, dict):
                parts.append(str(item))
                continue
            where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
            parts.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg")))
        return "; ".join(parts)
    return str(detail)


class RatchetApi:
    def __init__(self, settings: Settings, base_url: str | None = None) -> None:
        self.base_url = (base_url or settings.api_base).rstrip("/")
        try:
            self.http = httpx.Client(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {settings.token}"},
                timeout=30,
            )
        except (httpx.InvalidURL, TypeError, ValueError) as err:
            raise ApiError(f"bad API URL {self.base_url!r}: {_one_line(str(err))}") from None

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(
                f"{method} {path}: the Ratchet API at {self.base_url} did not answer in time"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as err:
            raise ApiError(
                f"cannot reach the Ratchet API at {self.base_url} ({_one_line(str(err), 200)}): "
                "is it running? `make up` starts it, or pass --api URL"
            ) from None
        if response.status_code >= 400:
            detail = _one_line(_detail(response))
            if response.status_code == 401:
                detail += " (the CLI sends RATCHET_API_TOKEN, else $RATCHET_HOME/api-token)"
            raise ApiError(f"{method} {path}: {response.status_code}: {detail}")
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Json:
        response = self._call(method, path, **kwargs)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ApiError(
                f"{method} {path}: {response.status_code}: the answer is not a JSON object "
                f"(is {self.base_url} the Ratchet API?)"
            )
        return data

    def submit(self, body: Json) -> Json:
        return self._json("POST", "/tasks", json=body)

    def investigate(self, body: Json) -> Json:
        return self._json("POST", "/investigations", json=body)

    def run(self, run_id: str) -> Json:
        return self._json("GET", f"/runs/{run_id}")

    def runs(self, params: dict[str, str | int]) -> Json:
        return self._json("GET", "/runs", params=params)

    def budget(self, run_id: str, body: Json) -> Json:
        return self._json("POST", f"/runs/{run_id}/budget", json=body)

    def cancel(self, run_id: str, reason: str) -> Json:
        return self._json("POST", f"/runs/{run_id}/cancel", json={"reason": reason})

    def approve(self, run_id: str, body: Json) -> Json:
        return self._json("POST", f"/runs/{run_id}/approve", json=body)

    def reject(self, run_id: str, body: Json) -> Json:
        return self._json("POST", f"/runs/{run_id}/reject", json=body)

    def fork(self, run_id: str, body: Json) -> Json:
        return self._json("POST", f"/runs/{run_id}/fork", json=body)

    def patch(self, run_id: str) -> str:
        return self._call("GET", f"/runs/{run_id}/patch").text

    def transcript(self, run_id: str) -> Json:
        return self._json("GET", f"/runs/{run_id}/transcript")


def follow(
    api: RatchetApi,
    run_id: str,
    *,
    poll_s: float = 0.5,
    timeout_s: float = 3600,
    out: TextIO | None = None,
) -> Json:
    """Poll a run until it ends (or `timeout_s` passes): a live table on a terminal, otherwise
    one line per step change and per status change, written to `out` (default stdout)."""
    out = out or sys.stdout
    deadline = time.monotonic() + timeout_s
    run = api.run(run_id)
    if out.isatty():
        from rich.console import Console
        from rich.live import Live

        console = Console(file=out)
        with Live(view.live_view(run), console=console, refresh_per_second=4) as live:
            while run["status"] in OPEN and time.monotonic() < deadline:
                time.sleep(poll_s)
                run = api.run(run_id)
                live.update(view.live_view(run))
        return run
    seen: dict[int, str] = {}
    status = ("running", "")
    while True:
        for index, step in enumerate(run["steps"]):
            line = view.step_line(step)
            if seen.get(index) != line:
                seen[index] = line
                print(f"  {line}", file=out, flush=True)
        if (run["status"], run.get("awaiting", "")) != status:
            status = (run["status"], run.get("awaiting", ""))
            hint = view.status_hint(run)
            print(f"status: {status[0]}" + (f" - {hint}" if hint else ""), file=out, flush=True)
        if run["status"] not in OPEN or time.monotonic() > deadline:
            return run
        time.sleep(poll_s)
        run = api.run(run_id)
