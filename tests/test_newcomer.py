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
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import REPO_ROOT, compose_services, run, uv_sync
from localrun import AFTERWARDS, first_bash_block, run_without_docker
from terminal import ENTER, Terminal

#: One project per tier and broker, each with every optional process.
CONFIGS: dict[str, dict[str, Any]] = {
    "background_tasks": {"scheduling": "interval"},
    "rq": {"loss_tolerable": False, "task_backend": "rq", "scheduling": "interval",
           "monitoring": True, "cpu_heavy": True},
    "celery-redis": {"loss_tolerable": False, "task_backend": "celery", "scheduling": "cron",
                     "monitoring": True, "cpu_heavy": True},
    "celery-rabbitmq": {"loss_tolerable": False, "task_backend": "celery",
                        "celery_broker": "rabbitmq", "scheduling": "interval",
                        "monitoring": True, "cpu_heavy": True},
}  # fmt: skip

#: The package name of a project called "Acme Orders" (the README command's default is
#: "My Service").
PACKAGE = "my_service"

#: Settings whose value in .env is a generated secret (empty in .env.example).
SECRETS = (
    "JOBS_ADMIN_TOKEN",
    "REDIS_PASSWORD",
    "RABBITMQ_DEFAULT_PASS",
    "DASHBOARD_PASSWORD",
    "FLOWER_BASIC_AUTH",
)


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
@pytest.mark.timeout(1200)  # the steps, two test runs, lint, types and two benchmarks
def test_the_readme_commands_run_as_written(
    project: Path, tmp_path: Path, record_property: Any
) -> None:
    """The generated README's commands, exactly as written, on the servers its "Without
    Docker" steps start: the steps reach ready and run a job; then, in a new shell, its
    "Test" block (the integration tests too: none skipped) and its "Benchmark" block.

    On RabbitMQ the integration tests share the broker's queues with the service (on Redis
    they have databases of their own): run while `honcho` still runs, as the README says
    not to, they stop at once saying why, instead of waiting for jobs the service's worker
    took (they used to run on for many minutes)."""
    readme = (project / "README.md").read_text()
    integration = [
        line for line in first_bash_block(readme, "## Test").splitlines() if "REDIS_URL=" in line
    ]
    rabbitmq = "amqp://" in "".join(integration)
    beside = integration[0] if rabbitmq else ""
    result = run_without_docker(project, tmp_path, beside, afterwards=AFTERWARDS)
    assert result["ready"] == {"status": "ready"}
    assert result["job"]["status"] == "finished", result["job"]
    assert result["job"]["result"] == {"email": "ada@example.com", "status": "sent"}
    # Every process of the Procfile was started by `honcho start`, and none failed.
    for name in procfile(project):
        assert f"{name}.1 " in result["log"], f"honcho did not start {name}:\n{result['log']}"
    assert "Traceback" not in result["log"], result["log"]
    if rabbitmq:
        during = result["during"]
        assert during["code"] != 0 and "Stop them first" in during["log"], during["log"][-3000:]
        assert during["seconds"] < 120, during  # seconds in practice: not minutes
    tests, bench = result["afterwards"] + [None] * (2 - len(result["afterwards"]))
    assert tests and tests["code"] == 0, tests and tests["log"][-8000:]
    summaries = re.findall(r"^=* ?(\d+ passed.*?) ?=*$", tests["log"], re.MULTILINE)
    assert len(summaries) == (2 if integration else 1), tests["log"][-8000:]
    if integration:  # the integration run, with the servers: nothing skipped
        assert "skipped" not in summaries[1], summaries
    assert bench and bench["code"] == 0, bench and bench["log"][-8000:]
    figures = json.loads(bench["log"].strip().splitlines()[-1])
    assert figures["throughput_per_second"] > 0, figures
    assert figures["latency"]["p99_ms"] >= figures["latency"]["p50_ms"] > 0, figures
    record_property(
        "measured",
        f"README commands, {tier_of(project)}: Test block {tests['seconds']:.0f} s, "
        f"Benchmark block {bench['seconds']:.0f} s (not timed: for the suite's budget)",
    )


def tier_of(project: Path) -> str:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    if answers["task_backend"] == "celery":
        return f"celery-{answers['celery_broker']}"
    return str(answers["task_backend"])


def procfile(project: Path) -> dict[str, str]:
    lines = (project / "Procfile").read_text().splitlines()
    entries = [line.split(":", 1) for line in lines if line and not line.startswith("#")]
    return {name.strip(): command.strip() for name, command in entries}


#: Settings a compose service sets for itself; its Procfile line sets them before the command.
OWN_SETTINGS = ("WORKER_QUEUES", "WORKER_CONCURRENCY")


def procfile_line(service: dict[str, Any]) -> str:
    own = [
        f"{name}={service['environment'][name]}"
        for name in OWN_SETTINGS
        if name in service.get("environment", {})
    ]
    return " ".join([*own, service["command"]])


def test_the_procfile_runs_each_compose_service_with_its_command(project: Path) -> None:
    services = compose_services(project)
    commands = {
        name: procfile_line(service)
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


# --- README.md's generate command, then the generated README's update command -------------

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Newcomer",
    "GIT_AUTHOR_EMAIL": "newcomer@example.com",
    "GIT_COMMITTER_NAME": "Newcomer",
    "GIT_COMMITTER_EMAIL": "newcomer@example.com",
}


def bash_lines(markdown: str) -> list[str]:
    """Every command line of the Markdown's ``bash`` blocks, without its trailing comment."""
    blocks = re.findall(r"```bash\n(.*?)\n```", markdown, re.DOTALL)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]


def bash_line(markdown: str, *words: str) -> str:
    """The one line of the Markdown's ``bash`` blocks that holds every word of ``words``
    (``--defaults``: the one that ends with it)."""
    found = [
        line
        for line in bash_lines(markdown)
        if all(word in line for word in words if word != "--defaults")
        and ("--defaults" not in words or line.endswith("--defaults"))
    ]
    assert len(found) == 1, (words, found)
    return found[0]


def clone_of_this_repository(tmp_path: Path) -> Path:
    """``git clone`` of the template as it stands (uncommitted edits included, so that the
    test sees the working tree), as a new user makes one."""
    origin = tmp_path / "origin"
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                 cwd=REPO_ROOT).stdout  # fmt: skip
    for name in filter(None, listed.split("\0")):
        if (REPO_ROOT / name).is_file():
            (origin / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, origin / name)
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=origin)
    run(["git", "add", "--all"], cwd=origin)
    run(["git", "commit", "--quiet", "--message=the template"], cwd=origin, env=GIT_ENV)
    clone = tmp_path / "copier-fastapi-tasks"
    run(["git", "clone", "--quiet", str(origin), str(clone)], cwd=tmp_path)
    return clone


@pytest.mark.update
def test_the_readme_generate_command_then_the_generated_readme_update_command(
    tmp_path: Path,
) -> None:
    """README.md's command, exactly as written, run in a clone and answered at its prompts
    (every default: Enter), makes a project whose own README's update command, exactly as
    written, moves it to another tier."""
    clone = clone_of_this_repository(tmp_path)
    generate = bash_line((clone / "README.md").read_text(), "copier copy")
    assert generate.endswith("../my-service"), generate
    questions = yaml.safe_load((clone / "copier.yml").read_text())
    asked = [
        "Which tier runs the background work" if "{{" in spec["help"] else spec["help"][:40]
        for name, spec in questions.items()
        if not name.startswith("_") and name not in ("celery_broker", "monitoring")
    ]  # with every default the tier is background_tasks: neither of those is asked
    with Terminal(["bash", "-c", generate], cwd=clone, env=GIT_ENV, columns=80, lines=24,
                  timeout=300) as term:  # fmt: skip
        for words in asked:
            term.wait_for(words)
            term.send(ENTER)
        term.wait_for("is ready, with background work on background_tasks")
        assert term.wait_exit() == 0, term.transcript()
    project = tmp_path / "my-service"
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_src_path"] == str(clone), "the clone is recorded by its absolute path"
    assert answers["task_backend"] == "background_tasks"

    # The generated README: commit first, then each of its update commands, in its order
    # (committing in between, as it says): a plain update, an answer changed, a tier switch.
    readme = (project / "README.md").read_text()
    updates = [line for line in bash_lines(readme) if "copier update" in line]
    plain = bash_line(readme, "copier update", "--defaults")
    changed = bash_line(readme, "copier update", "--data scheduling=cron")
    update = bash_line(readme, "copier update", "--data task_backend=rq")
    assert updates == [plain, changed, update], updates  # every update command it shows
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=project)
    for command in (plain, changed):
        run(["git", "add", "--all"], cwd=project)
        run(["git", "commit", "--quiet", "--allow-empty", "--message=before an update"],
            cwd=project, env=GIT_ENV)  # fmt: skip
        run(["bash", "-c", command], cwd=project, env=GIT_ENV, timeout=600)
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["scheduling"] == "cron"
    run(["git", "add", "--all"], cwd=project)
    run(["git", "commit", "--quiet", "--message=cron"], cwd=project, env=GIT_ENV)
    updated = run(["bash", "-c", update], cwd=project, env=GIT_ENV, timeout=600)
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["task_backend"] == "rq"
    assert (project / PACKAGE / "worker.py").is_file()
    # The .env written for background_tasks lacks Redis's password: the update says so.
    message = updated.stdout + updated.stderr
    assert re.search(r"^ +REDIS_PASSWORD=[0-9a-f]{32}$", message, re.MULTILINE), message
