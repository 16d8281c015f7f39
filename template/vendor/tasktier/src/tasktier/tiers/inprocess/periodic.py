"""Periodic jobs: APScheduler 3.x in the API process, due times from the job model."""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime
from typing import Any

from ...model import (
    Periodic,
    Schedule,
    utcnow,
)
from . import metrics as tier_metrics
from .registry import JobRegistry, run_job

logger = logging.getLogger(__name__)


class PeriodicRunner:
    """Runs each periodic job once per schedule slot, through the job registry."""

    def __init__(self, registry: JobRegistry, timeout: float) -> None:
        self._registry = registry
        self._timeout = timeout
        self._seen: deque[tuple[str, str]] = deque(maxlen=1000)

    async def fire(self, job: Periodic) -> None:
        tick = job.schedule.slot(utcnow()).isoformat()
        if (job.task.name, tick) in self._seen:
            logger.warning("periodic %s already ran for tick %s; skipped", job.task.name, tick)
            return
        self._seen.append((job.task.name, tick))
        tier_metrics.ticked()
        record, _ = self._registry.add(
            job.task, (tick,), timeout=job.task.timeout_or(self._timeout)
        )
        await run_job(self._registry, record)


def start_scheduler(runner: PeriodicRunner, jobs: list[Periodic]) -> Any:
    """Start APScheduler with one job per periodic task: coalesced, one instance at a time.

    Its due times come from the job model's ``next_run`` (the same as every tier's and
    ``GET /schedules``), not from APScheduler's own cron parser, which numbers weekdays
    from Monday.
    """
    try:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.base import BaseTrigger
    except ImportError as exc:  # the project was generated with scheduling: none
        raise RuntimeError(
            "periodic jobs need APScheduler 3.x: run `uv add 'apscheduler>=3.10,<4'` "
            "or `copier update --data scheduling=interval`"
        ) from exc

    class NextRun(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 ships no type hints
        def __init__(self, schedule: Schedule) -> None:
            self.schedule = schedule

        def get_next_fire_time(
            self, previous_fire_time: datetime | None, now: datetime
        ) -> datetime:
            return self.schedule.next_run(previous_fire_time or now)

        def __str__(self) -> str:
            return str(self.schedule)

    scheduler = AsyncIOScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
    )
    for job in jobs:
        scheduler.add_job(
            runner.fire, NextRun(job.schedule), args=[job], id=job.task.name, name=job.task.name
        )
        logger.info("periodic %s scheduled: %s", job.task.name, job.schedule)
    scheduler.start()
    return scheduler
