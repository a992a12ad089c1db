"""Dependencies as `Annotated` aliases: settings, the Temporal client, the artifact store, auth."""

from __future__ import annotations

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
