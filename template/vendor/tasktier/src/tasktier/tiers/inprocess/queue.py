"""The job queue of a request, the lifespan that owns the registry, and histories."""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request

from ...model import (
    PERIODIC,
    BrokerUnavailable,
    History,
    JobInfo,
    JobQueue,
    JobStatus,
    P,
    Task,
    check_list_query,
    ensure_json,
    job_metadata,
)
from ...settings import InProcessSettings, current
from .periodic import PeriodicRunner, start_scheduler
from .registry import JobRegistry, run_job

logger = logging.getLogger(__name__)


class InProcessQueue:
    """The :class:`JobQueue` of this tier, bound to one request's BackgroundTasks."""

    def __init__(
        self, registry: JobRegistry, background: BackgroundTasks, settings: InProcessSettings
    ) -> None:
        self._registry = registry
        self._background = background
        self._timeout = settings.job_timeout_seconds

    async def enqueue(self, task: Task[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> str:
        # Same rule as the durable tiers: arguments must travel as JSON.
        ensure_json([list(args), kwargs], f"the arguments of {task.name}")
        if task.job_id is not None and self._registry.known(task.job_id, task):
            return task.job_id  # known: nothing new is enqueued
        if not self._registry.accepting:
            raise BrokerUnavailable("the API is shutting down and takes no new jobs")
        delayed = task.delay > 0
        record, _ = self._registry.add(
            task,
            tuple(args),
            dict(kwargs),
            timeout=task.timeout_or(self._timeout),
            job_id=task.job_id,
            status=JobStatus.SCHEDULED if delayed else JobStatus.QUEUED,
            metadata=job_metadata(),
        )
        if delayed:
            self._registry.schedule(record, task.delay)
        else:
            self._background.add_task(run_job, self._registry, record)
        return record.job_id

    async def status(self, job_id: str) -> JobInfo:
        return self._registry.info(job_id)

    async def cancel(self, job_id: str) -> JobInfo:
        return self._registry.cancel(job_id)

    async def retry(self, job_id: str) -> str:
        return self._registry.retry(job_id)

    async def jobs(self, status: JobStatus | None = None, limit: int = 50) -> list[JobInfo]:
        return self._registry.jobs(check_list_query(status, limit), limit)

    async def check_ready(self) -> None:
        if not self._registry.accepting:
            raise BrokerUnavailable("the API is shutting down")


def _registry(request: Request) -> JobRegistry:
    registry: JobRegistry = request.app.state.job_registry
    return registry


async def job_queue(request: Request, background_tasks: BackgroundTasks) -> JobQueue:
    """FastAPI dependency: the job queue for this request.

    ``async def``: FastAPI runs a plain ``def`` dependency in its threadpool, a thread
    hop on every request.
    """
    return InProcessQueue(_registry(request), background_tasks, current(InProcessSettings))


class _RunNow(BackgroundTasks):
    """Runs each added task at once, on the event loop (instead of after a response)."""

    def __init__(self) -> None:
        super().__init__()
        self.running: set[asyncio.Task[None]] = set()

    def add_task(self, func: Any, *args: Any, **kwargs: Any) -> None:
        job = asyncio.ensure_future(func(*args, **kwargs))
        self.running.add(job)
        job.add_done_callback(self.running.discard)


@asynccontextmanager
async def standalone_queue() -> AsyncIterator[JobQueue]:
    """A job queue outside a request (the bench command): jobs run in this process."""
    settings = current(InProcessSettings)
    background = _RunNow()
    registry = JobRegistry(settings.job_registry_size)
    yield InProcessQueue(registry, background, settings)
    if background.running:
        await asyncio.wait(background.running)
    await registry.close(grace=None)


class MemoryHistory:
    """A :class:`History` in this process's memory (lost on restart, like the registry)."""

    def __init__(self, maxlen: int) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=maxlen)

    def append(self, record: dict[str, Any]) -> None:
        self._items.appendleft(record)

    def items(self) -> list[dict[str, Any]]:
        return list(self._items)

    async def read(self) -> list[dict[str, Any]]:
        return self.items()


_histories: dict[str, MemoryHistory] = {}


def history(name: str, maxlen: int = 50) -> History:
    """The shared history called ``name`` (one per process on this tier)."""
    return _histories.setdefault(name, MemoryHistory(maxlen))


def _shutdown_grace() -> float | None:
    """How long a stop waits for the executions the registry runs itself (retries,
    delayed jobs once due): uvicorn's ``UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN``, which bounds
    its wait for the requests' background tasks; unset, until each ends (at its timeout
    at the latest), as uvicorn waits by default."""
    text = os.environ.get("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", "")
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the job registry and start the periodic jobs; report what a stop loses."""
    settings = current(InProcessSettings)
    registry = JobRegistry(settings.job_registry_size)
    app.state.job_registry = registry
    jobs = list(PERIODIC.values())
    scheduler = (
        start_scheduler(PeriodicRunner(registry, settings.job_timeout_seconds), jobs)
        if jobs
        else None
    )
    try:
        yield
    finally:
        registry.accepting = False
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        lost = await registry.close(_shutdown_grace())
        if lost:
            logger.warning(
                "stopping with %d unfinished in-process job(s), now lost: %s",
                len(lost),
                ", ".join(lost[:20]),
            )
