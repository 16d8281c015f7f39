"""A generated project and its running stack, for the end-to-end tests.

- :func:`render` renders the template for a tier (:data:`TIERS`) with extra answers and
  installs the project from its lock (``uv sync --locked``): a :class:`Project`.
- :class:`Stack` runs any compose service of a project as a local process (``uv run
  <command>``, as the generated README says), pointed at fresh Redis and RabbitMQ servers
  (``tests/servers.py``, the ``redis_server`` and ``rabbitmq_server`` fixtures), serves the
  API on a free port, and, as a context manager, stops everything at the end and prints
  the tail of every log (pytest shows them for a failed test).

A new tier plugs in here: its answers in :data:`TIERS`, its broker in
:attr:`Project.broker`, its worker's readiness in :meth:`Stack.worker_ready`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import pytest

from helpers import (
    OPERATOR_TOKEN,
    Process,
    compose_services,
    free_port,
    servers_env,
    serving,
    uv_sync,
    wait_for,
)
from servers import RabbitMQServer, RedisServer

#: The answers that choose each tier (the ids of the tests parametrized by tier).
TIERS: dict[str, dict[str, Any]] = {
    "background_tasks": {"task_backend": "background_tasks"},
    "rq": {"task_backend": "rq"},
    "celery-redis": {"task_backend": "celery", "celery_broker": "redis"},
    "celery-rabbitmq": {"task_backend": "celery", "celery_broker": "rabbitmq"},
}
#: The tiers whose jobs outlive the API (a broker holds them).
DURABLE = [tier for tier in TIERS if tier != "background_tasks"]


class Project:
    """A rendered project: its directory, package, answers and compose services."""

    def __init__(self, path: Path, answers: Mapping[str, Any]) -> None:
        self.path = path
        self.answers = dict(answers)
        self.package: str = self.answers["package_name"]
        self.services: dict[str, Any] = compose_services(path)

    @property
    def backend(self) -> str:
        backend: str = self.answers["task_backend"]
        return backend

    @property
    def broker(self) -> str | None:
        """Where the jobs wait: ``redis`` or ``rabbitmq``; None for the in-process tier."""
        if self.backend == "celery":
            broker: str = self.answers["celery_broker"]
            return broker
        return "redis" if self.backend == "rq" else None

    @property
    def durable(self) -> bool:
        return self.broker is not None

    @property
    def tier(self) -> str:
        """Its key in :data:`TIERS`."""
        return f"celery-{self.broker}" if self.backend == "celery" else self.backend

    def command(self, service: str) -> str:
        """The compose ``command`` of ``service``."""
        command: str = self.services[service]["command"]
        return command

    def python_files(self, under: str = "") -> list[Path]:
        return sorted((self.path / under).rglob("*.py"))


def render(
    copie: Any,
    tier: str,
    *,
    prepare: Callable[[Project], None] | None = None,
    sync: bool = True,
    **answers: Any,
) -> Project:
    """Render ``tier`` (project name "Acme Orders") with ``answers`` added; ``prepare`` the
    project (add a team's code to it), then install it from its lock unless ``sync`` is
    false. ``copie`` is pytest-copie's ``copie`` or ``copie_session``."""
    result = copie.copy(extra_answers={"project_name": "Acme Orders", **TIERS[tier], **answers})
    assert result.exit_code == 0, result.exception
    project = Project(result.project_dir, result.answers)
    assert project.tier == tier, (tier, project.answers)
    if prepare is not None:
        prepare(project)
    if sync:
        uv_sync(project.path)
    return project


class Stack:
    """A project's compose services as local processes, on fresh servers for one test.

    Every process gets the servers' environment (``helpers.servers_env``: the broker and
    Redis URLs, passwords included), a temporary directory of the stack's own (``TMPDIR``:
    the logs' directory, so that files a process leaves there, a Celery worker's node name
    among them, never meet another test's), then ``env``, then its own. Each logs to
    ``<logs>/<name>.log``. Every process runs its compose command as it is: several Celery
    workers of one host, as ``honcho start -c worker=2`` runs them, each name themselves.
    """

    def __init__(
        self,
        project: Project,
        request: pytest.FixtureRequest,
        logs: Path,
        env: Mapping[str, str] | None = None,
        *,
        log_tail: int = 3000,
    ) -> None:
        self.project, self.logs, self.log_tail = project, logs, log_tail
        servers = servers_env(request, project.backend, project.answers)
        self.env = {**servers, "TMPDIR": str(logs), **(env or {})}
        self._redis: RedisServer | None = (
            request.getfixturevalue("redis_server") if project.durable else None
        )
        self.rabbitmq: RabbitMQServer | None = (
            request.getfixturevalue("rabbitmq_server") if project.broker == "rabbitmq" else None
        )
        self.port = free_port()
        #: What the API needs to listen on :attr:`port`, with the operators' token.
        self.api_env = {
            "UVICORN_HOST": "127.0.0.1",
            "UVICORN_PORT": str(self.port),
            "JOBS_ADMIN_TOKEN": OPERATOR_TOKEN,
        }
        #: The services started with :meth:`start`, in order.
        self.processes: list[Process] = []
        self._every: list[Process] = []  # every process made here: stop() stops them all
        self._served = 0  # APIs served, for their logs' names

    @property
    def redis(self) -> RedisServer:
        """The Redis of a durable tier: its queue, or Celery's result store."""
        assert self._redis is not None, f"{self.project.tier} runs without Redis"
        return self._redis

    @property
    def broker(self) -> RedisServer | RabbitMQServer:
        """The server the jobs go through."""
        return self.rabbitmq or self.redis

    def process(self, service: str, name: str, *, args: str = "", **env: str) -> Process:
        """Run ``service``'s compose command (with ``args`` appended), logging to
        ``<name>.log``; stopped by :meth:`stop` at the latest."""
        command = f"{self.project.command(service)} {args}".strip()
        process = Process(command, self.project.path, self.env | env, self.logs / f"{name}.log")
        self._every.append(process)
        return process

    def start(
        self, service: str, name: str | None = None, *, args: str = "", **env: str
    ) -> Process:
        """Start ``service`` (named ``<service>-<n>`` unless ``name`` is given), listed in
        :attr:`processes`."""
        name = name or f"{service}-{len(self.processes)}"
        process = self.process(service, name, args=args, **env)
        self.processes.append(process)
        return process

    def serve(self, **env: str) -> contextlib.AbstractContextManager[tuple[httpx.Client, Process]]:
        """The API on :attr:`port` until ``GET /health`` answers: a client for it and its
        process; stopped when the ``with`` block ends."""
        log = self.logs / f"api-{self._served}.log"
        self._served += 1
        api = self.env | self.api_env | env
        return serving(self.project.path, self.project.command("api"), self.port, api, log)

    def worker_ready(self, worker: Process) -> bool:
        """True once ``worker`` logged that it takes jobs."""
        return ("Listening on" if self.project.backend == "rq" else "ready.") in worker.log()

    def wait_ready(self, worker: Process, timeout: float = 60) -> None:
        """Wait until ``worker`` takes jobs; fail, with its log, if it exits first."""
        wait_for(
            lambda: self.worker_ready(worker) or worker.popen.poll() is not None,
            timeout,
            what="the worker to be ready",
        )
        assert worker.popen.poll() is None, worker.log()

    def stop(self) -> None:
        """Stop every process (SIGTERM to its group, SIGKILL after 30 s), in start order."""
        for process in self._every:
            process.stop()

    def print_logs(self) -> None:
        for log in sorted(self.logs.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-self.log_tail :]}")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        self.print_logs()
