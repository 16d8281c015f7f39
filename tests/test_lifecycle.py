"""extensions/lifecycle.py: the template source copier records, local secrets, and what an
update says about the user's .env."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lifecycle import (
    absolute_source,
    env_additions,
    env_todo,
    new_secret,
    read_env,
    recorded_answers,
)


@pytest.mark.parametrize(
    "source",
    [
        "gh:acme/copier-fastapi-tasks",
        "gl:acme/copier-fastapi-tasks",
        "https://github.com/acme/copier-fastapi-tasks.git",
        "git+ssh://git@example.com/acme/tpl.git",
        "git@github.com:acme/copier-fastapi-tasks.git",
        "/srv/templates/copier-fastapi-tasks",
        "",
    ],
)
def test_urls_and_absolute_paths_are_recorded_as_given(source: str) -> None:
    assert absolute_source(source, cwd="/work/clone") == source


@pytest.mark.parametrize(
    ("source", "recorded"),
    [
        (".", "/work/clone"),
        ("./", "/work/clone"),
        ("../copier-fastapi-tasks", "/work/copier-fastapi-tasks"),
        ("templates/tpl", "/work/clone/templates/tpl"),
    ],
)
def test_a_relative_path_is_recorded_as_the_absolute_path_it_meant(
    source: str, recorded: str
) -> None:
    assert absolute_source(source, cwd="/work/clone") == recorded


def test_recorded_answers_change_only_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    answers = {"_commit": "v1.0.0", "_src_path": ".", "task_backend": "rq"}
    assert recorded_answers(answers) == {**answers, "_src_path": str(tmp_path.resolve())}
    assert answers["_src_path"] == "."  # the mapping copier holds is not changed


def test_new_secrets_are_long_random_and_fit_in_urls() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", secret) for secret in secrets)


def test_read_env_reads_plain_quoted_and_exported_lines() -> None:
    text = (
        "# a comment\n\nA=1\nexport B=two\nC=\"* * * * *\"\nD='x'\nE=\nnot a line\n"
        "F=a=b\n  G = spaced \n"
    )
    assert read_env(text) == {
        "A": "1", "B": "two", "C": "* * * * *", "D": "x", "E": "", "F": "a=b", "G": "spaced",
    }  # fmt: skip


def names(lines: list[str]) -> list[str]:
    return sorted(line.split("=", 1)[0] for line in lines)


@pytest.mark.parametrize(
    ("env", "tier", "broker", "monitoring", "wanted"),
    [
        ({}, "background_tasks", None, False, ["JOBS_ADMIN_TOKEN"]),
        ({"JOBS_ADMIN_TOKEN": "t"}, "background_tasks", None, False, []),
        ({}, "rq", None, False, ["JOBS_ADMIN_TOKEN", "REDIS_PASSWORD"]),
        ({"JOBS_ADMIN_TOKEN": "t", "REDIS_PASSWORD": ""}, "rq", None, True,
         ["DASHBOARD_PASSWORD", "REDIS_PASSWORD"]),
        ({"JOBS_ADMIN_TOKEN": "t", "REDIS_PASSWORD": "x", "REDIS_URL": "redis://localhost:6379/0"},
         "celery", "redis", False, []),
        ({"JOBS_ADMIN_TOKEN": "t", "REDIS_PASSWORD": "x"}, "celery", "redis", True,
         ["FLOWER_BASIC_AUTH"]),
        ({"JOBS_ADMIN_TOKEN": "t", "REDIS_PASSWORD": "x",
          "CELERY_BROKER_URL": "redis://localhost:6379/0"}, "celery", "rabbitmq", False,
         ["CELERY_BROKER_URL", "RABBITMQ_DEFAULT_PASS", "RABBITMQ_DEFAULT_USER"]),
        ({"JOBS_ADMIN_TOKEN": "t", "REDIS_PASSWORD": "x",
          "CELERY_BROKER_URL": "amqp://localhost:5672//"}, "celery", "redis", False,
         ["CELERY_BROKER_URL"]),
        ({"JOBS_ADMIN_TOKEN": "t", "REDIS_PASSWORD": "x",
          "CELERY_BROKER_URL": "amqp://localhost:5672//", "RABBITMQ_DEFAULT_USER": "app",
          "RABBITMQ_DEFAULT_PASS": "y"}, "celery", "rabbitmq", False, []),
    ],
)  # fmt: skip
def test_env_additions_name_what_cannot_be_derived(
    env: dict[str, str], tier: str, broker: str | None, monitoring: bool, wanted: list[str]
) -> None:
    lines = env_additions(env, tier, broker, monitoring)
    assert names(lines) == wanted
    for line in lines:
        name, value = line.split("=", 1)
        assert value, line
        if name.endswith(("_PASSWORD", "_PASS", "_TOKEN")):
            assert re.fullmatch(r"[0-9a-f]{32}", value)
    broker_url = [line for line in lines if line.startswith("CELERY_BROKER_URL=")]
    if broker_url:
        assert (
            broker_url[0].split("=", 1)[1].startswith("amqp" if broker == "rabbitmq" else "redis")
        )


def test_env_todo_after_an_update(tmp_path: Path) -> None:
    answers = {"task_backend": "rq", "monitoring": False}
    assert "no .env" in env_todo(tmp_path, answers)
    (tmp_path / ".env").write_text("BILLING_API_KEY=x\n")
    message = env_todo(tmp_path, answers)
    assert "copier left it as it was" in message
    assert re.search(r"^    REDIS_PASSWORD=[0-9a-f]{32}$", message, re.MULTILINE), message
    assert re.search(r"^    JOBS_ADMIN_TOKEN=[0-9a-f]{32}$", message, re.MULTILINE), message
    assert "they\nrefuse everyone with 401" in message, message
    (tmp_path / ".env").write_text("REDIS_PASSWORD=x\nJOBS_ADMIN_TOKEN=t\n")
    assert env_todo(tmp_path, answers) == "Your .env (left as it was) has what rq needs."


def test_env_todo_warns_of_references_honcho_cannot_expand(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "REDIS_PASSWORD=x\nREDIS_URL=redis://:${REDIS_PASSWORD}@localhost:6379/0\n"
    )
    message = env_todo(tmp_path, {"task_backend": "rq"})
    assert "refer to other variables" in message and "REDIS_URL." in message
