"""Periodic jobs and their next runs, for operators: ``GET /schedules``."""

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from ...model import next_runs
from ..access import UNAUTHORIZED, OperatorOnly


class ScheduleOut(BaseModel):
    task: str
    schedule: str
    next_run: datetime  # ISO 8601, UTC


def router() -> APIRouter:
    router = APIRouter(
        prefix="/schedules", tags=["jobs"], dependencies=[OperatorOnly], responses=UNAUTHORIZED
    )

    @router.get("")
    async def schedules() -> list[ScheduleOut]:
        """Every periodic job (``@periodic``) with its next run, from the same function
        the scheduler takes its due times from."""
        return [
            ScheduleOut(task=p.task.name, schedule=str(p.schedule), next_run=when)
            for p, when in next_runs()
        ]

    return router
