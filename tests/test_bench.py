"""The generated `bench` command runs and prints its figures on every tier, against real
servers; and the template's own benchmark command works in its smoke mode.

Nothing here times anything: the figures are printed, never compared with a bound
(speed is measured by benchmarks/run.py, side by side, see docs/performance.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO_ROOT, run, uv_sync
from ports import reserve
from servers import RedisServer, require

pytestmark = pytest.mark.e2e

FIGURES = (
    "enqueue, 1 at a time",
    "enqueue, 16 at once",
    "worker start-up",
    "worker throughput",
    "enqueue to finished",
    "with a job id, 16 at once",
    "delayed, 16 at once",
    "status, 16 at once",
    "cancel, 16 at once",
)


def render(copie_session: Any, tier: str) -> tuple[Path, str]:
    result = copie_session.copy(
        extra_answers={
            "project_name": "Acme Orders",
            "loss_tolerable": tier == "background_tasks",
            "task_backend": tier,
        }
    )
    assert result.exit_code == 0, result.exception
    uv_sync(result.project_dir)
    return result.project_dir, result.answers["package_name"]


@pytest.mark.parametrize("tier", ["background_tasks", "rq", "celery"])
def test_the_bench_command_prints_its_figures(
    copie_session: Any, tmp_path: Path, tier: str, record_property: Any
) -> None:
    project, package = render(copie_session, tier)
    env = {"JOB_TIMEOUT_SECONDS": "10"}
    server = None
    if tier != "background_tasks":
        server = RedisServer(tmp_path).start()
        env["REDIS_URL"] = server.url
        env["CELERY_BROKER_URL"] = server.url
        env["CELERY_RESULT_BACKEND"] = server.url.replace("/0", "/1")
    try:
        args = ["uv", "run", "python", "-m", f"{package}.bench", "--jobs", "24"]
        out = run([*args, "--latency-seconds", "0.5"], cwd=project, env=env, timeout=180)
        for figure in FIGURES:
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith(figure)), None)
            assert line is not None, f"no {figure!r} line in:\n{out.stdout}"
            if not (tier == "background_tasks" and figure == "worker start-up"):
                assert re.search(r"\d", line), line
        record_property("measured", f"bench {tier} (24 jobs, not timed): {out.stdout!r}")

        as_json = run([*args, "--json", "--latency-seconds", "0.5"], cwd=project, env=env,
                      timeout=180)  # fmt: skip
        figures = json.loads(as_json.stdout.strip().splitlines()[-1])
        assert figures["throughput_per_second"] > 0
        assert figures["latency"]["p99_ms"] >= figures["latency"]["p50_ms"] > 0
        for control in ("enqueue_with_id", "enqueue_delayed", "status", "cancel"):
            assert figures["controls"][control]["per_second"] > 0, control

        if tier != "background_tasks":
            # Workers start without FastAPI (about 0.4 s of a worker's start-up): the
            # tasks import jobs.py, which builds JobQueueDep only when a route asks.
            worker = (
                [f"{package}.worker"]
                if tier == "rq"
                else [f"{package}.celery_app", f"{package}.celery_tasks", f"{package}.celery_beat"]
            )
            probe = (
                f"import sys, {', '.join(worker)}, {package}.tasks; "
                "print(sorted(m for m in sys.modules if m.split('.')[0] == 'fastapi'))"
            )
            imported = run(["uv", "run", "python", "-c", probe], cwd=project, env=env, timeout=60)
            assert imported.stdout.strip() == "[]", f"the worker imports {imported.stdout}"
            # The API half never imports the worker half (nor Beat's or RQ's scheduler).
            halves = [f"{package}.worker", f"{package}.scheduler"] if tier == "rq" else worker[1:]
            probe = (
                f"import sys, {package}.main; "
                f"print(sorted(m for m in sys.modules if m in {halves!r}))"
            )
            imported = run(["uv", "run", "python", "-c", probe], cwd=project, env=env, timeout=60)
            assert imported.stdout.strip() == "[]", f"the API imports {imported.stdout}"
    finally:
        if server is not None:
            server.stop()


def test_the_benchmark_command_runs_in_its_smoke_mode(tmp_path: Path) -> None:
    for binary in ("wrk", "redis-server", "redis-benchmark"):
        require(binary)  # scripts/test.sh installs them; in CI a missing one fails
    out_json = tmp_path / "quick.json"
    out = run(["uv", "run", "python", "benchmarks/run.py", "--quick", "--json", str(out_json)],
              cwd=REPO_ROOT, env={"TEST_PORTS": reserve(40)}, timeout=300)  # fmt: skip
    assert "worker / stock jobs/s" in out.stdout
    report = json.loads(out_json.read_text())
    assert {row["figure"] for row in report["rows"]} >= {
        "report / health req/s",
        "report with id / health req/s",
        "welcome-email delayed / health req/s",
        "status / health req/s",
        "cancel x16 / enqueue x16",
        "worker / stock jobs/s",
        "worker / redis LPUSH",
        "enqueue-to-finished p99 ms",
        "worker start-up s",
        "copier copy / copier start-up",
    }
