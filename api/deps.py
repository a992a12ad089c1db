"""Dependencies as `Annotated` aliases: settings, the Temporal client, the artifact store, auth."""

from __future__ import annotations

import re
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from ratchet.artifacts import ArtifactStore
from ratchet.settings import Settings


class TemporalUnavailable(Exception):
    """Temporal cannot be reached; the API answers 503 and starts nothing."""


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.store
    return store


async def get_client(request: Request) -> Client:
    client: Client = await request.app.state.temporal.client()
    return client


# Scheduled runs' ids end in a timestamp (…-2026-11-21T18:04:56Z): ':' is allowed.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,200}$")


def check_run_id(run_id: str) -> str:
    """A run id from a URL, refused (404) unless it could be a workflow id Ratchet made."""
    if not _RUN_ID.match(run_id):
        raise HTTPException(404, f"no run {run_id[:100]!r}")
    return run_id


_bearer = HTTPBearer(auto_error=False)


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected: str = request.app.state.settings.token
    given = credentials.credentials if credentials else ""
    if not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong API token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
TemporalClientDep = Annotated[Client, Depends(get_client)]
Authenticated = Depends(require_token)
