"""The generated `bench` command runs and prints its figures on every tier, against real
servers; and the template's own benchmark command works in its smoke mode, and its
``--against REF`` parts (a commit resolved or refused, its template rendered, the
side-by-side rows) work without a benchmark run.

Nothing here times anything: the figures are printed, never compared with a bound
(speed is measured by benchmarks/run.py, side by side, see docs/performance.md).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
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
        "API start-up s",
        "copier copy / copier start-up",
    }


# --- benchmarks/run.py --against REF, without a benchmark run (a few seconds) -----------


def bench_run() -> ModuleType:
    """benchmarks/run.py as a module (it is a script, not a package), loaded once."""
    if "bench_run" in sys.modules:
        return sys.modules["bench_run"]
    spec = importlib.util.spec_from_file_location("bench_run", REPO_ROOT / "benchmarks/run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_against_resolves_a_commit_or_refuses_it_before_anything_runs() -> None:
    bench = bench_run()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    assert bench.resolve_ref("HEAD") == head
    assert bench.resolve_ref(head[:9]) == head
    for wrong in ("no-such-commit-of-this-repo", "-x", " ", "HEAD:copier.yml"):
        with pytest.raises(bench.RefError, match="--against"):
            bench.resolve_ref(wrong)
    # The command says so and stops at once: no render, no server, no tool looked for.
    out = run(["uv", "run", "python", "benchmarks/run.py", "--against", "no-such-commit-zz"],
              cwd=REPO_ROOT, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 2, out
    assert "--against no-such-commit-zz: no such commit in this repository's history" in (
        out.stderr
    ), out.stderr
    options = bench.parse(["--quick", "--against", "HEAD"])
    assert options.against_commit == head and options.tier_list == ["rq"]


def test_against_renders_a_commits_template_as_it_renders_the_checkout(tmp_path: Path) -> None:
    bench = bench_run()
    template = bench.export_template(bench.resolve_ref("HEAD"), tmp_path / "template")
    assert (template / "copier.yml").is_file() and (template / ".git").is_dir()
    bench.render("rq", tmp_path / "project", template)
    assert (tmp_path / "project" / bench.PACKAGE / "bench.py").is_file()


def fake_figures(bench: ModuleType, project: str, old: bool = False) -> dict[str, Any]:
    """Two rounds of figures of the rq tier; ``old``: a project that lacks the job
    controls, the worker's start-up, and two request paths (as an older release might)."""
    rate = {"health": 1000.0, "report": 300.0 if not old else 250.0, "welcome-email": 200.0,
            "report with id": 280.0, "welcome-email delayed": 290.0, "status": 150.0}  # fmt: skip
    http: dict[str, Any] = {
        name: [{"per_second": rate[name] * k, "p50_ms": 2.0, "p99_ms": 9.0} for k in (1, 1.1)]
        for name in bench.ENDPOINTS
    }
    http["metrics on/off"] = [{"on": 600.0, "off": 610.0, "on again": 590.0}] * 2
    bench_runs: list[Any] = [
        {"throughput_per_second": 46.0, "startup_seconds": 1.0,
         "enqueue_1": {"p50_ms": 0.8}, "enqueue_16": {"per_second": 2000.0},
         "latency": {"p50_ms": 15.0, "p99_ms": 20.0},
         "controls": {key: {"per_second": 1000.0}
                      for key in ("enqueue_with_id", "enqueue_delayed", "status", "cancel")}},
    ] * 2  # fmt: skip
    if old:
        for name in ("report with id", "status"):
            http[name] = [None, None]  # e.g. a route the old project lacks: no figure
        bench_runs = [{k: v for k, v in b.items() if k not in ("controls", "startup_seconds")}
                      for b in bench_runs]  # fmt: skip
    return {
        "tier": "rq", "project": project, "http": http, "scrape": None,
        "bench": bench_runs, "stock": [{"throughput_per_second": 50.0}] * 2,
        "stock_reliable": [None, None], "lpush_per_second": [70000.0, None],
        "api_startup_seconds": [1.1, 1.2] if not old else [1.0, 1.0], "copy_seconds": [2.0],
    }  # fmt: skip


def test_against_sets_the_issues_ratios_side_by_side_and_shows_what_ref_lacks() -> None:
    bench = bench_run()
    this, ref = fake_figures(bench, bench.THIS), fake_figures(bench, "cd53649", old=True)
    comparison = {row["figure"]: row for row in bench.against_rows(this, ref)}
    assert list(comparison) == [
        "report / health req/s",
        "welcome-email / health req/s",
        "report with id / health req/s",
        "welcome-email delayed / health req/s",
        "status / health req/s",
        "API start-up s",
        "worker start-up s",
        "worker / stock jobs/s",
    ]
    report = comparison["report / health req/s"]  # 0.3 / 0.25 in each round
    assert report["ratio"]["median"] == pytest.approx(1.2)
    assert (report["goal"], report["met"]) == (">= 0.95", True)
    startup = comparison["API start-up s"]  # 1.1 / 1.0 and 1.2 / 1.0
    assert startup["ratio"]["median"] == pytest.approx(1.15)
    assert (startup["goal"], startup["met"]) == ("<= 1.05", False)
    worker = comparison["worker / stock jobs/s"]  # 46 / 50 on both
    assert worker["this"]["median"] == pytest.approx(0.92)
    assert (worker["goal"], worker["met"], worker["ref_met"]) == ("each >= 0.9", True, True)
    for missing in ("report with id / health req/s", "worker start-up s"):
        assert comparison[missing]["ratio"] is None and comparison[missing].get("met") is None
    printed = bench.against_table(list(comparison.values()), "cd53649").splitlines()
    assert "this / cd53649 min/med/max" in printed[0]
    assert any(line.startswith("rq   | worker start-up s") and " - " in line for line in printed)

    mine, theirs = bench.rows(this, [1.0]), bench.rows(ref, [1.0])
    assert [row["figure"] for row in mine] == [row["figure"] for row in theirs]
    assert {row["figure"] for row in mine} >= {"API start-up s", "worker start-up s"}
    shown = bench.table(bench.side_by_side(mine, theirs)).splitlines()
    assert any(line.startswith("rq @ cd53649 | cancel x16 / enqueue x16") and "| - " in line
               for line in shown), "\n".join(shown)  # fmt: skip
