"""The runtime's settings, read from the environment (or a ``.env`` file).

:class:`RuntimeSettings` holds the knobs every tier reads. A service's own settings class
extends it and hands the runtime its getter once, with :func:`use`; without that call the
runtime reads :class:`RuntimeSettings` from the environment itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["InProcessSettings", "RuntimeSettings", "current", "use"]


class RuntimeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    log_level: str = "INFO"
    # Log lines: `text` for people, `json` for a log collector (one object per line).
    log_format: Literal["text", "json"] = "text"
    # Job metrics (GET /metrics): off, nothing is recorded and /metrics is 404.
    metrics_enabled: bool = True
    # Request bodies larger than this get 413 (job arguments are small JSON documents).
    max_request_bytes: int = Field(default=65_536, gt=0)
    # The operators' token: the job routes (GET /jobs..., DELETE /jobs/{id}, POST
    # /jobs/{id}/retry, GET /schedules) need `Authorization: Bearer <it>`; empty: they
    # refuse everyone. It also signs the status URLs enqueues answer with.
    jobs_admin_token: SecretStr = SecretStr("")
    # The longest a job may run, in seconds (a task's own `@task(timeout=...)` wins).
    job_timeout_seconds: float = Field(default=30, gt=0)


class InProcessSettings(RuntimeSettings):
    """The in-process tier's (``background_tasks``): a job still running after
    JOB_TIMEOUT_SECONDS is reported failed (an async task is cancelled; a thread cannot be
    stopped and runs on unobserved)."""

    # How many jobs the in-process registry remembers for GET /jobs/{id}.
    job_registry_size: int = Field(default=10_000, gt=0)


S = TypeVar("S", bound=RuntimeSettings)


_source: Callable[[], RuntimeSettings] | None = None


def use(source: Callable[[], RuntimeSettings] | None) -> None:
    """Read the settings from ``source`` from now on (the service's cached getter, so a
    test that clears its cache is seen here too); None: from the environment again."""
    global _source
    _source = source


_from_environment: dict[type[RuntimeSettings], RuntimeSettings] = {}


def _read(kind: type[S]) -> S:
    settings = _from_environment.get(kind)
    if not isinstance(settings, kind):
        settings = _from_environment[kind] = kind()
    return settings


def current(kind: type[S] = RuntimeSettings) -> S:  # type: ignore[assignment]
    """The settings in force, as ``kind``: the service's (see :func:`use`) when they are
    one, else ``kind`` read from the environment."""
    if _source is not None:
        settings = _source()
        if isinstance(settings, kind):
            return settings
    return _read(kind)
