"""Jobs, for operators (``Authorization: Bearer <JOBS_ADMIN_TOKEN>``, :mod:`..access`):
``GET /jobs`` (the list), ``GET /jobs/{job_id}``, ``DELETE /jobs/{job_id}`` (cancel) and
``POST /jobs/{job_id}/retry``. A client reads its own job at its status URL
(:mod:`.job_status`)."""

from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel

from ...model import (
    JOB_ID,
    MAX_LIST_LIMIT,
    JobInfo,
    JobNotCancellable,
    JobNotFound,
    JobNotRetryable,
    JobQueue,
    JobStatus,
    check_list_query,
)
from ...redaction import redact, redact_value
from ...tier import Tier
from ..access import UNAUTHORIZED, OperatorOnly

JobId = Annotated[str, Path(description="The id the enqueue answered")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such job (never enqueued, or expired)"}
}


class JobOut(BaseModel):
    job_id: str
    status: JobStatus
    result: Any = None
    error: str | None = None
    task: str | None = None
    queue: str | None = None
    attempts: int = 0
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @classmethod
    def of(cls, info: JobInfo) -> "JobOut":
        """The job as the API shows it: secrets in its result and error masked, as in the
        logs (a driver's error may quote a URL with its password)."""
        return cls(
            job_id=info.job_id,
            status=info.status,
            result=redact_value(info.result),
            error=redact(info.error) if info.error is not None else None,
            task=info.task,
            queue=info.queue,
            attempts=info.attempts,
            enqueued_at=info.enqueued_at,
            started_at=info.started_at,
            ended_at=info.ended_at,
        )


class JobList(BaseModel):
    jobs: list[JobOut]


class Accepted(BaseModel):
    job_id: str


def known_form(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id):  # never enqueued: the same 404 as any unknown id
        raise HTTPException(status_code=404, detail=f"no job {job_id!r}")
    return job_id


def router(tier: Tier) -> APIRouter:
    """The operators' job routes, on ``tier``'s queue."""
    QueueDep = Annotated[JobQueue, Depends(tier.job_queue)]
    router = APIRouter(
        prefix="/jobs", tags=["jobs"], dependencies=[OperatorOnly], responses=UNAUTHORIZED
    )

    @router.get("", responses={422: {"description": "Unknown status or limit out of range"}})
    async def list_jobs(
        queue: QueueDep,
        status: Annotated[str | None, Query(description="Only jobs of this status")] = None,
        limit: Annotated[int, Query(description=f"1 to {MAX_LIST_LIMIT}")] = 50,
    ) -> JobList:
        """Known jobs, newest first. Durable tiers keep failed and cancelled jobs
        FAILED_JOB_TTL_SECONDS; the in-process tier as long as its registry holds them."""
        wanted = check_list_query(status, limit)  # InvalidJobOption: 422 naming the value
        return JobList(jobs=[JobOut.of(info) for info in await queue.jobs(wanted, limit)])

    @router.get("/{job_id}", responses=NOT_FOUND)
    async def job_status(job_id: JobId, queue: QueueDep) -> JobOut:
        try:
            return JobOut.of(await queue.status(known_form(job_id)))
        except JobNotFound:
            raise HTTPException(status_code=404, detail=f"no job {job_id!r}") from None

    @router.delete(
        "/{job_id}", responses={**NOT_FOUND, 409: {"description": "Started or finished already"}}
    )
    async def cancel_job(job_id: JobId, queue: QueueDep) -> JobOut:
        """Cancel a job that has not started: it never runs."""
        try:
            info = await queue.cancel(known_form(job_id))
        except JobNotFound:
            raise HTTPException(status_code=404, detail=f"no job {job_id!r}") from None
        except JobNotCancellable as exc:
            detail = (
                str(exc) or "it has started or ended; only a job not running yet can be cancelled"
            )
            raise HTTPException(status_code=409, detail=f"job {job_id!r}: {detail}") from None
        # background_jobs_total{outcome="cancelled"} (a blocking write on the durable tiers,
        # bounded by its client's timeout; a failed write is logged, never raised).
        await anyio.to_thread.run_sync(tier.metrics.record, info.task or "unknown", "cancelled")
        return JobOut.of(info)

    @router.post(
        "/{job_id}/retry",
        status_code=202,
        responses={**NOT_FOUND, 409: {"description": "The job has not failed"}},
    )
    async def retry_job(job_id: JobId, queue: QueueDep) -> Accepted:
        """Run a failed job again: same id and arguments; its attempts keep counting."""
        try:
            return Accepted(job_id=await queue.retry(known_form(job_id)))
        except JobNotFound:
            raise HTTPException(status_code=404, detail=f"no job {job_id!r}") from None
        except JobNotRetryable as exc:
            detail = str(exc) or "only a failed job can be retried"
            raise HTTPException(status_code=409, detail=f"job {job_id!r}: {detail}") from None

    return router
