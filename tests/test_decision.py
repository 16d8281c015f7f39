"""Exhaustive unit tests of the decision engine (extensions/decision.py).

Every combination of the answers the engine reads is checked against an oracle
written independently from docs/architecture.md ("Decision rules"), not against
the engine's own helpers. The words are checked too: the reason beside a refused
choice in the interactive list fits an 80-column terminal with its title, the
full refusal (copier's error for ``--data``) names every unmet need, and the help
printed above the list explains each one in lines that fit 80 columns.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import pytest
from jinja2 import Environment

import decision
from decision import Needs

# The answer space, spelled out here from docs/architecture.md ("Questions") rather than
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
    """docs/architecture.md ("Decision rules"): background_tasks only when losing a task is
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


def test_tiers() -> None:
    assert decision.TIERS == TIERS
    assert tuple(decision.TITLES) == TIERS


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
def test_recommended_tier_is_never_refused(needs: Needs) -> None:
    rec = decision.recommend(needs)
    assert decision.refusal(rec.tier, needs) == ""
    assert decision.list_reason(rec.tier, needs) == ""


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
    message = decision.refusal("background_tasks", needs)
    if not unmet:
        assert message == ""
    else:
        assert names_in(message) == unmet, message
    # unmet_needs gives one entry per unmet question, each starting with its name.
    entries = decision.unmet_needs("background_tasks", needs)
    assert len(entries) == len(unmet)
    assert {e.split()[0] for e in entries} == unmet


NOT_BG = [n for n in ALL if oracle(n) != "background_tasks"]


@pytest.mark.parametrize("needs", NOT_BG, ids=[needs_id(n) for n in NOT_BG])
def test_background_tasks_refusal_points_at_the_recommended_tier(needs: Needs) -> None:
    message = decision.refusal("background_tasks", needs)
    assert re.search(rf"\b{oracle(needs)}\b", message), message


# --- refusal of rq and celery -----------------------------------------------


@each_needs
@pytest.mark.parametrize("tier", ["rq", "celery"])
def test_durable_tiers_accepted(needs: Needs, tier: str) -> None:
    assert decision.refusal(tier, needs) == ""
    assert decision.list_reason(tier, needs) == ""
    assert decision.unmet_needs(tier, needs) == ()


@pytest.mark.parametrize("tier", ["", "celery-beat", "BackgroundTasks", "RQ", None])
def test_unknown_tier_refused(tier: object) -> None:
    message = decision.refusal(tier, Needs())  # type: ignore[arg-type]
    assert "task_backend" in message
    with pytest.raises(ValueError, match="task_backend"):
        decision.unmet_needs(tier, Needs())  # type: ignore[arg-type]


# --- the order of the reasons ------------------------------------------------


@each_needs
def test_first_reasons_pick_the_tier_over_the_next_best_one(needs: Needs) -> None:
    """rq's first reason is why not celery; celery's first ones are its triggers, each
    saying what rq lacks; background_tasks' first one is why not rq."""
    reasons = decision.recommend(needs).reasons
    tier = oracle(needs)
    if tier == "rq":
        first = reasons[0]
        # Every question that could have pointed at celery, with its answer.
        assert set(CELERY_TRIGGERS) <= names_in(first), first
        for question, value in (
            ("task_duration", needs.task_duration),
            ("scheduling", needs.scheduling),
            ("scale", needs.scale),
        ):
            assert f"{question} is {value}" in first, first
        assert re.search(r"\bcelery\b", first), first
        # Then what rules out background_tasks, one reason per unmet need.
        blockers = [q for q, blocks in BG_BLOCKERS.items() if blocks(needs)]
        assert [r.split()[0] for r in reasons[1:]] == blockers, reasons
    elif tier == "celery":
        triggers = [q for q, fires in CELERY_TRIGGERS.items() if fires(needs)]
        assert [r.split()[0] for r in reasons[: len(triggers)]] == triggers, reasons
        for reason in reasons[: len(triggers)]:
            assert re.search(r"\brq\b", reason), reason
        blockers = [q for q, blocks in BG_BLOCKERS.items() if blocks(needs)]
        assert [r.split()[0] for r in reasons[len(triggers) :]] == blockers, reasons
    else:
        assert re.search(r"\brq\b", reasons[0]), reasons[0]
        assert {"loss_tolerable", "needs_retries"} <= names_in(reasons[0]), reasons[0]


def test_cron_reason_says_what_the_rq_scheduler_does() -> None:
    """The rq tier's scheduler claims every slot in Redis: no word of a missing lock."""
    [reason] = decision.celery_triggers(Needs(scheduling="cron"))
    assert reason.startswith("scheduling is cron:")
    assert "Beat" in reason and "rq cron" in reason
    assert "claims each schedule slot" in reason
    for needs in ALL:
        words = " ".join(decision.recommend(needs).reasons) + decision.help_text(needs)
        assert "leader lock" not in words.lower(), needs


# --- the interactive list ----------------------------------------------------

WIDTH = 80
#: How questionary draws a disabled choice (tests/test_questionnaire.py checks it
#: against questionary itself).
DISABLED_LINE = "   - {title} ({reason})"


@each_needs
@pytest.mark.parametrize("tier", TIERS)
def test_list_reason_fits_an_80_column_line_with_its_title(needs: Needs, tier: str) -> None:
    reason = decision.list_reason(tier, needs)
    assert (reason == "") == (decision.refusal(tier, needs) == "")
    if reason:
        line = DISABLED_LINE.format(title=decision.TITLES[tier], reason=reason)
        assert len(line) <= WIDTH, line
        assert reason.isascii() and "\n" not in reason, reason


@pytest.mark.parametrize("needs", NOT_BG, ids=[needs_id(n) for n in NOT_BG])
def test_list_reason_names_the_unmet_questions_when_they_fit(needs: Needs) -> None:
    unmet = [q for q, blocks in BG_BLOCKERS.items() if blocks(needs)]
    reason = decision.list_reason("background_tasks", needs)
    assert reason.startswith("refused"), reason
    named = names_in(reason)
    # Never a met question; and either every unmet one or none, with a count.
    assert named <= set(unmet), reason
    title = decision.TITLES["background_tasks"]
    names_fit = len(DISABLED_LINE.format(title=title, reason=f"refused: {', '.join(unmet)}"))
    if names_fit <= WIDTH:
        assert reason == f"refused: {', '.join(unmet)}"
    else:
        assert not named, reason
        assert re.search(rf"\b{len(unmet)} (unmet )?needs\b", reason), reason
        assert "help" in reason, reason


def test_list_reason_shortens_to_the_room_left() -> None:
    needs = Needs(False, True, "long", True, "cron", "distributed")
    reasons = [decision.list_reason("background_tasks", needs, width=w) for w in range(40, 121)]
    assert reasons[-1] == "refused: 5 unmet needs, see the help above"
    assert all(r.startswith("refused") for r in reasons)
    # Wider terminals never get fewer words.
    assert [len(r) for r in reasons] == sorted(len(r) for r in reasons)


# --- help text --------------------------------------------------------------


def flat(text: str) -> str:
    """``text`` with its line breaks and indents undone (the help is wrapped)."""
    return re.sub(r"\s+", " ", text.replace("\n  - ", "\n").replace("\n    ", " "))


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
        assert reason in flat(text), (reason, text)


@each_needs
def test_help_lines_fit_80_columns(needs: Needs) -> None:
    lines = decision.help_text(needs).splitlines()
    # The first line follows copier's prompt mark, an emoji and a space (3 columns).
    assert len(lines[0]) <= WIDTH - 3, lines[0]
    for line in lines:
        assert len(line) <= WIDTH, line
        assert line == line.rstrip() and line.isascii(), line
    # With the list below it (the instruction line and one line per tier) it fits
    # a 24-row terminal, so its first line has not scrolled away.
    assert len(lines) + 1 + len(TIERS) <= 24, len(lines)


@each_needs
def test_help_explains_every_unmet_need(needs: Needs) -> None:
    text = decision.help_text(needs)
    unmet = [q for q, blocks in BG_BLOCKERS.items() if blocks(needs)]
    refusing = [
        line for line in text.splitlines() if "background_tasks" in line and "efused" in line
    ]
    if not unmet:
        assert not refusing, text
        return
    assert refusing, text
    # Each unmet need, with its whole explanation, as in the full refusal.
    entries = decision.unmet_needs("background_tasks", needs)
    assert [e.split()[0] for e in entries] == unmet
    for entry in entries:
        assert entry in flat(text), (entry, text)
        assert entry in decision.refusal("background_tasks", needs)
    # And the list's short reason points here when it has no room for the names.
    reason = decision.list_reason("background_tasks", needs)
    assert names_in(reason) == set(unmet) or "help" in reason


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


LIST = {"_copier_conf": {"data": {}, "defaults": False}}
GIVEN = {"_copier_conf": {"data": {"task_backend": "background_tasks"}, "defaults": False}}
DEFAULTS = {"_copier_conf": {"data": {}, "defaults": True}}


@pytest.mark.parametrize(
    ("conf", "interactive"),
    [({}, False), (LIST, True), (GIVEN, False), (DEFAULTS, False)],
    ids=["no-copier", "interactive-list", "given-with-data", "defaults"],
)
@each_needs
def test_tier_refusal_is_short_in_the_list_and_full_otherwise(
    conf: dict[str, object], interactive: bool, needs: Needs
) -> None:
    env = jinja_env()
    context = {**dataclasses.asdict(needs), **conf}
    rendered = env.from_string("{{ tier_refusal('background_tasks') }}").render(context)
    if interactive:
        assert rendered == decision.list_reason("background_tasks", needs)
    else:
        assert rendered == decision.refusal("background_tasks", needs)
    unmet = {q for q, blocks in BG_BLOCKERS.items() if blocks(needs)}
    assert (rendered == "") == (not unmet)
    if not interactive:
        assert names_in(rendered) == unmet
