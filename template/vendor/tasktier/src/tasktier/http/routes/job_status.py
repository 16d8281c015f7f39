"""``GET /jobs/{job_id}/status?key=...``: the job a client enqueued, read at the status URL
its enqueue answered (:func:`..access.status_url`), without operator powers. The key is
that job's alone: a guessed, altered or swapped URL gets the 404 of an unknown job."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from ...model import JobNotFound, JobQueue
from ...tier import Tier
from ..access import status_key_matches
from .jobs import NOT_FOUND, JobId, JobOut, known_form


def router(tier: Tier) -> APIRouter:
    """The status URL's route, on ``tier``'s queue."""
    QueueDep = Annotated[JobQueue, Depends(tier.job_queue)]
    router = APIRouter(prefix="/jobs", tags=["jobs"])

    @router.get(
        "/{job_id}/status",
        responses={**NOT_FOUND, 401: {"description": "JOBS_ADMIN_TOKEN is not set: closed"}},
    )
    async def job_status_by_key(
        job_id: JobId,
        queue: QueueDep,
        key: Annotated[str, Query(max_length=64, description="From the enqueue's status_url")],
    ) -> JobOut:
        """The job, as ``GET /jobs/{job_id}`` shows it to operators."""
        if not status_key_matches(job_id, key):
            raise HTTPException(status_code=404, detail=f"no job {job_id!r}")
        try:
            return JobOut.of(await queue.status(known_form(job_id)))
        except JobNotFound:
            raise HTTPException(status_code=404, detail=f"no job {job_id!r}") from None

    return router
