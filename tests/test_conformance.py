"""One behavioural spec of the job API, run over HTTP against every tier and broker.

Each tier's project is rendered, given the conformance tasks and route
(``tests/conformance_app.py``), and run as compose runs it: the ``api``, ``worker`` and
scheduler commands as local processes (``uv run <command>``) against real Redis and
RabbitMQ servers. The spec then drives it only through HTTP and reads what ran from the
tasks' own execution file:

- task options: a per-task ``timeout`` below and above JOB_TIMEOUT_SECONDS, ``max_retries``
  (two retries where the default is none), a non-retryable error, a per-task ``queue``
  that only a worker consuming it (``WORKER_QUEUES``) runs;
- ``options(delay=...)``: ``scheduled`` until due, then run once, no sooner;
- ``options(job_id=...)``: 20 concurrent enqueues of one id run one job, also when repeated;
- ``DELETE /jobs/{id}``: a delayed job and a job waiting on a queue nobody consumes are
  cancelled and never run, also across worker restarts; a finished job is 409, unknown 404;
- ``GET /jobs?status=failed`` newest first, ``POST /jobs/{id}/retry`` (attempts keep counting);
- bad input (a negative delay, a job id outside the charset, an unknown status, a limit out of
  range): 422 naming the value, nothing enqueued;
- ``GET /schedules``: a weekday cron runs on Sunday;
- durable tiers: a delayed job survives ``kill -9`` of the API and the worker.

A difference between tiers is a bug or a documented refusal. The refusals, all of the
in-process tier (background_tasks) and written in its docs: it runs a task once (no
retries), runs every queue in the API process, and loses delayed jobs on a restart.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import e2e.stack
from conformance_app import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    FLAKY_RETRIES,
    LONG_SLEEP,
    OTHER_QUEUE,
    SHORT_TIMEOUT,
    add_conformance_app,
    runs_of,
)
from e2e.stack import DURABLE, TIERS, Project, render
from helpers import AS_OPERATOR, wait_for
from loadgen import Api, Workers

pytestmark = pytest.mark.e2e

FINAL = ("finished", "failed", "cancelled")
SETTLE = 60  # s: the longest any job here may take to settle on a 2-core machine under load
DELAY = 4  # s: the delayed jobs' delay


class Stack(e2e.stack.Stack):
    """A project's compose processes on fresh servers, and the tasks' execution file: the
    API restartable on its port, each worker brought back when it exits."""

    def __init__(self, project: Project, request: pytest.FixtureRequest, logs: Path) -> None:
        self.file = logs / "executions.jsonl"
        env = {
            "JOB_TIMEOUT_SECONDS": str(DEFAULT_TIMEOUT),
            "JOB_MAX_RETRIES": str(DEFAULT_RETRIES),
            "CONFORMANCE_FILE": str(self.file),
        }
        super().__init__(project, request, logs, env)
        self.api = Api(lambda name: self.process("api", name, **self.api_env), self.port)
        self.workers: dict[str, Workers] = {}

    def start_workers(self, queues: str) -> Workers:
        """A worker (restarted when it exits, as compose does) consuming ``queues``."""
        workers = Workers(
            lambda name: self.process("worker", f"{queues}-{name}", WORKER_QUEUES=queues),
            1,
            self.worker_ready,
        )
        self.workers[queues] = workers.start()
        return workers

    def up(self) -> Stack:
        """The workers and the scheduler, then the API, as `docker compose up` starts them."""
        if self.project.durable:
            self.start_workers("default")
            for service in ("scheduler", "beat"):
                if service in self.project.services:
                    self.start(service, service)
        self.api.start()
        return self

    def stop(self) -> None:
        for workers in self.workers.values():
            workers.stop()  # first, or their watchers start the workers stopped below again
        super().stop()


@pytest.fixture(params=list(TIERS))
def stack(request: pytest.FixtureRequest, copie_session: Any, tmp_path: Path) -> Iterator[Stack]:
    durable = {"loss_tolerable": False} if request.param in DURABLE else {}
    project = render(
        copie_session,
        request.param,
        prepare=lambda new: add_conformance_app(new.path, new.package),
        scheduling="cron",
        **durable,
    )
    with Stack(project, request, tmp_path) as stack:
        yield stack.up()


class Spec:
    """The spec's steps over HTTP; failures are collected, so one run shows every difference."""

    def __init__(self, stack: Stack, client: httpx.Client) -> None:
        self.stack, self.client = stack, client
        self.failures: list[str] = []
        self.failed_job = ""  # a job that failed at once: retried later

    def check(self, condition: object, what: str) -> bool:
        if not condition:
            self.failures.append(what)
        return bool(condition)

    def enqueue(self, name: str, *args: Any, **options: Any) -> str:
        response = self.post(name, *args, **options)
        assert response.status_code == 202, f"POST /conformance/{name}: {response.text}"
        job_id: str = response.json()["job_id"]
        return job_id

    def post(self, name: str, *args: Any, **options: Any) -> httpx.Response:
        return self.client.post(f"/conformance/{name}", json={"args": list(args), **options})

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, f"GET /jobs/{job_id}: {response.text}"
        body: dict[str, Any] = response.json()
        return body

    def settle(self, job_id: str, timeout: float = SETTLE) -> dict[str, Any]:
        body: dict[str, Any] = wait_for(
            lambda: (b := self.job(job_id))["status"] in FINAL and b,
            timeout,
            interval=0.2,
            what=f"job {job_id} to settle",
        )
        return body

    def runs(self, job_id: str) -> int:
        return len(runs_of(self.stack.file, job_id))


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def test_one_meaning_on_every_tier(stack: Stack) -> None:
    with httpx.Client(base_url=stack.api.base_url, timeout=30, headers=AS_OPERATOR) as client:
        spec = Spec(stack, client)
        check_task_options(spec)
        check_caller_ids(spec)
        check_delay_and_cancel(spec)
        check_failed_list_and_retry(spec)
        check_bad_input(spec)
        check_queues(spec)
        check_schedules(spec)
        check_operator_surface(spec)
        check_secrets_masked(spec)
        if stack.project.durable:
            check_restarts(spec)
    assert not spec.failures, f"{stack.project.tier}: " + "\n".join(spec.failures)


def check_task_options(spec: Spec) -> None:
    echo = spec.enqueue("echo", {"n": 1})
    short = spec.enqueue("short", 30)
    long = spec.enqueue("long", LONG_SLEEP)
    flaky = spec.enqueue("flaky")
    boom = spec.enqueue("boom")
    spec.failed_job = boom

    body = spec.settle(echo)
    spec.check(body["status"] == "finished" and body["result"] == {"n": 1}, f"echo: {body}")
    spec.check(
        (body["task"], body["queue"], body["attempts"]) == ("conf.echo", "default", 1),
        f"echo's task, queue, attempts: {body}",
    )
    times = [_when(body[k]) for k in ("enqueued_at", "started_at", "ended_at")]
    spec.check(
        all(t is not None and t.tzinfo is not None for t in times)
        and times == sorted(t for t in times if t is not None),
        f"echo's times must be UTC and in order (enqueued <= started <= ended): {body}",
    )

    body = spec.settle(short)
    spec.check(
        body["status"] == "failed"
        and body["error"] == f"TimeoutError: timed out after {SHORT_TIMEOUT} s"
        and body["attempts"] == 1,
        f"a task's own timeout ({SHORT_TIMEOUT} s) ends it failed, not retried: {body}",
    )
    body = spec.settle(long)
    spec.check(
        body["status"] == "finished" and body["result"] == LONG_SLEEP,
        f"a task's own timeout above JOB_TIMEOUT_SECONDS ({DEFAULT_TIMEOUT} s) lets it "
        f"run {LONG_SLEEP} s: {body}",
    )
    body = spec.settle(flaky)
    executions = FLAKY_RETRIES + 1 if spec.stack.project.durable else 1  # in-process: runs once
    spec.check(
        body["status"] == "failed"
        and body["attempts"] == executions
        and spec.runs(flaky) == executions
        and (body["error"] or "").startswith("TransientError"),
        f"max_retries={FLAKY_RETRIES} (JOB_MAX_RETRIES={DEFAULT_RETRIES}): {executions} "
        f"executions, then failed; got {body}, {spec.runs(flaky)} runs",
    )
    body = spec.settle(boom)
    spec.check(
        body["status"] == "failed"
        and body["attempts"] == 1
        and spec.runs(boom) == 1
        and body["error"] == "ValueError: not worth a retry",
        f"an error outside retry_for fails at once: {body}",
    )


def check_caller_ids(spec: Spec) -> None:
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(
            pool.map(lambda _: spec.post("echo", "once", job_id="conf-dup-1"), range(20))
        )
    codes = sorted({a.status_code for a in answers})
    ids = {a.json().get("job_id") for a in answers if a.status_code == 202}
    spec.check(codes == [202] and ids == {"conf-dup-1"}, f"20 racing enqueues: {codes} {ids}")
    spec.settle("conf-dup-1")
    again = spec.post("echo", "twice", job_id="conf-dup-1")
    spec.check(
        again.status_code == 202 and again.json()["job_id"] == "conf-dup-1",
        f"an id known already answers it again: {again.text}",
    )
    # A second conf-dup-1 job would be queued ahead of this one (in process: started right
    # after its 202), and the worker takes jobs in order: it would have run by now.
    spec.settle(spec.enqueue("echo", "after conf-dup-1"))
    body = spec.job("conf-dup-1")
    spec.check(
        spec.runs("conf-dup-1") == 1 and body["result"] == "once",
        f"21 enqueues of one id ran {spec.runs('conf-dup-1')} job(s): {body}",
    )


def check_delay_and_cancel(spec: Spec) -> None:
    before = time.time()
    delayed = spec.enqueue("echo", "later", delay=DELAY)
    doomed = spec.enqueue("echo", "never", delay=DELAY)
    doomed_due = time.time() + DELAY  # or sooner
    spec.check(spec.job(delayed)["status"] == "scheduled", "a delayed job is scheduled")
    cancelled = client_delete(spec, doomed)
    spec.check(
        cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled",
        f"DELETE of a scheduled job: {cancelled.status_code} {cancelled.text}",
    )
    if spec.stack.project.durable:
        spec.stack.workers["default"].kill()  # the cancel must outlive the worker
    body = spec.settle(delayed)
    runs = runs_of(spec.stack.file, delayed)
    spec.check(
        body["status"] == "finished" and len(runs) == 1 and runs[0].at >= before + DELAY,
        f"a {DELAY} s delay runs once, no sooner: {body}, ran at "
        f"{[round(r.at - before, 2) for r in runs]} s",
    )
    # Due a second or more after the cancelled job (RQ rounds a due time up to the second):
    # due jobs are queued in due order and run in order, so the cancelled one, had it been
    # kept, would have run before this one settled.
    later = max(1.0, math.ceil(doomed_due) + 1 - time.time())
    spec.settle(spec.enqueue("echo", "after the cancelled one", delay=later))
    spec.check(
        spec.runs(doomed) == 0 and spec.job(doomed)["status"] == "cancelled",
        f"a cancelled job never runs: {spec.runs(doomed)} runs, {spec.job(doomed)}",
    )
    finished = client_delete(spec, delayed)
    spec.check(finished.status_code == 409, f"DELETE of a finished job: {finished.text}")
    spec.check(client_delete(spec, "conf-never-enqueued").status_code == 404, "DELETE unknown")
    spec.check(client_delete(spec, "bad%20id").status_code == 404, "DELETE of a malformed id")


def client_delete(spec: Spec, job_id: str) -> httpx.Response:
    return spec.client.delete(f"/jobs/{job_id}")


def check_failed_list_and_retry(spec: Spec) -> None:
    boom = spec.failed_job
    listed = spec.client.get("/jobs", params={"status": "failed"})
    spec.check(listed.status_code == 200, f"GET /jobs?status=failed: {listed.text}")
    jobs = listed.json().get("jobs", []) if listed.status_code == 200 else []
    spec.check(
        jobs and all(j["status"] == "failed" for j in jobs) and boom in [j["job_id"] for j in jobs],
        f"the failed list holds the failed jobs only: {jobs}",
    )
    stamps = [_when(j["enqueued_at"]) or datetime.min.replace(tzinfo=UTC) for j in jobs]
    spec.check(
        len(jobs) >= 3 and stamps == sorted(stamps, reverse=True),
        f"newest first: {[j['enqueued_at'] for j in jobs]}",
    )
    everything = spec.client.get("/jobs", params={"limit": 2}).json().get("jobs", [])
    spec.check(len(everything) == 2, f"limit=2: {everything}")

    retried = spec.client.post(f"/jobs/{boom}/retry")
    spec.check(
        retried.status_code == 202 and retried.json() == {"job_id": boom},
        f"POST /jobs/{{failed}}/retry: {retried.status_code} {retried.text}",
    )
    body = spec.settle(boom) if retried.status_code == 202 else {}
    spec.check(
        body.get("status") == "failed" and body.get("attempts") == 2 and spec.runs(boom) == 2,
        f"a retried job runs again with the same id, attempts counting on: {body}",
    )
    finished = spec.client.post("/jobs/conf-dup-1/retry")
    spec.check(finished.status_code == 409, f"retry of a finished job: {finished.text}")
    unknown = spec.client.post("/jobs/conf-never-enqueued/retry")
    spec.check(unknown.status_code == 404, f"retry of an unknown job: {unknown.text}")


def check_bad_input(spec: Spec) -> None:
    before = spec.client.get("/jobs", params={"limit": 500}).json()["jobs"]
    cases = [
        ("delay=-1", spec.post("echo", delay=-1), "-1"),
        ("a job id outside the charset", spec.post("echo", job_id="no spaces!"), "no spaces!"),
        ("a job id too long", spec.post("echo", job_id="x" * 129), "x" * 129),
        ("status=bogus", spec.client.get("/jobs", params={"status": "bogus"}), "bogus"),
        ("limit=0", spec.client.get("/jobs", params={"limit": 0}), "0"),
        ("limit=501", spec.client.get("/jobs", params={"limit": 501}), "501"),
        # JSON has no NaN or Infinity; Python's JSON reader takes them (FastAPI's own 422
        # then failed to quote them back: a 500).
        ("delay NaN", post_raw(spec, "/conformance/echo", '{"args": [], "delay": NaN}'), "nan"),
        ("seconds NaN", post_raw(spec, "/examples/report", '{"seconds": NaN}'), "finite"),
        ("seconds Infinity", post_raw(spec, "/examples/report", '{"seconds": Infinity}'), "finite"),
        (
            "send_in_seconds -Infinity",
            post_raw(
                spec, "/examples/welcome-email", '{"email": "a@b.io", "send_in_seconds": -Infinity}'
            ),
            "finite",
        ),
        # A report that would run into the job's timeout (it was accepted, then timed out).
        (
            "seconds a hair under the timeout",
            spec.client.post("/examples/report", json={"seconds": DEFAULT_TIMEOUT - 0.0001}),
            "JOB_TIMEOUT_SECONDS",
        ),
    ]
    for what, response, value in cases:
        spec.check(
            response.status_code == 422 and value in response.text,
            f"{what}: 422 naming the value, got {response.status_code} {response.text}",
        )
    after = spec.client.get("/jobs", params={"limit": 500}).json()["jobs"]
    spec.check(len(after) == len(before), "bad input enqueued nothing")


def post_raw(spec: Spec, path: str, body: str) -> httpx.Response:
    return spec.client.post(path, content=body, headers={"content-type": "application/json"})


def check_queues(spec: Spec) -> None:
    durable = spec.stack.project.durable
    waiting = spec.enqueue("other", "elsewhere")
    parked = spec.enqueue("other", "cancelled while it waits")
    if durable:
        body = spec.job(waiting)
        spec.check(
            body["status"] == "queued" and body["queue"] == OTHER_QUEUE,
            f"a job on queue {OTHER_QUEUE!r} waits while no worker consumes it: {body}",
        )
        cancelled = client_delete(spec, parked)
        spec.check(cancelled.status_code == 200, f"DELETE of a queued job: {cancelled.text}")
        spec.stack.start_workers(OTHER_QUEUE)
    body = spec.settle(waiting)
    spec.check(
        body["status"] == "finished" and body["queue"] == OTHER_QUEUE,
        f"the {OTHER_QUEUE!r} job ran{' on its own worker' if durable else ''}: {body}",
    )
    if durable:
        # Whoever ran it, a worker logs a job's id when it takes it: the default worker's logs
        # never name it (nothing taken from queue "other", ever), its own worker's do.
        default_logs = "".join(p.log() for p in spec.stack.workers["default"].all)
        other_logs = "".join(p.log() for p in spec.stack.workers[OTHER_QUEUE].all)
        spec.check(
            waiting not in default_logs and waiting in other_logs,
            f"only the {OTHER_QUEUE!r} worker took the {OTHER_QUEUE!r} job {waiting}",
        )
        # Queue "other" is taken in order: this job, enqueued after the cancelled one, settles
        # only once the worker has taken the cancelled one (and dropped it, unrun).
        spec.settle(spec.enqueue("other", "after the cancelled one"))
        spec.check(spec.runs(parked) == 0, "a cancelled queued job never runs")


def check_schedules(spec: Spec) -> None:
    schedules = spec.client.get("/schedules").json()
    weekly = [s for s in schedules if s["task"].endswith("conformance.weekly")]
    spec.check(len(weekly) == 1, f"GET /schedules lists the weekly job: {schedules}")
    if weekly:
        when = datetime.fromisoformat(weekly[0]["next_run"])
        spec.check(
            when.utcoffset() is not None
            and when.weekday() == 6
            and (when.hour, when.minute) == (3, 0)
            and when > datetime.now(UTC),
            f"'0 3 * * 0' next runs on a Sunday at 03:00 UTC: {weekly[0]}",
        )


#: Every operator route (a method and a path), refused without the operators' token.
OPERATOR_ROUTES = [
    ("GET", "/jobs"),
    ("GET", "/jobs/conf-dup-1"),
    ("DELETE", "/jobs/conf-dup-1"),
    ("POST", "/jobs/conf-dup-1/retry"),
    ("GET", "/schedules"),
    ("GET", "/examples/heartbeats"),
]


def check_operator_surface(spec: Spec) -> None:
    """An anonymous client reads and moves no job but its own, through its status URL, and
    cannot hold workers; a caller id held by another task is 409 and enqueues nothing."""
    package = spec.stack.project.package
    with httpx.Client(base_url=spec.client.base_url, timeout=30) as anonymous:
        for method, path in OPERATOR_ROUTES:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                answer = anonymous.request(method, path, headers=headers)
                spec.check(
                    answer.status_code == 401
                    and answer.headers.get("www-authenticate") == "Bearer"
                    and "detail" in answer.json(),
                    f"anonymous {method} {path} ({headers}): {answer.status_code} {answer.text}",
                )
        before = len(spec.client.get("/jobs", params={"limit": 500}).json()["jobs"])
        report = anonymous.post("/examples/report", json={"seconds": 1, "report_id": "conf-squat"})
        spec.check(report.status_code == 401, f"anonymous report: {report.text}")
        after = len(spec.client.get("/jobs", params={"limit": 500}).json()["jobs"])
        spec.check(before == after, f"an anonymous report enqueued something: {before} -> {after}")

        email = anonymous.post("/examples/welcome-email", json={"email": "ada@example.com"})
        spec.check(email.status_code == 202, f"anonymous welcome email: {email.text}")
        accepted = email.json()
        url = accepted["status_url"]
        own: dict[str, Any] = wait_for(
            lambda: (
                (r := anonymous.get(url)).status_code == 200
                and r.json()["status"] in FINAL
                and r.json()
            ),
            SETTLE,
            interval=0.2,
            what="the welcome email at its status URL",
        )
        spec.check(
            own["job_id"] == accepted["job_id"]
            and own["result"] == {"email": "ada@example.com", "status": "sent"},
            f"the status URL shows the job it was given for: {own}",
        )
        key = url.split("key=", 1)[1]
        for other in (
            f"/jobs/{spec.failed_job}/status?key={key}",  # another job, this key
            url[:-1] + ("1" if key[-1] == "0" else "0"),  # altered
            f"/jobs/{accepted['job_id']}/status?key={'0' * 32}",  # guessed
        ):
            answer = anonymous.get(other)
            spec.check(
                answer.status_code == 404 and "ada@" not in answer.text,
                f"{other}: {answer.status_code} {answer.text}",
            )

    held = spec.client.post("/examples/report", json={"seconds": 0, "report_id": "conf-held"})
    spec.check(held.status_code == 202, f"an operator's report: {held.text}")
    squat = spec.post("echo", "squatted", job_id="conf-held")
    spec.check(
        squat.status_code == 409
        and squat.json() == {"detail": "job id 'conf-held' is held by a job of another task"},
        f"a caller id held by another task: {squat.status_code} {squat.text}",
    )
    body = spec.settle("conf-held")
    spec.check(
        body["task"] == f"{package}.tasks.examples.build_report"
        and body["status"] == "finished"
        and spec.runs("conf-held") == 0,
        f"the report holds its id, and the squatting echo never ran: {body}",
    )


#: Secrets a task's error or result may quote, and what the API must never show of them.
LEAKY = "cannot reach postgresql://app:S3cretPw@db.internal:5432/orders; api_key=AKIA0LEAK"
RESULT = {"dsn": "redis://:R3disPw@cache:6379/0", "password": "hunter2", "note": "token=T0KEN"}
SECRETS = ("S3cretPw", "AKIA0LEAK", "R3disPw", "hunter2", "T0KEN")


def check_secrets_masked(spec: Spec) -> None:
    """A job's error and result are shown with their secrets masked, to operators and at
    the job's status URL alike (the logs mask them too)."""
    failed = spec.settle(spec.enqueue("leak", LEAKY))
    finished = spec.settle(spec.enqueue("echo", RESULT))
    listed = spec.client.get("/jobs", params={"limit": 10}).text
    for shown in (json.dumps(failed), json.dumps(finished), listed):
        spec.check(not [s for s in SECRETS if s in shown], f"a secret is shown: {shown}")
    spec.check(
        (failed["error"] or "").startswith("ConnectionError: cannot reach postgresql://app:***@"),
        f"the error, masked, still says what failed: {failed}",
    )
    spec.check(finished["result"].get("note") == "token=***", f"masked result: {finished}")


def check_restarts(spec: Spec) -> None:
    before = time.time()
    delayed = spec.enqueue("echo", "after restarts", delay=DELAY + 2)
    spec.stack.api.kill()
    spec.stack.workers["default"].kill()
    spec.stack.api.start()
    body = spec.settle(delayed)
    runs = runs_of(spec.stack.file, delayed)
    spec.check(
        body["status"] == "finished" and len(runs) == 1 and runs[0].at >= before + DELAY + 2,
        f"a delayed job survives kill -9 of the API and the worker, and runs once: {body}, "
        f"{len(runs)} runs",
    )
