"""The reference: each library with its default settings and worker command.

Run inside a generated project's virtualenv (it has the library installed):

    python benchmarks/stock.py rq|celery|background_tasks REDIS_URL JOBS [reliable]

Prints one JSON object: ``throughput_per_second`` (no-op jobs drained from a full queue by
one stock worker) and ``startup_seconds`` (launch until the first job ran). Finish times
come from each job's own result, as in the generated ``bench`` command. With ``reliable``,
only the reliability settings the template keeps are added (Celery: acks late, reject on
worker lost, prefetch 1, JSON; RQ: the JSON serializer), to tell their cost from the rest.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import stop  # benchmarks/run.py, beside this script: one way to stop a process group

STOCK_TASKS = """
import time
{extra}
def noop():
    return time.time()
"""

CELERY_APP = """
import os
from celery import Celery
app = Celery("stock", broker=os.environ["STOCK_REDIS_URL"], backend=os.environ["STOCK_REDIS_URL"])
if os.environ.get("STOCK_RELIABLE"):
    # Only the reliability settings the template must keep, on top of the defaults.
    app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True,
                    worker_prefetch_multiplier=1, task_serializer="json",
                    result_serializer="json", accept_content=["json"])
"""


def drained_rate(finishes: list[float]) -> float:
    finishes = sorted(finishes)
    return (len(finishes) - 1) / (finishes[-1] - finishes[0])


def stock_rq(url: str, jobs: int, workdir: Path) -> dict[str, float]:
    import redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    (workdir / "stock_tasks.py").write_text(STOCK_TASKS.format(extra=""))
    sys.path.insert(0, str(workdir))
    import stock_tasks  # type: ignore[import-not-found]

    connection = redis.Redis.from_url(url)
    # RQ's defaults: pickle, no retry (or, reliable, the JSON serializer).
    reliable = bool(os.environ.get("STOCK_RELIABLE"))
    queue = Queue("stock", connection=connection, serializer=JSONSerializer if reliable else None)
    enqueued = [queue.enqueue(stock_tasks.noop) for _ in range(jobs)]
    launched = time.time()
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "rq"), "worker", "--burst", "--url", url, "stock",
         *(["--serializer", "json"] if reliable else [])],
        cwd=workdir, env={**os.environ, "PYTHONPATH": str(workdir)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        worker.wait(60 + jobs / 5)
    finally:
        stop(worker)
    finishes = []
    for job in enqueued:
        job.refresh()
        finishes.append(float(job.return_value()))
    return {
        "throughput_per_second": drained_rate(finishes),
        "startup_seconds": min(finishes) - launched,
    }


def stock_celery(url: str, jobs: int, workdir: Path) -> dict[str, float]:
    (workdir / "stock_celery.py").write_text(
        CELERY_APP + STOCK_TASKS.format(extra="").replace("def noop", "@app.task\ndef noop")
    )
    sys.path.insert(0, str(workdir))
    os.environ["STOCK_REDIS_URL"] = url
    import stock_celery  # type: ignore[import-not-found]

    results = [stock_celery.noop.delay() for _ in range(jobs)]
    launched = time.time()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "--app", "stock_celery", "worker",
         "--loglevel", "WARNING"],
        cwd=workdir, env={**os.environ, "PYTHONPATH": str(workdir)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        finishes = [float(result.get(timeout=60 + jobs / 5)) for result in results]
    finally:
        stop(worker)
    return {
        "throughput_per_second": drained_rate(finishes),
        "startup_seconds": min(finishes) - launched,
    }


def stock_background_tasks(jobs: int) -> dict[str, float]:
    """Starlette's BackgroundTasks running a sync no-op after each of ``jobs`` responses,
    all at once (as concurrent requests would): one threadpool hop per task."""
    from starlette.background import BackgroundTasks

    finishes: list[float] = []

    def noop() -> None:
        finishes.append(time.time())

    async def after_one_response() -> None:
        tasks = BackgroundTasks()
        tasks.add_task(noop)
        await tasks()

    async def run() -> None:
        await asyncio.gather(*(after_one_response() for _ in range(jobs)))

    asyncio.run(run())
    return {"throughput_per_second": drained_rate(finishes)}


def main() -> None:
    tier, url, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if sys.argv[4:] == ["reliable"]:
        os.environ["STOCK_RELIABLE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        if tier == "rq":
            figures = stock_rq(url, jobs, Path(tmp))
        elif tier == "celery":
            figures = stock_celery(url, jobs, Path(tmp))
        else:
            figures = stock_background_tasks(jobs)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
