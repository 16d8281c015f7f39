"""The FastAPI application: settings, logging, tracing, the job runtime and your routes
(every module of ``routes/`` that defines ``router``)."""

from fastapi import FastAPI
from tasktier.http import Tier
from tasktier.http import create_app as create_runtime_app
from tasktier.logs import configure_logging

from . import tasks, telemetry, tier_metrics
from .backend import job_queue, lifespan
from .config import get_settings
from .routes import all_routers


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    telemetry.setup_tracing("api")
    tasks.discover()  # import every task module, so periodic jobs are declared
    tier = Tier(job_queue=job_queue, lifespan=lifespan, metrics=tier_metrics)
    app = create_runtime_app(tier, title=settings.app_title, routes=all_routers())
    telemetry.instrument_app(app)
    return app


app = create_app()
