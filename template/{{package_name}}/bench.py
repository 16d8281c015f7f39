"""Measure this service's background jobs on the configured broker: ``python -m <package>.bench``.

What it prints, to size the workers:

* **enqueue**: enqueues per second through the same ``JobQueue`` the routes use, one at a
  time and 16 at once, with the time each takes (p50/p99);
* **worker start-up**: seconds from launching one worker (the compose ``worker`` command)
  until it has run a job;
* **worker throughput**: no-op jobs per second that one worker drains from a full queue;
* **latency**: enqueue-to-finished time (p50/p99) at a steady load of half that throughput;
* **job controls**, 16 at once beside the plain enqueue: an enqueue with a caller's job id,
  a delayed enqueue (an hour ahead), ``status`` of a job, and ``cancel`` of a delayed job.

It enqueues no-op jobs (``bench.noop``) on the real queue and starts its own worker
(``--workers N``; ``--workers 0`` measures the workers already running instead). Run it
against a staging broker, or expect your workers to share the load. On the
background_tasks tier the jobs run in this process: there is no worker to start.
``--json`` prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess  # nosec B404: runs the project's own worker command, no shell
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from tasktier.logs import configure_logging
from tasktier.model import JobQueue, JobStatus

from .config import get_settings
from .jobs import TIER
from .tasks import bench_noop

DONE = (JobStatus.FINISHED, JobStatus.FAILED)

T = TypeVar("T")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed_calls(
    calls: list[Callable[[], Awaitable[T]]], concurrency: int
) -> tuple[list[T], dict[str, float]]:
    """Await each call of ``calls`` from ``concurrency`` coroutines, each in turn; the
    answers (in order) and the figures: calls per second, p50 and p99 of each call."""
    answers: dict[int, T] = {}
    took: list[float] = []
    pending = iter(enumerate(calls))

    async def one_by_one() -> None:
        for i, call in pending:
            start = time.perf_counter()
            answers[i] = await call()
            took.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(one_by_one() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return [answers[i] for i in range(len(calls))], {
        "per_second": len(calls) / elapsed,
        "p50_ms": percentile(took, 0.5) * 1000,
        "p99_ms": percentile(took, 0.99) * 1000,
    }


async def enqueue_many(
    queue: JobQueue, count: int, concurrency: int
) -> tuple[list[str], dict[str, float]]:
    """Enqueue ``count`` no-op jobs from ``concurrency`` coroutines; ids and figures."""
    return await timed_calls([partial(queue.enqueue, bench_noop)] * count, concurrency)


async def job_controls(queue: JobQueue, count: int) -> dict[str, dict[str, float]]:
    """The job API beyond a plain enqueue, ``count`` calls of each, 16 at once: enqueue
    with a caller's id, a delayed enqueue, status, cancel. The jobs are delayed an hour,
    so that no worker runs them, and each is cancelled: nothing is left to run."""
    run = uuid.uuid4().hex[:12]
    later = bench_noop.options(delay=3600)
    figures: dict[str, dict[str, float]] = {}
    with_ids = [bench_noop.options(delay=3600, job_id=f"bench-{run}-{i}") for i in range(count)]
    named, figures["enqueue_with_id"] = await timed_calls(
        [partial(queue.enqueue, t) for t in with_ids], 16
    )
    delayed, figures["enqueue_delayed"] = await timed_calls(
        [partial(queue.enqueue, later)] * count, 16
    )
    ids = named + delayed
    _, figures["status"] = await timed_calls([partial(queue.status, j) for j in ids[:count]], 16)
    _, figures["cancel"] = await timed_calls([partial(queue.cancel, j) for j in ids], 16)
    return figures


async def finish_times(queue: JobQueue, ids: list[str], wait_seconds: float) -> list[float]:
    """Wait for every job of ``ids``; when each finished (Unix time)."""
    deadline = time.monotonic() + wait_seconds
    pending = list(ids)
    finished: dict[str, float] = {}
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} of {len(ids)} bench jobs did not finish in time")
        # The last one first: when it is done, most others are too.
        info = await queue.status(pending[-1])
        if info.status not in DONE:
            await asyncio.sleep(0.05)
            continue
        still = []
        for job_id in pending:
            info = await queue.status(job_id)
            if info.status is JobStatus.FINISHED:
                finished[job_id] = float(info.result)
            elif info.status is JobStatus.FAILED:
                raise RuntimeError(f"bench job {job_id} failed: {info.error}")
            else:
                still.append(job_id)
        pending = still
    return [finished[job_id] for job_id in ids]


def start_workers(count: int) -> list[subprocess.Popen[bytes]]:
    return [
        # The project's own worker command (its tier's), no shell.
        subprocess.Popen(  # noqa: S603  # nosec B603
            list(TIER.worker_command),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(count)
    ]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(5)


async def measure(jobs: int, workers: int, latency_seconds: float) -> dict[str, Any]:
    figures: dict[str, Any] = {"jobs": jobs, "workers": workers}
    in_process = not TIER.worker_command
    async with TIER.standalone_queue() as queue:
        await queue.check_ready()
        started: list[subprocess.Popen[bytes]] = []
        launched = time.time()  # in process, jobs start as they are enqueued
        try:
            sequential, figures["enqueue_1"] = await enqueue_many(queue, jobs // 4, 1)
            batch, figures["enqueue_16"] = await enqueue_many(queue, jobs, 16)
            if not in_process:
                launched = time.time()
                started = start_workers(workers)
            done = await finish_times(queue, sequential + batch, wait_seconds=60 + jobs / 5)
            if not in_process and workers:
                figures["startup_seconds"] = min(done) - launched
            drained = sorted(done[len(sequential) :])
            figures["throughput_per_second"] = (len(drained) - 1) / (drained[-1] - drained[0])

            # A steady load below saturation: half the throughput (at most 500 jobs/s).
            rate = min(figures["throughput_per_second"] / 2, 500.0)
            count = max(10, int(rate * latency_seconds))
            sent: list[tuple[str, float]] = []
            for i in range(count):
                await asyncio.sleep(max(0.0, sent[0][1] + i / rate - time.time()) if sent else 0)
                sent_at = time.time()
                sent.append((await queue.enqueue(bench_noop), sent_at))
            ends = await finish_times(queue, [job_id for job_id, _ in sent], wait_seconds=120)
            waits = [end - sent_at for end, (_, sent_at) in zip(ends, sent, strict=True)]
            figures["latency"] = {
                "rate_per_second": rate,
                "jobs": count,
                "p50_ms": statistics.median(waits) * 1000,
                "p99_ms": percentile(waits, 0.99) * 1000,
            }
            figures["controls"] = await job_controls(queue, jobs)
        finally:
            stop_workers(started)
    return figures


def report(figures: dict[str, Any]) -> str:
    e1, e16, lat = figures["enqueue_1"], figures["enqueue_16"], figures["latency"]
    startup = figures.get("startup_seconds")
    lines = [
        f"enqueue, 1 at a time     {e1['per_second']:9.0f} /s   "
        f"p50 {e1['p50_ms']:.2f} ms  p99 {e1['p99_ms']:.2f} ms",
        f"enqueue, 16 at once      {e16['per_second']:9.0f} /s   "
        f"p50 {e16['p50_ms']:.2f} ms  p99 {e16['p99_ms']:.2f} ms",
        "worker start-up          "
        + (f"{startup:9.2f} s" if startup is not None else "        - (no worker started)"),
        f"worker throughput        {figures['throughput_per_second']:9.0f} jobs/s"
        f"   ({figures['workers'] or 'running'} worker(s), {figures['jobs']} no-op jobs)",
        f"enqueue to finished      p50 {lat['p50_ms']:.1f} ms  p99 {lat['p99_ms']:.1f} ms"
        f"   at {lat['rate_per_second']:.0f} jobs/s",
    ]
    labels = {  # the jobs are delayed an hour; each is cancelled at the end
        "enqueue_with_id": "with a job id",
        "enqueue_delayed": "delayed",
        "status": "status",
        "cancel": "cancel",
    }
    for key, label in labels.items():
        c = figures["controls"][key]
        lines.append(
            f"{label + ', 16 at once':<25}{c['per_second']:9.0f} /s   "
            f"p50 {c['p50_ms']:.2f} ms  p99 {c['p99_ms']:.2f} ms"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=400, help="no-op jobs for the throughput")
    parser.add_argument(
        "--workers", type=int, default=1, help="workers to start (0: use the running ones)"
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=3, help="how long the steady load lasts"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    settings = get_settings()
    figures = asyncio.run(measure(max(args.jobs, 8), args.workers, args.latency_seconds))
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"{settings.app_title}: background-job figures")
        print(report(figures))


if __name__ == "__main__":
    main(sys.argv[1:])
