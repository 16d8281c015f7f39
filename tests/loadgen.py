"""Load and faults for the end-to-end load tests (``tests/test_load.py``).

- :func:`add_counting_task` adds a team-style task module and route to a rendered project:
  ``POST /loadcount/{token}`` enqueues ``record(token)`` (with ``?job_id=``, under that
  id), and every execution of the task appends one line ``<token> <unix time> <pid>`` to
  the file named by ``LOADCOUNT_FILE``
  (``O_APPEND``: concurrent writers never interleave). The file is outside every broker,
  so what it counts does not depend on the system under test: the task itself counts.
- :class:`Load` posts tokens from concurrent asyncio clients in a thread of its own and
  records which were accepted (202), refused (503) or failed (anything else, connection
  errors included). A token is posted once, never retried, so a token executed twice was
  delivered twice.
- :class:`Executions` reads the counting file.
- :class:`Api` and :class:`Workers` run a project's compose commands (``uv run``), restart
  them as compose's ``restart`` policy would, and kill them with ``kill -9``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from helpers import Process, descendants, kill_tree, wait_answering, wait_for

TASK_MODULE = '''\
"""A team's task for the template's load tests: counts its own executions."""

import os
import time

from ..jobs import task


@task
def record(token: str, seconds: float = 0) -> str:
    """Wait ``seconds``, then append ``<token> <time> <pid>`` to LOADCOUNT_FILE. A job that
    waits first notes its start in LOADCOUNT_FILE.begun (tests wait on it: a job's status
    is ``started`` a moment before its function runs)."""
    if seconds:
        begun = f"{token} {time.time():.3f} {os.getpid()}\\n".encode()
        path = os.environ["LOADCOUNT_FILE"] + ".begun"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, begun)
        finally:
            os.close(fd)
    time.sleep(seconds)
    line = f"{token} {time.time():.3f} {os.getpid()}\\n".encode()
    fd = os.open(os.environ["LOADCOUNT_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return token
'''

ROUTE_MODULE = '''\
"""A team's route for the template's load tests: enqueue ``record(token)``."""

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from ..jobs import JobQueueDep
from ..tasks.loadcount import record

router = APIRouter(prefix="/loadcount", tags=["loadcount"])


class Accepted(BaseModel):
    job_id: str


@router.post("/{token}", status_code=202)
async def enqueue(
    token: Annotated[str, Path(max_length=64)],
    queue: JobQueueDep,
    seconds: Annotated[float, Query(ge=0, le=10)] = 0,
    job_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Accepted:
    task = record.options(job_id=job_id) if job_id else record
    return Accepted(job_id=await queue.enqueue(task, token, seconds))
'''


def add_counting_task(project: Path, package: str) -> None:
    """Add ``tasks/loadcount.py`` and ``routes/loadcount.py``, as a team adds its own."""
    (project / package / "tasks" / "loadcount.py").write_text(TASK_MODULE)
    (project / package / "routes" / "loadcount.py").write_text(ROUTE_MODULE)


# --- Counting ---------------------------------------------------------------------------


@dataclass
class Executions:
    """What the task wrote: how often each token ran, and when."""

    counts: Counter[str]
    times: list[tuple[float, str]]  # (unix time, token), in file order
    pids: dict[str, set[int]]  # token -> the processes it ran in

    @classmethod
    def read(cls, path: Path) -> Executions:
        counts: Counter[str] = Counter()
        times = []
        pids: dict[str, set[int]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                token, at, pid = line.split()
                counts[token] += 1
                times.append((float(at), token))
                pids.setdefault(token, set()).add(int(pid))
        return cls(counts, times, pids)

    def duplicates(self) -> dict[str, int]:
        """Tokens that ran more than once, with their counts."""
        return {t: n for t, n in self.counts.items() if n > 1}

    def first_after(self, moment: float, tokens: Mapping[str, float] | None = None) -> float | None:
        """The first execution after ``moment`` (of one of ``tokens`` when given)."""
        found = [at for at, t in self.times if at > moment and (tokens is None or t in tokens)]
        return min(found) if found else None

    def last_of(self, tokens: Mapping[str, float]) -> float | None:
        """When the last of ``tokens`` first ran (None unless every one of them ran)."""
        first: dict[str, float] = {}
        for at, token in self.times:
            if token in tokens and token not in first:
                first[token] = at
        if len(first) < len(tokens):
            return None
        return max(first.values(), default=None)


# --- Load -------------------------------------------------------------------------------


@dataclass
class Load:
    """Concurrent clients posting ``/loadcount/{token}``, each token once.

    ``total``: stop after that many tokens were posted (None: until :meth:`stop`).
    ``rate``: at most that many posts per second, all clients together (None: as fast as
    the API answers).
    """

    base_url: str
    prefix: str = "t"
    seconds: float = 0  # how long each job sleeps before it counts itself
    concurrency: int = 32
    total: int | None = None
    rate: float | None = None
    accepted: dict[str, float] = field(default_factory=dict)  # token -> unix time of the 202
    job_ids: dict[str, str] = field(default_factory=dict)  # token -> job id
    refused: list[float] = field(default_factory=list)  # 503s
    failed: Counter[str] = field(default_factory=Counter)  # what else came back
    # The first few transport errors as (unix time, text): a failure message can then point
    # at the moment in the API's log.
    errors: list[tuple[float, str]] = field(default_factory=list)
    #: Every answer: (unix time of the post, seconds until the answer came, what it was).
    answers: list[tuple[float, float, str]] = field(default_factory=list)
    started_at: float = 0.0
    in_flight: int = 0  # requests under way (changed by the load's event loop only)
    ended_at: float = 0.0

    def __post_init__(self) -> None:
        self._tokens = itertools.count()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._next_post = 0.0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._error: BaseException | None = None

    def start(self) -> Load:
        self.started_at = time.time()
        self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> Load:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the load's clients did not stop"
        if self._error is not None:
            raise self._error
        return self

    def pause(self) -> None:
        """Post nothing new (requests under way still complete)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float) -> Load:
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.stop()
            raise AssertionError(f"the load did not finish in {timeout} s: {self.summary()}")
        if self._error is not None:
            raise self._error
        return self

    def post(self, client: httpx.Client, token: str, seconds: float = 0) -> str:
        """Post one job from the test's own thread; it counts as accepted like the others."""
        response = client.post(f"/loadcount/{token}", params={"seconds": seconds})
        assert response.status_code == 202, response.text
        job_id: str = response.json()["job_id"]
        self._accept(token, job_id)
        return job_id

    def _accept(self, token: str, job_id: str) -> None:
        """Record a 202 (from the clients' thread or the test's)."""
        with self._lock:
            self.accepted[token] = time.time()
            self.job_ids[token] = job_id

    def accepted_between(self, start: float, end: float) -> dict[str, float]:
        with self._lock:
            return {t: at for t, at in self.accepted.items() if start <= at < end}

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self.accepted)

    def summary(self) -> str:
        return (
            f"{len(self.accepted)} accepted, {len(self.refused)} refused (503), "
            f"failed: {dict(self.failed)}"
            + "".join(f"\n  at {at:.3f}: {text}" for at, text in self.errors)
        )

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=10, limits=limits) as c:
                await asyncio.gather(*(self._client(c) for _ in range(self.concurrency)))
        except BaseException as exc:  # shown by stop()/join() in the test's thread
            self._error = exc
        finally:
            self.ended_at = time.time()

    async def _client(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            if not self._running.is_set():
                await asyncio.sleep(0.05)
                continue
            if self.rate is not None:  # the next free slot: no burst after a pause or a gap
                due = self._next_post = max(self._next_post + 1 / self.rate, time.time())
                if due > time.time():
                    await asyncio.sleep(due - time.time())
                if not self._running.is_set() or self._stop.is_set():
                    continue
            number = next(self._tokens)
            if self.total is not None and number >= self.total:
                return
            token = f"{self.prefix}{number}"
            self.in_flight += 1
            posted, started = time.time(), time.monotonic()
            try:
                response = await client.post(
                    f"/loadcount/{token}",
                    params={"seconds": self.seconds} if self.seconds else None,
                )
            except httpx.TransportError as exc:
                self.in_flight -= 1
                self.failed[type(exc).__name__] += 1
                if len(self.errors) < 5:
                    self.errors.append((time.time(), f"{type(exc).__name__}: {exc}"))
                self.answers.append((posted, time.monotonic() - started, type(exc).__name__))
                await asyncio.sleep(0.2)  # the API is down: do not spin
                continue
            self.in_flight -= 1
            self.answers.append((posted, time.monotonic() - started, str(response.status_code)))
            if response.status_code == 202:
                self._accept(token, response.json()["job_id"])
            elif response.status_code == 503:
                self.refused.append(time.time())
                await asyncio.sleep(0.2)
            else:
                self.failed[f"HTTP {response.status_code}"] += 1


# --- Processes --------------------------------------------------------------------------


class Api:
    """The compose ``api`` command on a fixed port, restartable on the same port."""

    def __init__(self, start: Callable[[str], Process], port: int) -> None:
        self._start = start
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.processes: list[Process] = []

    @property
    def process(self) -> Process:
        return self.processes[-1]

    def start(self) -> Api:
        process = self._start(f"api-{len(self.processes)}")
        self.processes.append(process)
        wait_answering(process, self.base_url)
        return self

    def kill(self) -> None:
        kill_tree(self.process)


class Workers:
    """``count`` worker processes, each brought back when it exits (compose's ``restart``
    policy), by a watcher thread; :meth:`kill` is ``kill -9`` of one worker's whole tree."""

    def __init__(
        self, start: Callable[[str], Process], count: int, ready: Callable[[Process], bool]
    ) -> None:
        self._start = start
        self._ready = ready
        self.slots: list[Process] = []
        self.all: list[Process] = []
        self.restarts: list[tuple[float, int | None]] = []  # (time, exit code) of exits seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        for _ in range(count):
            self.slots.append(self._new())
        self._watcher = threading.Thread(target=self._watch, daemon=True)

    def _new(self) -> Process:
        process = self._start(f"worker-{len(self.all)}")
        self.all.append(process)
        return process

    def start(self) -> Workers:
        for process in self.slots:
            wait_for(
                lambda p=process: self._ready(p) or p.popen.poll() is not None,
                60,
                what="a worker to be ready",
            )
            assert process.popen.poll() is None, f"a worker exited:\n{process.log()[-3000:]}"
        self._watcher.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                for index, process in enumerate(self.slots):
                    if process.popen.poll() is not None:
                        self.restarts.append((time.time(), process.popen.returncode))
                        self.slots[index] = self._new()

    def kill(self, index: int = 0) -> float:
        """``kill -9`` of worker ``index`` and its tree; a new one starts at once."""
        with self._lock:
            process = self.slots[index]
            kill_tree(process)
            killed_at = time.time()
            self.slots[index] = self._new()
        return killed_at

    def signal_tree(self, index: int, sig: int) -> None:
        """Send ``sig`` to worker ``index`` and its whole tree (SIGSTOP freezes it as a
        stopped VM or a paused container would; SIGCONT wakes it)."""
        process = self.slots[index]
        for pid in [process.popen.pid, *descendants(process.popen.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def freeze(self, index: int = 0) -> float:
        self.signal_tree(index, signal.SIGSTOP)
        return time.time()

    def thaw(self, index: int = 0) -> float:
        self.signal_tree(index, signal.SIGCONT)
        return time.time()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher.is_alive():
            self._watcher.join(5)
        for process in self.all:
            process.stop()
