"""Job status: ``GET /jobs/{job_id}``."""

import re
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel

from ..jobs import JobNotFound, JobQueueDep, JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])

#: Job ids are made of these on every tier (RQ refuses to look up any other).
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class JobOut(BaseModel):
    job_id: str
    status: JobStatus
    result: Any = None
    error: str | None = None


@router.get("/{job_id}", responses={404: {"description": "No such job"}})
async def job_status(job_id: Annotated[str, Path(max_length=128)], queue: JobQueueDep) -> JobOut:
    if not JOB_ID.fullmatch(job_id):  # never enqueued: the same 404 as any unknown id
        raise HTTPException(status_code=404, detail=f"no job {job_id!r}")
    try:
        info = await queue.status(job_id)
    except JobNotFound:
        raise HTTPException(status_code=404, detail=f"no job {job_id!r}") from None
    return JobOut(job_id=info.job_id, status=info.status, result=info.result, error=info.error)
