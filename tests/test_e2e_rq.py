"""End to end, rq tier: the generated compose commands (`api`, `worker`, `scheduler`,
`dashboard`) run as local processes (`uv run <command>`) against a real Redis started
for each test, and are exercised over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from e2e.stack import Project, Stack, render
from helpers import (
    descendants,
    free_port,
    job_status,
    kill_tree,
    run,
    run_by_one_of_two,
    running_for,
    settled,
    wait_for,
)
from servers import RedisServer

pytestmark = pytest.mark.e2e

TIMEOUT = 10  # JOB_TIMEOUT_SECONDS in these tests: the recovery bound is stated for it
ENV = {
    "JOB_TIMEOUT_SECONDS": str(TIMEOUT),
    "JOB_MAX_RETRIES": "3",
    "EXAMPLE_HEARTBEAT_SECONDS": "2",
}


@pytest.fixture(scope="module")
def project(copie_session: Any) -> Project:
    return render(copie_session, "rq", loss_tolerable=False, scheduling="interval", monitoring=True)


@pytest.fixture
def stack(
    project: Project, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Stack, httpx.Client]]:
    """The API, served before the test, and any workers and schedulers it starts, on a
    fresh Redis."""
    with Stack(project, request, tmp_path, ENV) as stack_, stack_.serve() as (client, _):
        yield stack_, client
    # Redis has a password (as in compose), and no process ever prints it.
    redis_server = stack_.redis
    assert redis_server.password and redis_server.password in redis_server.url
    for log in sorted(tmp_path.glob("*.log")):
        assert redis_server.password not in log.read_text(), f"{log.name} shows the password"


def report(client: httpx.Client, seconds: float = 0, fail_times: int = 0) -> str:
    response = client.post("/examples/report", json={"seconds": seconds, "fail_times": fail_times})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


# --- the tests ------------------------------------------------------------------------


def test_jobs_finish_retry_and_fail_over_http(stack: tuple[Stack, httpx.Client]) -> None:
    stack_, client = stack
    stack_.start("worker")
    assert client.get("/health/ready").json() == {"status": "ready"}

    response = client.post("/examples/welcome-email", json={"email": "ada@example.com"})
    assert response.status_code == 202
    body = settled(client, response.json()["job_id"])
    assert body["status"] == "finished", body
    assert body["result"] == {"email": "ada@example.com", "status": "sent"}

    # Fails twice with a TransientError, retried with growing waits, third run finishes.
    job_id = report(client, fail_times=2)
    seen = {job_status(client, job_id)["status"]}
    body = wait_for(
        lambda: (
            (b := job_status(client, job_id), seen.add(b["status"]))[0]["status"] == "finished"
            and b
        ),
        30,
        interval=0.1,
        what="the twice-failing report to finish",
    )
    assert body["result"]["attempts"] == 3, body
    assert "retrying" in seen, seen

    # More failures than JOB_MAX_RETRIES=3 allows: failed, with the task's error.
    body = settled(client, report(client, fail_times=5), timeout=40)
    assert body["status"] == "failed"
    assert body["error"].startswith("TransientError: planned transient failure 4 of 5"), body

    assert client.get("/jobs/no-such-job").status_code == 404


def test_bad_input_is_422_and_enqueues_nothing(stack: tuple[Stack, httpx.Client]) -> None:
    stack_, client = stack
    connection = redis.Redis.from_url(stack_.redis.url)
    before = set(connection.scan_iter("rq:job:*"))
    for path, payload in [
        ("/examples/welcome-email", {"email": "not-an-email"}),
        ("/examples/report", {"seconds": -1}),
        ("/examples/report", {"seconds": 1, "fail_times": 99}),
        ("/examples/report", {"seconds": 1, "extra": "field"}),
    ]:
        response = client.post(path, json=payload)
        assert response.status_code == 422, (path, payload, response.text)
    response = client.post(
        "/examples/report", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert set(connection.scan_iter("rq:job:*")) == before
    assert connection.llen("rq:queue:default") == 0


def test_queue_holds_only_json(stack: tuple[Stack, httpx.Client]) -> None:
    stack_, client = stack
    job_id = report(client, seconds=0)  # no worker yet: the job waits in Redis
    connection = redis.Redis.from_url(stack_.redis.url)
    data = connection.hget(f"rq:job:{job_id}", "data")
    assert data is not None
    payload = json.loads(zlib.decompress(data))  # RQ's JSONSerializer (zlib'd): no pickle
    assert payload[0].endswith(".worker.execute")
    assert payload[2][0].endswith("tasks.examples.build_report")


PICKLE_ENQUEUER = """
import os, sys
import redis
from rq import Queue

redis_url, marker, package = sys.argv[1:4]

class SideEffect:
    # Unpickling this creates the marker directory: proof that pickle was loaded.
    def __reduce__(self):
        return (os.mkdir, (marker,))

# RQ's default serializer is pickle: what stock `rq cron` or a careless client writes.
queue = Queue("default", connection=redis.Redis.from_url(redis_url))
job = queue.enqueue(
    f"{package}.backend.execute",
    f"{package}.tasks.examples.send_welcome_email",
    [SideEffect()],
    {},
)
print(job.id)
"""


def test_a_pickled_job_is_refused_and_runs_nothing(
    stack: tuple[Stack, httpx.Client], tmp_path: Path
) -> None:
    stack_, client = stack
    marker = tmp_path / "unpickled"
    enqueued = run(
        [
            "uv", "run", "--quiet", "python", "-c", PICKLE_ENQUEUER,
            stack_.redis.url, str(marker), stack_.project.package,
        ],
        cwd=stack_.project.path,
    )  # fmt: skip
    pickled = enqueued.stdout.strip()
    data = redis.Redis.from_url(stack_.redis.url).hget(f"rq:job:{pickled}", "data")
    assert data is not None and zlib.decompress(data).startswith(b"\x80"), "not a pickle"
    worker = stack_.start("worker")
    body = settled(client, pickled)
    assert body["status"] == "failed", body
    assert "DeserializationError" in body["error"], body
    # The worker lives on and runs JSON jobs...
    response = client.post("/examples/welcome-email", json={"email": "ada@example.com"})
    assert settled(client, response.json()["job_id"])["status"] == "finished"
    assert worker.popen.poll() is None
    # ...and nothing of the pickled job ran: not unpickled, the task never started.
    assert not marker.exists()
    assert f"{stack_.project.package}:attempts:{pickled}" not in {
        k.decode() for k in redis.Redis.from_url(stack_.redis.url).scan_iter("*:attempts:*")
    }


#: How long each job of the worker-kill test runs: the kill must land inside one.
KILLED_JOB_SECONDS = 3


def test_worker_killed_mid_job_every_job_still_finishes(
    stack: tuple[Stack, httpx.Client], record_property: Any
) -> None:
    stack_, client = stack
    worker = stack_.start("worker")
    jobs = [report(client, seconds=KILLED_JOB_SECONDS) for _ in range(5)]
    # A job is `started` once the worker claims it, before its work horse forks; the kill
    # waits until one has begun its execution there (`attempts` counts it), so that the
    # execution it cuts short is counted and the job's rerun says attempts == 2. It must
    # land inside that execution, not just after its end (the next job then not begun):
    # the job seen must have begun less than half its run ago.
    wait_for(
        lambda: any(running_for(job_status(client, j)) < KILLED_JOB_SECONDS / 2 for j in jobs),
        60,
        what="a job's execution to begin",
    )
    killed = kill_tree(worker)
    assert len(killed) >= 2, "the worker's tree should hold the worker and its work horse"
    killed_at = time.monotonic()
    stack_.start("worker")
    results = [settled(client, j, timeout=120) for j in jobs]
    recovery = time.monotonic() - killed_at
    record_property(
        "measured",
        f"rq: every one of {len(jobs)} jobs finished {recovery:.1f} s after kill -9 of the "
        f"worker tree (JOB_TIMEOUT_SECONDS={TIMEOUT}, bound 90 s)",
    )
    assert [r["status"] for r in results] == ["finished"] * len(jobs), results
    # The job that was running when the worker died ran again (at least once).
    assert max(r["result"]["attempts"] for r in results) == 2, results
    assert recovery < 90, f"recovery took {recovery:.1f} s; the documented bound is 90 s"


def test_sigterm_lets_the_running_job_finish_then_the_worker_exits(
    stack: tuple[Stack, httpx.Client],
) -> None:
    """What `docker compose stop` and Kubernetes do: SIGTERM to the worker process alone.
    RQ's warm shutdown: the job under way finishes, no other job is taken, the process
    exits 0 (it used to take the stop for a lost Redis and start again until killed)."""
    stack_, client = stack
    worker = stack_.start("worker")
    # Long enough to be seen `started` (a poll every 0.1 s) and still running at the SIGTERM.
    running = report(client, seconds=5)
    wait_for(
        lambda: job_status(client, running)["status"] == "started", 30, what="the job to start"
    )
    waiting = report(client, seconds=0)
    os.kill(descendants(worker.popen.pid)[0], signal.SIGTERM)  # uv run's child: the worker
    assert worker.popen.wait(60) == 0, worker.log()[-3000:]
    assert settled(client, running)["status"] == "finished"
    assert job_status(client, waiting)["status"] == "queued"
    assert "starting again" not in worker.log()


#: The slots the two schedulers test watches: each run, and skipped by the other scheduler.
SLOTS = 6
SKIPPED = re.compile(r"tick (\S+) already enqueued elsewhere; skipped")


def test_two_schedulers_run_each_tick_once(stack: tuple[Stack, httpx.Client]) -> None:
    stack_, client = stack
    stack_.start("worker")
    schedulers = [stack_.start("scheduler"), stack_.start("scheduler")]  # one by mistake
    beats = run_by_one_of_two(client, schedulers, SKIPPED, SLOTS)
    ticks = [datetime.fromisoformat(beat["tick"]) for beat in beats]
    assert len(ticks) == len(set(ticks)), f"a tick ran twice: {beats}"
    for tick in ticks:
        assert tick.timestamp() % 2 == 0, f"tick {tick} is not on a 2 s slot"
    logs = "".join(p.log() for p in stack_.processes)
    assert "already enqueued elsewhere; skipped" in logs, "the second scheduler never lost a claim"
    assert "pickle" not in logs.lower()


def test_redis_outage_answers_503_and_loses_nothing(stack: tuple[Stack, httpx.Client]) -> None:
    stack_, client = stack
    server = stack_.redis
    accepted = [report(client, seconds=0.2) for _ in range(5)]  # no worker yet
    server.make_durable()  # what Redis took is on disk (no wait for the once-a-second fsync)
    server.kill()

    started = time.monotonic()
    response = client.post("/examples/report", json={"seconds": 0})
    assert response.status_code == 503, response.text
    assert "Redis" in response.json()["detail"]
    assert time.monotonic() - started < 10
    ready = client.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    assert server.password and server.password not in response.text + ready.text
    # The answers name no host, port or URL; the API's log has them, for the operator.
    for leak in ("127.0.0.1", "localhost", str(server.port), "redis://"):
        assert leak not in response.text + ready.text, (leak, response.text, ready.text)
    assert "Redis is unreachable (connection refused)" in ready.json()["reason"]
    api_log = "".join(log.read_text() for log in stack_.logs.glob("api-*.log"))
    lines = [line for line in api_log.splitlines() if f"127.0.0.1:{server.port}" in line]
    assert any("WARNING" in line for line in lines), api_log
    assert client.get(f"/jobs/{accepted[0]}").status_code == 503

    worker = stack_.start("worker")  # starts while Redis is down: it must wait, not exit
    # Three failed tries, each followed by a wait (its log says so before it waits), and the
    # worker still runs: it went on past the first failure, where one that gives up exits.
    wait_for(
        lambda: worker.popen.poll() is not None or worker.log().count("Redis takes no writes") >= 3,
        60,
        what="the worker to try Redis three times",
    )
    assert worker.popen.poll() is None, f"the worker gave up on Redis:\n{worker.log()}"
    server.start()

    wait_for(lambda: client.get("/health/ready").status_code == 200, 20, what="readiness")
    after = report(client, seconds=0)
    for job_id in [*accepted, after]:
        assert settled(client, job_id)["status"] == "finished"


def test_dashboard_needs_basic_auth(
    project: Project, request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    service = project.services["dashboard"]
    assert service["ports"] == ["127.0.0.1:9181:9181"]
    assert service["environment"]["DASHBOARD_HOST"] == "0.0.0.0"  # in its container
    with Stack(project, request, tmp_path) as stack:  # REDIS_URL, and nothing else of ENV
        dashboard = stack.start(
            "dashboard",
            DASHBOARD_HOST="127.0.0.1",
            DASHBOARD_PORT=str(port),
            DASHBOARD_USERNAME="admin",
            DASHBOARD_PASSWORD="s3cret",
        )
        base = f"http://127.0.0.1:{port}/"
        assert wait_for(lambda: _answers(base) or dashboard.popen.poll() is not None, 60)
        assert dashboard.popen.poll() is None, f"the dashboard exited:\n{dashboard.log()}"
        assert httpx.get(base).status_code == 401
        assert httpx.get(base, auth=("admin", "wrong")).status_code == 401
        page = httpx.get(base, auth=("admin", "s3cret"))
        assert page.status_code == 200
        # It reaches the password-protected Redis, and shows its URL masked if at all.
        workers = httpx.get(f"{base}0/data/workers.json", auth=("admin", "s3cret"))
        assert workers.status_code == 200, workers.text
        # Before a login, no path answers anything but 401 (rq-dashboard's own check came
        # after a Redis look-up that answered 500 for an unknown instance number).
        for path in ("5/data/queues.json", "0/data/queues.json", "static/../x", "x" * 300):
            assert httpx.get(f"{base}{path}").status_code == 401, path
        unknown = httpx.get(f"{base}5/data/queues.json", auth=("admin", "s3cret"))
        assert unknown.status_code == 404, unknown.text
        assert redis_server.password
        assert redis_server.password not in page.text + workers.text + dashboard.log()


def test_dashboard_refuses_cross_site_changes(
    project: Project, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Logged in, a browser sends the login with whatever another site makes it send: a
    form posted from another page, a link. rq-dashboard's requeue is refused then, and a GET
    of it too; from the dashboard's own origin it works."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    login = ("admin", "s3cret")
    with Stack(project, request, tmp_path, {**ENV, "JOB_MAX_RETRIES": "0"}) as stack:
        worker = stack.start("worker")
        dashboard = stack.start(
            "dashboard",
            DASHBOARD_HOST="127.0.0.1",
            DASHBOARD_PORT=str(port),
            DASHBOARD_USERNAME=login[0],
            DASHBOARD_PASSWORD=login[1],
        )
        stack.wait_ready(worker)
        with stack.serve() as (client, _):
            one, other = report(client, fail_times=1), report(client, fail_times=1)
            for job_id in (one, other):
                assert settled(client, job_id)["status"] == "failed"
            worker.stop()  # from here on a requeued job stays queued
            assert wait_for(lambda: _answers(base) or dashboard.popen.poll() is not None, 60)
            assert dashboard.popen.poll() is None, f"the dashboard exited:\n{dashboard.log()}"

            def status(job_id: str) -> tuple[str, str]:
                """The job's status as the API and rq-dashboard read it."""
                shown = httpx.get(f"{base}/0/data/job/{job_id}.json", auth=login).json()
                return job_status(client, job_id)["status"], shown["status"]

            requeued = ("retrying", "queued")  # the API's word for a job queued again

            actions = [f"/job/{one}/requeue", "/requeue/default"]
            for headers in (
                {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
                {"Sec-Fetch-Site": "cross-site"},
                {"Origin": "http://evil.example"},
                {"Referer": "http://evil.example/form.html"},
            ):
                for path in actions:
                    posted = httpx.post(base + path, auth=login, headers=headers, data={"a": "1"})
                    assert posted.status_code == 403, (headers, path, posted.text)
                    assert posted.text == "Cross-site request refused\n"
            for path in actions:
                for method in ("GET", "HEAD"):
                    got = httpx.request(method, base + path, auth=login)
                    assert got.status_code == 405, (method, path, got.text)
            assert status(one) == status(other) == ("failed", "failed")

            # From the dashboard's own pages (rq-dashboard posts with jQuery): it works.
            same_origin = {"Origin": base, "Sec-Fetch-Site": "same-origin", "Referer": base}
            posted = httpx.post(f"{base}/job/{one}/requeue", auth=login, headers=same_origin)
            assert posted.status_code == 200, posted.text
            assert status(one) == requeued
            assert status(other) == ("failed", "failed")
            posted = httpx.post(f"{base}/requeue/default", auth=login, headers={"Origin": base})
            assert posted.json() == {"status": "OK", "count": 1}, posted.text
            assert status(other) == requeued


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True


def test_cron_heartbeats_run_on_the_minute(
    copie_session: Any, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    project = render(copie_session, "rq", loss_tolerable=False, scheduling="cron")
    with Stack(project, request, tmp_path, ENV) as stack:
        stack.start("worker", EXAMPLE_HEARTBEAT_CRON="* * * * *")
        stack.start("scheduler", EXAMPLE_HEARTBEAT_CRON="* * * * *")
        with stack.serve() as (client, _):
            beats = wait_for(
                lambda: client.get("/examples/heartbeats").json(), 75, interval=1, what="a beat"
            )
        tick = datetime.fromisoformat(beats[0]["tick"])
        assert (tick.second, tick.microsecond) == (0, 0), beats
        ran_at = datetime.fromisoformat(beats[0]["ran_at"])
        assert 0 <= (ran_at - tick).total_seconds() < 10, beats
