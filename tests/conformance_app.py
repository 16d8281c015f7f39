"""The conformance suite's tasks and route, added to a rendered project as a team adds its own.

- ``tasks/conformance.py``: tasks that use every task option (``timeout``, ``max_retries``,
  ``queue``) and a weekly cron job. Each execution appends one JSON line
  ``{"task", "job_id", "attempt", "at", "pid"}`` to the file named by ``CONFORMANCE_FILE``
  (``O_APPEND``: concurrent writers never interleave), outside every broker: what the file
  counts does not depend on the system under test.
- ``routes/conformance.py``: ``POST /conformance/{name}`` with ``{"args", "delay", "job_id"}``
  enqueues ``conf.<name>`` through ``Task.options`` exactly as a team's route would; the values
  are passed through unchecked, so bad ones reach the job model (which must answer 422).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: JOB_TIMEOUT_SECONDS and JOB_MAX_RETRIES of the conformance stack: every task option below
#: differs from them, so a tier that ignored an option would be seen.
DEFAULT_TIMEOUT = 2
DEFAULT_RETRIES = 0
SHORT_TIMEOUT = 1  # conf.short: sleeps far longer than this
LONG_TIMEOUT = 8  # conf.long: sleeps LONG_SLEEP, past DEFAULT_TIMEOUT but within its own
LONG_SLEEP = 3
FLAKY_RETRIES = 2  # conf.flaky always raises TransientError
OTHER_QUEUE = "other"
WEEKLY = "0 3 * * 0"  # Sunday 03:00 UTC on every tier

TASK_MODULE = f'''\
"""Tasks of the template's conformance suite: every option of ``@task``."""

import json
import os
import time
from typing import Any

from ..jobs import Cron, TransientError, current_job, periodic, task


def _record(name: str) -> None:
    job = current_job()
    line = {{"task": name, "job_id": job.job_id, "attempt": job.attempt, "at": time.time(),
            "pid": os.getpid()}}
    fd = os.open(os.environ["CONFORMANCE_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\\n").encode())
    finally:
        os.close(fd)


@task(name="conf.echo")
def echo(value: Any = None) -> Any:
    _record("conf.echo")
    return value


@task(name="conf.short", timeout={SHORT_TIMEOUT})
def short(seconds: float) -> float:
    _record("conf.short")
    time.sleep(seconds)
    return seconds


@task(name="conf.long", timeout={LONG_TIMEOUT})
def long(seconds: float) -> float:
    _record("conf.long")
    time.sleep(seconds)
    return seconds


@task(name="conf.flaky", max_retries={FLAKY_RETRIES})
def flaky() -> None:
    _record("conf.flaky")
    raise TransientError(f"planned failure of attempt {{current_job().attempt}}")


@task(name="conf.boom", max_retries=5)
def boom() -> None:
    _record("conf.boom")
    raise ValueError("not worth a retry")


@task(name="conf.leak")
def leak(message: str) -> None:
    """Fails with ``message``: an error quoting secrets, as a database driver's may."""
    _record("conf.leak")
    raise ConnectionError(message)


@task(name="conf.other", queue="{OTHER_QUEUE}")
def other(value: Any = None) -> Any:
    _record("conf.other")
    return value


@periodic(Cron("{WEEKLY}"))
def weekly(tick: str) -> str:
    _record("conf.weekly")
    return tick
'''

ROUTE_MODULE = '''\
"""The conformance suite's route: enqueue ``conf.<name>`` with ``Task.options``."""

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from ..jobs import TASKS, JobQueueDep

router = APIRouter(prefix="/conformance", tags=["conformance"])


class EnqueueIn(BaseModel):
    args: list[Any] = []
    delay: Any = 0
    job_id: Any = None


class Accepted(BaseModel):
    job_id: str


@router.post("/{name}", status_code=202)
async def enqueue(name: str, body: EnqueueIn, queue: JobQueueDep) -> Accepted:
    declared = TASKS.get(f"conf.{name}")
    if declared is None:
        raise HTTPException(status_code=404, detail=f"no task conf.{name}")
    if body.delay != 0 or body.job_id is not None:
        declared = declared.options(delay=body.delay, job_id=body.job_id)
    return Accepted(job_id=await queue.enqueue(declared, *body.args))
'''


def add_conformance_app(project: Path, package: str) -> None:
    (project / package / "tasks" / "conformance.py").write_text(TASK_MODULE)
    (project / package / "routes" / "conformance.py").write_text(ROUTE_MODULE)


@dataclass(frozen=True)
class Execution:
    task: str
    job_id: str
    attempt: int
    at: float
    pid: int


def executions(path: Path) -> list[Execution]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [Execution(**json.loads(line)) for line in lines if line.strip()]


def runs_of(path: Path, job_id: str) -> list[Execution]:
    return [e for e in executions(path) if e.job_id == job_id]


def as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
