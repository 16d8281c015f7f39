"""Liveness and readiness."""

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ...model import BrokerUnavailable, JobQueue
from ...tier import Tier


def router(tier: Tier) -> APIRouter:
    QueueDep = Annotated[JobQueue, Depends(tier.job_queue)]
    router = APIRouter(prefix="/health", tags=["health"])

    @router.get("")
    async def health() -> dict[str, str]:
        """Liveness: the process answers. No I/O."""
        return {"status": "ok"}

    @router.get("/ready", responses={503: {"description": "Background jobs cannot be taken"}})
    async def ready(queue: QueueDep) -> JSONResponse:
        """Readiness: 200 when jobs can be taken, 503 with the reason when not."""
        try:
            await queue.check_ready()
        except BrokerUnavailable as exc:
            return JSONResponse(
                status_code=503, content={"status": "unavailable", "reason": str(exc)}
            )
        return JSONResponse({"status": "ready"})

    return router
