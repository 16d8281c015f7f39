"""End to end, background_tasks tier: the compose `api` command runs as a real uvicorn
process (`uv run <command>`, as the generated README says) and is exercised over HTTP."""

from __future__ import annotations

import itertools
import re
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import (
    Process,
    compose_services,
    free_port,
    job_status,
    late,
    serving,
    settled,
    uv_sync,
    wait_for,
)

pytestmark = pytest.mark.e2e


def _render(copie_session: Any, **answers: Any) -> tuple[Path, str, str]:
    result = copie_session.copy(extra_answers={"project_name": "Acme Orders", **answers})
    assert result.exit_code == 0, result.exception
    project: Path = result.project_dir
    uv_sync(project)
    command = compose_services(project)["api"]["command"]
    return project, command, result.answers["package_name"]


@pytest.fixture(scope="module")
def interval_project(copie_session: Any) -> tuple[Path, str, str]:
    return _render(copie_session, scheduling="interval")


@pytest.fixture(scope="module")
def api(
    interval_project: tuple[Path, str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, Process]]:
    project, command, _ = interval_project
    port = free_port()
    env = {
        "UVICORN_HOST": "127.0.0.1",
        "UVICORN_PORT": str(port),
        "EXAMPLE_HEARTBEAT_SECONDS": "2",
        "JOB_TIMEOUT_SECONDS": "10",
    }
    log = tmp_path_factory.mktemp("api") / "api.log"
    with serving(project, command, port, env, log) as served:
        yield served


def _settled(client: httpx.Client, job_id: str) -> dict[str, Any]:
    return settled(client, job_id, timeout=15, interval=0.1)


def test_health_and_readiness(api: tuple[httpx.Client, Process]) -> None:
    client, _ = api
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_welcome_email_runs_to_finished(api: tuple[httpx.Client, Process]) -> None:
    client, _ = api
    response = client.post("/examples/welcome-email", json={"email": "ada@example.com"})
    assert response.status_code == 202
    body = _settled(client, response.json()["job_id"])
    assert body["status"] == "finished"
    assert body["result"] == {"email": "ada@example.com", "status": "sent"}
    assert body["error"] is None


def test_report_is_seen_started_then_finished(
    api: tuple[httpx.Client, Process], interval_project: tuple[Path, str, str]
) -> None:
    client, _ = api
    package = interval_project[2]
    # 3 s: long enough to be seen `started` by a poll every 0.1 s on a busy machine.
    job_id = client.post("/examples/report", json={"seconds": 3}).json()["job_id"]
    assert job_status(client, job_id)["status"] in ("queued", "started")
    wait_for(lambda: job_status(client, job_id)["status"] == "started", 30, what="started")
    body = _settled(client, job_id)
    times = {k: body.pop(k) for k in ("enqueued_at", "started_at", "ended_at")}
    assert body == {
        "job_id": job_id,
        "status": "finished",
        "result": {"attempts": 1, "seconds": 3},
        "error": None,
        "task": f"{package}.tasks.examples.build_report",
        "queue": "default",
        "attempts": 1,
    }
    enqueued, started, ended = (datetime.fromisoformat(times[k]) for k in times)
    assert enqueued <= started and (ended - started).total_seconds() >= 3


def test_a_failing_job_is_failed_with_its_error_and_the_api_goes_on(
    api: tuple[httpx.Client, Process],
) -> None:
    client, _ = api
    failing = client.post("/examples/report", json={"fail_times": 1}).json()["job_id"]
    body = _settled(client, failing)
    assert body["status"] == "failed"  # no retries on this tier
    assert body["error"].startswith("TransientError")
    following = client.post("/examples/report", json={"seconds": 0}).json()["job_id"]
    assert _settled(client, following)["status"] == "finished"


def _example_jobs(client: httpx.Client) -> set[str]:
    """The ids of the example routes' jobs the registry holds (not the heartbeats')."""
    jobs = client.get("/jobs", params={"limit": 500}).json()["jobs"]
    return {
        job["job_id"]
        for job in jobs
        if job["task"].endswith((".build_report", ".send_welcome_email"))
    }


def test_bad_input_is_422_and_enqueues_nothing(api: tuple[httpx.Client, Process]) -> None:
    client, process = api
    example_started = re.compile(r"\((?:\S+\.)?(?:build_report|send_welcome_email)\) started")
    started_before = len(example_started.findall(process.log()))
    jobs_before = _example_jobs(client)
    for path, body in (
        ("/examples/welcome-email", {"email": "not-an-email"}),
        ("/examples/report", {"seconds": 3601}),
        ("/examples/report", {"fail_times": 11}),
        ("/examples/report", {"seconds": "soon"}),
    ):
        response = client.post(path, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert "detail" in response.json()
    malformed = client.post(
        "/examples/report", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422
    # An enqueue is in the registry before its response is sent: none was added.
    assert _example_jobs(client) - jobs_before == set()
    # A request's jobs start right after its response; this one's, posted after every
    # answer above came back, finished: its start is the one line added.
    sentinel = client.post("/examples/report", json={"seconds": 0}).json()["job_id"]
    assert _settled(client, sentinel)["status"] == "finished"
    assert len(example_started.findall(process.log())) == started_before + 1


def test_unknown_job_is_404(api: tuple[httpx.Client, Process]) -> None:
    client, _ = api
    assert client.get("/jobs/never-enqueued").status_code == 404


SLOT_SECONDS = 2  # EXAMPLE_HEARTBEAT_SECONDS of the module's API


def test_heartbeats_run_once_per_two_second_slot(api: tuple[httpx.Client, Process]) -> None:
    client, _ = api
    # A busy machine runs some heartbeats late, even past their slot's end, but not every
    # one: a run inside its own slot shows the tick is the slot the run belongs to (a tick
    # one slot early would put every run 2 s or more after it).
    beats = wait_for(
        lambda: (
            len(items := client.get("/examples/heartbeats").json()) >= 3
            and any(0 <= late(item) < SLOT_SECONDS for item in items)
            and items
        ),
        timeout=60,
        interval=0.5,
        what="three heartbeats, one of them inside its own slot",
    )
    ticks = [datetime.fromisoformat(item["tick"]) for item in beats]
    assert len(set(ticks)) == len(ticks), f"a tick ran twice: {ticks}"
    assert all(tick.timestamp() % SLOT_SECONDS == 0 for tick in ticks), ticks
    # Newest first, one slot after another (a slot missed under load may leave a gap of
    # 4 s, never a repeat and never an unaligned tick).
    gaps = [(a - b).total_seconds() for a, b in itertools.pairwise(ticks)]
    assert all(gap > 0 and gap % SLOT_SECONDS == 0 for gap in gaps), f"bad slots: {ticks}"
    # Every run at or after its slot began: a tick is never a slot still to come.
    assert all(late(item) >= 0 for item in beats), beats


def _stop_during_a_job(
    project: Path, command: str, log: Path, seconds: float, env: dict[str, str]
) -> tuple[str, str, float]:
    """Serve, start a report job of ``seconds``, SIGTERM the server while the job runs.

    Returns the job id, the server's log and how long the stop took.
    """
    port = free_port()
    env = {"UVICORN_HOST": "127.0.0.1", "UVICORN_PORT": str(port), **env}
    with serving(project, command, port, env, log) as (client, process):
        job_id = client.post("/examples/report", json={"seconds": seconds}).json()["job_id"]
        wait_for(lambda: job_status(client, job_id)["status"] == "started", 30, what="started")
        started = time.monotonic()
        process.popen.send_signal(signal.SIGTERM)  # to `uv run`, which forwards it to uvicorn
        process.popen.wait(30)
        return job_id, process.log(), time.monotonic() - started


def test_graceful_stop_waits_for_a_running_job(
    interval_project: tuple[Path, str, str], tmp_path: Path
) -> None:
    """SIGTERM while a job runs: uvicorn lets the job finish before the process exits."""
    project, command, _ = interval_project
    # 4 s: long enough to be seen started (a poll every 0.1 s) and still running at the stop.
    job_id, log, took = _stop_during_a_job(project, command, tmp_path / "api.log", 4, {})
    assert took >= 1.0  # it waited for the job
    assert "Application shutdown complete" in log, log
    assert re.search(rf"job {job_id} \(\S+build_report\) finished", log), log
    assert "unfinished" not in log


def test_cron_heartbeat_runs_at_the_minute(copie_session: Any, tmp_path: Path) -> None:
    """scheduling=cron: the example job runs on EXAMPLE_HEARTBEAT_CRON (every minute here)."""
    project, command, _ = _render(copie_session, scheduling="cron")
    port = free_port()
    env = {
        "UVICORN_HOST": "127.0.0.1",
        "UVICORN_PORT": str(port),
        "EXAMPLE_HEARTBEAT_CRON": "* * * * *",
    }
    with serving(project, command, port, env, tmp_path / "api.log") as (client, _):
        beats = wait_for(
            lambda: client.get("/examples/heartbeats").json(),
            timeout=70,
            interval=0.5,
            what="a cron heartbeat",
        )
    tick = datetime.fromisoformat(beats[0]["tick"])
    assert (tick.second, tick.microsecond) == (0, 0)
    assert len(beats) == 1


def test_a_job_outliving_the_graceful_timeout_is_reported_lost(
    interval_project: tuple[Path, str, str], tmp_path: Path
) -> None:
    """What the README promises on this tier: a job still running when the graceful
    shutdown timeout ends is lost, and its id is logged."""
    project, command, _ = interval_project
    env = {"UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN": "1"}
    job_id, log, took = _stop_during_a_job(project, command, tmp_path / "api.log", 20, env)
    assert took < 10  # it did not wait for the 20 s job
    assert re.search(rf"stopping with 1 unfinished in-process job\(s\), now lost: {job_id}", log), (
        log
    )
