"""The rendering matrix: every answer set renders a project that lints, type-checks and
passes its own tests, with a valid compose file and workflow.

The matrix is data, as in cookiecutter-django: the defaults, one option changed at a
time, plus the pairs of options that interact.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from decision import Needs, recommend
from helpers import REPO_ROOT, compose_binary, compose_services, jinja_leftovers, run, uv_sync

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
]

# The durable tiers, alone and with the options that change what they generate.
TIERS: list[dict[str, Any]] = [
    {"loss_tolerable": False, "task_backend": "rq"},
    {"needs_retries": True, "task_backend": "rq", "scheduling": "interval", "monitoring": True},
    {
        "loss_tolerable": False,
        "task_backend": "rq",
        "scheduling": "cron",
        "include_examples": False,
        "ci": "none",
    },
    {"loss_tolerable": False, "task_backend": "rq", "python_version": "3.13", "scheduling": "cron"},
]

# Every team starter kit in presets/ is an answer set like any other.
PRESETS = {
    f"preset:{path.stem}": yaml.safe_load(path.read_text())
    for path in sorted((REPO_ROOT / "presets").glob("*.yml"))
}


def _id(answers: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in answers.items())[:60] or "defaults"


CASES = {_id(answers): answers for answers in ONE_AT_A_TIME + PAIRS + TIERS} | PRESETS
MATRIX = [{**BASE, **answers} for answers in CASES.values()]


@pytest.mark.render
@pytest.mark.parametrize("answers", MATRIX, ids=list(CASES))
def test_rendered_project_is_complete_and_clean(copie: Any, answers: dict[str, Any]) -> None:
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
    for key, value in answers.items():
        assert recorded[key] == value, key
    # Text answers survive as data in TOML and Python, whatever they contain.
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == recorded["description"]
    decision = (project / "docs/decisions/0001-background-jobs.md").read_text()
    assert tier in decision and "because" in decision

    check_compose(project, package, tier, answers)

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

    # The project's own checks, in its own environment.
    uv_sync(project)
    title = f"from {package}.config import Settings; print(Settings().app_title)"
    settings = run(["uv", "run", "--quiet", "python", "-c", title], cwd=project)
    assert settings.stdout.rstrip("\n") == answers["project_name"]
    run(["uv", "run", "--quiet", "ruff", "check"], cwd=project)
    run(["uv", "run", "--quiet", "ruff", "format", "--check"], cwd=project)
    run(["uv", "run", "--quiet", "mypy"], cwd=project)
    tests = run(["uv", "run", "--quiet", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project)
    assert " passed" in tests.stdout and "failed" not in tests.stdout


def expected_services(tier: str, answers: dict[str, Any]) -> set[str]:
    if tier == "background_tasks":
        return {"api"}
    services = {"api", "worker", "redis"}
    if answers.get("scheduling", "none") != "none":
        services.add("scheduler")
    if answers.get("monitoring", False):
        services.add("dashboard")
    if tier == "celery" and answers.get("celery_broker", "redis") == "rabbitmq":
        services.add("rabbitmq")
    return services


def check_compose(project: Path, package: str, tier: str, answers: dict[str, Any]) -> None:
    """The compose file is valid for Compose v2 and keeps the contract's services."""
    binary = str(compose_binary())
    secrets = {"DASHBOARD_PASSWORD": "x"}
    compose = run([binary, "config", "--quiet"], cwd=project, env=secrets, check=False)
    assert compose.returncode == 0, compose.stderr
    if answers.get("monitoring") and tier != "background_tasks":
        # The dashboard's password is required: compose refuses to start without it.
        refused = run([binary, "config", "--quiet"], cwd=project, check=False)
        assert refused.returncode != 0 and "DASHBOARD_PASSWORD" in refused.stderr

    services = compose_services(project)
    assert set(services) == expected_services(tier, answers)
    assert services["api"]["command"].startswith(f"uvicorn {package}.main:app")
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    # Web servers, workers and schedulers reuse one app image.
    app_images = {s["image"] for n, s in services.items() if n not in ("redis", "rabbitmq")}
    assert len(app_images) == 1, app_images
    if tier == "background_tasks":
        return
    assert services["worker"]["restart"] == "unless-stopped"
    redis = services["redis"]
    assert "--appendonly yes" in redis["command"]
    assert "--maxmemory-policy noeviction" in redis["command"]
    assert "healthcheck" in redis
    if "scheduler" in services:
        assert services["scheduler"]["deploy"]["replicas"] == 1
    if tier == "rq":
        assert services["worker"]["command"] == f"python -m {package}.worker"
        if "scheduler" in services:
            assert services["scheduler"]["command"] == f"python -m {package}.scheduler"
