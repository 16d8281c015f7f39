"""The rendering matrix: every answer set renders a project that lints, type-checks and
passes its own tests, with a valid compose file and workflow.

The matrix is data, as in cookiecutter-django: the defaults, one option changed at a
time, plus the pairs of options that interact.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from decision import Needs, recommend
from helpers import (
    REPO_ROOT,
    compose_binary,
    compose_services,
    jinja_leftovers,
    run,
    servers_env,
    uv_sync,
)

BASE: dict[str, Any] = {"project_name": "Acme Orders"}

ONE_AT_A_TIME: list[dict[str, Any]] = [
    {},
    {"python_version": "3.11"},
    {"python_version": "3.13"},
    {"scheduling": "interval"},
    {"scheduling": "cron"},
    {"include_examples": False},
    {"ci": "none"},
    # Hostile text must not break YAML, TOML, Python or Markdown output.
    {
        "project_name": "Café \"Ünïcode\" <Orders> & 'Co'\nsecond line",
        "description": "Quotes \" ' and \\ {{ jinja }} {% raw %} # not a comment: é",
    },
    {"package_name": "orders_service", "project_slug": "orders-svc"},
]

PAIRS: list[dict[str, Any]] = [
    # A scheduler with no example periodic job: the backend must not need one.
    {"include_examples": False, "scheduling": "interval"},
    {"include_examples": False, "scheduling": "cron"},
    # The lint and image target follows python_version while scheduling adds a dependency.
    {"python_version": "3.13", "scheduling": "cron"},
    # Celery: each broker (RabbitMQ with a `cpu` worker), then Flower with cron Beat, then
    # Beat with no example job.
    {"task_backend": "celery", "celery_broker": "redis"},
    {
        "task_backend": "celery",
        "celery_broker": "rabbitmq",
        "scheduling": "interval",
        "cpu_heavy": True,
    },
    {"task_backend": "celery", "monitoring": True, "scheduling": "cron", "ci": "none"},
    {"task_backend": "celery", "include_examples": False, "scheduling": "interval"},
    # RQ: alone, with the dashboard, a `cpu` worker and an interval scheduler, with a cron
    # scheduler and nothing optional, and with the newest Python.
    {"loss_tolerable": False, "task_backend": "rq"},
    {
        "needs_retries": True,
        "task_backend": "rq",
        "scheduling": "interval",
        "monitoring": True,
        "cpu_heavy": True,
    },
    {
        "loss_tolerable": False,
        "task_backend": "rq",
        "scheduling": "cron",
        "include_examples": False,
        "ci": "none",
    },
    {"loss_tolerable": False, "task_backend": "rq", "python_version": "3.13", "scheduling": "cron"},
    # Tracing on each tier (its extra installed): tracing.py differs by tier.
    {"tracing": True, "scheduling": "interval"},
    {"tracing": True, "loss_tolerable": False, "task_backend": "rq", "scheduling": "cron"},
    {"tracing": True, "task_backend": "celery", "celery_broker": "rabbitmq"},
]

#: The secrets compose refuses to start without (given when .env is left out).
COMPOSE_ENV = {
    "REDIS_PASSWORD": "secret",
    "DASHBOARD_PASSWORD": "secret",
    "FLOWER_BASIC_AUTH": "admin:secret",
    "RABBITMQ_DEFAULT_USER": "app",
    "RABBITMQ_DEFAULT_PASS": "secret",
}

# Every team starter kit in presets/ is an answer set like any other.
PRESETS = {
    f"preset:{path.stem}": yaml.safe_load(path.read_text())
    for path in sorted((REPO_ROOT / "presets").glob("*.yml"))
}


def _id(answers: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in answers.items())[:60] or "defaults"


CASES = {_id(answers): answers for answers in ONE_AT_A_TIME + PAIRS} | PRESETS
MATRIX = [{**BASE, **answers} for answers in CASES.values()]


@pytest.mark.render
@pytest.mark.parametrize("answers", MATRIX, ids=list(CASES))
def test_rendered_project_is_complete_and_clean(
    copie: Any, answers: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    result = copie.copy(extra_answers=answers)
    assert result.exit_code == 0, result.exception
    project: Path = result.project_dir
    package = result.answers["package_name"]

    # Every file the contract names is there; nothing is left of Jinja.
    for required in (
        f"{package}/main.py",
        f"{package}/config.py",
        f"{package}/jobs.py",
        f"{package}/tasks/__init__.py",
        "tests",
        "docker-compose.yml",
        "Dockerfile",
        ".env.example",
        ".gitignore",
        "README.md",
        "SECURITY.md",
        "pyproject.toml",
        ".pre-commit-config.yaml",
        ".copier-answers.yml",
        "docs/decisions/0001-background-jobs.md",
    ):
        assert (project / required).exists(), f"{required} is missing"
    literals = (answers["project_name"], answers.get("description", ""))
    assert jinja_leftovers(project, tuple(t for t in literals if t)) == []
    assert ".env" in (project / ".gitignore").read_text().splitlines()
    assert (project / ".github/workflows/ci.yml").exists() == (
        answers.get("ci", "github") == "github"
    )
    examples = answers.get("include_examples", True)
    scheduling = answers.get("scheduling", "none")
    assert (project / package / "routes/examples.py").exists() == examples
    assert (project / package / "tasks/heartbeat.py").exists() == (
        examples and scheduling != "none"
    )

    # The answers and the decision are recorded.
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    tier = answers.get("task_backend") or recommend(Needs.from_answers(answers)).tier
    assert recorded["task_backend"] == tier
    assert (project / package / "celery_app.py").exists() == (tier == "celery")
    assert (project / package / "worker.py").exists() == (tier == "rq")
    tracing = answers.get("tracing", False)
    assert (project / package / "tracing.py").exists() == tracing
    if not tracing:  # nothing imports OpenTelemetry
        imports = re.compile(r"^\s*(from|import) opentelemetry", re.MULTILINE)
        assert not [p for p in project.rglob("*.py") if imports.search(p.read_text())]
    for key, value in answers.items():
        assert recorded[key] == value, key
    # Text answers survive as data in TOML and Python, whatever they contain.
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == recorded["description"]
    decision = (project / "docs/decisions/0001-background-jobs.md").read_text()
    assert tier in decision and "because" in decision

    # The compose file is valid for Compose v2 and names the contract's services; the .env
    # written at copy time gives it every secret (`docker compose up` needs no set-up).
    compose = run([str(compose_binary()), "config", "--quiet"], cwd=project, check=False)
    assert compose.returncode == 0, compose.stderr
    services = compose_services(project)
    assert services["api"]["command"].startswith(f"uvicorn {package}.main:app")
    # Idle connections outlive a proxy's (60 s), in compose and in the image alike.
    assert services["api"]["command"].endswith(" --timeout-keep-alive 75")
    cmd = json.loads((project / "Dockerfile").read_text().split("\nCMD ", 1)[1].splitlines()[0])
    assert cmd[:2] == ["uvicorn", f"{package}.main:app"]
    assert cmd[-2:] == ["--timeout-keep-alive", "75"]
    for service in services.values():
        assert all(str(port).startswith("127.0.0.1:") for port in service.get("ports", []))
    if tier == "background_tasks":
        assert set(services) == {"api"}
    if tier == "celery":
        _check_celery_compose(project, package, answers, services)
    if tier == "rq":
        _check_rq_compose(project, package, answers, services)

    run(["pre-commit", "validate-config", ".pre-commit-config.yaml"], cwd=project)

    if (project / ".github/workflows/ci.yml").exists():
        run(
            [
                "check-jsonschema",
                "--builtin-schema",
                "vendor.github-workflows",
                str(project / ".github/workflows/ci.yml"),
            ],
            cwd=project,
        )
        run(
            [
                "check-jsonschema",
                "--builtin-schema",
                "vendor.dependabot",
                str(project / ".github/dependabot.yml"),
            ],
            cwd=project,
        )

    # The project's own checks, in its own environment.
    uv_sync(project)
    title = f"from {package}.config import Settings; print(Settings().app_title)"
    settings = run(["uv", "run", "--quiet", "python", "-c", title], cwd=project)
    assert settings.stdout.rstrip("\n") == answers["project_name"]
    run(["uv", "run", "--quiet", "ruff", "check"], cwd=project)
    run(["uv", "run", "--quiet", "ruff", "format", "--check"], cwd=project)
    run(["uv", "run", "--quiet", "mypy"], cwd=project)
    env = servers_env(request, tier, answers)
    tests = run(
        ["uv", "run", "--quiet", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project, env=env
    )
    assert " passed" in tests.stdout and "failed" not in tests.stdout
    if tier != "background_tasks":  # its integration tests ran on real servers, none skipped
        assert "skipped" not in tests.stdout, tests.stdout


#: What compose's Redis password reads (interpolated when compose starts).
REDIS_PASSWORD = "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}"
#: The servers' URLs in compose: service names as hosts, no password (config.py adds
#: REDIS_PASSWORD and the RabbitMQ user, which compose passes as variables of their own).
SERVER_URLS = ("redis://redis:6379/0", "redis://redis:6379/1", "amqp://rabbitmq:5672//")
RABBITMQ_USER = {
    "RABBITMQ_DEFAULT_USER": "${RABBITMQ_DEFAULT_USER:?set RABBITMQ_DEFAULT_USER in .env}",
    "RABBITMQ_DEFAULT_PASS": "${RABBITMQ_DEFAULT_PASS:?set RABBITMQ_DEFAULT_PASS in .env}",
}


def _check_durable_compose(tier: str, answers: dict[str, Any], services: dict[str, Any]) -> None:
    """What the rq and celery compose files share: services, one image, Redis."""
    scheduling = answers.get("scheduling", "none")
    rabbitmq = tier == "celery" and answers.get("celery_broker") == "rabbitmq"
    expected = {"api", "worker", "redis"}
    expected |= {"scheduler"} if scheduling != "none" else set()
    expected |= {"dashboard"} if answers.get("monitoring") else set()
    expected |= {"rabbitmq"} if rabbitmq else set()
    expected |= {"worker-cpu"} if answers.get("cpu_heavy") else set()
    assert set(services) == expected
    if answers.get("cpu_heavy"):
        # CPU-bound jobs on a worker of their own, the same command on the `cpu` queue.
        assert services["worker-cpu"]["command"].startswith(services["worker"]["command"])
        assert services["worker-cpu"]["environment"]["WORKER_QUEUES"] == "cpu"
        assert services["worker"]["environment"]["WORKER_QUEUES"] == "default"
    else:
        assert "WORKER_QUEUES" not in services["worker"].get("environment", {})
    # One image for every app process, each restarted when it exits.
    assert len({services[name]["image"] for name in expected - {"redis", "rabbitmq"}}) == 1
    assert all(services[name]["restart"] == "unless-stopped" for name in expected)
    if scheduling != "none":
        assert services["scheduler"]["deploy"]["replicas"] == 1
    assert "--appendonly yes" in services["redis"]["command"]
    assert "--maxmemory-policy noeviction" in services["redis"]["command"]
    for name in ("redis", "rabbitmq") if rabbitmq else ("redis",):
        assert "healthcheck" in services[name]
    # Redis requires a password; the healthcheck authenticates and wants PONG.
    assert f"--requirepass {REDIS_PASSWORD}" in services["redis"]["command"]
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == REDIS_PASSWORD
    assert services["redis"]["healthcheck"]["test"][-1] == "redis-cli ping | grep -q PONG"
    # Every app process reaches the servers by service name, with the secrets.
    for name in expected - {"redis", "rabbitmq"}:
        environment = services[name]["environment"]
        urls = [v for k, v in environment.items() if k.endswith(("_URL", "_BACKEND"))]
        assert urls, name
        assert set(urls) <= set(SERVER_URLS), (name, urls)
        assert environment["REDIS_PASSWORD"] == REDIS_PASSWORD, name
        if rabbitmq:
            assert RABBITMQ_USER.items() <= environment.items(), name


def _check_celery_compose(
    project: Path, package: str, answers: dict[str, Any], services: dict[str, Any]
) -> None:
    _check_durable_compose("celery", answers, services)
    worker = services["worker"]["command"]
    assert worker.startswith(f"celery --app {package}.celery_app worker --pool prefork")
    assert "-B" not in worker.split() and "--beat" not in worker
    assert "healthcheck" in services["worker"]
    if "scheduler" in services:
        assert services["scheduler"]["command"].startswith(
            f"celery --app {package}.celery_app beat"
        )
    if answers.get("monitoring"):
        dashboard = services["dashboard"]
        assert dashboard["command"].endswith("flower")
        # Basic auth is required: compose refuses to start Flower without it.
        assert dashboard["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    environment = services["api"]["environment"]
    assert environment["CELERY_BROKER_URL"] == (
        "amqp://rabbitmq:5672//" if "rabbitmq" in services else "redis://redis:6379/0"
    )
    assert environment["CELERY_RESULT_BACKEND"] == "redis://redis:6379/1"
    assert environment["REDIS_URL"] == "redis://redis:6379/1"
    if "rabbitmq" in services:
        assert set(services["rabbitmq"]["environment"]) == {
            "RABBITMQ_DEFAULT_USER",
            "RABBITMQ_DEFAULT_PASS",
        }


def _check_rq_compose(
    project: Path, package: str, answers: dict[str, Any], services: dict[str, Any]
) -> None:
    _check_durable_compose("rq", answers, services)
    assert services["worker"]["command"] == f"python -m {package}.worker"
    assert services["api"]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    if "scheduler" in services:
        assert services["scheduler"]["command"] == f"python -m {package}.scheduler"
    if answers.get("monitoring"):
        dashboard = services["dashboard"]
        assert dashboard["command"] == f"python -m {package}.dashboard"
        # Basic auth is required: compose refuses to start rq-dashboard without a password.
        assert dashboard["environment"]["DASHBOARD_PASSWORD"].startswith("${DASHBOARD_PASSWORD:?")
        refused = run(
            [str(compose_binary()), "--env-file", os.devnull, "config", "--quiet"],
            cwd=project,
            env={**COMPOSE_ENV, "DASHBOARD_PASSWORD": ""},
            check=False,
        )
        assert refused.returncode != 0 and "DASHBOARD_PASSWORD" in refused.stderr
