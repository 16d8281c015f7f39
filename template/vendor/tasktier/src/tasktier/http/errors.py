"""How the API answers the job API's errors and invalid requests: JSON, never a stack
trace."""

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..model import BrokerUnavailable, InvalidJobOption, JobIdConflict

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


def add_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BrokerUnavailable, broker_unavailable)
    app.add_exception_handler(InvalidJobOption, invalid_job_option)
    app.add_exception_handler(JobIdConflict, job_id_conflict)
    app.add_exception_handler(RequestValidationError, invalid_request)
