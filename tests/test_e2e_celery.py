"""End to end, Celery tier, on both brokers: the compose commands (api, worker, scheduler,
dashboard) run as local processes (`uv run <command>`, as the generated README says)
against real Redis and RabbitMQ servers, and are exercised over HTTP and by faults."""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.stack import Project, Stack, render
from helpers import (
    descendants,
    free_port,
    job_status,
    kill_tree,
    late,
    run,
    run_by_one_of_two,
    running_for,
    settled,
    wait_for,
)

pytestmark = pytest.mark.e2e

BROKERS = ["redis", "rabbitmq"]
ENV = {
    "JOB_TIMEOUT_SECONDS": "10",
    "JOB_MAX_RETRIES": "3",
    "EXAMPLE_HEARTBEAT_SECONDS": "2",
    "WORKER_CONCURRENCY": "2",
}


@pytest.fixture(scope="module", params=BROKERS)
def project(request: pytest.FixtureRequest, copie_session: Any) -> Project:
    """One rendered project per broker (interval heartbeats, Flower), shared by the module."""
    return render(
        copie_session,
        f"celery-{request.param}",
        loss_tolerable=False,
        task_duration="long",
        scheduling="interval",
        monitoring=True,
    )


@pytest.fixture
def stack(project: Project, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """Fresh servers for one test, and the processes the test starts on them."""
    with Stack(project, request, tmp_path, ENV) as stack:
        yield stack
    # Redis (and RabbitMQ) have passwords, in the URLs; no process ever prints them.
    redis, rabbitmq = stack.redis, stack.rabbitmq
    secrets = [redis.password, *([rabbitmq.password] if rabbitmq else [])]
    assert all(secrets) and redis.password in stack.env["REDIS_URL"]
    for log in sorted(tmp_path.glob("*.log")):  # the API's and every other process's
        text = log.read_text()
        assert not [s for s in secrets if s in text], f"{log.name} shows a password:\n{text}"


def test_jobs_finish_retry_and_unknown_ids_are_404(stack: Stack) -> None:
    worker = stack.start("worker")
    with stack.serve() as (client, _):
        assert client.get("/health/ready").json() == {"status": "ready"}
        assert client.get("/jobs/never-enqueued").status_code == 404
        stack.wait_ready(worker)
        email = client.post("/examples/welcome-email", json={"email": "ada@example.com"})
        assert email.status_code == 202
        body = settled(client, email.json()["job_id"])
        assert body["status"] == "finished"
        assert body["result"] == {"email": "ada@example.com", "status": "sent"}
        # 3 s: long enough to be seen `started` by a poll every 0.1 s on a busy machine.
        report = client.post("/examples/report", json={"seconds": 3}).json()["job_id"]
        wait_for(lambda: job_status(client, report)["status"] == "started", 30, what="started")
        flaky = client.post("/examples/report", json={"fail_times": 2}).json()["job_id"]
        seen = set()
        body = wait_for(
            lambda: (
                (b := job_status(client, flaky), seen.add(b["status"]))[0]["status"]
                in ("finished", "failed")
                and b
            ),
            40,
            interval=0.05,
            what="the flaky job",
        )
        assert body["status"] == "finished", body
        assert body["result"] == {"attempts": 3, "seconds": 0}
        assert "retrying" in seen, seen
        assert settled(client, report)["result"] == {"attempts": 1, "seconds": 3}
        # A job out of retries is failed, with its error.
        doomed = client.post("/examples/report", json={"fail_times": 10}).json()["job_id"]
        body = settled(client, doomed, timeout=60)
        assert body["status"] == "failed"
        assert body["error"].startswith("TransientError: planned transient failure 4 of 10")


def test_dashboard_asks_for_basic_auth(stack: Stack) -> None:
    port = free_port()
    dashboard = stack.start(
        "dashboard",
        FLOWER_ADDRESS="127.0.0.1",
        FLOWER_PORT=str(port),
        FLOWER_BASIC_AUTH="admin:s3cret",
    )
    url = f"http://127.0.0.1:{port}/"

    def answers() -> httpx.Response | None:
        assert dashboard.popen.poll() is None, dashboard.log()
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            return None

    response = wait_for(answers, 60, interval=0.3, what="Flower")
    assert response.status_code == 401
    assert httpx.get(url, auth=("admin", "s3cret"), timeout=5).status_code == 200


def test_worker_killed_mid_job_every_accepted_job_finishes(
    stack: Stack, record_property: Any
) -> None:
    worker = stack.start("worker")
    with stack.serve() as (client, _):
        stack.wait_ready(worker)
        jobs = [
            client.post("/examples/report", json={"seconds": 4}).json()["job_id"] for _ in range(3)
        ]
        # Both pool processes run a job, begun less than half its run ago: the kill lands
        # inside both executions, not after one has ended.
        running = wait_for(
            lambda: (
                len(fresh := [j for j in jobs if running_for(job_status(client, j)) < 2]) == 2
                and fresh
            ),
            30,
            what="two jobs started",
        )
        killed_at = time.monotonic()
        kill_tree(worker)
        stack.start("worker")
        results = {}
        for job_id in jobs:
            results[job_id] = settled(client, job_id, timeout=90)
        recovery = time.monotonic() - killed_at
    broker = "rabbitmq" if stack.rabbitmq else "redis"
    # Shown in the test summary (conftest.py), also under pytest-xdist.
    record_property(
        "measured",
        f"celery/{broker}: kill -9 of the worker mid-job, every job finished "
        f"{recovery:.1f} s later",
    )
    assert all(body["status"] == "finished" for body in results.values()), results
    # The jobs killed mid-run ran again: attempts counts executions started.
    for job_id in running:
        assert results[job_id]["result"]["attempts"] == 2, results[job_id]
    bound = 60 if broker == "redis" else 45
    assert recovery < bound, f"recovery took {recovery:.1f} s"


def test_sigterm_lets_the_running_job_finish_then_the_worker_exits(stack: Stack) -> None:
    """What `docker compose stop` and Kubernetes do: SIGTERM to the worker process alone.
    Celery's warm shutdown: the job under way finishes, no other job is taken (a message
    the worker had reserved goes back to the broker), the process exits 0. One pool
    process (WORKER_CONCURRENCY=1), busy with the first job, as an RQ worker is: with two,
    the idle one would simply run the second job before the SIGTERM."""
    worker = stack.start("worker", WORKER_CONCURRENCY="1")
    with stack.serve() as (client, _):
        # Long enough to be seen `started` (a poll every 0.1 s) and still running at the SIGTERM.
        running = client.post("/examples/report", json={"seconds": 5}).json()["job_id"]
        wait_for(
            lambda: job_status(client, running)["status"] == "started", 30, what="the job to start"
        )
        waiting = client.post("/examples/report", json={"seconds": 0}).json()["job_id"]
        os.kill(descendants(worker.popen.pid)[0], signal.SIGTERM)  # uv run's child: Celery
        assert worker.popen.wait(60) == 0, worker.log()[-3000:]
        assert settled(client, running)["status"] == "finished"
        assert job_status(client, waiting)["status"] == "queued"


def test_two_workers_of_one_command_on_one_host_both_take_jobs(stack: Stack) -> None:
    """Two copies of the `worker` command, exactly as compose and the Procfile write it, on
    one host (`honcho start -c worker=2`, two systemd units, a restart while the old process
    lives): each names itself (worker-<pid>@<host>), both take jobs, and compose's
    healthcheck, run here as a local process, pings the worker by the name it wrote. On
    RabbitMQ the second used to die at start (its control queue, exclusive to a node name,
    was locked by the first)."""
    workers = [stack.start("worker", WORKER_CONCURRENCY="1") for _ in range(2)]
    for worker in workers:
        stack.wait_ready(worker)
    names = [re.search(r"(worker-(\d+)@\S+) ready\.", w.log()) for w in workers]
    assert all(names) and len({n.group(1) for n in names if n}) == 2, names
    with stack.serve() as (client, _):
        # One pool process each, one job reserved at a time (prefetch 1, acks late): while
        # one worker runs the first job, only the other can take the second.
        jobs = [
            client.post("/examples/report", json={"seconds": 3}).json()["job_id"] for _ in range(2)
        ]
        assert all(settled(client, job)["status"] == "finished" for job in jobs)
    ran = [{job for job in jobs if f"job {job} " in worker.log()} for worker in workers]
    assert sorted(map(len, ran)) == [1, 1] and ran[0] != ran[1], ran
    # Compose's healthcheck (CMD-SHELL; `$$` is compose's escape of `$`), with the stack's
    # TMPDIR, where the workers wrote their names.
    check = stack.project.services["worker"]["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL", check
    command = ["uv", "run", "--quiet", "sh", "-c", check[1].replace("$$", "$")]
    healthy = run(command, cwd=stack.project.path, env=stack.env, timeout=120)
    assert any(f"{n.group(1)}: OK" in healthy.stdout for n in names if n), healthy.stdout
    kill_tree(workers[0])
    kill_tree(workers[1])
    unhealthy = run(command, cwd=stack.project.path, env=stack.env, timeout=120, check=False)
    assert unhealthy.returncode != 0, unhealthy.stdout


def test_a_worker_whose_name_is_taken_says_why_and_exits_at_once(stack: Stack) -> None:
    """A name set by hand (`--hostname`) is kept as it is. On RabbitMQ a second worker of
    that name cannot start (its control queue is exclusive to the name): it must say why
    and exit non-zero at once, not linger without consuming. Redis locks no queue to a
    name: there both run, as the README says."""
    first = stack.start("worker", args="--hostname twin@%h")
    stack.wait_ready(first)
    assert re.search(r"twin@\S+ ready\.", first.log()), first.log()
    second = stack.start("worker", args="--hostname twin@%h")
    if stack.rabbitmq is None:
        stack.wait_ready(second)
        assert first.popen.poll() is None
        return
    # Seconds in practice; 60 s is far beyond that, on a busy machine too.
    wait_for(lambda: second.popen.poll() is not None, 60, what="the second worker to exit")
    assert second.popen.returncode != 0, second.log()
    assert "RESOURCE_LOCKED" in second.log() and "twin@" in second.log(), second.log()
    assert first.popen.poll() is None


#: The slots the two Beats test watches: each run, and skipped by the other Beat.
SLOTS = 6
SLOT_SECONDS = 2  # EXAMPLE_HEARTBEAT_SECONDS
SKIPPED = re.compile(r"tick (\S+) was sent by another scheduler")


def test_two_beats_never_run_a_tick_twice(stack: Stack) -> None:
    worker = stack.start("worker")
    with stack.serve() as (client, _):
        stack.wait_ready(worker)
        started = datetime.now(UTC)
        beats = [stack.start("scheduler") for _ in range(2)]
        items = run_by_one_of_two(client, beats, SKIPPED, SLOTS, slot_seconds=SLOT_SECONDS)
    ticks = [datetime.fromisoformat(item["tick"]) for item in items]
    assert len(set(ticks)) == len(ticks), f"a tick ran twice: {ticks}"
    assert all(tick.timestamp() % 2 == 0 for tick in ticks), ticks
    # The list is newest run first: two pool processes may finish the runs of neighbouring
    # slots in either order, so the slots are compared in their own order.
    gaps = [(a - b).total_seconds() for a, b in itertools.pairwise(sorted(ticks, reverse=True))]
    assert all(gap > 0 and gap % 2 == 0 for gap in gaps), ticks
    # No slot that began before Beat started was sent.
    assert min(ticks) > started, (started, ticks)
    # Each run happens after its slot began. How long after depends on the machine's load
    # (a 2-core runner with the whole suite in parallel saw 2.0 s), so there is no upper
    # bound: the slot a run belongs to is what matters, and the uniqueness and alignment
    # checks above and the run seen inside its slot prove it.
    for item in items:
        assert late(item) >= 0, item


def test_broker_down_is_503_then_recovers_without_restarting_the_api(
    stack: Stack, record_property: Any
) -> None:
    worker = stack.start("worker")
    with stack.serve() as (client, api):
        stack.wait_ready(worker)
        first = client.post("/examples/report", json={}).json()["job_id"]
        assert settled(client, first)["status"] == "finished"

        stack.broker.kill()
        began = time.monotonic()
        response = client.post("/examples/report", json={})
        took = time.monotonic() - began
        assert response.status_code == 503, response.text
        assert response.json()["detail"].startswith("background jobs are unavailable")
        assert took < 6, f"the 503 took {took:.1f} s"
        broker = "rabbitmq" if stack.rabbitmq else "redis"
        record_property(
            "measured", f"celery/{broker}: enqueue with the broker down, 503 in {took:.1f} s"
        )
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable" and ready.json()["reason"]
        assert stack.broker.password not in response.text + ready.text
        assert stack.redis.password not in response.text + ready.text
        # The answers name no host, port or URL; the API's log has them, for the operator.
        ports = {str(stack.broker.port), str(stack.redis.port)}
        for leak in ("127.0.0.1", "localhost", "redis://", "amqp://", *ports):
            assert leak not in response.text + ready.text, (leak, response.text, ready.text)
        assert "is unreachable (connection refused)" in ready.json()["reason"]
        address = f"127.0.0.1:{stack.broker.port}"
        lines = [line for line in api.log().splitlines() if address in line]
        assert any("WARNING" in line for line in lines), api.log()

        stack.broker.start()
        wait_for(lambda: client.get("/health/ready").status_code == 200, 30, what="ready again")
        accepted = wait_for(
            lambda: (r := client.post("/examples/report", json={})).status_code == 202 and r,
            15,
            interval=0.5,
            what="an enqueue to be accepted again",
        )
        job_id = accepted.json()["job_id"]
        workers = [worker]

        def settled_restarting_exited_workers() -> dict[str, Any] | None:
            # A worker that exits when its broker died (kombu may end the worker while it
            # restores its unacknowledged messages: "Unrecoverable error") may still be
            # shutting down now: whenever it has exited, start another one, as compose's
            # `restart` policy does.
            if workers[-1].popen.poll() is not None:
                record_property(
                    "measured",
                    f"celery: the worker exited ({workers[-1].popen.returncode}) when its "
                    "broker died; restarted as compose's restart policy would",
                )
                workers.append(stack.start("worker"))
            body = job_status(client, job_id)
            return body if body["status"] in ("finished", "failed") else None

        body = wait_for(settled_restarting_exited_workers, 60, 0.2, what=f"job {job_id} to settle")
        assert body["status"] == "finished", body
        assert api.popen.poll() is None
        assert "Traceback" not in api.log()


PICKLE_PUBLISHER = """
import os, sys, uuid
from kombu import Connection, Exchange

broker_url, marker, task_name = sys.argv[1:4]

class SideEffect:
    # Unpickling this creates the marker directory: proof that pickle was loaded.
    def __reduce__(self):
        return (os.mkdir, (marker,))

task_id = str(uuid.uuid4())
headers = {
    "lang": "py", "task": task_name, "id": task_id, "root_id": task_id,
    "parent_id": None, "group": None, "retries": 0, "eta": None, "expires": None,
    "timelimit": [None, None], "argsrepr": "(...)", "kwargsrepr": "{}", "origin": "test",
}
body = ((SideEffect(),), {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None})
with Connection(broker_url) as connection:
    producer = connection.Producer(serializer="pickle")
    producer.publish(
        body, exchange=Exchange("default", type="direct"), routing_key="default",
        headers=headers, correlation_id=task_id,
    )
print(task_id)
"""


def test_a_pickle_message_is_refused_and_runs_nothing(stack: Stack, tmp_path: Path) -> None:
    worker = stack.start("worker")
    stack.wait_ready(worker)
    marker = tmp_path / "unpickled"
    task_name = f"{stack.project.package}.tasks.examples.send_welcome_email"
    published = run(
        [
            "uv",
            "run",
            "--quiet",
            "python",
            "-c",
            PICKLE_PUBLISHER,
            stack.broker.url,
            str(marker),
            task_name,
        ],
        cwd=stack.project.path,
    )
    task_id = published.stdout.strip()
    wait_for(lambda: "untrusted content of type pickle" in worker.log(), 20, what="the refusal")
    with stack.serve() as (client, _):
        # The worker goes on with JSON jobs...
        job_id = client.post("/examples/welcome-email", json={"email": "a@example.com"}).json()
        assert settled(client, job_id["job_id"])["status"] == "finished"
    # ...and nothing of the pickle message ran: not unpickled, not started, no result.
    assert not marker.exists()
    assert f"job {task_id} (" not in worker.log()
    check = run(
        [
            "uv", "run", "--quiet", "python", "-c",
            "import sys, redis; r = redis.Redis.from_url(sys.argv[1]);"
            "print(sorted(k.decode() for k in r.keys('*' + sys.argv[2] + '*')))",
            stack.env["REDIS_URL"], task_id,
        ],
        cwd=stack.project.path,
    )  # fmt: skip
    assert check.stdout.strip() == "[]", check.stdout


def test_cron_heartbeat_runs_at_the_minute(
    copie_session: Any, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """scheduling=cron: Beat sends the example job on EXAMPLE_HEARTBEAT_CRON (every minute
    here); its tick is the minute. The schedule is the broker's business only through
    sending, so Redis as the broker is enough here."""
    project = render(copie_session, "celery-redis", scheduling="cron")
    env = ENV | {"EXAMPLE_HEARTBEAT_CRON": "* * * * *"}
    with Stack(project, request, tmp_path, env) as stack:
        worker = stack.start("worker")
        beat = stack.start("scheduler")
        with stack.serve() as (client, _):
            stack.wait_ready(worker)
            beats = wait_for(
                lambda: client.get("/examples/heartbeats").json(),
                timeout=75,
                interval=0.5,
                what=f"a cron heartbeat:\n{beat.log()[-3000:]}",
            )
    tick = datetime.fromisoformat(beats[0]["tick"])
    assert (tick.second, tick.microsecond) == (0, 0)
    assert len(beats) == 1
    late = datetime.fromisoformat(beats[0]["ran_at"]) - tick
    assert 0 <= late.total_seconds() < 5, beats
