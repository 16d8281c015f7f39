"""Correlated logs, end to end, on every tier and broker: the project's API and worker
run as compose runs them with ``LOG_FORMAT=json``, a job is posted with an
``X-Request-ID``, and the JSON lines written while it ran (the worker's; the API's on the
in-process tier) carry its ``job_id``, ``task``, ``attempt`` and that request id. No log
line of any process shows the job's argument or its result (the email address), nor a
password.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.stack import TIERS, Project, Stack, render
from helpers import settled, wait_for

pytestmark = pytest.mark.e2e

TASK = "{package}.tasks.examples.send_welcome_email"


@pytest.fixture(scope="module", params=list(TIERS))
def project(copie_session: Any, request: pytest.FixtureRequest) -> Project:
    return render(copie_session, request.param, loss_tolerable=request.param == "background_tasks")


@pytest.fixture
def stack(
    project: Project, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Stack, httpx.Client]]:
    env = {"LOG_FORMAT": "json"}
    with Stack(project, request, tmp_path, env) as stack_, stack_.serve() as (client, _):
        if project.durable:
            stack_.wait_ready(stack_.start("worker"))
        yield stack_, client


#: A log record written as text: the project's text format, or Celery's own.
TEXT_RECORD = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ |\[\d{4}-\d\d-\d\d [^]]*: [A-Z]+/)"
)


def json_lines(log: Path) -> list[dict[str, Any]]:
    """The log records of ``log``, each a JSON object; a record written as text fails the
    test. Other lines are console output, not records (Celery's start-up banner, a Python
    warning printed before logging is set up)."""
    lines = []
    for number, text in enumerate(log.read_text().splitlines(), 1):
        try:
            line = json.loads(text)
        except ValueError:
            assert not TEXT_RECORD.match(text), f"{log.name}:{number} is a text record: {text!r}"
            continue
        assert isinstance(line, dict), (log.name, number, text)
        assert {"time", "level", "logger", "message"} <= line.keys(), (log.name, text)
        lines.append(line)
    assert lines, f"{log.name} has no JSON line"
    return lines


def runner_log(project: Project, tmp_path: Path) -> Path:
    """The log of the process that runs the jobs: a worker, or the in-process tier's API."""
    return tmp_path / ("worker-0.log" if project.durable else "api-0.log")


def task_lines(log: Path, job_id: str) -> list[dict[str, Any]]:
    """The example task's own records in ``log`` for ``job_id``."""
    return [
        line
        for line in json_lines(log)
        if line.get("job_id") == job_id and line["logger"].endswith("tasks.examples")
    ]


def test_job_log_lines_carry_the_job_and_the_request_id(
    stack: tuple[Stack, httpx.Client], project: Project, tmp_path: Path
) -> None:
    stack_, client = stack
    email = f"ada.{uuid.uuid4().hex[:10]}@example.com"
    rid = f"req-{uuid.uuid4().hex}"
    response = client.post(
        "/examples/welcome-email", json={"email": email}, headers={"X-Request-ID": rid}
    )
    assert response.status_code == 202, response.text
    assert response.headers["x-request-id"] == rid
    job_id = response.json()["job_id"]
    body = settled(client, job_id, timeout=60)
    assert body["status"] == "finished", body
    assert body["result"]["email"] == email  # it was there to be logged

    # A request id that is not safe to log is replaced, never echoed.
    bad = client.get("/health", headers={"X-Request-ID": "x\tinjected=1 " + "y" * 200})
    assert bad.status_code == 200
    assert bad.headers["x-request-id"] and "injected" not in bad.headers["x-request-id"]
    fresh = client.get("/health")
    assert fresh.headers["x-request-id"] not in (rid, bad.headers["x-request-id"])

    runner = runner_log(project, tmp_path)
    task = TASK.format(package=project.package)

    # The task's own logging call, in the work horse (rq), the pool process (Celery) or
    # the API's thread pool (in-process).
    (line,) = wait_for(lambda: task_lines(runner, job_id), 30, what="the task's own log line")
    assert line["task"] == task and line["attempt"] == 1 and line["request_id"] == rid, line

    # The backend's own lines about the execution (the project's or the runtime's) carry
    # the job's fields as well (rq's work horse logs none for a job that finishes at once).
    own = [
        line
        for line in json_lines(runner)
        if line["logger"].startswith((project.package, "tasktier")) and job_id in line["message"]
    ]
    assert own or project.tier == "rq", "no line of the backend's own names the job"
    for line in own:
        assert line.get("job_id") == job_id and line.get("attempt") == 1, line
        assert line.get("request_id") == rid, line

    # The API's own lines of the request carry its id (uvicorn's access line included).
    api_lines = json_lines(tmp_path / "api-0.log")
    access = [line for line in api_lines if line["logger"] == "uvicorn.access"]
    assert any(
        line.get("request_id") == rid and "welcome-email" in line["message"] for line in access
    ), access

    # No process logged the argument, the result or a password; every log is JSON.
    for log in sorted(tmp_path.glob("*.log")):
        text = log.read_text()
        assert email not in text, f"{log.name} shows the job's argument or result"
        if project.durable:
            assert stack_.redis.password not in text, f"{log.name} shows the Redis password"
        json_lines(log)


def test_a_delayed_job_keeps_its_request_id(
    stack: tuple[Stack, httpx.Client], project: Project, tmp_path: Path
) -> None:
    """A delayed job is published later (Celery: by a worker's dispatcher, from the job's
    record; rq: by its scheduler): the request id still reaches its log lines."""
    _, client = stack
    rid = f"req-{uuid.uuid4().hex}"
    response = client.post(
        "/examples/welcome-email",
        json={"email": "grace@example.com", "send_in_seconds": 1},
        headers={"X-Request-ID": rid},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    body = settled(client, job_id, timeout=60)
    assert body["status"] == "finished", body
    runner = runner_log(project, tmp_path)
    (line,) = wait_for(
        lambda: task_lines(runner, job_id), 30, what="the delayed task's own log line"
    )
    assert line["request_id"] == rid, line
