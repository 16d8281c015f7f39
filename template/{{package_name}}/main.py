"""The FastAPI application: settings, logging, tracing, the job runtime and your routes
(every module of ``routes/`` that defines ``router``)."""

from fastapi import FastAPI
from tasktier.http import create_app as create_runtime_app
from tasktier.logs import configure_logging

from . import tasks, telemetry
from .config import get_settings
from .jobs import TIER
from .routes import all_routers


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    telemetry.setup_tracing("api")
    tasks.discover()  # import every task module, so periodic jobs are declared
    app = create_runtime_app(TIER, title=settings.app_title, routes=all_routers())
    telemetry.instrument_app(app)
    return app


app = create_app()
