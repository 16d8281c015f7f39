"""The job model every tier shares: how a task is declared and what a job looks like.

Nothing in this module depends on the tier: each tier implements :class:`JobQueue`, and a
service's ``jobs.py`` puts both together as the one API its routes and tasks import.
"""

from __future__ import annotations

import contextvars
import copy
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from .redaction import redact

P = ParamSpec("P")
R = TypeVar("R")


class JobStatus(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    STARTED = "started"
    RETRYING = "retrying"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Statuses no execution changes any more (``queue.retry`` starts a failed job again).
FINAL = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED})
#: Statuses of a job not running yet: ``queue.cancel`` takes these.
CANCELLABLE = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.RETRYING})


@dataclass(frozen=True)
class JobInfo:
    """A job as ``GET /jobs/{id}`` shows it; times are UTC, ``None`` when unknown."""

    job_id: str
    status: JobStatus
    result: Any = None
    error: str | None = None
    task: str | None = None
    queue: str | None = None
    attempts: int = 0  # executions started so far
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


class BrokerUnavailable(Exception):
    """The queue cannot take or report jobs right now; routes answer 503.

    The reason is shown to clients (the 503 body, readiness): URL passwords in it are
    masked, whatever error message it quotes.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(redact(reason))


class JobNotFound(LookupError):
    """No job with this id was enqueued (or it has expired)."""


class JobNotCancellable(Exception):
    """The job has started or ended: only a job not running yet can be cancelled."""


class JobNotRetryable(Exception):
    """Only a failed job can be retried."""


class JobIdConflict(Exception):
    """A caller-chosen job id already held by a job of another task: nothing was
    enqueued (an enqueue of the same task with a known id returns that id instead).
    Routes answer 409."""

    def __init__(self, job_id: str, task: str, held_by: str) -> None:
        super().__init__(f"job id {job_id!r} is held by a job of another task")
        self.job_id, self.task, self.held_by = job_id, task, held_by


class InvalidJobOption(ValueError):
    """A task option or a job query out of range (a negative delay, a bad job id ...).

    Raised where the bad value is given; routes answer 422 with its message.
    """


#: Job ids (generated or chosen by the caller) are made of these on every tier.
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
#: Queue names: lower-case letters, digits, ``_`` and ``-`` (safe as Redis keys and AMQP
#: queue names alike).
QUEUE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: The queue of a task that names none.
DEFAULT_QUEUE = "default"
#: The longest delay ``Task.options`` takes (a year).
MAX_DELAY_SECONDS = 366 * 24 * 3600


def check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise InvalidJobOption(
            f"job_id must be 1 to 128 letters, digits, '_' or '-', got {job_id!r}"
        )
    return job_id


class TransientError(Exception):
    """Raise from a task for a failure worth trying again (a timeout, a busy partner).

    Tiers with retries retry these; the in-process tier runs a task once.
    """


class NotJSONSerializable(TypeError):
    """A task argument or result that cannot travel as JSON."""


@dataclass(frozen=True)
class JobContext:
    """What a running task may know about its job."""

    job_id: str
    attempt: int  # executions started so far, this one included (1 on the first run)
    task: str = ""
    #: The id of the request that enqueued the job (``X-Request-ID``); None outside one.
    request_id: str | None = None


_current_job: contextvars.ContextVar[JobContext] = contextvars.ContextVar("current_job")
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def current_job() -> JobContext:
    """The job the calling task runs as; a RuntimeError outside a job."""
    try:
        return _current_job.get()
    except LookupError:
        raise RuntimeError("current_job() is only available inside a running job") from None


def job_or_none() -> JobContext | None:
    """The running job, or None outside one (the log filter reads it)."""
    return _current_job.get(None)


def request_id() -> str | None:
    """The id of the request being served (``request_ids.py`` sets it), else None."""
    return _request_id.get()


@contextmanager
def serving_request(rid: str) -> Iterator[None]:
    """Used by the request-id middleware around each request."""
    token = _request_id.set(rid)
    try:
        yield
    finally:
        _request_id.reset(token)


# --- What travels with a job: its metadata -------------------------------------------
#
# Each tier carries a small dict of strings with every job (rq: the job's meta; Celery: a
# message header; in-process: the job's record): the enqueueing request's id, and what
# the optional tracing module adds (the W3C ``traceparent``). It is made at enqueue, in
# the request, by :func:`job_metadata`, and given back to :func:`running_as` when the job
# runs. Arguments never go in it.

#: Fill the metadata of a job being enqueued (tracing.py registers one).
INJECTORS: list[Callable[[dict[str, str]], None]] = []
#: Context managers entered around each execution, given the job and its metadata (a
#: tracing span, for example).
AROUND_RUN: list[Callable[[JobContext, Mapping[str, str]], AbstractContextManager[Any]]] = []


def job_metadata() -> dict[str, str]:
    """What travels with a job enqueued now: the request id (when in a request) and
    what the registered :data:`INJECTORS` add."""
    metadata: dict[str, str] = {}
    rid = request_id()
    if rid is not None:
        metadata["request_id"] = rid
    for inject in INJECTORS:
        inject(metadata)
    return metadata


def metadata_from(value: object) -> dict[str, str]:
    """A job's metadata as read back from its tier: only string keys and values (a job
    enqueued by an older version has none)."""
    if not isinstance(value, Mapping):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


@contextmanager
def as_job(context: JobContext) -> Iterator[None]:
    """``current_job()`` is ``context`` inside: log lines carry the job's fields. The
    backends use it around their own lines about one execution."""
    token = _current_job.set(context)
    try:
        yield
    finally:
        _current_job.reset(token)


@contextmanager
def running_as(context: JobContext, metadata: Mapping[str, str] | None = None) -> Iterator[None]:
    """Used by the backends around each execution of a task, with the job's metadata:
    :func:`as_job`, and the :data:`AROUND_RUN` context managers (a tracing span)."""
    meta = metadata or {}
    if context.request_id is None and "request_id" in meta:
        context = replace(context, request_id=meta["request_id"])
    with as_job(context), ExitStack() as stack:
        for around in AROUND_RUN:
            stack.enter_context(around(context, meta))
        yield


def ensure_json(value: Any, what: str) -> None:
    """Refuse what would not survive a trip through a JSON queue."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NotJSONSerializable(f"{what} must be JSON-serializable: {exc}") from None


class Task(Generic[P, R]):
    """A function declared as a background task with :func:`task`.

    Calling it runs the function inline (handy in tests); enqueue it with
    ``await queue.enqueue(the_task, *args, **kwargs)`` to run it in the background, or
    ``the_task.options(delay=..., job_id=...)`` in its place for a delayed job or a job id
    of your choosing.
    """

    def __init__(
        self,
        func: Callable[P, R],
        name: str,
        retry_for: tuple[type[BaseException], ...],
        max_retries: int | None = None,
        timeout: float | None = None,
        queue: str = DEFAULT_QUEUE,
    ) -> None:
        if not isinstance(retry_for, tuple) or not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in retry_for
        ):
            raise InvalidJobOption(f"task {name}: retry_for must be a tuple of exception classes")
        if max_retries is not None and (
            isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0
        ):
            raise InvalidJobOption(
                f"task {name}: max_retries must be a whole number >= 0, got {max_retries!r}"
            )
        if timeout is not None and not _positive(timeout):
            raise InvalidJobOption(f"task {name}: timeout must be seconds > 0, got {timeout!r}")
        if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
            raise InvalidJobOption(
                f"task {name}: queue must be 1 to 64 lower-case letters, digits, '_' or '-' "
                f"(starting with a letter or digit), got {queue!r}"
            )
        self.func = func
        self.name = name
        self.retry_for = retry_for
        self.max_retries = max_retries
        self.timeout = timeout
        self.queue = queue
        #: Set by :meth:`options` on the copy it returns.
        self.delay: float = 0.0
        self.job_id: str | None = None
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def options(self, *, delay: float = 0, job_id: str | None = None) -> Task[P, R]:
        """This task bound to options for one enqueue.

        ``delay``: seconds from now before the job may run (status ``scheduled`` until
        then). ``job_id``: the job's id, chosen by the caller (``[A-Za-z0-9_-]{1,128}``):
        an enqueue with an id already known enqueues nothing and returns that id, so a
        client's retry of the same request cannot run the work twice.
        :class:`InvalidJobOption` for a value out of range.
        """
        if (
            isinstance(delay, bool)
            or not isinstance(delay, int | float)
            or not (math.isfinite(delay) and 0 <= delay <= MAX_DELAY_SECONDS)
        ):
            raise InvalidJobOption(
                f"delay must be seconds from 0 to {MAX_DELAY_SECONDS}, got {delay!r}"
            )
        bound = copy.copy(self)
        bound.delay = float(delay)
        bound.job_id = check_job_id(job_id) if job_id is not None else None
        return bound

    def timeout_or(self, default: float) -> float:
        """Seconds one execution may run: the task's own timeout, or ``default``."""
        return self.timeout if self.timeout is not None else default

    def max_retries_or(self, default: int) -> int:
        """Retries after the first execution: the task's own count, or ``default``."""
        return self.max_retries if self.max_retries is not None else default


def _positive(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value > 0
    )


#: Every declared task by name. Workers look tasks up here, never by pickled reference.
TASKS: dict[str, Task[Any, Any]] = {}


@overload
def task(func: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task(
    *,
    name: str | None = None,
    retry_for: tuple[type[BaseException], ...] = (TransientError,),
    max_retries: int | None = None,
    timeout: float | None = None,
    queue: str = DEFAULT_QUEUE,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...
def task(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    retry_for: tuple[type[BaseException], ...] = (TransientError,),
    max_retries: int | None = None,
    timeout: float | None = None,
    queue: str = DEFAULT_QUEUE,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Declare a background task, once, for every tier.

    ``retry_for``: the exceptions worth retrying (on tiers that retry).
    ``max_retries``: retries after the first execution (default ``JOB_MAX_RETRIES``).
    ``timeout``: seconds one execution may run (default ``JOB_TIMEOUT_SECONDS``); past it
    the job fails, not retried, with "TimeoutError: timed out after N s".
    ``queue``: the queue its jobs go to; workers consume the queues of ``WORKER_QUEUES``.
    Arguments and results must be JSON-serializable. A bad option raises
    :class:`InvalidJobOption` at import, naming the task.
    """

    def declare(f: Callable[P, R]) -> Task[P, R]:
        task_name = name or f"{f.__module__}.{f.__qualname__}"
        existing = TASKS.get(task_name)
        if existing is not None and existing.func is not f:
            raise ValueError(f"two tasks are named {task_name!r}; pass name=... to one of them")
        declared = Task(f, task_name, retry_for, max_retries, timeout, queue)
        TASKS[task_name] = declared
        return declared

    return declare(func) if func is not None else declare


def longest_timeout(default: float) -> float:
    """The longest time one execution of any declared task may run: the brokers'
    redelivery timers (RQ's heartbeat, Redis's visibility timeout, RabbitMQ's consumer
    timeout) must outlast it, or a long job is delivered twice."""
    return max([default, *(t.timeout for t in TASKS.values() if t.timeout is not None)])


def declared_queues() -> list[str]:
    """Every queue a declared task uses, ``default`` first."""
    names = {t.queue for t in TASKS.values()} | {DEFAULT_QUEUE}
    return sorted(names, key=lambda n: (n != DEFAULT_QUEUE, n))


def worker_queues(setting: str) -> list[str]:
    """The queues a worker consumes: ``WORKER_QUEUES`` (comma-separated), or every
    declared queue when it is empty. A name no task uses is kept (its tasks may be
    declared in another deployment) but must be a valid queue name."""
    names = [n.strip() for n in setting.split(",") if n.strip()]
    for n in names:
        if not QUEUE_NAME.fullmatch(n):
            raise InvalidJobOption(f"WORKER_QUEUES: {n!r} is not a valid queue name")
    return list(dict.fromkeys(names)) or declared_queues()


# --- Periodic jobs -------------------------------------------------------------


@dataclass(frozen=True)
class Every:
    """Run every ``seconds``, on slots aligned to the Unix epoch (``floor(t / s) * s``)."""

    seconds: float

    def __post_init__(self) -> None:
        if not _positive(self.seconds):
            raise ValueError(f"Every(seconds) needs a positive interval, got {self.seconds!r}")

    def slot(self, now: datetime) -> datetime:
        start = math.floor(now.timestamp() / self.seconds) * self.seconds
        return datetime.fromtimestamp(start, tz=UTC)

    def next_run(self, after: datetime) -> datetime:
        """The first slot strictly after ``after``."""
        return self.slot(after) + timedelta(seconds=self.seconds)

    def __str__(self) -> str:
        return f"every {self.seconds:g} s"


_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# (name, lowest, highest, names)
_FIELDS = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


def _cron_value(text: str, field: tuple[str, int, int, list[str] | None]) -> int:
    label, low, high, names = field
    lowered = text.lower()
    if names and lowered in names:
        return names.index(lowered) + (1 if label == "month" else 0)
    if not text.isdigit():
        raise ValueError(f"{label}: {text!r} is not a number" + (" or a name" if names else ""))
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{label}: {value} is outside {low}-{high}")
    return value


def _cron_field(text: str, field: tuple[str, int, int, list[str] | None]) -> frozenset[int]:
    label, low, high, _ = field
    values: set[int] = set()
    for part in text.split(","):
        spec, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{label}: step {step_text!r} must be a number > 0")
            step = int(step_text)
        if spec == "*":
            first, last = low, high
        elif "-" in spec:
            a, _, b = spec.partition("-")
            first, last = _cron_value(a, field), _cron_value(b, field)
            if first > last:
                raise ValueError(f"{label}: range {spec!r} runs backwards")
        else:
            first = _cron_value(spec, field)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    if label == "day of week" and 7 in values:  # 0 and 7 are both Sunday
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """Run on a standard 5-field cron expression (minute hour day-of-month month
    day-of-week), in UTC, with the same meaning on every tier: day of week 0 and 7 are
    Sunday, names (``sun``, ``jan``) are allowed, and when both day fields are restricted
    a day matching either runs (as cron does). A bad expression raises ``ValueError``
    naming it, when declared."""

    expression: str
    _fields: tuple[frozenset[int], ...] = field(init=False, repr=False, compare=False)
    _either_day: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = self.expression.split() if isinstance(self.expression, str) else []
        if len(parts) != 5:
            raise ValueError(
                f"Cron({self.expression!r}): needs 5 fields (minute hour day month weekday)"
            )
        try:
            parsed = tuple(_cron_field(text, f) for text, f in zip(parts, _FIELDS, strict=True))
        except ValueError as exc:
            raise ValueError(f"Cron({self.expression!r}): {exc}") from None
        object.__setattr__(self, "_fields", parsed)
        # Both day fields restricted: a day matching either one runs (cron's rule).
        object.__setattr__(
            self, "_either_day", not parts[2].startswith("*") and not parts[4].startswith("*")
        )
        if self._next_day(datetime(2000, 1, 1, tzinfo=UTC).date(), years=8) is None:
            raise ValueError(f"Cron({self.expression!r}): never runs (no such date)")

    def _day_matches(self, day: date) -> bool:
        _, _, days, months, weekdays = self._fields
        if day.month not in months:
            return False
        by_date = day.day in days
        by_weekday = (day.isoweekday() % 7) in weekdays
        return (by_date or by_weekday) if self._either_day else (by_date and by_weekday)

    def _next_day(self, day: date, years: int = 8) -> date | None:
        for offset in range(366 * years):
            candidate = day + timedelta(days=offset)
            if self._day_matches(candidate):
                return candidate
        return None

    def slot(self, now: datetime) -> datetime:
        return now.astimezone(UTC).replace(second=0, microsecond=0)

    def next_run(self, after: datetime) -> datetime:
        """The first minute matching the expression strictly after ``after`` (UTC)."""
        minutes, hours = self._fields[0], self._fields[1]
        start = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day: date | None = start.date()
        while True:
            day = self._next_day(day) if day is not None else None
            if day is None:  # refused when declared
                raise ValueError(f"Cron({self.expression!r}) never runs")
            for hour in sorted(hours):
                for minute in sorted(minutes):
                    candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                    if candidate >= start:
                        return candidate
            day += timedelta(days=1)

    def __str__(self) -> str:
        return f"cron {self.expression!r} (UTC)"


Schedule = Every | Cron


@dataclass(frozen=True)
class Periodic:
    """A task the scheduler runs on ``schedule``; it receives ``tick``, the ISO 8601 slot."""

    task: Task[[str], Any]
    schedule: Schedule


#: Every periodic job by task name.
PERIODIC: dict[str, Periodic] = {}


def periodic(schedule: Schedule) -> Callable[[Callable[[str], R]], Task[[str], R]]:
    """Declare a task that runs on ``schedule``.

    The function takes one argument, ``tick``: the schedule slot (ISO 8601, UTC)
    the run belongs to, so a slot run twice is recognisable and can be skipped.
    """

    def declare(f: Callable[[str], R]) -> Task[[str], R]:
        declared: Task[[str], R] = task(f)
        PERIODIC[declared.name] = Periodic(declared, schedule)
        return declared

    return declare


def next_runs(now: datetime | None = None) -> list[tuple[Periodic, datetime]]:
    """Every periodic job with its next run (``GET /schedules``; every tier's scheduler
    takes its due times from the same ``next_run``)."""
    moment = now or utcnow()
    return [(p, p.schedule.next_run(moment)) for p in PERIODIC.values()]


class History(Protocol):
    """A short, bounded list of recent records (newest first), shared by API and jobs."""

    def append(self, record: dict[str, Any]) -> None: ...

    def items(self) -> list[dict[str, Any]]: ...

    async def read(self) -> list[dict[str, Any]]:
        """:meth:`items` from a request: :class:`BrokerUnavailable` when the store does not
        answer in time."""
        ...


#: ``queue.jobs(limit=...)`` takes 1 to this many.
MAX_LIST_LIMIT = 500


def check_list_query(status: JobStatus | str | None, limit: int) -> JobStatus | None:
    """Validate ``queue.jobs`` arguments: :class:`InvalidJobOption` when out of range."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidJobOption(f"limit must be 1 to {MAX_LIST_LIMIT}, got {limit!r}")
    if status is None:
        return None
    try:
        return JobStatus(status)
    except ValueError:
        raise InvalidJobOption(
            f"status must be one of {', '.join(s.value for s in JobStatus)}, got {status!r}"
        ) from None


class JobQueue(Protocol):
    """What routes use to run work in the background; each tier implements it."""

    async def enqueue(self, task: Task[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> str:
        """Queue ``task(*args, **kwargs)`` (or a ``task.options(...)``); returns the job id.
        With a caller-chosen id already known: that id, and nothing new is enqueued."""
        ...

    async def status(self, job_id: str) -> JobInfo:
        """The job; :class:`JobNotFound` for an unknown id."""
        ...

    async def cancel(self, job_id: str) -> JobInfo:
        """Cancel a job not started yet: it never runs. :class:`JobNotFound`, or
        :class:`JobNotCancellable` once it has started or ended."""
        ...

    async def retry(self, job_id: str) -> str:
        """Run a failed job again, same id and arguments (attempts keep counting).
        :class:`JobNotFound`, or :class:`JobNotRetryable` when it has not failed."""
        ...

    async def jobs(self, status: JobStatus | None = None, limit: int = 50) -> list[JobInfo]:
        """Known jobs, newest first (by ``enqueued_at``), optionally of one status."""
        ...

    async def check_ready(self) -> None:
        """Return when jobs can be taken; :class:`BrokerUnavailable` otherwise."""
        ...


def utcnow() -> datetime:
    return datetime.now(UTC)


def timed_out(seconds: float) -> str:
    """The error of an execution stopped at its timeout, the same on every tier."""
    return f"TimeoutError: timed out after {seconds:g} s"
