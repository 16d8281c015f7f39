"""The in-memory job registry and how one job runs in it."""

from __future__ import annotations

import asyncio
import bisect
import inspect
import itertools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
import anyio.to_thread

from ...model import (
    CANCELLABLE,
    FINAL,
    BrokerUnavailable,
    JobContext,
    JobIdConflict,
    JobInfo,
    JobNotCancellable,
    JobNotFound,
    JobNotRetryable,
    JobStatus,
    Task,
    as_job,
    ensure_json,
    running_as,
    timed_out,
    utcnow,
)
from . import metrics as tier_metrics

logger = logging.getLogger(__name__)


#: Statuses whose record the registry forgets first when it is full.
DONE = (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(eq=False)
class _Record:
    """One job: what to run (kept for ``queue.retry``) and what happened so far."""

    job_id: str
    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    timeout: float
    seq: int  # enqueue order: the list's "newest first"
    enqueued_at: datetime = field(default_factory=utcnow)
    status: JobStatus = JobStatus.QUEUED
    attempts: int = 0
    result: Any = None
    error: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    #: What travels with the job (the enqueueing request's id, a trace context).
    metadata: dict[str, str] = field(default_factory=dict)
    #: The asyncio task the registry runs it in (a delay's timer, a retry), if any.
    runner: asyncio.Task[None] | None = None

    def info(self) -> JobInfo:
        return JobInfo(
            job_id=self.job_id,
            status=self.status,
            result=self.result,
            error=self.error,
            task=self.task.name,
            queue=self.task.queue,
            attempts=self.attempts,
            enqueued_at=self.enqueued_at,
            started_at=self.started_at,
            ended_at=self.ended_at,
        )


class JobRegistry:
    """The in-memory record of recent jobs, bounded to ``max_jobs`` entries.

    When full, the oldest finished, failed or cancelled job is forgotten first; only
    when every job is unfinished does the oldest go (its job still runs, unrecorded).
    Every method runs on the event loop and none awaits while it reads and changes the
    registry, so each is atomic with respect to the others.

    Costs: one index per status (job ids sorted by enqueue order), so adding, a status
    change and eviction cost O(log n) plus a list insertion, and ``jobs(status, limit)``
    reads ``limit`` entries, whatever the registry holds.
    """

    def __init__(self, max_jobs: int) -> None:
        self.max_jobs = max_jobs
        self.accepting = True
        self._jobs: OrderedDict[str, _Record] = OrderedDict()  # enqueue order
        self._by_status: dict[JobStatus, list[tuple[int, str]]] = {s: [] for s in JobStatus}
        self._seq = itertools.count()
        self._owned: dict[asyncio.Task[None], _Record] = {}
        self._warned: set[str] = set()

    # --- records ---------------------------------------------------------------------

    def add(
        self,
        task: Task[Any, Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float,
        job_id: str | None = None,
        status: JobStatus = JobStatus.QUEUED,
        metadata: dict[str, str] | None = None,
    ) -> tuple[_Record, bool]:
        """Record a new job; ``(record, True)``. With ``job_id`` already known: that
        job's record and ``False``, and nothing is added; :class:`JobIdConflict` when
        that job is of another task."""
        if job_id is not None and self.known(job_id, task):
            return self._jobs[job_id], False
        if task.max_retries and task.name not in self._warned:
            self._warned.add(task.name)
            logger.warning(
                "task %s declares max_retries=%d: the background_tasks tier runs a task "
                "once and never retries it (a worker tier, rq or celery, retries)",
                task.name,
                task.max_retries,
            )
        record = _Record(
            job_id=job_id or uuid.uuid4().hex,
            task=task,
            args=args,
            kwargs=dict(kwargs or {}),
            timeout=timeout,
            seq=next(self._seq),
            status=status,
            metadata=dict(metadata or {}),
        )
        self._jobs[record.job_id] = record
        bisect.insort(self._by_status[status], (record.seq, record.job_id))
        self._evict()
        return record, True

    def _evict(self) -> None:
        while len(self._jobs) > self.max_jobs:
            # The oldest done job goes first; when every job is unfinished, the oldest.
            heads = [index[0] for s in DONE if (index := self._by_status[s])]
            job_id = min(heads)[1] if heads else next(iter(self._jobs))
            record = self._jobs.pop(job_id)
            self._unindex(record)

    def _unindex(self, record: _Record) -> None:
        index = self._by_status[record.status]
        at = bisect.bisect_left(index, (record.seq, record.job_id))
        if at < len(index) and index[at] == (record.seq, record.job_id):
            del index[at]

    def _set_status(self, record: _Record, status: JobStatus) -> None:
        held = self._jobs.get(record.job_id) is record  # False once evicted
        if held:
            self._unindex(record)
        record.status = status
        if held:
            bisect.insort(self._by_status[status], (record.seq, record.job_id))

    def known(self, job_id: str, task: Task[Any, Any] | None = None) -> bool:
        """Whether ``job_id`` is held; :class:`JobIdConflict` when it is held by a job of
        another ``task``."""
        record = self._jobs.get(job_id)
        if record is not None and task is not None and record.task.name != task.name:
            raise JobIdConflict(job_id, task.name, record.task.name)
        return record is not None

    def get(self, job_id: str) -> _Record:
        record = self._jobs.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record

    def info(self, job_id: str) -> JobInfo:
        return self.get(job_id).info()

    def waiting_jobs(self) -> list[tuple[str, datetime]]:
        """``(queue, enqueued_at)`` of each job queued or retrying, not started yet (for
        the metrics; safe to call from another thread: it reads copies)."""
        ids = [*self._by_status[JobStatus.QUEUED], *self._by_status[JobStatus.RETRYING]]
        found = (self._jobs.get(job_id) for _, job_id in ids)
        return [(r.task.queue, r.enqueued_at) for r in found if r is not None]

    # --- one execution ---------------------------------------------------------------

    def start(self, record: _Record) -> int | None:
        """Mark an execution started; its attempt number, or ``None`` when the job must
        not run (cancelled in the meantime)."""
        if record.status not in CANCELLABLE:
            return None
        self._set_status(record, JobStatus.STARTED)
        record.attempts += 1
        record.started_at = utcnow()
        record.result = record.error = record.ended_at = None
        return record.attempts

    def finish(self, record: _Record, result: Any) -> None:
        if record.status is JobStatus.STARTED:
            record.result, record.ended_at = result, utcnow()
            self._set_status(record, JobStatus.FINISHED)

    def fail(self, record: _Record, error: str) -> None:
        if record.status is JobStatus.STARTED:
            record.error, record.ended_at = error, utcnow()
            self._set_status(record, JobStatus.FAILED)

    # --- the job API -----------------------------------------------------------------

    def schedule(self, record: _Record, delay: float) -> None:
        """Run ``record`` in ``delay`` seconds (it is ``scheduled`` until then)."""
        self._own(record, self._run_later(record, delay))

    async def _run_later(self, record: _Record, delay: float) -> None:
        await asyncio.sleep(delay)
        await run_job(self, record)

    def cancel(self, job_id: str) -> JobInfo:
        record = self.get(job_id)
        if record.status not in CANCELLABLE:
            raise JobNotCancellable(
                f"it is {record.status.value}; only a job not running yet can be cancelled"
            )
        record.ended_at = utcnow()
        self._set_status(record, JobStatus.CANCELLED)
        if record.runner is not None:  # a delay's timer or a pending retry: not needed
            record.runner.cancel()
        logger.info("job %s (%s) cancelled", job_id, record.task.name)
        return record.info()

    def retry(self, job_id: str) -> str:
        record = self.get(job_id)
        if record.status is not JobStatus.FAILED:
            raise JobNotRetryable(f"it is {record.status.value}; only a failed job can be retried")
        if not self.accepting:
            raise BrokerUnavailable("the API is shutting down and takes no new jobs")
        record.ended_at = None
        self._set_status(record, JobStatus.RETRYING)
        self._own(record, run_job(self, record))
        logger.info("job %s (%s) retried by request", job_id, record.task.name)
        return job_id

    def jobs(self, status: JobStatus | None = None, limit: int = 50) -> list[JobInfo]:
        """Newest first by enqueue time; reads ``limit`` records at most."""
        if status is None:
            newest = itertools.islice(reversed(self._jobs.values()), limit)
            return [record.info() for record in newest]
        index = self._by_status[status]
        return [self._jobs[job_id].info() for _, job_id in reversed(index[-limit:])]

    def unfinished(self) -> list[str]:
        """Every job not finished, failed or cancelled (queued, scheduled, retrying,
        started), in enqueue order."""
        # The registry's own timers and retries too, should their record be evicted.
        ids = {r.job_id: r.seq for r in self._owned.values() if r.status not in FINAL}
        for status in JobStatus:
            if status not in FINAL:
                ids.update((job_id, seq) for seq, job_id in self._by_status[status])
        return sorted(ids, key=ids.__getitem__)

    # --- the asyncio tasks the registry owns -----------------------------------------

    def _own(self, record: _Record, work: Coroutine[Any, Any, None]) -> None:
        runner = asyncio.get_running_loop().create_task(work, name=f"job {record.job_id}")
        record.runner = runner
        self._owned[runner] = record

        def done(finished: asyncio.Task[None]) -> None:
            self._owned.pop(finished, None)
            if record.runner is finished:
                record.runner = None

        runner.add_done_callback(done)

    async def close(self, grace: float | None) -> list[str]:
        """Stop: take no new jobs, drop the timers of scheduled jobs, give the executions
        the registry runs (retries, delayed jobs once due) up to ``grace`` seconds to end
        (``None``: until each ends, at its timeout at the latest); the ids of the jobs
        this leaves unfinished, which are lost."""
        self.accepting = False
        timers = [t for t, r in self._owned.items() if r.status is JobStatus.SCHEDULED]
        for timer in timers:
            timer.cancel()
        running = [t for t in self._owned if t not in timers]
        if running:
            await asyncio.wait(running, timeout=grace)
        lost = self.unfinished()
        leftover = list(self._owned)
        for runner in leftover:
            runner.cancel()
        if leftover:  # cancelled: they end at their next await
            await asyncio.wait(leftover, timeout=1)
        return lost


async def run_job(registry: JobRegistry, record: _Record) -> None:
    """Run one execution of a job and record its outcome; never raises (except when
    cancelled from outside: a stopping server), so later jobs still run.

    A job cancelled before this starts it does not run.
    """
    attempt = registry.start(record)
    if attempt is None:
        logger.info("job %s (%s) was cancelled: not run", record.job_id, record.task.name)
        return
    task, job_id = record.task, record.job_id
    context = JobContext(job_id, attempt, task.name, record.metadata.get("request_id"))
    with as_job(context):  # this function's lines carry the job's fields too
        logger.info("job %s (%s) started", job_id, task.name)
        began = time.monotonic()
        try:
            with anyio.move_on_after(record.timeout) as deadline:
                result = await _call(task, context, record)
            if deadline.cancelled_caught:
                # An async task was cancelled; a thread cannot be, and runs on unobserved.
                registry.fail(record, timed_out(record.timeout))
                tier_metrics.record(task.name, "failed", time.monotonic() - began)
                logger.error("job %s (%s) timed out after %g s", job_id, task.name, record.timeout)
                return
            ensure_json(result, f"the result of {task.name}")
        except Exception as exc:
            registry.fail(record, f"{type(exc).__name__}: {exc}")
            tier_metrics.record(task.name, "failed", time.monotonic() - began)
            logger.exception("job %s (%s) failed", job_id, task.name)
        else:
            registry.finish(record, result)
            tier_metrics.record(task.name, "finished", time.monotonic() - began)
            logger.info("job %s (%s) finished", job_id, task.name)


async def _call(task: Task[Any, Any], context: JobContext, record: _Record) -> Any:
    args, kwargs, metadata = record.args, record.kwargs, record.metadata
    if inspect.iscoroutinefunction(task.func):
        with running_as(context, metadata):
            return await task.func(*args, **kwargs)

    def in_thread() -> Any:
        with running_as(context, metadata):
            return task.func(*args, **kwargs)

    return await anyio.to_thread.run_sync(in_thread, abandon_on_cancel=True)
