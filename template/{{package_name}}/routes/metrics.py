"""``GET /metrics``: job metrics in Prometheus text format (see ``metrics.py``).

Unauthenticated, as Prometheus scrapes it: it shows task names, queue names and counts,
never a job's arguments, results or errors. Keep the API port off the public internet,
or have the proxy in front refuse ``/metrics``.
"""

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from .. import tier_metrics
from ..job_model import PERIODIC
from ..metrics import scrape

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Job counts, durations, queue depths, workers, the scheduler's last tick and whether
    the broker answered; always 200, within about BROKER_TIMEOUT_SECONDS."""
    body = await scrape(
        tier_metrics.totals,
        lambda: tier_metrics.broker_state(request.app),
        within=tier_metrics.scrape_bound(),
        scheduling=bool(PERIODIC),
    )
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
