"""tasktier.model's schedules: one cron meaning on every tier (standard 5-field cron in
UTC), validated when declared, and epoch-aligned intervals."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from tasktier.model import PERIODIC, Cron, Every, Periodic, next_runs, task

THURSDAY = datetime(2026, 12, 3, 10, 30, 15, tzinfo=UTC)


@pytest.mark.parametrize("weekday", ["0", "7", "sun", "SUN"])
def test_weekday_0_7_and_sun_are_sunday(weekday: str) -> None:
    assert Cron(f"0 3 * * {weekday}").next_run(THURSDAY) == datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def test_cron_runs_strictly_after_the_given_time() -> None:
    every_minute = Cron("* * * * *")
    assert every_minute.next_run(THURSDAY) == datetime(2026, 12, 3, 10, 31, tzinfo=UTC)
    on_the_minute = THURSDAY.replace(second=0)
    assert every_minute.next_run(on_the_minute) == on_the_minute + timedelta(minutes=1)


def test_both_day_fields_restricted_means_either_day() -> None:
    # cron's rule: the 1st or the 15th of a month, or any Monday.
    runs = []
    moment = THURSDAY
    for _ in range(4):
        moment = Cron("0 0 1,15 * mon").next_run(moment)
        runs.append(moment.date().isoformat())
    assert runs == ["2026-12-07", "2026-12-14", "2026-12-15", "2026-12-21"]


def test_ranges_steps_and_month_names() -> None:
    cron = Cron("*/20 9-17/4 * jan-mar *")
    assert cron.next_run(THURSDAY) == datetime(2027, 1, 1, 9, 0, tzinfo=UTC)
    assert cron.next_run(datetime(2027, 1, 1, 9, 0, tzinfo=UTC)) == datetime(
        2027, 1, 1, 9, 20, tzinfo=UTC
    )


def test_february_29th_is_found_years_ahead() -> None:
    assert Cron("0 0 29 2 *").next_run(THURSDAY) == datetime(2028, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("* * * *", "needs 5 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24 is outside 0-23"),
        ("* * 0 * *", "day of month: 0 is outside 1-31"),
        ("* * * 13 *", "month: 13 is outside 1-12"),
        ("* * * * 8", "day of week: 8 is outside 0-7"),
        ("* * * * funday", "day of week: 'funday' is not a number or a name"),
        ("*/0 * * * *", "step '0' must be a number > 0"),
        ("5-1 * * * *", "range '5-1' runs backwards"),
        ("0 0 30 2 *", "never runs"),
        ("0 0 31 4,6,9,11 *", "never runs"),
    ],
)
def test_a_bad_cron_is_refused_when_declared_naming_it(expression: str, reason: str) -> None:
    with pytest.raises(ValueError, match="Cron") as refused:
        Cron(expression)
    assert reason in str(refused.value) and repr(expression) in str(refused.value)


def test_every_runs_on_epoch_aligned_slots() -> None:
    assert Every(60).next_run(THURSDAY) == datetime(2026, 12, 3, 10, 31, tzinfo=UTC)
    assert Every(3600).next_run(THURSDAY) == datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="positive"):
        Every(0)


@task(name="tests.weekly")
def weekly(tick: str) -> str:
    return tick


def test_get_schedules_lists_every_periodic_job_with_its_next_run(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PERIODIC, weekly.name, Periodic(weekly, Cron("0 3 * * 0")))
    before = datetime.now(UTC)
    response = client.get("/schedules")
    assert response.status_code == 200
    listed = {entry["task"]: entry for entry in response.json()}
    assert set(listed) == set(PERIODIC)
    sunday = datetime.fromisoformat(listed["tests.weekly"]["next_run"])
    assert sunday.tzinfo is not None and sunday.utcoffset() == timedelta(0)
    assert (sunday.isoweekday(), sunday.hour, sunday.minute) == (7, 3, 0)
    assert listed["tests.weekly"]["schedule"] == "cron '0 3 * * 0' (UTC)"
    for periodic, when in next_runs(before):
        # The route and the scheduler take due times from the same next_run.
        shown = datetime.fromisoformat(listed[periodic.task.name]["next_run"])
        assert shown in (when, periodic.schedule.next_run(when))
