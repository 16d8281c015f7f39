"""A newcomer's path, as README.md and a generated project's README write it.

- The generated README's "Without Docker" steps, exactly as written, on every tier and
  broker: the servers they start, then every process of the Procfile, until
  ``/health/ready`` answers 200 and a job runs (tests/localrun.py).
- The files those steps rely on: ``.env`` (written at copy time with random local
  passwords) and ``.env.example`` read alike by every reader (python-dotenv through the
  settings, compose, honcho, a shell), and a ``Procfile`` whose lines are the compose
  services' commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers import compose_services, run, uv_sync
from localrun import run_without_docker

#: One project per tier and broker, each with every optional process.
CONFIGS: dict[str, dict[str, Any]] = {
    "background_tasks": {"scheduling": "interval"},
    "rq": {"loss_tolerable": False, "task_backend": "rq", "scheduling": "interval",
           "monitoring": True},
    "celery-redis": {"loss_tolerable": False, "task_backend": "celery", "scheduling": "cron",
                     "monitoring": True},
    "celery-rabbitmq": {"loss_tolerable": False, "task_backend": "celery",
                        "celery_broker": "rabbitmq", "scheduling": "interval",
                        "monitoring": True},
}  # fmt: skip

#: Settings whose value in .env is a generated secret (empty in .env.example).
SECRETS = ("REDIS_PASSWORD", "RABBITMQ_DEFAULT_PASS", "DASHBOARD_PASSWORD", "FLOWER_BASIC_AUTH")


@pytest.fixture(scope="module", params=list(CONFIGS))
def project(request: pytest.FixtureRequest, copie_session: Any) -> Path:
    result = copie_session.copy(
        extra_answers={"project_name": "Acme Orders", **CONFIGS[request.param]}
    )
    assert result.exit_code == 0, result.exception
    uv_sync(result.project_dir)
    path: Path = result.project_dir
    return path


@pytest.mark.e2e
def test_the_readme_local_run_steps_reach_ready_and_run_a_job(
    project: Path, tmp_path: Path
) -> None:
    result = run_without_docker(project, tmp_path)
    assert result["ready"] == {"status": "ready"}
    assert result["job"]["status"] == "finished", result["job"]
    assert result["job"]["result"] == {"email": "ada@example.com", "status": "sent"}
    # Every process of the Procfile was started by `honcho start`, and none failed.
    for name in procfile(project):
        assert f"{name}.1 " in result["log"], f"honcho did not start {name}:\n{result['log']}"
    assert "Traceback" not in result["log"], result["log"]


def procfile(project: Path) -> dict[str, str]:
    lines = (project / "Procfile").read_text().splitlines()
    entries = [line.split(":", 1) for line in lines if line and not line.startswith("#")]
    return {name.strip(): command.strip() for name, command in entries}


def test_the_procfile_runs_each_compose_service_with_its_command(project: Path) -> None:
    services = compose_services(project)
    commands = {
        name: service["command"]
        for name, service in services.items()
        if name not in ("redis", "rabbitmq")
    }
    assert procfile(project) == commands


READERS = r"""
import json, subprocess, sys
from dotenv import dotenv_values
from honcho.environ import parse

path = sys.argv[1]
shell = subprocess.run(
    ["bash", "-c", 'set -a; . "$1"; set +a; env -0', "bash", path],
    capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"},
).stdout
shell_values = dict(item.split("=", 1) for item in shell.split("\0") if "=" in item)
json.dump({
    "dotenv": dotenv_values(path),
    "honcho": parse(open(path).read()),
    "shell": shell_values,
}, sys.stdout)
"""


def read_env_files(project: Path, name: str) -> dict[str, dict[str, str]]:
    out = run(["uv", "run", "--quiet", "python", "-c", READERS, name], cwd=project).stdout
    readers: dict[str, dict[str, str]] = json.loads(out)
    for values in readers.values():  # what bash itself sets
        for variable in ("PATH", "PWD", "SHLVL", "_", "OLDPWD"):
            values.pop(variable, None)
    return readers


def test_env_files_read_alike_and_env_holds_generated_secrets(project: Path) -> None:
    example = read_env_files(project, ".env.example")
    env = read_env_files(project, ".env")
    for readers in (example, env):
        # honcho drops an empty value (KEY=) where the others keep ""; both mean "not set"
        # to the settings and to compose (`${VAR:?}` refuses either).
        filled = [{k: v for k, v in values.items() if v} for values in readers.values()]
        assert filled[0] == filled[1] == filled[2], readers
    assert "" not in env["honcho"].values() and set(env["honcho"]) == set(env["dotenv"])
    example_values, env_values = example["dotenv"], env["dotenv"]
    assert set(env_values) == set(example_values)
    for name, value in example_values.items():
        if name in SECRETS:
            assert value == "", f".env.example holds a value for {name}"
            assert len(env_values[name]) >= 32, f".env has no generated {name}"
        else:
            assert env_values[name] == value, name
    lines = (project / ".env.example").read_text().splitlines()
    assert not [line for line in lines if "$" in line and not line.startswith("#")]
    ignored = (project / ".gitignore").read_text().splitlines()
    assert {".env", ".redis/"} <= set(ignored)
