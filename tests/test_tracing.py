"""OpenTelemetry tracing, end to end, on every tier and broker: a project generated with
``tracing`` runs its own API and worker (its ``tracing`` extra installed), exporting over
OTLP/HTTP to a receiver this test starts on a free loopback port
(``tests/e2e/otlp_receiver.py``, in the project's environment, which has
``opentelemetry-proto``). A job is posted; the request's server span and the job's
execution span must share one trace, the execution a descendant of the request's span.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.stack import TIERS, Project, Stack, render
from helpers import REPO_ROOT, Process, free_port, settled, wait_for

pytestmark = pytest.mark.e2e

RECEIVER = REPO_ROOT / "tests" / "e2e" / "otlp_receiver.py"
SERVER, CONSUMER = 2, 5  # OTLP span kinds


@pytest.fixture(scope="module", params=list(TIERS))
def project(copie_session: Any, request: pytest.FixtureRequest) -> Project:
    return render(
        copie_session,
        request.param,
        loss_tolerable=request.param == "background_tasks",
        tracing=True,
    )


@pytest.fixture
def traced(
    project: Project, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[httpx.Client, Path]]:
    """The API (and the worker) exporting to a receiver writing ``spans.jsonl``."""
    spans = tmp_path / "spans.jsonl"
    port = free_port()
    receiver = Process(
        f"python {RECEIVER} {port} {spans}", project.path, {}, tmp_path / "receiver.log"
    )
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: export soon, not every 5 s
    }
    try:
        wait_for(
            lambda: "receiving" in receiver.log() or receiver.popen.poll() is not None,
            60,
            what="the OTLP receiver",
        )
        assert receiver.popen.poll() is None, receiver.log()
        with Stack(project, request, tmp_path, env) as stack, stack.serve() as (client, _):
            if project.durable:
                stack.wait_ready(stack.start("worker"))
            yield client, spans
    finally:
        receiver.stop()


def read_spans(path: Path) -> list[dict[str, Any]]:
    """The spans received so far (a last line still being written is left for later)."""
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


@pytest.mark.parametrize("delay", [0, 1], ids=["now", "delayed"])
def test_a_jobs_execution_is_in_its_requests_trace(
    traced: tuple[httpx.Client, Path], project: Project, delay: int
) -> None:
    """Also a delayed job: published later (Celery: by a worker's dispatcher, from the
    job's record; rq: by its scheduler), it still carries its request's trace context."""
    client, path = traced
    body: dict[str, Any] = {"email": "ada@example.com"}
    if delay:
        body["send_in_seconds"] = delay
    response = client.post("/examples/welcome-email", json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert settled(client, job_id, timeout=60)["status"] == "finished"
    task = f"{project.package}.tasks.examples.send_welcome_email"

    def request_span() -> dict[str, Any] | None:
        return next(
            (
                s
                for s in read_spans(path)
                if s["kind"] == SERVER
                and s["attributes"].get("http.route") == "/examples/welcome-email"
            ),
            None,
        )

    def job_span() -> dict[str, Any] | None:
        # rq and in-process: "run <task>" (tracing.py); Celery: "run/<task>" (its
        # instrumentation), with the job's id among its attributes.
        return next(
            (
                s
                for s in read_spans(path)
                if s["kind"] == CONSUMER
                and s["name"] in (f"run {task}", f"run/{task}")
                and job_id in s["attributes"].values()
            ),
            None,
        )

    server = wait_for(request_span, 60, what="the request's server span")
    job = wait_for(job_span, 60, what="the job's execution span")
    slug = "acme-orders"
    assert server["service"] == f"{slug}-api"
    assert job["service"] == f"{slug}-{'worker' if project.durable else 'api'}"
    assert job["trace_id"] == server["trace_id"], (server, job)

    # The execution descends from the request's span: follow its parents up.
    by_id = {s["span_id"]: s for s in read_spans(path) if s["trace_id"] == server["trace_id"]}
    chain, parent = [], job["parent_span_id"]
    while parent and parent != server["span_id"]:
        assert parent in by_id, f"span {parent} of the chain {chain} was never exported"
        chain.append(by_id[parent]["name"])
        parent = by_id[parent]["parent_span_id"]
    assert parent == server["span_id"], (chain, server, job)
