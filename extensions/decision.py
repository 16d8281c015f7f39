"""The decision engine: which background-work tier fits a service's answers.

Plain Python with no dependency beyond the standard library, so the rules can be
read, imported and unit-tested on their own (``tests/test_decision.py`` checks
every combination of answers). :class:`DecisionExtension` at the bottom exposes
it to Jinja for ``copier.yml`` and the templates.

The rules follow ``docs/architecture.md`` ("Decision rules"):

1. ``background_tasks`` only when losing a task is acceptable, no retries are
   needed, the work is short I/O and one API process runs;
2. then ``celery`` when work is long, the schedule needs cron expressions, or
   workers run on their own machines;
3. otherwise ``rq``.

A refused tier is explained in two lengths. :func:`refusal` is the whole message,
naming every unmet need with its explanation: copier's error for an answer given
with ``--data`` or a data file. :func:`list_reason` is the few words beside the
disabled choice in the interactive list, where questionary draws the choice and
its reason on one line that the terminal cuts at its width; the explanation is
then in the question's help, :func:`help_text`, printed above the list.
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from jinja2 import pass_context
from jinja2.ext import Extension

TIERS = ("background_tasks", "rq", "celery")
DURATIONS = ("short", "medium", "long")
SCHEDULES = ("none", "interval", "cron")
SCALES = ("single", "multi", "distributed")

#: The ``task_backend`` choices' titles, as in ``copier.yml`` (a test keeps them equal):
#: the interactive list's reason is sized to fit beside its title.
TITLES = {
    "background_tasks": "FastAPI BackgroundTasks (background_tasks)",
    "rq": "RQ workers on Redis (rq)",
    "celery": "Celery workers and Beat (celery)",
}

#: The terminal width the questionnaire is written for.
WIDTH = 80
#: What questionary draws around a disabled choice: ``"   - " + title + " (" + reason + ")"``.
LIST_LINE = "   - {title} ({reason})"
#: Width of the help's lines: its first line is printed after copier's prompt mark
#: (an emoji and a space, 3 columns).
HELP_WIDTH = WIDTH - 3
#: The help's first line.
QUESTION = "Which tier runs the background work?"


@dataclass(frozen=True)
class Needs:
    """The answers the engine decides on (question names from docs/architecture.md)."""

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
    #: Each starts with the question(s) it is about. First the reasons that pick
    #: ``tier`` over the next-best one, then the rest.
    reasons: tuple[str, ...]


def _check_tier(tier: str) -> None:
    if tier not in TIERS:
        raise ValueError(f"task_backend must be one of {', '.join(TIERS)}; got {tier!r}")


def unmet_needs(tier: str, needs: Needs) -> tuple[str, ...]:
    """The needs ``tier`` cannot keep, each starting with its question's name; empty
    when it fits."""
    _check_tier(tier)
    return tuple(message for _, message in _unmet(tier, needs))


def unmet_questions(tier: str, needs: Needs) -> tuple[str, ...]:
    """The names of the questions whose answers ``tier`` cannot keep, in question order."""
    _check_tier(tier)
    return tuple(question for question, _ in _unmet(tier, needs))


def _unmet(tier: str, needs: Needs) -> list[tuple[str, str]]:
    if tier != "background_tasks":
        # RQ and Celery both run work outside the API, durably, with retries,
        # time limits, periodic jobs and any number of workers.
        return []
    unmet = []
    if not needs.loss_tolerable:
        unmet.append(
            (
                "loss_tolerable",
                "loss_tolerable is false: BackgroundTasks run inside the API process, "
                "so queued and running tasks are lost when it restarts",
            )
        )
    if needs.needs_retries:
        unmet.append(
            (
                "needs_retries",
                "needs_retries is true: BackgroundTasks run a task once and never retry it",
            )
        )
    if needs.task_duration != "short":
        unmet.append(
            (
                "task_duration",
                f"task_duration is {needs.task_duration}: in-process tasks must finish in "
                "seconds, or a deploy or restart cuts them off",
            )
        )
    if needs.cpu_heavy:
        unmet.append(
            (
                "cpu_heavy",
                "cpu_heavy is true: CPU-bound tasks in the API process starve the "
                "requests it serves",
            )
        )
    if needs.scale != "single":
        unmet.append(
            (
                "scale",
                f"scale is {needs.scale}: with several API processes each keeps its own "
                "job registry and each would run every periodic job",
            )
        )
    return unmet


def celery_triggers(needs: Needs) -> tuple[str, ...]:
    """The answers that point at Celery rather than RQ, each naming its question."""
    triggers = []
    if needs.task_duration == "long":
        triggers.append(
            "task_duration is long: Celery's soft and hard time limits, worker pools "
            "and acknowledgement after completion suit minutes-to-hours work, where "
            "rq has one hard job timeout"
        )
    if needs.scheduling == "cron":
        triggers.append(
            "scheduling is cron: Celery Beat is the mature cron scheduler; the rq "
            "tier's scheduler builds on rq cron, which is young (it claims each "
            "schedule slot in Redis, so no slot runs twice)"
        )
    if needs.scale == "distributed":
        triggers.append(
            "scale is distributed: Celery routes named queues to workers on their own "
            "machines and can use RabbitMQ, where rq has no routing and needs Redis"
        )
    return tuple(triggers)


def recommend(needs: Needs) -> Recommendation:
    """The tier that keeps every promise the answers ask for, with the least to run."""
    unmet = unmet_needs("background_tasks", needs)
    if not unmet:
        # Why background_tasks over rq, the next-best tier: nothing rq adds is needed.
        reasons = [
            "loss_tolerable is true and needs_retries is false: rq's durable jobs "
            "and retries are not needed, so there is no Redis and no worker to run",
            "task_duration is short and cpu_heavy is false: short I/O work fits in the API process",
            "scale is single: one API process, so the in-process job registry is complete",
        ]
        if needs.scheduling != "none":
            reasons.append(
                f"scheduling is {needs.scheduling}: APScheduler runs periodic jobs inside "
                "the single API process"
            )
        return Recommendation("background_tasks", tuple(reasons))
    triggers = celery_triggers(needs)
    if triggers:
        # What picks celery over rq, then what rules out background_tasks.
        return Recommendation("celery", (*triggers, *unmet))
    # What picks rq over celery, the next-best tier, then what rules out background_tasks.
    over_celery = (
        f"task_duration is {needs.task_duration}, scheduling is {needs.scheduling} "
        f"and scale is {needs.scale}: nothing asks for celery, and rq keeps jobs "
        "durable in Redis with retries, job timeouts and periodic jobs, with less "
        "to run than celery"
    )
    return Recommendation("rq", (over_celery, *unmet))


def refusal(tier: str, needs: Needs) -> str:
    """Why ``tier`` is refused for these answers, in full, or ``""`` when it is accepted.

    Copier's error for a refused answer given with ``--data`` or a data file: it
    names every unmet need by its question, with what the tier cannot keep.
    """
    if tier not in TIERS:
        return f"task_backend must be one of {', '.join(TIERS)}; got {tier!r}."
    unmet = unmet_needs(tier, needs)
    if not unmet:
        return ""
    others = [t for t in TIERS if t != tier]
    return (
        f"task_backend {tier} cannot keep what the answers ask for: "
        + "; ".join(unmet)
        + f". Choose {' or '.join(others)} (recommended: {recommend(needs).tier})."
    )


def list_reason(tier: str, needs: Needs, width: int = WIDTH) -> str:
    """The reason shown beside ``tier``'s disabled choice in the interactive list, or
    ``""`` when it is accepted.

    It fits the list's line (``LIST_LINE`` with the choice's title) in ``width``
    columns: the unmet questions' names when they fit, else how many needs are
    unmet and a pointer to the help above the list, which explains each one.
    """
    if tier not in TIERS:
        return refusal(tier, needs)
    questions = unmet_questions(tier, needs)
    if not questions:
        return ""
    n = len(questions)
    candidates = (
        f"refused: {', '.join(questions)}",
        f"refused: {n} unmet needs, see the help above",
        f"refused: {n} unmet needs, see the help",
        f"refused: {n} needs, see the help",
        f"refused: {n} needs, see help",
        "refused, see the help",
        "refused",
    )
    for reason in candidates:
        if len(LIST_LINE.format(title=TITLES[tier], reason=reason)) <= width:
            return reason
    return candidates[-1]


def all_needs() -> Iterator[Needs]:
    """Every combination of the answers the engine reads (216 of them)."""
    for loss, retries, duration, cpu, schedule, scale in itertools.product(
        (True, False), (True, False), DURATIONS, (True, False), SCHEDULES, SCALES
    ):
        yield Needs(loss, retries, duration, cpu, schedule, scale)


def help_text(needs: Needs, width: int = HELP_WIDTH) -> str:
    """The ``task_backend`` question's help, wrapped to ``width`` columns.

    The question, then the recommendation with the reasons that pick it over the
    next-best tier, then each refused tier with every need it cannot keep, explained
    in full (the interactive list has room for a few words beside the choice). Every
    reason of the recommendation is in one of the two lists.
    """
    rec = recommend(needs)

    def bullets(items: tuple[str, ...]) -> list[str]:
        return [
            line
            for item in items
            for line in textwrap.wrap(
                item,
                width,
                initial_indent="  - ",
                subsequent_indent="    ",
                break_on_hyphens=False,
            )
        ]

    refused = {tier: unmet_needs(tier, needs) for tier in TIERS}
    explained = {need for unmet in refused.values() for need in unmet}
    lines = [QUESTION, f"Recommended for your answers: {rec.tier}, because:"]
    lines += bullets(tuple(r for r in rec.reasons if r not in explained))
    for tier, unmet in refused.items():
        if unmet:
            lines.append(f"Refused: {tier}, which cannot keep what these answers ask for:")
            lines += bullets(unmet)
    return "\n".join(lines)


def in_interactive_list(context: Mapping[str, Any]) -> bool:
    """Whether copier will show the ``task_backend`` choices as an interactive list.

    Copier renders a choice's ``validator`` both as the disabled choice's reason in
    the list and as its error for a refused answer given up front. The answer is
    given up front when ``task_backend`` is in the ``--data`` answers
    (``_copier_conf.data``, which includes a data file's), and no question is
    asked with ``--defaults``. Outside copier (no ``_copier_conf``) it is not a list.
    """
    conf = context.get("_copier_conf")
    if conf is None:
        return False
    return "task_backend" not in (conf.get("data") or {}) and not conf.get("defaults")


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
            """The short reason in the interactive list, else the full message."""
            if in_interactive_list(context):
                return list_reason(tier, needs_of(context))
            return refusal(tier, needs_of(context))

        environment.globals.update(
            recommended_tier=recommended_tier,
            recommendation_reasons=recommendation_reasons,
            tier_help=tier_help,
            tier_refusal=tier_refusal,
        )
