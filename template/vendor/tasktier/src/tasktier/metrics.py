"""Job metrics with one set of names on every tier, served by the API at ``GET /metrics``.

The names (a dashboard and the alert rules in ``deploy/`` keep working after a tier
switch):

* ``background_jobs_total{task, outcome}``: executions by outcome (``finished``,
  ``failed``, ``retried``: this execution failed and the job runs again, ``cancelled``:
  a cancel that succeeded), summed over every process that ran them;
* ``background_job_duration_seconds{task}``: a histogram of the executions' run times;
* ``background_jobs_waiting{queue}`` and ``background_jobs_oldest_waiting_seconds{queue}``:
  jobs waiting in the broker and the age of the oldest, read from the broker at scrape;
* ``background_workers_alive{queue}``: worker processes consuming each queue;
* ``background_scheduler_last_tick_timestamp_seconds``: unix time of the last periodic
  tick sent (only when periodic jobs are declared and one has been sent);
* ``background_broker_up``: 1 when this scrape could read the broker, 0 when not.

How the numbers travel: where an execution ends, its process calls :func:`record`'s tier
version (``tier_metrics.record``), which adds the :func:`increments` below to a store of
totals: on the durable tiers one Redis hash shared by every worker process, container and
restart; on the in-process tier a dict in the API process. A failed write never fails the
job: it is logged (once per process) and dropped. At scrape, the API reads the totals and
asks its tier's broker for the gauges, each within ``BROKER_TIMEOUT_SECONDS``
(:func:`scrape`): a broker that hangs leaves its gauges out and ``background_broker_up``
at 0, and the answer is still 200.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread
from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .settings import current

logger = logging.getLogger(__name__)

T = TypeVar("T")

JOBS_TOTAL = "background_jobs_total"
DURATION = "background_job_duration_seconds"
WAITING = "background_jobs_waiting"
OLDEST_WAITING = "background_jobs_oldest_waiting_seconds"
WORKERS_ALIVE = "background_workers_alive"
LAST_TICK = "background_scheduler_last_tick_timestamp_seconds"
BROKER_UP = "background_broker_up"

FINISHED, FAILED, RETRIED, CANCELLED = "finished", "failed", "retried", "cancelled"
OUTCOMES = (FINISHED, FAILED, RETRIED, CANCELLED)

#: Upper bounds of the duration histogram's buckets, in seconds (``+Inf`` last): from
#: quick jobs (5 ms) to the longest a job may reasonably be given (an hour).
BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    300.0, 600.0, 1800.0, 3600.0, math.inf,
)  # fmt: skip

#: How a worker counts as alive: it reported within this many seconds.
ALIVE_WITHIN_SECONDS = 30.0

# The fields of the totals store: a counter per (task, outcome), a count per (task,
# bucket) (not cumulative) and a sum of durations per task. "\0" cannot occur in names.
_SEP = "\0"


def _bound(le: float) -> str:
    return "+Inf" if math.isinf(le) else repr(le)


def increments(task: str, outcome: str, duration: float | None = None) -> dict[str, float]:
    """What one execution's end adds to the store: its outcome's counter, and with a
    ``duration`` its histogram bucket and sum. Counts are ``int``, the sum a ``float``."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
    added: dict[str, float] = {_SEP.join(("jobs", task, outcome)): 1}
    if duration is not None and math.isfinite(duration):
        seconds = float(max(duration, 0.0))
        le = next(b for b in BUCKETS if seconds <= b)
        added[_SEP.join(("bucket", task, _bound(le)))] = 1
        added[_SEP.join(("sum", task))] = seconds
    return added


class Recorder:
    """Adds executions to a store through ``add`` (the tier's); never raises: a store
    that refuses (Redis full or gone) costs the metric, never the job. The first failure
    in a process is logged at warning, later ones at debug."""

    def __init__(self, add: Callable[[Mapping[str, float]], None]) -> None:
        self._add = add
        self._warned = False

    def __call__(self, task: str, outcome: str, duration: float | None = None) -> None:
        if not current().metrics_enabled:
            return
        try:
            self._add(increments(task, outcome, duration))
        except Exception as exc:
            log = logger.debug if self._warned else logger.warning
            self._warned = True
            log("job metrics not recorded (%s %s): %s", task, outcome, exc)


@dataclass
class BrokerState:
    """What a tier reads from its broker at scrape time (queues it cannot know are left
    out of ``oldest_waiting``)."""

    waiting: dict[str, int] = field(default_factory=dict)
    oldest_waiting: dict[str, float] = field(default_factory=dict)
    workers_alive: dict[str, int] = field(default_factory=dict)


@dataclass
class Totals:
    """What the store holds: its fields (see :func:`increments`) and the last tick."""

    fields: dict[str, float] = field(default_factory=dict)
    last_tick: float | None = None


@dataclass
class Snapshot:
    totals: Totals | None  # None: the store could not be read in time
    broker: BrokerState | None  # None: the broker could not be read in time
    scheduling: bool  # periodic jobs are declared: the last tick is served


class SnapshotCollector:
    """A ``prometheus_client`` collector of one scrape's :class:`Snapshot`."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        totals, broker = self.snapshot.totals, self.snapshot.broker
        if totals is not None:
            yield from _executions(totals.fields)
            if self.snapshot.scheduling and totals.last_tick is not None:
                tick = GaugeMetricFamily(
                    LAST_TICK, "Unix time of the last periodic tick the scheduler sent"
                )
                tick.add_metric([], totals.last_tick)
                yield tick
        up = GaugeMetricFamily(BROKER_UP, "1 when this scrape could read the broker, else 0")
        up.add_metric([], 1.0 if broker is not None else 0.0)
        yield up
        if broker is None:
            return
        for name, doc, values in (
            (WAITING, "Jobs waiting in the broker, read at scrape", broker.waiting),
            (OLDEST_WAITING, "Age of the oldest waiting job, seconds", broker.oldest_waiting),
            (WORKERS_ALIVE, "Worker processes consuming each queue", broker.workers_alive),
        ):
            gauge = GaugeMetricFamily(name, doc, labels=["queue"])
            for queue, value in sorted(values.items()):
                gauge.add_metric([queue], float(value))
            yield gauge


def _executions(fields: Mapping[str, float]) -> Iterator[Metric]:
    jobs = CounterMetricFamily(
        JOBS_TOTAL.removesuffix("_total"),
        "Job executions by outcome, summed over every worker process",
        labels=["task", "outcome"],
    )
    buckets: dict[str, dict[str, float]] = {}
    sums: dict[str, float] = {}
    for name, value in sorted(fields.items()):
        kind, *parts = name.split(_SEP)
        if kind == "jobs" and len(parts) == 2:
            jobs.add_metric(parts, value)
        elif kind == "bucket" and len(parts) == 2:
            buckets.setdefault(parts[0], {})[parts[1]] = value
        elif kind == "sum" and len(parts) == 1:
            sums[parts[0]] = value
    yield jobs
    histogram = HistogramMetricFamily(
        DURATION, "Run time of job executions, seconds", labels=["task"]
    )
    for task in sorted(buckets.keys() | sums.keys()):
        counts = buckets.get(task, {})
        cumulative, running = [], 0.0
        for le in BUCKETS:
            running += counts.get(_bound(le), 0)
            cumulative.append((_bound(le), running))
        histogram.add_metric([task], cumulative, sum_value=sums.get(task, 0.0))
    yield histogram


async def _within(read: Callable[[], T], seconds: float, what: str) -> T | None:
    """``read()`` in a thread, waited for at most ``seconds``; None when it failed or took
    longer (a thread stuck on a hung socket is left to its client's own timeout)."""
    try:
        with anyio.fail_after(seconds):
            return await anyio.to_thread.run_sync(read, abandon_on_cancel=True)
    except TimeoutError:
        logger.warning("metrics: %s did not answer within %g s", what, seconds)
    except Exception as exc:
        logger.warning("metrics: %s could not be read: %s", what, exc)
    return None


async def scrape(
    read_totals: Callable[[], Totals],
    read_broker: Callable[[], BrokerState],
    *,
    within: float,
    scheduling: bool,
) -> bytes:
    """One scrape in Prometheus text format, within about ``within`` seconds whatever
    the store and the broker do: both are read at once, each bounded by ``within``."""
    totals: Totals | None = None
    broker: BrokerState | None = None

    async def get_totals() -> None:
        nonlocal totals
        totals = await _within(read_totals, within, "the metrics store")

    async def get_broker() -> None:
        nonlocal broker
        broker = await _within(read_broker, within, "the broker")

    async with anyio.create_task_group() as group:
        group.start_soon(get_totals)
        group.start_soon(get_broker)
    return generate_latest(SnapshotCollector(Snapshot(totals, broker, scheduling)))
