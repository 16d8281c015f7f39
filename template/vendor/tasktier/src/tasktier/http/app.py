"""The service's FastAPI application, built around its routes and its tier."""

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline

from ..settings import current
from ..tier import Tier
from . import access
from .body_limit import BodyLimit
from .errors import add_handlers
from .request_ids import RequestIds
from .routes import routers


def create_app(tier: Tier, *, title: str, routes: Iterable[APIRouter] = ()) -> FastAPI:
    """The app: the runtime's routes (jobs, status URLs, schedules, health, metrics) and
    ``routes``, JSON errors, a body limit, request ids, and ``tier``'s lifespan.

    It serves /docs (Swagger UI) and /redoc from its own copy of their JavaScript and CSS
    (under /static-offline-docs), not from a CDN: the docs render offline and behind a
    firewall that lets no browser reach the internet.
    """
    access.warn_if_closed()  # JOBS_ADMIN_TOKEN unset: the job routes refuse everyone
    app = FastAPIOffline(title=title, lifespan=tier.lifespan)
    add_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=current().max_request_bytes)
    app.add_middleware(RequestIds)  # outermost: every answer carries X-Request-ID
    for router in [*routers(tier), *routes]:
        app.include_router(router)
    return app
