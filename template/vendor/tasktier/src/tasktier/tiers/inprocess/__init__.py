"""The in-process tier (``background_tasks``): jobs run in the API process, after the
response.

Each enqueued job is added to the request's FastAPI ``BackgroundTasks``; it runs
once the response has been sent, in the event loop (``async def`` tasks) or in the
threadpool (``def`` tasks, for blocking work). Each job is wrapped so that a
failure is logged and recorded and never stops the jobs queued after it.

What this tier keeps is best-effort, by design: the job registry behind
``GET /jobs/{id}`` lives in this process's memory, so every queued, scheduled and
running job, and the record of finished ones, is lost when the process stops. Several
API processes each keep their own registry and each run every periodic job, so this
tier is for a single API process. Periodic jobs run on APScheduler 3.x inside the
lifespan.

What the job API's options mean here:

* ``timeout`` (``@task(timeout=...)``, else ``JOB_TIMEOUT_SECONDS``): past it the job is
  ``failed`` with "TimeoutError: timed out after N s". An ``async def`` task is
  cancelled; a ``def`` task's thread cannot be stopped and runs on, unobserved.
* ``max_retries`` and ``retry_for`` are ignored: **this tier runs a task once**, a
  failure is final (a warning is logged once per task that declares ``max_retries``).
  ``queue.retry(job_id)`` runs a failed job again by hand.
* ``queue``: recorded in the job (``GET /jobs/{id}``), nothing more: every job runs in
  the API process, there are no separate worker pools to send it to.
* ``options(delay=...)``: an asyncio timer in the API process; the job is ``scheduled``
  until due. Like every job here it is lost on restart (a graceful stop logs its id).
* ``options(job_id=...)``: an id the registry still holds returns it and enqueues
  nothing. The registry lives on the event loop: its check-and-add has no ``await`` in
  between, so two racing requests cannot both add it.
* ``queue.cancel`` and ``queue.retry`` act on the registry; a retry (and a delayed job
  once due) has no request to ride on: it runs as an asyncio task the registry owns,
  which a graceful stop waits for as uvicorn waits for the requests' background tasks.
* ``queue.jobs(...)`` lists what the registry holds: the last ``JOB_REGISTRY_SIZE`` jobs,
  done ones (finished, failed, cancelled) forgotten first; there is no
  ``FAILED_JOB_TTL_SECONDS`` on this tier, a failed job is kept until its turn to go.
"""

from ...tier import Tier
from . import metrics
from .queue import InProcessQueue, history, job_queue, lifespan, standalone_queue
from .registry import JobRegistry

TIER = Tier(
    job_queue=job_queue,
    lifespan=lifespan,
    metrics=metrics,
    history=history,
    standalone_queue=standalone_queue,
)

__all__ = [
    "TIER",
    "InProcessQueue",
    "JobRegistry",
    "history",
    "job_queue",
    "lifespan",
    "metrics",
    "standalone_queue",
]
