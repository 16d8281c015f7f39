"""The decision engine: which background-work tier fits a service's answers.

Plain Python with no dependency beyond the standard library, so the rules can be
read, imported and unit-tested on their own (``tests/test_decision.py`` checks
every combination of answers). :class:`DecisionExtension` at the bottom exposes
it to Jinja for ``copier.yml`` and the templates.

The rules follow ``DESIGN.md`` ("Decision rules"):

1. ``background_tasks`` only when losing a task is acceptable, no retries are
   needed, the work is short I/O and one API process runs;
2. then ``celery`` when work is long, the schedule needs cron expressions, or
   workers run on their own machines;
3. otherwise ``rq``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from jinja2 import pass_context
from jinja2.ext import Extension

TIERS = ("background_tasks", "rq", "celery")
DURATIONS = ("short", "medium", "long")
SCHEDULES = ("none", "interval", "cron")
SCALES = ("single", "multi", "distributed")

#: Tiers this release of the template can generate. A tier missing here is
#: refused by the ``task_backend`` validator with a "not available yet" message.
AVAILABLE_TIERS = ("background_tasks", "rq", "celery")


@dataclass(frozen=True)
class Needs:
    """The answers the engine decides on (question names from DESIGN.md)."""

    loss_tolerable: bool = True
    needs_retries: bool = False
    task_duration: str = "short"
    cpu_heavy: bool = False
    scheduling: str = "none"
    scale: str = "single"

    def __post_init__(self) -> None:
        for name, allowed in (
            ("task_duration", DURATIONS),
            ("scheduling", SCHEDULES),
            ("scale", SCALES),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        for name in ("loss_tolerable", "needs_retries", "cpu_heavy"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false; got {getattr(self, name)!r}")

    @classmethod
    def from_answers(cls, answers: Mapping[str, Any]) -> Needs:
        """Build from a mapping that may hold other answers too; missing ones take defaults."""
        names = [f.name for f in fields(cls)]
        return cls(**{name: answers[name] for name in names if name in answers})


@dataclass(frozen=True)
class Recommendation:
    tier: str
    reasons: tuple[str, ...]


# What the in-process tier cannot keep, one entry per question that asks for it.
# Each message starts with the question's name so that users (and tests) can find it.
def unmet_needs(tier: str, needs: Needs) -> tuple[str, ...]:
    """The needs ``tier`` cannot keep, each naming its question; empty when it fits."""
    if tier not in TIERS:
        raise ValueError(f"task_backend must be one of {', '.join(TIERS)}; got {tier!r}")
    if tier != "background_tasks":
        # RQ and Celery both run work outside the API, durably, with retries,
        # time limits, periodic jobs and any number of workers.
        return ()
    unmet = []
    if not needs.loss_tolerable:
        unmet.append(
            "loss_tolerable is false: BackgroundTasks run inside the API process, "
            "so queued and running tasks are lost when it restarts"
        )
    if needs.needs_retries:
        unmet.append("needs_retries is true: BackgroundTasks run a task once and never retry it")
    if needs.task_duration != "short":
        unmet.append(
            f"task_duration is {needs.task_duration}: in-process tasks must finish in "
            "seconds, or a deploy or restart cuts them off"
        )
    if needs.cpu_heavy:
        unmet.append(
            "cpu_heavy is true: CPU-bound tasks in the API process starve the requests it serves"
        )
    if needs.scale != "single":
        unmet.append(
            f"scale is {needs.scale}: with several API processes each keeps its own "
            "job registry and each would run every periodic job"
        )
    return tuple(unmet)


def celery_triggers(needs: Needs) -> tuple[str, ...]:
    """The answers that point at Celery rather than RQ, each naming its question."""
    triggers = []
    if needs.task_duration == "long":
        triggers.append(
            "task_duration is long: Celery's soft and hard time limits, worker pools "
            "and acknowledgement after completion suit minutes-to-hours work"
        )
    if needs.scheduling == "cron":
        triggers.append(
            "scheduling is cron: Celery Beat is the mature cron scheduler "
            "(rq cron is young and has no leader lock)"
        )
    if needs.scale == "distributed":
        triggers.append(
            "scale is distributed: Celery routes named queues to workers on their own "
            "machines and can use RabbitMQ"
        )
    return tuple(triggers)


def recommend(needs: Needs) -> Recommendation:
    """The tier that keeps every promise the answers ask for, with the least to run."""
    unmet = unmet_needs("background_tasks", needs)
    if not unmet:
        reasons = [
            "loss_tolerable is true: a task lost on restart is acceptable",
            "needs_retries is false: a task runs once",
            "task_duration is short and cpu_heavy is false: short I/O work fits in the API process",
            "scale is single: one API process, so the in-process job registry is complete",
        ]
        if needs.scheduling != "none":
            reasons.append(
                f"scheduling is {needs.scheduling}: APScheduler runs periodic jobs inside "
                "the single API process"
            )
        reasons.append("no broker to run: FastAPI BackgroundTasks need no infrastructure")
        return Recommendation("background_tasks", tuple(reasons))
    triggers = celery_triggers(needs)
    if triggers:
        return Recommendation("celery", (*triggers, *unmet))
    return Recommendation(
        "rq",
        (
            *unmet,
            "task_duration is not long, scheduling is not cron and scale is not "
            "distributed: RQ keeps jobs durable in Redis with retries, job timeouts "
            "and periodic jobs, with less to operate than Celery",
        ),
    )


def refusal(tier: str, needs: Needs, available: tuple[str, ...] = AVAILABLE_TIERS) -> str:
    """Why ``tier`` is refused for these answers, or ``""`` when it is accepted."""
    if tier not in TIERS:
        return f"task_backend must be one of {', '.join(TIERS)}; got {tier!r}."
    unmet = unmet_needs(tier, needs)
    if unmet:
        others = [t for t in TIERS if t != tier and t in available]
        advice = (
            f" Choose {' or '.join(others)} (recommended: {recommend(needs).tier})."
            if others
            else f" The tier that fits, {recommend(needs).tier}, is not available yet in "
            "this release of the template: relax those answers or wait for it."
        )
        return (
            f"task_backend {tier} cannot keep what the answers ask for: "
            + "; ".join(unmet)
            + "."
            + advice
        )
    if tier not in available:
        message = (
            f"task_backend {tier} is not available yet in this release of "
            f"copier-fastapi-tasks (available: {', '.join(available)})."
        )
        blocked = {t: unmet_needs(t, needs) for t in available}
        if all(blocked.values()):
            message += " Your answers rule out the available tiers too: " + " ".join(
                f"{t} cannot keep them ({'; '.join(unmet)})." for t, unmet in blocked.items()
            )
        return message
    return ""


def all_needs() -> Iterator[Needs]:
    """Every combination of the answers the engine reads (216 of them)."""
    for loss, retries, duration, cpu, schedule, scale in itertools.product(
        (True, False), (True, False), DURATIONS, (True, False), SCHEDULES, SCALES
    ):
        yield Needs(loss, retries, duration, cpu, schedule, scale)


def help_text(needs: Needs) -> str:
    """The ``task_backend`` question's help: the recommendation and why."""
    rec = recommend(needs)
    lines = [
        "Which tier runs the background work.",
        f"Recommended for your answers: {rec.tier}, because:",
        *(f"  - {reason}" for reason in rec.reasons),
    ]
    unavailable = [t for t in TIERS if t not in AVAILABLE_TIERS]
    if unavailable:
        lines.append(f"Not available yet in this release: {', '.join(unavailable)}.")
    return "\n".join(lines)


class DecisionExtension(Extension):
    """Jinja globals: ``recommended_tier()``, ``recommendation_reasons()``, ``tier_help()``
    and ``tier_refusal(tier)``, each reading the answers given so far."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)

        def needs_of(context: Any) -> Needs:
            return Needs.from_answers(context)

        @pass_context
        def recommended_tier(context: Any) -> str:
            return recommend(needs_of(context)).tier

        @pass_context
        def recommendation_reasons(context: Any) -> list[str]:
            return list(recommend(needs_of(context)).reasons)

        @pass_context
        def tier_help(context: Any) -> str:
            return help_text(needs_of(context))

        @pass_context
        def tier_refusal(context: Any, tier: str) -> str:
            return refusal(tier, needs_of(context))

        environment.globals.update(
            recommended_tier=recommended_tier,
            recommendation_reasons=recommendation_reasons,
            tier_help=tier_help,
            tier_refusal=tier_refusal,
        )
