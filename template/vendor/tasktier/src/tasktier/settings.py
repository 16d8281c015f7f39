"""The runtime's settings, read from the environment (or a ``.env`` file).

:class:`RuntimeSettings` holds the knobs every tier reads. A service's own settings class
extends it and hands the runtime its getter once, with :func:`use`; without that call the
runtime reads :class:`RuntimeSettings` from the environment itself.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["RuntimeSettings", "current", "use"]


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


_source: Callable[[], RuntimeSettings] | None = None


def use(source: Callable[[], RuntimeSettings]) -> None:
    """Read the settings from ``source`` from now on (the service's cached getter, so a
    test that clears its cache is seen here too)."""
    global _source
    _source = source


@lru_cache
def _from_environment() -> RuntimeSettings:
    return RuntimeSettings()


def current() -> RuntimeSettings:
    """The settings in force: the service's (see :func:`use`), else the environment's."""
    return _source() if _source is not None else _from_environment()
