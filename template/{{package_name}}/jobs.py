"""The one job API: routes and tasks import from here, whatever the tier.

Declare a task once with ``@task`` (or ``@periodic(...)``) in ``tasks/``; enqueue it
from a route through the ``JobQueueDep`` dependency; read its status with
``await queue.status(job_id)``. The tier-specific half lives in ``backend.py``.
"""

from typing import Annotated

from fastapi import Depends

from .backend import history, job_queue, lifespan
from .job_model import (
    PERIODIC,
    TASKS,
    BrokerUnavailable,
    Cron,
    Every,
    History,
    JobContext,
    JobInfo,
    JobNotFound,
    JobQueue,
    JobStatus,
    NotJSONSerializable,
    Task,
    TransientError,
    current_job,
    periodic,
    task,
)

#: Route parameter type: ``queue: JobQueueDep``.
JobQueueDep = Annotated[JobQueue, Depends(job_queue)]

__all__ = [
    "PERIODIC",
    "TASKS",
    "BrokerUnavailable",
    "Cron",
    "Every",
    "History",
    "JobContext",
    "JobInfo",
    "JobNotFound",
    "JobQueue",
    "JobQueueDep",
    "JobStatus",
    "NotJSONSerializable",
    "Task",
    "TransientError",
    "current_job",
    "history",
    "lifespan",
    "periodic",
    "task",
]
