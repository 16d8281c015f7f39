"""End to end, across a tier switch on one Redis: what the previous tier left there never
changes the meaning of a new job.

`copier update --data task_backend=...` leaves `.env` alone, so the new tier runs on the
Redis (and the database number) the old one used, and both tiers name their keys after the
package. A job id the old tier used (a caller's id: `report_id`) is a new job on the new
tier, and must start at attempt 1: the Celery tier once counted on from the RQ tier's
attempts (`started, attempt 6`). The projects are fresh renders of each tier with one
package name: what `copier update` makes of a switch is the same project
(tests/test_updates.py::test_tier_switch_in_one_command checks it file by file).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.stack import Project, Stack, render
from helpers import settled

pytestmark = pytest.mark.e2e

ENV = {"JOB_TIMEOUT_SECONDS": "10", "JOB_MAX_RETRIES": "3"}
TIERS = ("rq", "celery-redis")


@pytest.fixture(scope="module")
def projects(copie_session: Any) -> dict[str, Project]:
    return {tier: render(copie_session, tier, loss_tolerable=False) for tier in TIERS}


def run_report(stack: Stack, job_id: str) -> tuple[dict[str, Any], str]:
    """The example report with two planned failures under ``job_id``, on ``stack``'s API
    and worker, to its end: its status and the worker's log."""
    worker = stack.start("worker")
    with stack.serve() as (client, _):
        stack.wait_ready(worker)
        posted = client.post("/examples/report", json={"fail_times": 2, "report_id": job_id})
        assert posted.status_code == 202 and posted.json()["job_id"] == job_id, posted.text
        body = settled(client, job_id, timeout=90)
    return body, worker.log()


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    yield before, after


@pytest.mark.parametrize(("source", "target"), [TIERS, TIERS[::-1]], ids="->".join)
def test_a_new_job_starts_at_attempt_one_after_a_tier_switch(
    projects: dict[str, Project],
    request: pytest.FixtureRequest,
    logs: tuple[Path, Path],
    source: str,
    target: str,
) -> None:
    before, after = logs
    with Stack(projects[source], request, before, ENV) as old:
        body, _ = run_report(old, "leak-1")
    assert body["status"] == "finished" and body["attempts"] == 3, body
    assert body["result"] == {"attempts": 3, "seconds": 0}, body
    # The new tier on the old tier's Redis database, as its unchanged .env says.
    shared = {"REDIS_URL": old.env["REDIS_URL"], "CELERY_RESULT_BACKEND": old.env["REDIS_URL"]}
    with Stack(projects[target], request, after, ENV | shared) as new:
        assert new.redis is old.redis
        body, worker_log = run_report(new, "leak-1")
    assert body["status"] == "finished" and body["attempts"] == 3, body
    assert body["result"] == {"attempts": 3, "seconds": 0}, body
    assert "leak-1" in worker_log and "attempt 4" not in worker_log, worker_log
