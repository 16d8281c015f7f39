"""The runtime's routes: jobs, status URLs, schedules, health and metrics."""

from fastapi import APIRouter

from ...tier import Tier
from . import health, job_status, jobs, metrics, schedules


def routers(tier: Tier) -> list[APIRouter]:
    return [
        health.router(tier),
        job_status.router(tier),
        jobs.router(tier),
        metrics.router(tier),
        schedules.router(),
    ]
