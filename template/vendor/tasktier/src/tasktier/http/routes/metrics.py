"""``GET /metrics``: job metrics in Prometheus text format (see :mod:`tasktier.metrics`).

Unauthenticated, as Prometheus scrapes it: it shows task names, queue names and counts,
never a job's arguments, results or errors. Keep the API port off the public internet,
or have the proxy in front refuse ``/metrics``.
"""

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse

from ...metrics import scrape
from ...model import PERIODIC
from ...settings import current
from ...tier import Tier

#: Prometheus's classic text format, which every Prometheus reads (the names here need
#: none of the newer format's escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def router(tier: Tier) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> Response:
        """Job counts, durations, queue depths, workers, the scheduler's last tick and
        whether the broker answered; always 200, within about BROKER_TIMEOUT_SECONDS (404
        when METRICS_ENABLED is false)."""
        if not current().metrics_enabled:
            raise HTTPException(status_code=404, detail="metrics are off (METRICS_ENABLED=false)")
        body = await scrape(
            tier.metrics.totals,
            lambda: tier.metrics.broker_state(request.app),
            within=tier.metrics.scrape_bound(),
            scheduling=bool(PERIODIC),
        )
        return Response(content=body, media_type=CONTENT_TYPE)

    return router
