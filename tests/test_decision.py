"""Exhaustive unit tests of the decision engine (extensions/decision.py).

Every combination of the answers the engine reads is checked against an oracle
written independently from DESIGN.md ("Decision rules"), not against the
engine's own helpers.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import pytest
from jinja2 import Environment

import decision
from decision import Needs

# The answer space, spelled out here from DESIGN.md ("Questions") rather than
# taken from the module under test.
BOOLS = (True, False)
DURATIONS = ("short", "medium", "long")
SCHEDULES = ("none", "interval", "cron")
SCALES = ("single", "multi", "distributed")
TIERS = ("background_tasks", "rq", "celery")

# The questions that can rule out background_tasks, and when they do.
BG_BLOCKERS = {
    "loss_tolerable": lambda n: not n.loss_tolerable,
    "needs_retries": lambda n: n.needs_retries,
    "task_duration": lambda n: n.task_duration != "short",
    "cpu_heavy": lambda n: n.cpu_heavy,
    "scale": lambda n: n.scale != "single",
}
# The questions that point at celery rather than rq, and when they do.
CELERY_TRIGGERS = {
    "task_duration": lambda n: n.task_duration == "long",
    "scheduling": lambda n: n.scheduling == "cron",
    "scale": lambda n: n.scale == "distributed",
}
QUESTION_NAMES = (
    "loss_tolerable",
    "needs_retries",
    "task_duration",
    "cpu_heavy",
    "scheduling",
    "scale",
)


def oracle(n: Needs) -> str:
    """DESIGN.md, word for word: background_tasks only when losing a task is
    acceptable, no retries are needed, work is short I/O and one API process
    runs; then celery when work is long, the schedule needs cron, or workers run
    on their own machines; otherwise rq."""
    if (
        n.loss_tolerable
        and not n.needs_retries
        and n.task_duration == "short"
        and not n.cpu_heavy
        and n.scale == "single"
    ):
        return "background_tasks"
    if n.task_duration == "long" or n.scheduling == "cron" or n.scale == "distributed":
        return "celery"
    return "rq"


def needs_id(n: Needs) -> str:
    return "-".join(
        (
            "lossok" if n.loss_tolerable else "noloss",
            "retries" if n.needs_retries else "noretries",
            n.task_duration,
            "cpu" if n.cpu_heavy else "io",
            f"sched_{n.scheduling}",
            n.scale,
        )
    )


ALL = list(decision.all_needs())
each_needs = pytest.mark.parametrize("needs", ALL, ids=[needs_id(n) for n in ALL])


def names_in(text: str) -> set[str]:
    """Question names mentioned as whole words in ``text``."""
    return {q for q in QUESTION_NAMES if re.search(rf"(?<![A-Za-z0-9_]){q}(?![A-Za-z0-9_])", text)}


# --- the answer space -------------------------------------------------------


def test_all_needs_is_the_full_product_without_duplicates() -> None:
    assert len(ALL) == 216
    keys = [dataclasses.astuple(n) for n in ALL]
    assert len(set(keys)) == 216
    expected = set(itertools.product(BOOLS, BOOLS, DURATIONS, BOOLS, SCHEDULES, SCALES))
    assert set(keys) == expected


def test_needs_fields_are_the_question_names() -> None:
    assert tuple(f.name for f in dataclasses.fields(Needs)) == QUESTION_NAMES


def test_needs_defaults_match_copier_defaults() -> None:
    # copier.yml: loss_tolerable true, needs_retries false, short, not cpu, none, single.
    assert Needs() == Needs(True, False, "short", False, "none", "single")


def test_tiers_and_available_tiers() -> None:
    assert decision.TIERS == TIERS
    assert set(decision.AVAILABLE_TIERS) <= set(TIERS)
    assert "background_tasks" in decision.AVAILABLE_TIERS


def test_oracle_reaches_every_tier() -> None:
    # Guards the oracle itself against a typo that would make a branch dead.
    counts = {t: sum(oracle(n) == t for n in ALL) for t in TIERS}
    # bg: loss ok, no retries, short, io, single: 3 schedules.
    assert counts["background_tasks"] == 3
    assert counts["celery"] + counts["rq"] == 213
    assert counts["rq"] > 0 and counts["celery"] > 0


# --- recommendation ---------------------------------------------------------


@each_needs
def test_recommendation_follows_the_rules(needs: Needs) -> None:
    rec = decision.recommend(needs)
    assert rec.tier == oracle(needs)


@each_needs
def test_every_reason_is_a_sentence(needs: Needs) -> None:
    reasons = decision.recommend(needs).reasons
    assert len(reasons) >= 1
    for reason in reasons:
        assert isinstance(reason, str)
        assert reason.strip() == reason and reason
        assert len(reason.split()) >= 4, reason
        assert reason[0].isalpha(), reason
    assert len(set(reasons)) == len(reasons), "a reason is repeated"


@each_needs
def test_reasons_name_the_answers_that_decided(needs: Needs) -> None:
    rec = decision.recommend(needs)
    mentioned = names_in(" ".join(rec.reasons))
    if rec.tier == "background_tasks":
        # Every need background_tasks depends on is said to be met.
        assert set(BG_BLOCKERS) <= mentioned
    else:
        # Why not background_tasks: every blocking answer is named.
        blockers = {q for q, blocks in BG_BLOCKERS.items() if blocks(needs)}
        assert blockers <= mentioned
    if rec.tier == "celery":
        triggers = {q for q, fires in CELERY_TRIGGERS.items() if fires(needs)}
        assert triggers and triggers <= mentioned


@each_needs
def test_recommended_tier_is_never_refused_when_every_tier_is_available(needs: Needs) -> None:
    rec = decision.recommend(needs)
    assert decision.refusal(rec.tier, needs, available=decision.TIERS) == ""


# --- refusal of background_tasks --------------------------------------------


@each_needs
def test_background_tasks_refused_exactly_when_not_recommended(needs: Needs) -> None:
    message = decision.refusal("background_tasks", needs)
    if oracle(needs) == "background_tasks":
        assert message == ""
        assert decision.unmet_needs("background_tasks", needs) == ()
    else:
        assert message.strip()
        assert "background_tasks" in message


@each_needs
def test_background_tasks_refusal_names_every_unmet_need_and_no_met_one(needs: Needs) -> None:
    unmet = {q for q, blocks in BG_BLOCKERS.items() if blocks(needs)}
    for available in (decision.AVAILABLE_TIERS, decision.TIERS):
        message = decision.refusal("background_tasks", needs, available=available)
        if not unmet:
            assert message == ""
            continue
        assert names_in(message) == unmet, message
    # unmet_needs gives one entry per unmet question, each starting with its name.
    entries = decision.unmet_needs("background_tasks", needs)
    assert len(entries) == len(unmet)
    assert {e.split()[0] for e in entries} == unmet


NOT_BG = [n for n in ALL if oracle(n) != "background_tasks"]


@pytest.mark.parametrize("needs", NOT_BG, ids=[needs_id(n) for n in NOT_BG])
def test_background_tasks_refusal_points_at_the_recommended_tier(needs: Needs) -> None:
    for available in (decision.AVAILABLE_TIERS, decision.TIERS):
        message = decision.refusal("background_tasks", needs, available=available)
        assert re.search(rf"\b{oracle(needs)}\b", message), message


# --- refusal of rq and celery -----------------------------------------------


@each_needs
@pytest.mark.parametrize("tier", ["rq", "celery"])
def test_durable_tiers_accepted_when_available(needs: Needs, tier: str) -> None:
    assert decision.refusal(tier, needs, available=decision.TIERS) == ""
    assert decision.unmet_needs(tier, needs) == ()


@each_needs
@pytest.mark.parametrize("tier", ["rq", "celery"])
def test_unavailable_tier_refused_as_not_available_yet(needs: Needs, tier: str) -> None:
    available = tuple(t for t in TIERS if t != tier)
    message = decision.refusal(tier, needs, available=available)
    assert "not available yet" in message
    assert tier in message
    # With the release's own list: refused if and only if it is missing there.
    default_message = decision.refusal(tier, needs)
    if tier in decision.AVAILABLE_TIERS:
        assert default_message == ""
    else:
        assert "not available yet" in default_message


@pytest.mark.parametrize("tier", ["", "celery-beat", "BackgroundTasks", "RQ", None])
def test_unknown_tier_refused(tier: object) -> None:
    message = decision.refusal(tier, Needs())  # type: ignore[arg-type]
    assert "task_backend" in message
    with pytest.raises(ValueError, match="task_backend"):
        decision.unmet_needs(tier, Needs())  # type: ignore[arg-type]


# --- help text --------------------------------------------------------------


@each_needs
def test_help_text_says_which_tier_and_why(needs: Needs) -> None:
    rec = decision.recommend(needs)
    text = decision.help_text(needs)
    assert rec.tier in text
    recommending = [line for line in text.splitlines() if "recommend" in line.lower()]
    assert recommending, text
    # The line that recommends names the recommended tier and no other one.
    line = recommending[0]
    named = {t for t in TIERS if re.search(rf"\b{t}\b", line)}
    assert named == {rec.tier}, line
    for reason in rec.reasons:
        assert reason in text


def test_help_text_lists_unavailable_tiers() -> None:
    text = decision.help_text(Needs())
    for tier in TIERS:
        if tier not in decision.AVAILABLE_TIERS:
            assert tier in text
            assert "not available yet" in text.lower()


# --- Needs validation -------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("task_duration", "forever"),
        ("task_duration", "Short"),
        ("task_duration", ""),
        ("scheduling", "hourly"),
        ("scheduling", None),
        ("scale", "huge"),
        ("scale", "single "),
        ("loss_tolerable", "yes"),
        ("loss_tolerable", 1),
        ("needs_retries", "false"),
        ("needs_retries", None),
        ("cpu_heavy", 0),
        ("cpu_heavy", "true"),
    ],
)
def test_bad_values_raise_value_error_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        Needs(**{field: value})
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        Needs.from_answers({field: value})


@each_needs
def test_from_answers_round_trips(needs: Needs) -> None:
    assert Needs.from_answers(dataclasses.asdict(needs)) == needs


def test_from_answers_ignores_unrelated_keys() -> None:
    answers = {
        "project_name": "Acme Orders",
        "project_slug": "acme-orders",
        "package_name": "acme_orders",
        "python_version": "3.12",
        "task_backend": "rq",
        "celery_broker": "rabbitmq",
        "monitoring": True,
        "include_examples": False,
        "ci": "none",
        "_copier_conf": {"dst_path": "/tmp/x"},
        "loss_tolerable": False,
        "scale": "multi",
    }
    assert Needs.from_answers(answers) == Needs(loss_tolerable=False, scale="multi")
    assert Needs.from_answers({"project_name": "x", "unrelated": object()}) == Needs()
    assert Needs.from_answers({}) == Needs()


# --- the Jinja extension ----------------------------------------------------


def jinja_env() -> Environment:
    return Environment(extensions=[decision.DecisionExtension])


@each_needs
def test_extension_globals_read_the_answers(needs: Needs) -> None:
    env = jinja_env()
    context = {**dataclasses.asdict(needs), "project_name": "Acme", "task_backend": "rq"}
    assert env.from_string("{{ recommended_tier() }}").render(context) == oracle(needs)
    refusal = env.from_string("{{ tier_refusal('background_tasks') }}").render(context)
    assert (refusal == "") == (oracle(needs) == "background_tasks")
    help_ = env.from_string("{{ tier_help() }}").render(context)
    assert help_ == decision.help_text(needs)
    reasons = env.from_string("{{ recommendation_reasons() | join('|') }}").render(context)
    assert reasons.split("|") == list(decision.recommend(needs).reasons)
