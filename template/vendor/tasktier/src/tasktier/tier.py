"""What a service takes from its tier: how a route gets its job queue, the app's
lifespan, the tier's half of the metrics, histories, a queue outside a request and the
worker's command. Each tier builds one :class:`Tier`; nothing here imports FastAPI."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from .metrics import BrokerState, Totals
from .model import History, JobQueue


class TierMetrics(Protocol):
    """A tier's half of the job metrics (:mod:`tasktier.metrics`)."""

    @property
    def record(self) -> Callable[..., None]:
        """Counts an execution's end: ``record(task, outcome, duration=None)``; never
        raises."""

    def scrape_bound(self) -> float: ...

    def totals(self) -> Totals: ...

    def broker_state(self, app: Any) -> BrokerState: ...


@dataclass(frozen=True)
class Tier:
    #: The FastAPI dependency that gives a route its ``JobQueue`` (a test overrides it
    #: with ``app.dependency_overrides[job_queue]``).
    job_queue: Callable[..., Any]
    lifespan: Callable[[Any], AbstractAsyncContextManager[None]]
    metrics: TierMetrics
    #: ``history(name, maxlen=50)``: the shared history called ``name``.
    history: Callable[..., History]
    #: A job queue outside a request (the bench command), as an async context manager.
    standalone_queue: Callable[[], AbstractAsyncContextManager[JobQueue]]
    #: The worker's command line (empty: jobs run in the API process).
    worker_command: tuple[str, ...] = ()
