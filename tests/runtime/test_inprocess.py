"""The in-process tier (``tasktier.tiers.inprocess``): BackgroundTasks, the job registry,
timeouts, delays, caller ids, cancel, retry, the job list and periodic jobs, served by the
runtime's own app (``tasktier.http.create_app``)."""

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI
from fastapi.testclient import TestClient
from tasktier.model import (
    PERIODIC,
    Every,
    InvalidJobOption,
    JobNotCancellable,
    JobNotFound,
    JobNotRetryable,
    JobQueue,
    JobStatus,
    NotJSONSerializable,
    Periodic,
    Task,
    current_job,
    task,
    timed_out,
)
from tasktier.settings import InProcessSettings
from tasktier.tiers.inprocess import job_queue
from tasktier.tiers.inprocess.periodic import PeriodicRunner, start_scheduler
from tasktier.tiers.inprocess.queue import InProcessQueue
from tasktier.tiers.inprocess.registry import JobRegistry, run_job

from .conftest import AS_OPERATOR

JobQueueDep = Annotated[JobQueue, Depends(job_queue)]


@task(name="tests.explode")
def explode() -> None:
    raise ValueError("boom")


@task(name="tests.whoami")
def whoami() -> dict[str, Any]:
    job = current_job()
    return {"job_id": job.job_id, "attempt": job.attempt}


@task(name="tests.slow_async")
async def slow_async() -> None:
    await asyncio.sleep(10)


@task(name="tests.not_json")
def not_json() -> object:
    return object()


#: What ``counted`` ran, in order: one entry per execution.
runs: list[str] = []


@task(name="tests.counted")
def counted(label: str) -> str:
    runs.append(label)
    return label


@task(name="tests.fails_once")
def fails_once(label: str) -> dict[str, Any]:
    """Fails its first execution; later ones return their argument and attempt."""
    attempt = current_job().attempt
    if attempt == 1:
        raise ValueError(f"first attempt of {label}")
    return {"label": label, "attempt": attempt}


@task(name="tests.nap")
async def nap(label: str) -> str:
    await asyncio.sleep(0.4)
    return label


@task(name="tests.short_timeout", timeout=0.2)
async def short_timeout(label: str) -> None:
    await asyncio.sleep(10)


@task(name="tests.on_emails", queue="emails")
def on_emails(label: str) -> str:
    return label


@task(name="tests.wants_retries", max_retries=2)
def wants_retries(label: str) -> str:
    return label


@task(name="tests.no_retries", max_retries=0)
def no_retries(label: str) -> str:
    return label


BY_NAME: dict[str, Task[[str], Any]] = {
    t.name.removeprefix("tests."): t
    for t in (counted, fails_once, nap, short_timeout, on_emails, wants_retries, no_retries)
}


def _mount(app: FastAPI) -> None:
    """Routes that enqueue the test tasks above."""
    router = APIRouter()

    @router.post("/test/two")
    async def two(queue: JobQueueDep) -> list[str]:
        return [await queue.enqueue(explode), await queue.enqueue(whoami)]

    @router.post("/test/timeout-then-next")
    async def timeout_then_next(queue: JobQueueDep) -> list[str]:
        return [await queue.enqueue(short_timeout, "a"), await queue.enqueue(counted, "next")]

    @router.post("/test/enqueue-then-cancel")
    async def enqueue_then_cancel(queue: JobQueueDep) -> dict[str, Any]:
        job_id = await queue.enqueue(counted, "cancelled before it ran")
        info = await queue.cancel(job_id)
        return {"job_id": job_id, "status": info.status, "ended": info.ended_at is not None}

    @router.post("/test/same-id-at-once")
    async def same_id_at_once(queue: JobQueueDep) -> list[str]:
        same = counted.options(job_id="one-at-once")
        return list(await asyncio.gather(*(queue.enqueue(same, f"racer {i}") for i in range(5))))

    @router.post("/test/enqueue/{name}")
    async def enqueue(
        name: str, queue: JobQueueDep, label: str = "x", delay: float = 0, job_id: str | None = None
    ) -> str:
        return await queue.enqueue(BY_NAME[name].options(delay=delay, job_id=job_id), label)

    @router.post("/test/{name}")
    async def one(name: str, queue: JobQueueDep) -> str:
        tasks: dict[str, Task[[], Any]] = {
            "slow_async": slow_async,
            "not_json": not_json,
            "whoami": whoami,
        }
        chosen = tasks[name]
        return await queue.enqueue(chosen)

    @router.post("/test-bad-args")
    async def bad_args(queue: JobQueueDep) -> str:
        return await queue.enqueue(whoami, when=object())  # type: ignore[call-arg]

    app.include_router(router)


@pytest.fixture
def test_client(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Any:
    runs.clear()
    _mount(app)
    # No periodic job runs under these tests (one could fire mid-test): the job lists
    # they read hold their own jobs only.
    for name in list(PERIODIC):
        monkeypatch.delitem(PERIODIC, name)
    with TestClient(app, headers=AS_OPERATOR, raise_server_exceptions=False) as client:
        yield client


def _until(check: Callable[[], Any], timeout: float = 5) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)
    return value


def _status(client: TestClient, job_id: str) -> dict[str, Any]:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _settled(client: TestClient, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = _until(
        lambda: (
            (b := _status(client, job_id))["status"] in ("finished", "failed", "cancelled") and b
        )
    )
    return body


def test_a_failing_task_is_logged_and_does_not_stop_the_next(
    test_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        failing, following = test_client.post("/test/two").json()
    body = test_client.get(f"/jobs/{failing}").json()
    assert {k: body[k] for k in ("job_id", "status", "result", "error")} == {
        "job_id": failing,
        "status": "failed",
        "result": None,
        "error": "ValueError: boom",
    }
    assert test_client.get(f"/jobs/{following}").json()["status"] == "finished"
    assert any(failing in record.getMessage() for record in caplog.records)


def test_a_job_shows_its_task_queue_attempts_and_times(test_client: TestClient) -> None:
    job_id = test_client.post("/test/enqueue/on_emails", params={"label": "hi"}).json()
    body = _status(test_client, job_id)
    assert body["status"] == "finished" and body["result"] == "hi"
    assert (body["task"], body["queue"], body["attempts"]) == ("tests.on_emails", "emails", 1)
    default = _status(test_client, test_client.post("/test/enqueue/counted").json())
    assert default["queue"] == "default"
    info = asyncio.run(_one_info(on_emails))
    assert info.enqueued_at is not None and info.started_at is not None
    assert info.ended_at is not None
    assert info.enqueued_at.tzinfo is UTC
    assert info.enqueued_at <= info.started_at <= info.ended_at


async def _one_info(chosen: Task[[str], Any]) -> Any:
    registry = JobRegistry(10)
    record, _ = registry.add(chosen, ("x",), timeout=5)
    await run_job(registry, record)
    return registry.info(record.job_id)


def test_a_sync_task_knows_its_job(test_client: TestClient) -> None:
    job_id = test_client.post("/test/whoami").json()
    body = test_client.get(f"/jobs/{job_id}").json()
    assert body["status"] == "finished"
    assert body["result"] == {"job_id": job_id, "attempt": 1}


def test_a_job_over_its_timeout_is_failed(
    test_client: TestClient, settings: InProcessSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "job_timeout_seconds", 0.2)
    started = time.monotonic()
    job_id = test_client.post("/test/slow_async").json()
    assert time.monotonic() - started < 5
    body = test_client.get(f"/jobs/{job_id}").json()
    assert body["status"] == "failed"
    assert body["error"] == timed_out(0.2) == "TimeoutError: timed out after 0.2 s"
    assert body["ended_at"] is not None


def test_a_task_s_own_timeout_wins_and_the_next_job_runs(test_client: TestClient) -> None:
    """JOB_TIMEOUT_SECONDS is 5 here; the task declares 0.2."""
    started = time.monotonic()
    timed, following = test_client.post("/test/timeout-then-next").json()
    assert time.monotonic() - started < 3
    body = _status(test_client, timed)
    assert (body["status"], body["error"], body["attempts"]) == ("failed", timed_out(0.2), 1)
    assert _status(test_client, following)["status"] == "finished"


def test_max_retries_is_ignored_with_one_warning_per_task(
    test_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        ids = [test_client.post("/test/enqueue/wants_retries").json() for _ in range(3)]
        test_client.post("/test/enqueue/no_retries")
        test_client.post("/test/enqueue/counted")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([m for m in warnings if "max_retries" in m]) == 1, warnings
    assert "tests.wants_retries" in next(m for m in warnings if "max_retries" in m)
    assert all(_status(test_client, i)["attempts"] == 1 for i in ids)


def test_a_delayed_job_is_scheduled_until_due_then_runs_once(test_client: TestClient) -> None:
    job_id = test_client.post(
        "/test/enqueue/counted", params={"label": "later", "delay": 0.5}
    ).json()
    assert _status(test_client, job_id)["status"] == "scheduled"
    assert runs == []
    body = _settled(test_client, job_id)
    assert body["status"] == "finished" and body["attempts"] == 1
    assert runs == ["later"]
    from datetime import datetime

    waited = datetime.fromisoformat(body["started_at"]) - datetime.fromisoformat(
        body["enqueued_at"]
    )
    assert waited.total_seconds() >= 0.5
    time.sleep(0.3)
    assert runs == ["later"]


def test_a_bad_delay_or_job_id_is_422_and_enqueues_nothing(test_client: TestClient) -> None:
    for params in ({"delay": -1}, {"job_id": "no spaces"}):
        response = test_client.post("/test/enqueue/counted", params=params)
        assert response.status_code == 422, response.text
    assert test_client.get("/jobs").json()["jobs"] == []


def test_a_known_job_id_returns_it_and_enqueues_nothing(test_client: TestClient) -> None:
    first = test_client.post(
        "/test/enqueue/counted", params={"label": "first", "job_id": "invoice-42"}
    ).json()
    assert first == "invoice-42"
    assert _status(test_client, first)["status"] == "finished"
    again = test_client.post(
        "/test/enqueue/counted", params={"label": "again", "job_id": "invoice-42"}
    ).json()
    assert again == "invoice-42"
    assert runs == ["first"]
    assert _status(test_client, first)["result"] == "first"
    # A scheduled one too: the second enqueue does not add a second timer.
    test_client.post("/test/enqueue/nap", params={"delay": 30, "job_id": "later-1"})
    test_client.post("/test/enqueue/counted", params={"job_id": "later-1"})
    assert _status(test_client, "later-1")["status"] == "scheduled"
    assert runs == ["first"]


def test_racing_enqueues_of_one_new_id_enqueue_one_job(test_client: TestClient) -> None:
    assert test_client.post("/test/same-id-at-once").json() == ["one-at-once"] * 5
    assert len(runs) == 1
    assert [j["job_id"] for j in test_client.get("/jobs").json()["jobs"]] == ["one-at-once"]


def test_a_known_id_adds_no_background_task(settings: InProcessSettings) -> None:
    async def enqueue_twice() -> BackgroundTasks:
        background = BackgroundTasks()
        queue = InProcessQueue(JobRegistry(10), background, settings)
        same = counted.options(job_id="twice")
        assert await queue.enqueue(same, "a") == await queue.enqueue(same, "b") == "twice"
        return background

    assert len(asyncio.run(enqueue_twice()).tasks) == 1


def test_the_registry_adds_a_known_id_once() -> None:
    registry = JobRegistry(10)
    first, created = registry.add(counted, ("a",), timeout=5, job_id="mine")
    assert created and first.job_id == "mine"
    again, created = registry.add(counted, ("b",), timeout=5, job_id="mine")
    assert again is first and not created
    assert [info.job_id for info in registry.jobs()] == ["mine"]


def test_a_queued_job_cancelled_never_runs(test_client: TestClient) -> None:
    answer = test_client.post("/test/enqueue-then-cancel").json()
    assert (answer["status"], answer["ended"]) == ("cancelled", True)
    body = _status(test_client, answer["job_id"])
    assert body["status"] == "cancelled" and body["attempts"] == 0
    assert runs == []


def test_a_scheduled_job_cancelled_never_runs(test_client: TestClient) -> None:
    job_id = test_client.post("/test/enqueue/counted", params={"delay": 0.3}).json()
    response = test_client.delete(f"/jobs/{job_id}")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["ended_at"]
    time.sleep(0.6)
    assert _status(test_client, job_id)["status"] == "cancelled"
    assert runs == []
    # Cancelled is final: a second cancel is refused.
    assert test_client.delete(f"/jobs/{job_id}").status_code == 409


def test_a_started_or_finished_job_is_not_cancellable(test_client: TestClient) -> None:
    job_id = test_client.post("/test/enqueue/nap", params={"delay": 0.01}).json()
    _until(lambda: _status(test_client, job_id)["status"] == "started")
    response = test_client.delete(f"/jobs/{job_id}")
    assert response.status_code == 409, response.text
    assert _settled(test_client, job_id)["status"] == "finished"
    assert test_client.delete(f"/jobs/{job_id}").status_code == 409
    assert test_client.delete("/jobs/never-enqueued").status_code == 404


def test_registry_cancel_refuses_what_is_not_waiting() -> None:
    registry = JobRegistry(10)
    record, _ = registry.add(counted, ("a",), timeout=5)
    registry.start(record)
    with pytest.raises(JobNotCancellable):
        registry.cancel(record.job_id)
    registry.finish(record, "a")
    with pytest.raises(JobNotCancellable):
        registry.cancel(record.job_id)
    with pytest.raises(JobNotFound):
        registry.cancel("unknown")


def test_a_failed_job_retried_runs_again_with_its_id_and_arguments(
    test_client: TestClient,
) -> None:
    job_id = test_client.post("/test/enqueue/fails_once", params={"label": "L"}).json()
    failed = _status(test_client, job_id)
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    response = test_client.post(f"/jobs/{job_id}/retry")
    assert response.status_code == 202 and response.json() == {"job_id": job_id}
    body = _settled(test_client, job_id)
    assert body["status"] == "finished", body
    assert body["result"] == {"label": "L", "attempt": 2}
    assert (body["attempts"], body["error"], body["task"]) == (2, None, "tests.fails_once")
    # Finished: no longer retryable; unknown: 404.
    assert test_client.post(f"/jobs/{job_id}/retry").status_code == 409
    assert test_client.post("/jobs/never-enqueued/retry").status_code == 404


def test_a_retried_job_is_retrying_until_it_starts_and_attempts_keep_counting() -> None:
    async def scenario() -> None:
        registry = JobRegistry(10)
        record, _ = registry.add(explode, timeout=5)
        await run_job(registry, record)
        assert registry.info(record.job_id).status is JobStatus.FAILED
        assert registry.retry(record.job_id) == record.job_id
        info = registry.info(record.job_id)
        assert (info.status, info.ended_at) == (JobStatus.RETRYING, None)
        with pytest.raises(JobNotRetryable):
            registry.retry(record.job_id)  # one failed job, one new run
        assert record.runner is not None
        await record.runner
        info = registry.info(record.job_id)
        assert (info.status, info.attempts, info.error) == (
            JobStatus.FAILED,
            2,
            "ValueError: boom",
        )
        with pytest.raises(JobNotFound):
            registry.retry("unknown")

    asyncio.run(scenario())


def test_a_retrying_job_cancelled_never_runs() -> None:
    async def scenario() -> None:
        registry = JobRegistry(10)
        record, _ = registry.add(fails_once, ("x",), timeout=5)
        await run_job(registry, record)
        registry.retry(record.job_id)
        assert registry.cancel(record.job_id).status is JobStatus.CANCELLED
        await asyncio.sleep(0.05)
        info = registry.info(record.job_id)
        assert (info.status, info.attempts) == (JobStatus.CANCELLED, 1)

    asyncio.run(scenario())


def test_the_job_list_is_newest_first_filtered_and_limited(test_client: TestClient) -> None:
    ids = [
        test_client.post("/test/enqueue/counted", params={"label": str(i)}).json() for i in range(3)
    ]
    failing = test_client.post("/test/enqueue/fails_once").json()
    listed = test_client.get("/jobs").json()["jobs"]
    assert [j["job_id"] for j in listed] == [failing, *reversed(ids)]
    assert listed[0]["task"] == "tests.fails_once"
    failed = test_client.get("/jobs", params={"status": "failed"}).json()["jobs"]
    assert [j["job_id"] for j in failed] == [failing]
    two = test_client.get("/jobs", params={"status": "finished", "limit": 2}).json()["jobs"]
    assert [j["job_id"] for j in two] == [ids[2], ids[1]]
    for params in ({"status": "bogus"}, {"limit": 0}, {"limit": 501}):
        assert test_client.get("/jobs", params=params).status_code == 422


def test_the_queue_checks_its_list_query(settings: InProcessSettings) -> None:
    async def bad() -> None:
        queue = InProcessQueue(JobRegistry(10), BackgroundTasks(), settings)
        await queue.jobs(limit=0)

    with pytest.raises(InvalidJobOption):
        asyncio.run(bad())


def test_the_list_by_status_follows_enqueue_order_not_the_order_jobs_ended() -> None:
    registry = JobRegistry(10)
    records = [registry.add(counted, (str(i),), timeout=5)[0] for i in range(3)]
    for i in (2, 0, 1):
        registry.start(records[i])
        registry.finish(records[i], str(i))
    listed = [info.job_id for info in registry.jobs(JobStatus.FINISHED, 50)]
    assert listed == [r.job_id for r in reversed(records)]
    assert [i.job_id for i in registry.jobs(JobStatus.FINISHED, 1)] == [records[2].job_id]
    assert registry.jobs(JobStatus.QUEUED, 50) == []


def test_a_result_that_is_not_json_fails_the_job(test_client: TestClient) -> None:
    job_id = test_client.post("/test/not_json").json()
    body = test_client.get(f"/jobs/{job_id}").json()
    assert body["status"] == "failed"
    assert "JSON" in body["error"]


def test_arguments_that_are_not_json_are_refused_before_queueing(app: FastAPI) -> None:
    _mount(app)
    with TestClient(app, headers=AS_OPERATOR) as client, pytest.raises(NotJSONSerializable):
        client.post("/test-bad-args")
    assert app.state.job_registry.unfinished() == []


def test_a_stopping_api_answers_503_with_a_json_reason(test_client: TestClient) -> None:
    test_client.app.state.job_registry.accepting = False  # type: ignore[attr-defined]
    ready = test_client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable" and ready.json()["reason"]
    enqueue = test_client.post("/test/whoami")
    assert enqueue.status_code == 503
    assert "unavailable" in enqueue.json()["detail"]


def _done(registry: JobRegistry, status: JobStatus) -> str:
    record, _ = registry.add(counted, ("x",), timeout=5)
    if status is JobStatus.CANCELLED:
        registry.cancel(record.job_id)
    else:
        registry.start(record)
        registry.finish(record, "x") if status is JobStatus.FINISHED else registry.fail(
            record, "E: x"
        )
    return record.job_id


def test_registry_tracks_statuses_and_stays_bounded() -> None:
    registry = JobRegistry(max_jobs=3)
    first, _ = registry.add(counted, ("a",), timeout=5)
    assert registry.info(first.job_id).status is JobStatus.QUEUED
    assert registry.start(first) == 1
    assert registry.info(first.job_id).status is JobStatus.STARTED
    registry.finish(first, {"ok": True})
    assert registry.info(first.job_id).result == {"ok": True}
    others = [registry.add(counted, ("b",), timeout=5)[0].job_id for _ in range(3)]
    with pytest.raises(JobNotFound):
        registry.info(first.job_id)  # the oldest finished job went first
    assert sorted(registry.unfinished()) == sorted(others)
    # Nothing finished: the oldest unfinished job goes, the registry stays bounded.
    newest = registry.add(counted, ("c",), timeout=5)[0].job_id
    assert len(registry.unfinished()) == 3
    with pytest.raises(JobNotFound):
        registry.info(others[0])
    assert registry.info(newest).status is JobStatus.QUEUED


def test_eviction_keeps_waiting_jobs_while_done_ones_remain() -> None:
    """Scheduled and queued jobs are older here than every done one (cancelled included):
    the done ones go first, oldest first."""
    registry = JobRegistry(max_jobs=4)
    scheduled, _ = registry.add(counted, ("s",), timeout=5, status=JobStatus.SCHEDULED)
    queued, _ = registry.add(counted, ("q",), timeout=5)
    done = [_done(registry, s) for s in (JobStatus.CANCELLED, JobStatus.FAILED)]
    newer: list[str] = []
    for gone in done:
        newer.append(registry.add(counted, ("new",), timeout=5)[0].job_id)
        with pytest.raises(JobNotFound):
            registry.info(gone)
        assert registry.info(scheduled.job_id).status is JobStatus.SCHEDULED
        assert registry.info(queued.job_id).status is JobStatus.QUEUED
    # The newest job is the only one done: it goes before the older waiting ones.
    latest = registry.get(newer[-1])
    registry.start(latest)
    registry.finish(latest, "x")
    registry.add(counted, ("newest",), timeout=5)
    with pytest.raises(JobNotFound):
        registry.info(latest.job_id)
    assert registry.info(scheduled.job_id).status is JobStatus.SCHEDULED
    assert registry.info(queued.job_id).status is JobStatus.QUEUED


def test_stopping_with_unfinished_jobs_logs_them(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), TestClient(app, headers=AS_OPERATOR):
        job_id = app.state.job_registry.add(counted, ("x",), timeout=5)[0].job_id
    assert any(job_id in record.getMessage() for record in caplog.records)


def test_stopping_reports_scheduled_jobs_lost_and_never_runs_them(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    runs.clear()
    _mount(app)
    with caplog.at_level(logging.WARNING), TestClient(app, headers=AS_OPERATOR) as client:
        job_id = client.post("/test/enqueue/counted", params={"delay": 0.5}).json()
    lost = [r.getMessage() for r in caplog.records if "now lost" in r.getMessage()]
    assert len(lost) == 1 and job_id in lost[0], lost
    time.sleep(0.7)
    assert runs == []


def test_stopping_waits_for_a_running_retry_within_the_grace() -> None:
    async def scenario(grace: float | None) -> tuple[list[str], JobStatus]:
        registry = JobRegistry(10)
        record, _ = registry.add(nap, ("x",), timeout=5)
        registry.start(record)
        registry.fail(record, "E: first")
        registry.retry(record.job_id)
        lost = await registry.close(grace)
        return lost, registry.info(record.job_id).status

    assert asyncio.run(scenario(None)) == ([], JobStatus.FINISHED)
    lost, status = asyncio.run(scenario(0.05))
    assert len(lost) == 1 and status is JobStatus.STARTED


def test_the_stop_grace_follows_uvicorn_s_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasktier.tiers.inprocess.queue import _shutdown_grace

    monkeypatch.delenv("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", raising=False)
    assert _shutdown_grace() is None
    monkeypatch.setenv("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", "7")
    assert _shutdown_grace() == 7


@task(name="tests.tick")
def tick_task(tick: str) -> str:
    ticks.append(tick)
    return tick


ticks: list[str] = []


def test_a_periodic_slot_runs_once() -> None:
    ticks.clear()
    registry = JobRegistry(max_jobs=100)
    runner = PeriodicRunner(registry, timeout=5)
    job = Periodic(tick_task, Every(3600))

    async def fire_twice() -> None:
        await runner.fire(job)
        await runner.fire(job)

    asyncio.run(fire_twice())
    assert len(ticks) == 1
    [info] = registry.jobs()
    assert (info.task, info.status) == ("tests.tick", JobStatus.FINISHED)


def test_the_scheduler_runs_periodic_jobs_once_per_slot() -> None:
    ticks.clear()
    registry = JobRegistry(max_jobs=100)

    async def run_for_a_while() -> None:
        runner = PeriodicRunner(registry, timeout=5)
        scheduler = start_scheduler(runner, [Periodic(tick_task, Every(0.25))])
        [job] = scheduler.get_jobs()
        assert job.coalesce is True and job.max_instances == 1
        await asyncio.sleep(1.4)
        scheduler.shutdown(wait=False)

    asyncio.run(run_for_a_while())
    assert len(ticks) >= 3
    assert len(set(ticks)) == len(ticks)


def test_run_job_never_raises() -> None:
    registry = JobRegistry(max_jobs=10)
    record, _ = registry.add(explode, timeout=5)
    asyncio.run(run_job(registry, record))
    assert registry.info(record.job_id).status is JobStatus.FAILED


def test_apscheduler_takes_its_due_times_from_the_job_model() -> None:
    """APScheduler's own cron parser numbers weekdays from Monday: its trigger here is the
    job model's next_run, so "0 3 * * 0" runs on Sunday as on every tier."""
    from datetime import datetime

    from tasktier.model import Cron

    @task(name="tests.sunday")
    def sunday(tick: str) -> str:
        return tick

    async def next_fire() -> datetime:
        scheduler = start_scheduler(
            PeriodicRunner(JobRegistry(10), 5), [Periodic(sunday, Cron("0 3 * * 0"))]
        )
        try:
            when: datetime = scheduler.get_job("tests.sunday").next_run_time
            return when
        finally:
            scheduler.shutdown(wait=False)

    when = asyncio.run(next_fire())
    assert (when.isoweekday(), when.hour, when.minute) == (7, 3, 0)
