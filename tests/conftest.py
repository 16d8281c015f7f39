"""Shared fixtures of the template's test suite (pytest-copie provides `copie`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import REPO_ROOT
from servers import RabbitMQServer, RedisServer


def pytest_configure(config: pytest.Config) -> None:
    # pytest-copie renders the template found at --template (default "."): make it the repo.
    if getattr(config.option, "template", None) in (None, "."):
        config.option.template = str(REPO_ROOT)
    # One mypy cache for every generated project the suite type-checks (each test worker
    # and each project alike): their dependencies are the same files (uv links them from
    # its cache), so only a project's own modules are checked afresh. mypy replaces cache
    # files atomically, and rechecks any module whose source differs from the cached one.
    os.environ.setdefault("MYPY_CACHE_DIR", str(REPO_ROOT / ".tmp" / "mypy-cache"))


@pytest.fixture(scope="session", autouse=True)
def _tools_present() -> None:
    """The suite needs uv on PATH to build each generated project's environment."""
    assert shutil.which("uv"), "uv is not on PATH: run the suite with `bash scripts/test.sh`"


#: The password of every test Redis, as compose requires one (REDIS_PASSWORD): the
#: generated code is proven with auth on, the password in its URLs (``server.url``).
REDIS_PASSWORD = "e2e-redis-pw-7f3a9c"


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh Redis (AOF on, noeviction, a password) for one test; ``.kill()``/``.start()``
    to fault it. ``.url`` carries the password."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), password=REDIS_PASSWORD).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    """A fresh RabbitMQ node for one test (no guest user; ``.url`` has the credentials)."""
    server = RabbitMQServer(tmp_path_factory.mktemp("rabbitmq")).start()
    try:
        yield server
    finally:
        server.stop()


#: Markers of the slow tests, slowest first (tests/test_load.py goes before them all).
SLOW_FIRST = ("e2e", "update", "render")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slowest tests first. With ``--dist worksteal`` (scripts/test.sh)
    an idle worker takes tests queued for a busy one, so the quick tests fill the gaps at
    the end instead of a minute-long load test running alone on one worker. (With
    xdist's default ``load`` mode this order is worse: each worker is handed a long
    first chunk, and one of them gets all the slow tests.)"""

    def rank(item: pytest.Item) -> int:
        if item.path.name == "test_load.py":
            return 0
        marks = [i + 1 for i, name in enumerate(SLOW_FIRST) if item.get_closest_marker(name)]
        return min(marks, default=len(SLOW_FIRST) + 1)

    items.sort(key=rank)  # stable: the order within each rank is kept


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Figures the end-to-end tests measure (``record_property("measured", ...)``)."""
    lines = [
        str(value)
        for report in terminalreporter.stats.get("passed", [])
        for name, value in getattr(report, "user_properties", [])
        if name == "measured"
    ]
    if lines:
        terminalreporter.section("measured")
        for line in sorted(lines):
            terminalreporter.write_line(line)
