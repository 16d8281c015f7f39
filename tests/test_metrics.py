"""GET /metrics end to end, on every tier and broker, and the alert rules and dashboard.

Each tier's project gets the conformance tasks (``tests/conformance_app.py``) and runs as
compose runs it: the API, two workers consuming ``default`` and the scheduler (durable
tiers), against real Redis and RabbitMQ. Jobs finish, fail, time out, retry and are
cancelled over HTTP; the real ``/metrics`` is scraped and must show:

- the counts by outcome and the histogram's counts, summed over every process that ran
  them (the tasks' execution file shows at least two processes ran jobs; rq forks a work
  horse per job);
- ``background_jobs_waiting`` counting the jobs on a queue no worker consumes, the age of
  the oldest there, and the workers alive per queue;
- the scheduler's last tick, recent (interval scheduling, one tick a second);
- every metric name used in any expression of ``deploy/prometheus/alerts.yml`` and
  ``deploy/grafana/dashboard.json`` (parsed from the files);
- with the broker hung (SIGSTOP) and then stopped: 200 within the bound, broker_up 0.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conformance_app import add_conformance_app, executions
from e2e.stack import DURABLE, TIERS, Project, Stack, render
from helpers import wait_for

pytestmark = pytest.mark.e2e

BOUND = 2  # s: BROKER_TIMEOUT_SECONDS here, the scrape's bound
#: What a busy 2-core machine may add to the bound (process scheduling, not the broker).
SLACK = 10
SETTLE = 90  # s: the longest the jobs here may take to settle under load
OTHER = "other"  # conf.other's queue: no worker consumes it

#: The metric names every tier serves (docs/operations.md, "Metrics").
CONTRACT = {
    "background_jobs_total",
    "background_job_duration_seconds_count",
    "background_job_duration_seconds_bucket",
    "background_job_duration_seconds_sum",
    "background_jobs_waiting",
    "background_jobs_oldest_waiting_seconds",
    "background_workers_alive",
    "background_scheduler_last_tick_timestamp_seconds",
    "background_broker_up",
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Samples:
    """Every sample of a scrape in Prometheus's text format: (name, sorted labels) ->
    value. (The template's own environment has no prometheus-client.)"""
    samples: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not Prometheus text format: {line!r}"
        name, labels, number = match.groups()
        pairs = tuple(sorted(LABEL.findall(labels or "")))
        samples[(name, pairs)] = float(number)
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics", timeout=BOUND + SLACK + 30)
    assert response.status_code == 200, response.text
    return parse(response.text)


def used_names(project: Path) -> dict[str, set[str]]:
    """Per file, the metric names its expressions use (alert rules, dashboard targets)."""
    rules = yaml.safe_load((project / "deploy/prometheus/alerts.yml").read_text())
    dashboard = json.loads((project / "deploy/grafana/dashboard.json").read_text())
    exprs = {
        "alerts.yml": [r["expr"] for g in rules["groups"] for r in g["rules"]],
        "dashboard.json": [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])],
    }
    return {
        name: {m for e in found for m in re.findall(r"\bbackground_[a-z_]+\b", e)}
        for name, found in exprs.items()
    }


@pytest.fixture(params=list(TIERS))
def stack(request: pytest.FixtureRequest, copie_session: Any, tmp_path: Path) -> Iterator[Stack]:
    durable = {"loss_tolerable": False} if request.param in DURABLE else {}
    project = render(
        copie_session,
        request.param,
        prepare=lambda new: add_conformance_app(new.path, new.package),
        scheduling="interval",
        **durable,
    )
    env = {
        "JOB_TIMEOUT_SECONDS": "2",
        "JOB_MAX_RETRIES": "0",
        "BROKER_TIMEOUT_SECONDS": str(BOUND),
        "EXAMPLE_HEARTBEAT_SECONDS": "1",
        "CONFORMANCE_FILE": str(tmp_path / "executions.jsonl"),
    }
    with Stack(project, request, tmp_path, env) as stack:
        yield stack


def enqueue(client: httpx.Client, name: str, *args: Any, delay: float = 0) -> str:
    response = client.post(f"/conformance/{name}", json={"args": list(args), "delay": delay})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def test_metrics_over_http(stack: Stack) -> None:
    project: Project = stack.project
    durable = project.durable
    workers = []
    if durable:
        workers = [stack.start("worker", f"worker-{n}", WORKER_QUEUES="default") for n in (1, 2)]
        for service in ("scheduler", "beat"):
            if service in project.services:
                stack.start(service, service)
    with stack.serve() as (client, _api):
        for worker in workers:
            stack.wait_ready(worker)
        jobs = [enqueue(client, "echo", n) for n in range(4)]
        jobs += [enqueue(client, "boom") for _ in range(2)]  # not retryable: failed
        jobs += [enqueue(client, "flaky")]  # 2 retries (durable tiers), then failed
        jobs += [enqueue(client, "short", 5)]  # past its 1 s timeout: failed
        others = [enqueue(client, "other", n) for n in range(3)]  # nobody consumes it
        delayed = enqueue(client, "echo", "later", delay=600)
        cancel = client.delete(f"/jobs/{delayed}")
        assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled", cancel.text

        def settled() -> bool:
            statuses = [client.get(f"/jobs/{j}").json()["status"] for j in jobs]
            return all(s in ("finished", "failed") for s in statuses)

        wait_for(settled, SETTLE, interval=0.5, what="the jobs to settle")

        retries = 2 if durable else 0  # the in-process tier runs a task once
        expected = {
            ("conf.echo", "finished"): 4,
            ("conf.echo", "cancelled"): 1,
            ("conf.boom", "failed"): 2,
            ("conf.flaky", "failed"): 1,
            ("conf.flaky", "retried"): retries,
            ("conf.short", "failed"): 1,
            ("conf.other", "finished"): 0 if durable else 3,
        }
        executed = {
            "conf.echo": 4,
            "conf.boom": 2,
            "conf.flaky": 1 + retries,
            "conf.short": 1,
            "conf.other": 0 if durable else 3,
        }
        workers_alive = {"default": 2, OTHER: 0} if durable else {"default": 1, OTHER: 1}

        def counted() -> Samples | None:
            samples = scrape(client)
            counts = {
                key: value(samples, "background_jobs_total", task=key[0], outcome=key[1]) or 0
                for key in expected
            }
            runs = {
                task: value(samples, "background_job_duration_seconds_count", task=task) or 0
                for task in executed
            }
            alive = {q: value(samples, "background_workers_alive", queue=q) for q in workers_alive}
            tick = value(samples, "background_scheduler_last_tick_timestamp_seconds")
            if counts == expected and runs == executed and alive == workers_alive and tick:
                return samples
            print("not yet:", counts, runs, alive, tick)
            return None

        samples = wait_for(counted, SETTLE, interval=1, what="the metrics to show every job")

        # Summed over processes: the executions ran in more than one (durable tiers).
        if durable:
            pids = {e.pid for e in executions(Path(stack.env["CONFORMANCE_FILE"]))}
            assert len(pids) >= 2, pids
        # The histogram: +Inf holds every execution; conf.short ran ~1 s (its timeout).
        inf = value(samples, "background_job_duration_seconds_bucket", task="conf.echo", le="+Inf")
        assert inf == 4
        short = value(samples, "background_job_duration_seconds_sum", task="conf.short")
        assert short is not None and 0.5 <= short < 5, short
        # Waiting: the jobs nobody consumes (the in-process tier ran them).
        waiting = value(samples, "background_jobs_waiting", queue=OTHER)
        assert waiting == (3 if durable else 0), waiting
        oldest = value(samples, "background_jobs_oldest_waiting_seconds", queue=OTHER)
        assert oldest is not None and (oldest > 0 if durable else oldest == 0), oldest
        tick = value(samples, "background_scheduler_last_tick_timestamp_seconds")
        assert tick is not None and abs(time.time() - tick) < 120, tick
        assert value(samples, "background_broker_up") == 1
        assert others  # enqueued above; still waiting on the durable tiers

        served = {name for name, _ in samples}
        assert served >= CONTRACT, CONTRACT - served
        for file, names in used_names(project.path).items():
            assert names, f"{file} uses no metric"
            assert names <= served, f"{file} uses metrics /metrics does not serve: {names - served}"

        if not durable:
            return
        # The broker hangs: still 200 within the bound, broker_up 0, no waiting gauges.
        stack.broker.pause()
        try:
            started = time.monotonic()
            hung = scrape(client)
            took = time.monotonic() - started
        finally:
            stack.broker.resume()
        assert value(hung, "background_broker_up") == 0
        assert not any(name == "background_jobs_waiting" for name, _ in hung)
        assert took < BOUND + SLACK, f"/metrics took {took:.1f} s with the broker hung"
        wait_for(
            lambda: value(scrape(client), "background_broker_up") == 1,
            60,
            interval=0.5,
            what="broker_up 1 once the broker answers again",
        )
        # The broker is stopped: the same, answered at once (connections refused).
        stack.broker.stop()
        started = time.monotonic()
        stopped = scrape(client)
        took = time.monotonic() - started
        assert value(stopped, "background_broker_up") == 0
        assert took < BOUND + SLACK, f"/metrics took {took:.1f} s with the broker stopped"


@pytest.mark.parametrize("scheduling", ["none", "interval"])
def test_alert_rules_and_dashboard_are_well_formed(copie: Any, scheduling: str) -> None:
    """The rule file has Prometheus's structure (promtool is not needed for it); the
    scheduler's rule and panel exist only when there is a scheduler."""
    project = render(copie, "rq", sync=False, loss_tolerable=False, scheduling=scheduling)
    rules = yaml.safe_load((project.path / "deploy/prometheus/alerts.yml").read_text())
    assert set(rules) == {"groups"}
    names = []
    for group in rules["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
            assert re.fullmatch(r"\d+[smh]", rule["for"])
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert rule["annotations"]["summary"]
            assert rule["expr"].count("(") == rule["expr"].count(")")
            names.append(rule["alert"])
    assert len(names) == len(set(names))
    assert ("BackgroundSchedulerMissedTicks" in names) == (scheduling != "none")

    dashboard = json.loads((project.path / "deploy/grafana/dashboard.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"] and all(t["expr"] for t in panel["targets"])
    used = used_names(project.path)
    tick = "background_scheduler_last_tick_timestamp_seconds"
    assert (tick in used["dashboard.json"]) == (scheduling != "none")
