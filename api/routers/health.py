from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import TemporalClientDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(client: TemporalClientDep) -> dict[str, str] | JSONResponse:
    try:
        await client.service_client.check_health(timeout=timedelta(seconds=3))
    except Exception as err:  # any failure to answer means "not ready", with the reason
        return JSONResponse(status_code=503, content={"status": "unavailable", "detail": str(err)})
    return {"status": "ready"}
