"""Job status: ``GET /jobs/{job_id}``."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel

from ..jobs import JobNotFound, JobQueueDep, JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])


class JobOut(BaseModel):
    job_id: str
    status: JobStatus
    result: Any = None
    error: str | None = None


@router.get("/{job_id}", responses={404: {"description": "No such job"}})
async def job_status(job_id: Annotated[str, Path(max_length=128)], queue: JobQueueDep) -> JobOut:
    try:
        info = await queue.status(job_id)
    except JobNotFound:
        raise HTTPException(status_code=404, detail=f"no job {job_id!r}") from None
    return JobOut(job_id=info.job_id, status=info.status, result=info.result, error=info.error)
