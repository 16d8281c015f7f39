"""The runtime's test fixtures: its settings for one test, and its own app on the
in-process tier (``tasktier.http.create_app``), with a client that holds the operators'
token."""

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tasktier import settings as runtime_settings
from tasktier.http import create_app
from tasktier.settings import InProcessSettings
from tasktier.tiers.inprocess import TIER

OPERATOR_TOKEN = "runtime-test-operator-token"
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture
def settings() -> Iterator[InProcessSettings]:
    """The runtime's settings for one test (the environment and ``.env`` left out)."""
    chosen = InProcessSettings(
        _env_file=None, jobs_admin_token=OPERATOR_TOKEN, job_timeout_seconds=5
    )
    runtime_settings.use(lambda: chosen)
    yield chosen
    runtime_settings.use(None)


@pytest.fixture
def app(settings: InProcessSettings) -> FastAPI:
    return create_app(TIER, title="runtime tests")


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, headers=AS_OPERATOR) as client:
        yield client
