"""The background_tasks tier's half of the job metrics (:mod:`tasktier.metrics`): in memory.

Jobs run in the API process, so that process holds the totals (lost on restart, like the
job registry; Prometheus's ``rate()`` and ``increase()`` take counter resets in their
stride). "Waiting" is the jobs queued and not started yet (each runs once its request's
response has been sent; a delayed job is ``scheduled``, not waiting, until due); the only
"worker" is the API process itself: 1 for every declared queue. This tier never retries,
so ``retried`` stays 0.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from ...metrics import BrokerState, Recorder, Totals
from ...model import declared_queues

_lock = threading.Lock()  # def tasks end in the threadpool; scrapes read from a thread
_fields: dict[str, float] = {}
_last_tick: float | None = None


def _add(increments: Mapping[str, float]) -> None:
    with _lock:
        for name, value in increments.items():
            _fields[name] = _fields.get(name, 0) + value


#: ``record(task, outcome, duration=None)``: count one execution's end (never raises).
record = Recorder(_add)


def ticked(at: float | None = None) -> None:
    """A periodic tick was run (the in-process scheduler)."""
    global _last_tick
    _last_tick = time.time() if at is None else at


def scrape_bound() -> float:
    """How long a scrape may wait for each of its reads (all in memory here)."""
    return 1.0


def totals() -> Totals:
    with _lock:
        return Totals(dict(_fields), _last_tick)


def broker_state(app: Any) -> BrokerState:
    """The jobs queued in ``app``'s registry, per queue, and the age of the oldest."""
    queues = declared_queues()
    state = BrokerState(waiting=dict.fromkeys(queues, 0), workers_alive=dict.fromkeys(queues, 1))
    registry = getattr(app.state, "job_registry", None)
    if registry is None:  # not started (or stopped): nothing waits
        return state
    now = time.time()
    for queue, enqueued_at in registry.waiting_jobs():
        state.waiting[queue] = state.waiting.get(queue, 0) + 1
        age = max(now - enqueued_at.timestamp(), 0.0)
        state.oldest_waiting[queue] = max(state.oldest_waiting.get(queue, 0.0), age)
    for queue in state.waiting:
        state.oldest_waiting.setdefault(queue, 0.0)
    return state
