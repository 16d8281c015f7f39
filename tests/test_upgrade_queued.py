"""Work already queued survives the upgrade (docs/upgrading.md): jobs that the previous
release queued or delayed still run after ``copier update``, on every durable tier.

The previous release is v0.4.0, commit :data:`PREVIOUS_RELEASE` of this repository's history
(never a tag: clones need not have them). A temporary git repository of the template holds
two tagged commits: that commit's tree (``v0.4.0``) and the working tree (``v0.5.0.dev``,
uncommitted edits included). For each durable configuration (rq; Celery on Redis; Celery on
RabbitMQ), one project:

1. is generated from ``v0.4.0`` and installed from its lock;
2. with no worker running, its own API (the example routes of v0.4.0) queues a report that
   fails once then succeeds, and a welcome email delayed by :data:`DELAY` seconds: the jobs
   wait in Redis or the broker in v0.4.0's formats (an RQ job naming its function by path,
   a Celery message naming its task, v0.4.0's delayed sets);
3. is updated to ``v0.5.0.dev`` (``copier update``), cleanly, and installed again; the
   ``.env`` lines the update prints (JOBS_ADMIN_TOKEN, new in v0.5) are added, as a user
   would add them;
4. runs the new release's API, which reads the old jobs as waiting (the delayed one still
   ``scheduled``), then the new release's worker and scheduler, with the commands of its
   compose file: both old jobs finish, with their results, the delayed one not before it was
   due.

Each case gets fresh servers (conftest's fixtures, through ``e2e.stack.Stack``): Redis starts
in milliseconds and only the RabbitMQ case starts RabbitMQ, so servers shared by the module
would save nothing, and would let one case's keys meet the next one's.

A runtime move that leaves an old job's stored name (``<package>.worker.execute``, a task's
``<package>.tasks.<module>.<function>``) or v0.4.0's Redis keys (``<package>:...``,
``rq:scheduled:<queue>``) unresolved fails here.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import time
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from test_updates import (
    TIER_ANSWERS,
    _git,
    _template_files,
    assert_cleanly_merged,
    env_lines,
    generate,
    update,
)

from e2e.stack import Project, Stack
from helpers import REPO_ROOT, job_status, settled, uv_sync

#: v0.4.0, the previous release: "Release v0.4.0: Job API 2, operations, ...".
PREVIOUS_RELEASE = "cd53649a260bef266ff3a235960a7322060fe72f"
OLD, NEW = "v0.4.0", "v0.5.0.dev"

#: The durable configurations, with the answers a team has for each (test_updates's).
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "rq": TIER_ANSWERS["rq"],
    "celery-redis": {**TIER_ANSWERS["celery"], "celery_broker": "redis"},
    "celery-rabbitmq": {**TIER_ANSWERS["celery"], "celery_broker": "rabbitmq"},
}

#: How long the welcome email is delayed. It waits in v0.4.0's delayed set until a worker
#: moves it, and none runs until the new release's: it is still delayed at the update however
#: long that takes (checked). On an idle machine it is due a few seconds after the update
#: (which takes 6 to 13 s with its `uv sync`): the new release's worker waits for its time.
DELAY = 15.0
EMAIL = "ada@example.com"
#: The processes' settings: one Celery worker process is enough for two jobs.
ENV = {"WORKER_CONCURRENCY": "1"}


def require_previous_release() -> None:
    found = subprocess.run(
        ["git", "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"],
        cwd=REPO_ROOT,
        capture_output=True,
    )
    if found.returncode != 0:
        pytest.fail(
            f"this test needs the repository's full history: the previous release v0.4.0 is "
            f"commit {PREVIOUS_RELEASE}, which this clone lacks (a shallow clone? run "
            f"`git fetch --unshallow`, or clone without --depth)",
            pytrace=False,
        )


def build_releases(repo: Path) -> Path:
    """A git repository of the template at ``repo``: v0.4.0 (commit PREVIOUS_RELEASE's
    tree), then v0.5.0.dev (the working tree, as test_updates copies it). The test checks
    first that this clone holds that commit (:func:`require_previous_release`)."""
    repo.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", PREVIOUS_RELEASE],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(repo, filter="tar")
    _git(["init", "--quiet", "--initial-branch=main"], repo)
    _git(["add", "--all"], repo)
    _git(["commit", "--quiet", "--message=v0.4.0"], repo)
    _git(["tag", OLD], repo)
    _git(["rm", "-r", "--quiet", "."], repo)  # what the working tree dropped goes too
    for name in _template_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, repo / name)
    _git(["add", "--all"], repo)
    _git(["commit", "--quiet", "--allow-empty", "--message=v0.5.0.dev"], repo)
    _git(["tag", NEW], repo)
    return repo


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_releases(tmp_path_factory.mktemp("releases") / "copier-fastapi-tasks")


def answers_of(project: Path) -> dict[str, Any]:
    answers: dict[str, Any] = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return answers


def timestamp(text: str | None) -> float:
    assert text, "no time recorded"
    return datetime.fromisoformat(text).timestamp()


# --- what v0.4.0 stored, read before and after the update ----------------------------------


def stored_rq(connection: redis.Redis, job_id: str) -> dict[str, Any]:
    """An RQ job as v0.4.0 wrote it: RQ's JSON serializer, zlib'd: [function, instance,
    args, kwargs]; the function is named by its path, the task by its name in ``args``."""
    data = connection.hget(f"rq:job:{job_id}", "data")
    assert isinstance(data, bytes), f"rq:job:{job_id} has no data"
    function, _, args, _ = json.loads(zlib.decompress(data))
    return {"key": f"rq:job:{job_id}", "function": function, "task": args[0]}


def stored_as_v040_left_them(stack: Stack, queued: str, delayed: str) -> dict[str, Any]:
    """Where and how both jobs wait (``stack``'s Redis), checked against v0.4.0's formats:
    the queued one on its queue, the delayed one in its delayed set only."""
    package = stack.project.package
    tasks = {
        queued: f"{package}.tasks.examples.build_report",
        delayed: f"{package}.tasks.examples.send_welcome_email",
    }
    if stack.project.backend == "rq":
        connection = redis.Redis.from_url(stack.env["REDIS_URL"])
        jobs = {job_id: stored_rq(connection, job_id) for job_id in tasks}
        for job_id, task in tasks.items():
            assert jobs[job_id]["function"] == f"{package}.worker.execute", jobs
            assert jobs[job_id]["task"] == task, jobs
        assert connection.lrange("rq:queue:default", 0, -1) == [queued.encode()]
        assert connection.zrange("rq:scheduled:default", 0, -1) == [delayed.encode()]
        return jobs
    # Celery: a record per job in REDIS_URL's Redis (the task's name, its args for a delayed
    # publish), the delayed jobs in <package>:delayed; the queued one's message, which names
    # its task, is on the broker.
    records = redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    stored: dict[str, Any] = {}
    for job_id, task in tasks.items():
        record = records.hgetall(f"{package}:record:{job_id}")
        stored[job_id] = {"key": f"{package}:record:{job_id}", "task": record.get("task")}
        assert record.get("task") == task, (job_id, record)
    assert records.zrange(f"{package}:delayed", 0, -1) == [delayed]
    return stored


def finished(client: httpx.Client, stack: Stack, job_id: str, stored: Any) -> dict[str, Any]:
    """The job's status once finished or failed; if neither within 120 s, a failure that
    says how v0.4.0 stored it and what the new processes said about it."""
    try:
        return settled(client, job_id, timeout=120)
    except AssertionError as exc:
        said = [
            line
            for process in stack.processes
            for line in process.log().splitlines()
            if job_id in line or "unregistered" in line.lower() or "Error" in line
        ]
        raise AssertionError(
            f"{exc}\nv0.4.0 stored it as {stored}\nits status now: {job_status(client, job_id)}"
            "\nthe new release's processes said:\n" + "\n".join(said[-20:])
        ) from None


# --- the test ---------------------------------------------------------------------------


@pytest.mark.update
@pytest.mark.e2e
@pytest.mark.timeout(900)
@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
def test_work_queued_by_the_previous_release_runs_after_the_update(
    configuration: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    record_property: Any,
) -> None:
    require_previous_release()  # a FAILED test, with the reason, when the history lacks it
    began = time.monotonic()
    template = request.getfixturevalue("releases")
    path = generate(template, tmp_path / "acme-orders", CONFIGURATIONS[configuration], OLD)
    uv_sync(path)

    # v0.4.0's API, no worker: the jobs wait in Redis or the broker.
    (tmp_path / "old").mkdir()
    with Stack(Project(path, answers_of(path)), request, tmp_path / "old", ENV) as old:
        with old.serve() as (client, _):
            response = client.post("/examples/report", json={"seconds": 0, "fail_times": 1})
            assert response.status_code == 202, response.text
            queued = response.json()["job_id"]
            not_before = time.time() + DELAY
            response = client.post(
                "/examples/welcome-email", json={"email": EMAIL, "send_in_seconds": DELAY}
            )
            assert response.status_code == 202, response.text
            delayed = response.json()["job_id"]
            assert job_status(client, queued)["status"] == "queued"
            assert job_status(client, delayed)["status"] == "scheduled"
        stored = stored_as_v040_left_them(old, queued, delayed)

    # The update, while the email is still delayed; the .env lines it asks for, added.
    assert time.time() < not_before
    result = update(path, "--vcs-ref", NEW)
    assert "Updating to template version 0.5.0" in result.stdout + result.stderr
    assert_cleanly_merged(path)
    assert answers_of(path)["_commit"] == NEW
    lines = env_lines(result)
    assert "JOBS_ADMIN_TOKEN" in lines, result.stdout + result.stderr
    with (path / ".env").open("a") as env:
        env.writelines(f"{name}={value}\n" for name, value in lines.items())
    uv_sync(path)
    updated_at = time.time()
    assert stored_as_v040_left_them(old, queued, delayed) == stored  # untouched, still waiting

    # The new release: its API reads the old jobs as waiting; its worker (and scheduler)
    # run them. The API gets the token the update printed, as honcho passes .env on.
    (tmp_path / "new").mkdir()
    with Stack(Project(path, answers_of(path)), request, tmp_path / "new", ENV) as new:
        token = lines["JOBS_ADMIN_TOKEN"]
        with new.serve(JOBS_ADMIN_TOKEN=token) as (client, _):
            client.headers["Authorization"] = f"Bearer {token}"
            assert job_status(client, queued)["status"] == "queued"
            assert job_status(client, delayed)["status"] == "scheduled"
            new.start("worker")
            if "scheduler" in new.project.services:
                new.start("scheduler")
            report = finished(client, new, queued, stored[queued])
            email = finished(client, new, delayed, stored[delayed])
    assert report["status"] == "finished", (report, stored[queued])
    assert report["result"] == {"attempts": 2, "seconds": 0}, report  # its retry too
    assert email["status"] == "finished", (email, stored[delayed])
    assert email["result"] == {"email": EMAIL, "status": "sent"}, email
    # Not run before it was due (give or take the second a time may be recorded to).
    assert timestamp(email["started_at"]) >= not_before - 1, (email, not_before)

    record_property(
        "measured",
        f"queued work across the update, {configuration}: {time.monotonic() - began:.0f} s "
        f"(the delayed job's due time less the update's end: {not_before - updated_at:+.0f} s)",
    )
