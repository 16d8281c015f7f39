"""The FastAPI application: settings, logging, the job backend's lifespan, routers."""

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from . import access, tasks, telemetry
from .body_limit import BodyLimit
from .config import get_settings
from .jobs import BrokerUnavailable, InvalidJobOption, JobIdConflict, lifespan
from .logs import configure_logging
from .request_ids import RequestIds
from .routes import all_routers

logger = logging.getLogger(__name__)


async def broker_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """An enqueue or status read while the queue is unreachable: 503, never a stack trace."""
    return JSONResponse(
        status_code=503,
        content={"detail": f"background jobs are unavailable: {exc}"},
        headers={"Retry-After": "5"},
    )


async def invalid_job_option(request: Request, exc: Exception) -> JSONResponse:
    """A task option or job query out of range (``options(delay=-1)``, a bad job id or
    status filter): 422 naming the value; nothing was enqueued."""
    return JSONResponse(status_code=422, content={"detail": str(exc)})


async def job_id_conflict(request: Request, exc: Exception) -> JSONResponse:
    """A caller-chosen job id already held by a job of another task: 409, nothing was
    enqueued. Which task holds it is logged, not shown."""
    if isinstance(exc, JobIdConflict):
        logger.warning(
            "job id %r asked for %s is held by a job of %s", exc.job_id, exc.task, exc.held_by
        )
    return JSONResponse(status_code=409, content={"detail": str(exc)})


def _finite_or_text(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """A request that fails validation: 422 naming each problem, as FastAPI answers, but
    always as JSON. Python's JSON reader takes ``NaN`` and ``Infinity``, which JSON has not:
    such a value, quoted back in the answer, is written as text (FastAPI's own answer
    failed on it, a 500)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail: Any = jsonable_encoder(errors, custom_encoder={float: _finite_or_text})
    return JSONResponse(status_code=422, content={"detail": detail})


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    telemetry.setup_tracing("api")
    tasks.discover()  # import every task module, so periodic jobs are declared
    access.warn_if_closed()  # JOBS_ADMIN_TOKEN unset: the job routes refuse everyone
    # FastAPI with /docs (Swagger UI) and /redoc served from this app's own copy of their
    # JavaScript and CSS (under /static-offline-docs), not from a CDN: the docs render
    # offline and behind a firewall that lets no browser reach the internet.
    app = FastAPIOffline(title=settings.app_title, lifespan=lifespan)
    app.add_exception_handler(BrokerUnavailable, broker_unavailable)
    app.add_exception_handler(InvalidJobOption, invalid_job_option)
    app.add_exception_handler(JobIdConflict, job_id_conflict)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestIds)  # outermost: every answer carries X-Request-ID
    for router in all_routers():
        app.include_router(router)
    telemetry.instrument_app(app)
    return app


app = create_app()
