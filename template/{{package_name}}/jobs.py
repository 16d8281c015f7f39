"""The one job API: routes and tasks import from here, whatever the tier.

Declare a task once with ``@task`` (or ``@periodic(...)``) in ``tasks/``; enqueue it
from a route through the ``JobQueueDep`` dependency; read its status with
``await queue.status(job_id)``. The tier-specific half lives in ``backend.py``.
"""

from typing import TYPE_CHECKING, Annotated, Any

from tasktier.model import (
    DEFAULT_QUEUE,
    PERIODIC,
    TASKS,
    BrokerUnavailable,
    Cron,
    Every,
    History,
    InvalidJobOption,
    JobContext,
    JobIdConflict,
    JobInfo,
    JobNotCancellable,
    JobNotFound,
    JobNotRetryable,
    JobQueue,
    JobStatus,
    NotJSONSerializable,
    Task,
    TransientError,
    current_job,
    periodic,
    task,
)

from .backend import history, job_queue, lifespan

if TYPE_CHECKING:
    from fastapi import Depends

    #: Route parameter type: ``queue: JobQueueDep``.
    JobQueueDep = Annotated[JobQueue, Depends(job_queue)]


def __getattr__(name: str) -> Any:
    """``JobQueueDep``, built when a route first imports it.

    Workers import this module through the tasks; building the dependency here, not at
    import, keeps FastAPI out of them (it is most of a worker's start-up time).
    """
    if name == "JobQueueDep":
        from fastapi import Depends

        dependency = Annotated[JobQueue, Depends(job_queue)]
        globals()[name] = dependency
        return dependency
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_QUEUE",
    "PERIODIC",
    "TASKS",
    "BrokerUnavailable",
    "Cron",
    "Every",
    "History",
    "InvalidJobOption",
    "JobContext",
    "JobIdConflict",
    "JobInfo",
    "JobNotCancellable",
    "JobNotFound",
    "JobNotRetryable",
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
