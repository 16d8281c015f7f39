"""Living with the template: `copier update` from an earlier release, and tier switches.

The tests run on a temporary git repository of the template holding two tagged commits,
so they never depend on this repository's own tags or history:

- ``v1.0.0``: the template as it is, with the changes of :data:`PREVIOUS_RELEASE` undone,
  a stand-in for the previous release (a file renamed, a file dropped, a file added,
  lines changed in files that users also edit);
- ``v1.1.0``: the template as it is in the working tree.

A project gets the edits a team makes (:func:`make_user_edits`): its own task module,
route and test, a setting, a dependency, a fixture, a README section and a ``.env``.
After the update there must be no conflict of any kind, the user's files must be as they
were, and the project's own checks and tests must pass, its integration tests against
real servers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import REPO_ROOT, compose_services, run, servers_env, uv_sync
from localrun import run_without_docker

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}
PACKAGE = "acme_orders"
BASE = {"project_name": "Acme Orders"}

# The answer sets of each tier, as a team would have them.
TIER_ANSWERS: dict[str, dict[str, Any]] = {
    "background_tasks": {"task_backend": "background_tasks", "scheduling": "interval"},
    "rq": {"loss_tolerable": False, "task_backend": "rq", "scheduling": "interval"},
    "celery": {"loss_tolerable": False, "task_backend": "celery", "scheduling": "cron"},
}


# --- the two releases ---------------------------------------------------------------


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: the previous-release stand-in no longer applies ({old!r})"
    path.write_text(text.replace(old, new, 1))


EXAMPLES = "{% if include_examples %}examples.py{% endif %}"
DEMO = EXAMPLES.replace("examples.py", "demo.py")


def _undo_examples_rename(tree: Path) -> None:
    """v1.0.0 named the example routes ``routes/demo.py``; v1.1.0 calls them
    ``routes/examples.py``."""
    routes = tree / "template" / "{{package_name}}" / "routes"
    (routes / EXAMPLES).rename(routes / DEMO)


def _undo_legacy_removal(tree: Path) -> None:
    """v1.0.0 generated a module that v1.1.0 no longer has."""
    legacy = tree / "template" / "{{package_name}}" / "legacy.py"
    legacy.write_text('"""Dropped in v1.1.0."""\n\nLEGACY = True\n')


def _undo_dockerignore_addition(tree: Path) -> None:
    """v1.1.0 adds ``.dockerignore``."""
    (tree / "template" / ".dockerignore").unlink()


def _undo_line_changes(tree: Path) -> None:
    """v1.1.0 changed lines in files users edit too (README, config, main)."""
    _replace(
        tree / "template" / "README.md.jinja",
        "After an update: review `git diff`",
        "After an update, review `git diff`",
    )
    _replace(
        tree / "template" / "{{package_name}}" / "config.py.jinja",
        '"""Settings: every knob comes from the environment (or a ``.env`` file)."""',
        '"""Settings, from the environment."""',
    )
    _replace(
        tree / "template" / "{{package_name}}" / "main.py",
        "    tasks.discover()  # import every task module, so periodic jobs are declared",
        "    tasks.discover()",
    )


PREVIOUS_RELEASE: list[Callable[[Path], None]] = [
    _undo_examples_rename,
    _undo_legacy_removal,
    _undo_dockerignore_addition,
    _undo_line_changes,
]


def _git(args: list[str], cwd: Path) -> str:
    return run(["git", *args], cwd=cwd, env=GIT_ENV).stdout


def _template_files() -> list[str]:
    """The template's files as a fresh clone would have them, uncommitted edits included."""
    listed = _git(["ls-files", "-z", "--cached", "--others", "--exclude-standard"], REPO_ROOT)
    return [name for name in listed.split("\0") if name and (REPO_ROOT / name).is_file()]


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository of the template: v1.0.0 (the stand-in) then v1.1.0 (the template)."""
    repo = tmp_path_factory.mktemp("template") / "copier-fastapi-tasks"
    for name in _template_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, repo / name)
    current = {name: (repo / name).read_bytes() for name in _template_files()}
    for undo in PREVIOUS_RELEASE:
        undo(repo)
    _git(["init", "--quiet", "--initial-branch=main"], repo)
    _git(["add", "--all"], repo)
    _git(["commit", "--quiet", "--message=previous release"], repo)
    _git(["tag", "v1.0.0"], repo)
    package = repo / "template" / "{{package_name}}"
    for stale in (package / "routes" / DEMO, package / "legacy.py"):
        stale.unlink()
    for name, content in current.items():
        (repo / name).write_bytes(content)
    _git(["add", "--all"], repo)
    _git(["commit", "--quiet", "--message=current release"], repo)
    _git(["tag", "v1.1.0"], repo)
    return repo


# --- copier, a project, a team's edits ---------------------------------------------


def copier(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The copier the template's environment pins, as a user runs it."""
    return run([sys.executable, "-m", "copier", *args], cwd=cwd, env=GIT_ENV, check=check)


def _data(answers: dict[str, Any]) -> list[str]:
    args = []
    for key, value in answers.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ["--data", f"{key}={text}"]
    return args


def generate(template: Path, dest: Path, answers: dict[str, Any], ref: str) -> Path:
    options = ["--trust", "--defaults", "--vcs-ref", ref, *_data({**BASE, **answers})]
    dest.parent.mkdir(parents=True, exist_ok=True)
    copier(["copy", *options, str(template), str(dest)], cwd=dest.parent)
    _git(["init", "--quiet", "--initial-branch=main"], dest)
    _git(["add", "--all"], dest)
    _git(["commit", "--quiet", "--message=generated"], dest)
    return dest


USER_TASKS = '''"""Billing: the team's own task module."""

from ..jobs import task


@task
def charge(order_id: int, cents: int) -> dict[str, int]:
    """Charge an order (idempotent: the payment provider dedups on the order id)."""
    return {"order_id": order_id, "charged": cents}
'''

USER_ROUTES = '''"""Billing routes: the team's own router, found without editing main.py."""

from fastapi import APIRouter
from pydantic import BaseModel

from ..jobs import JobQueueDep
from ..tasks.billing import charge

router = APIRouter(prefix="/billing", tags=["billing"])


class Charge(BaseModel):
    order_id: int
    cents: int


@router.post("/charge", status_code=202)
async def post_charge(body: Charge, queue: JobQueueDep) -> dict[str, str]:
    return {"job_id": await queue.enqueue(charge, body.order_id, body.cents)}
'''

USER_TESTS = f'''"""The team's tests of its billing module."""

from fastapi.testclient import TestClient

from {PACKAGE}.config import get_settings
from {PACKAGE}.tasks.billing import charge

from .conftest import RecordingQueue


def test_charge_returns_what_it_charged() -> None:
    assert charge(7, 250) == {{"order_id": 7, "charged": 250}}


def test_the_route_enqueues_the_charge(client: TestClient, recording_queue: RecordingQueue) -> None:
    response = client.post("/billing/charge", json={{"order_id": 7, "cents": 250}})
    assert response.status_code == 202
    assert recording_queue.calls == [(charge, (7, 250), {{}})]


def test_the_team_setting_and_fixture(currency: str) -> None:
    assert get_settings().billing_currency == currency == "EUR"
'''

#: Files a team adds: they must come out of every update byte for byte.
USER_FILES = {
    f"{PACKAGE}/tasks/billing.py": USER_TASKS,
    f"{PACKAGE}/routes/billing.py": USER_ROUTES,
    "tests/test_billing.py": USER_TESTS,
}
ENV_FILE = "BILLING_API_KEY=not-in-git\n"


def make_user_edits(project: Path) -> None:
    """What a team does to a generated project, then commits (``.env`` stays untracked)."""
    for name, text in USER_FILES.items():
        (project / name).write_text(text)
    (project / ".env").write_text(ENV_FILE)
    _replace(
        project / PACKAGE / "config.py",
        "leaves them alone.\n",
        'leaves them alone.\n    billing_currency: str = "EUR"\n',
    )
    # A package of the team's own, as `uv add anyio` adds it: pyproject.toml and uv.lock.
    # At the end of the dependencies list (the first list that ends the line "]").
    pyproject = (project / "pyproject.toml").read_text()
    end = pyproject.index("\n]\n", pyproject.index("dependencies = [")) + 1
    last_line = pyproject[pyproject.rindex("\n", 0, end - 1) + 1 : end]
    _replace(project / "pyproject.toml", last_line + "]", last_line + '    "anyio>=4.0",\n]')
    run(["uv", "lock", "--quiet"], cwd=project)
    with (project / "tests" / "conftest.py").open("a") as conftest:
        conftest.write('\n\n@pytest.fixture\ndef currency() -> str:\n    return "EUR"\n')
    with (project / "README.md").open("a") as readme:
        readme.write("\n## Billing\n\nThe team's own notes on billing.\n")
    _git(["add", "--all"], project)
    _git(["commit", "--quiet", "--message=billing"], project)


def update(project: Path, *data: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return copier(["update", "--trust", "--defaults", *data], cwd=project, check=check)


def env_lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The ``.env`` lines an update says to add (indented ``KEY=value`` lines of its message)."""
    message = result.stdout + result.stderr
    if " has what " in message:
        return {}
    assert "copier left it as it was" in message, message
    after = message.split("copier left it as it was", 1)[1]
    return dict(re.findall(r"^ {4,}([A-Z][A-Z0-9_]*)=(\S+)$", after, re.MULTILINE))


# --- what must hold after an update ----------------------------------------------------


def assert_cleanly_merged(project: Path) -> None:
    """No conflict of any kind: no unmerged paths, no markers, no *.rej leftovers."""
    assert _git(["ls-files", "--unmerged"], project) == ""
    status = _git(["status", "--porcelain"], project).splitlines()
    assert not [line for line in status if line[:2] in {"UU", "AA", "DU", "UD", "AU", "UA"}]
    leftovers, markers = [], []
    for path in project.rglob("*"):
        relative = path.relative_to(project)
        if not path.is_file() or {".git", ".venv"} & set(relative.parts):
            continue
        if path.suffix == ".rej" or path.name.endswith(".orig"):
            leftovers.append(str(relative))
        text = path.read_text(errors="replace")
        if any(line.startswith(("<<<<<<< ", ">>>>>>> ")) for line in text.splitlines()):
            markers.append(str(relative))
    assert leftovers == [] and markers == []


def assert_user_edits_kept(project: Path) -> None:
    for name, text in USER_FILES.items():
        assert (project / name).read_text() == text, f"{name} was changed by the update"
    assert (project / ".env").read_text() == ENV_FILE
    assert 'billing_currency: str = "EUR"' in (project / PACKAGE / "config.py").read_text()
    assert '"anyio>=4.0",' in (project / "pyproject.toml").read_text()
    assert "def currency() -> str:" in (project / "tests" / "conftest.py").read_text()
    assert (project / "README.md").read_text().endswith("The team's own notes on billing.\n")


def assert_project_passes(project: Path, request: pytest.FixtureRequest) -> None:
    """The project's own checks; the durable tiers' integration tests on real servers."""
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    uv_sync(project)
    run(["uv", "run", "--quiet", "ruff", "check"], cwd=project)
    run(["uv", "run", "--quiet", "ruff", "format", "--check"], cwd=project)
    run(["uv", "run", "--quiet", "mypy"], cwd=project)
    env = servers_env(request, answers["task_backend"], answers)
    pytest_command = ["uv", "run", "--quiet", "pytest", "-q", "-p", "no:cacheprovider"]
    tests = run([*pytest_command, "-rs"], cwd=project, env=env)
    assert "failed" not in tests.stdout and "skipped" not in tests.stdout, tests.stdout
    assert (
        "3 passed"
        in run(
            [
                "uv",
                "run",
                "--quiet",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/test_billing.py",
            ],
            cwd=project,
        ).stdout
    )


def assert_update_hygiene(project: Path) -> None:
    """What keeps a project safe to update: the answers file says not to edit it, the hooks
    refuse conflict markers and *.rej leftovers, the README says how to update."""
    answers_file = (project / ".copier-answers.yml").read_text()
    assert answers_file.startswith("# Changes here will be overwritten by Copier; NEVER EDIT")
    hooks = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    hook_ids = {hook["id"] for repo in hooks["repos"] for hook in repo["hooks"]}
    assert {"check-merge-conflict", "no-rej-files"} <= hook_ids
    readme = (project / "README.md").read_text()
    assert "## Updating from the template" in readme
    assert "copier update --trust --defaults --data task_backend=rq" in readme


def project_files(project: Path) -> set[str]:
    """The project's files as git sees them (tracked or new), ignored ones left out."""
    listed = _git(["ls-files", "-z", "--cached", "--others", "--exclude-standard"], project)
    return {name for name in listed.split("\0") if name and (project / name).is_file()}


# --- updates from the previous release --------------------------------------------------


@pytest.mark.update
@pytest.mark.timeout(900)  # up to 192 s on a busy run
@pytest.mark.parametrize("tier", list(TIER_ANSWERS))
def test_update_from_the_previous_release(
    template_repo: Path, tmp_path: Path, tier: str, request: pytest.FixtureRequest
) -> None:
    project = generate(template_repo, tmp_path / "acme-orders", TIER_ANSWERS[tier], "v1.0.0")
    assert (project / PACKAGE / "routes" / "demo.py").exists()
    make_user_edits(project)

    result = update(project)
    assert "Updating to template version 1.1.0" in result.stdout + result.stderr

    assert_cleanly_merged(project)
    assert_user_edits_kept(project)
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v1.1.0"
    assert answers["task_backend"] == tier
    # The release's changes arrived: the rename, the removal, the addition, the new lines.
    assert not (project / PACKAGE / "routes" / "demo.py").exists()
    assert (project / PACKAGE / "routes" / "examples.py").exists()
    assert not (project / PACKAGE / "legacy.py").exists()
    assert (project / ".dockerignore").exists()
    assert "After an update: review `git diff`" in (project / "README.md").read_text()
    assert "every knob comes from the environment" in (project / PACKAGE / "config.py").read_text()
    assert_update_hygiene(project)
    assert_project_passes(project, request)


# --- tier switches -------------------------------------------------------------------

SWITCHES = [
    # (from, to, the answers given with --data)
    ("background_tasks", "rq", {"task_backend": "rq"}),
    ("rq", "celery", {"task_backend": "celery"}),
    ("celery", "rq", {"task_backend": "rq"}),
    # Back down to in-process work: only with needs it can keep.
    ("rq", "background_tasks", {"task_backend": "background_tasks", "loss_tolerable": True}),
]


@pytest.mark.update
@pytest.mark.timeout(900)  # up to 192 s on a busy run
@pytest.mark.parametrize(("source", "target", "data"), SWITCHES, ids=lambda v: str(v)[:30])
def test_tier_switch_in_one_command(
    template_repo: Path,
    tmp_path: Path,
    source: str,
    target: str,
    data: dict[str, Any],
    request: pytest.FixtureRequest,
) -> None:
    project = generate(template_repo, tmp_path / "acme-orders", TIER_ANSWERS[source], "v1.1.0")
    make_user_edits(project)

    result = update(project, *_data(data))

    # uv.lock changed on both sides (the team's package, the new tier's): the one conflict,
    # resolved as the README says: the template's side, then `uv lock` adds the team's back.
    assert _git(["diff", "--name-only", "--diff-filter=U"], project).split() == ["uv.lock"]
    _git(["checkout", "--theirs", "uv.lock"], project)
    run(["uv", "lock", "--quiet"], cwd=project)
    _git(["add", "uv.lock"], project)
    assert_cleanly_merged(project)
    assert_user_edits_kept(project)
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["task_backend"] == target
    # The team's .env (BILLING_API_KEY only) was left alone; the update says what to add.
    # JOBS_ADMIN_TOKEN on every tier: the team's .env predates it.
    wanted = {
        "background_tasks": ["JOBS_ADMIN_TOKEN"],
        "rq": ["JOBS_ADMIN_TOKEN", "REDIS_PASSWORD"],
        "celery": ["JOBS_ADMIN_TOKEN", "REDIS_PASSWORD"],
    }
    assert sorted(env_lines(result)) == wanted[target], result.stderr

    # The project is what a fresh `copier copy` with the new answers gives, plus the team's
    # edits: the old tier's files are gone, the new tier's are there, and every file the
    # team did not touch (compose, backend, worker, tests, decision record ...) is identical.
    fresh_answers = {k: v for k, v in answers.items() if not k.startswith("_")}
    fresh = generate(template_repo, tmp_path / "fresh" / "acme-orders", fresh_answers, "v1.1.0")
    edited = {f"{PACKAGE}/config.py", "pyproject.toml", "uv.lock", "tests/conftest.py", "README.md"}
    assert project_files(project) == project_files(fresh) | set(USER_FILES)
    for name in sorted(project_files(fresh) - edited - {".copier-answers.yml"}):
        assert (project / name).read_bytes() == (fresh / name).read_bytes(), name
    services = set(compose_services(project))
    assert ("worker" in services) == (target != "background_tasks")
    decision = (project / "docs/decisions/0001-background-jobs.md").read_text()
    assert decision.startswith(f"# 1. Background jobs run on {target}\n")
    assert_project_passes(project, request)


@pytest.mark.update
def test_a_tier_switch_the_answers_forbid_is_refused_and_changes_nothing(
    template_repo: Path, tmp_path: Path
) -> None:
    project = generate(template_repo, tmp_path / "acme-orders", TIER_ANSWERS["rq"], "v1.1.0")
    make_user_edits(project)
    before = {name: (project / name).read_bytes() for name in project_files(project)}

    result = update(project, "--data", "task_backend=background_tasks", check=False)

    assert result.returncode != 0
    assert "Invalid choice for 'task_backend'" in result.stderr
    assert "loss_tolerable" in result.stderr
    assert _git(["status", "--porcelain"], project) == ""
    assert {name: (project / name).read_bytes() for name in project_files(project)} == before


@pytest.mark.update
def test_a_need_the_recorded_tier_cannot_keep_moves_to_the_recommended_tier(
    template_repo: Path, tmp_path: Path
) -> None:
    """docs/moving-tiers.md: with --defaults, copier keeps the recorded tier while it fits the
    answers, and takes the default (the recommendation) once it does not."""
    project = generate(
        template_repo, tmp_path / "acme-orders", TIER_ANSWERS["background_tasks"], "v1.1.0"
    )
    update(project, "--data", "task_duration=medium")  # background_tasks cannot keep it
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["task_backend"] == "rq"
    assert (project / PACKAGE / "worker.py").exists()
    _git(["add", "--all"], project)
    _git(["commit", "--quiet", "--message=rq"], project)

    update(project, "--data", "task_duration=long")  # recommends celery; rq still fits
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["task_backend"] == "rq"


# --- a tier switch and the user's .env -------------------------------------------------

ENV_SWITCHES = [
    # (from, the answers given with --data, the lines the update must ask for)
    ("rq", {"task_backend": "celery"}, []),
    ("rq", {"task_backend": "celery", "celery_broker": "rabbitmq"},
     ["CELERY_BROKER_URL", "RABBITMQ_DEFAULT_PASS", "RABBITMQ_DEFAULT_USER"]),
    ("background_tasks", {"task_backend": "rq"}, ["REDIS_PASSWORD"]),
    ("celery", {"task_backend": "rq"}, []),
]  # fmt: skip


@pytest.mark.update
@pytest.mark.timeout(900)  # up to 192 s on a busy run
@pytest.mark.e2e
@pytest.mark.parametrize(("source", "data", "asked"), ENV_SWITCHES, ids=lambda v: str(v)[:40])
def test_after_a_tier_switch_the_old_env_works_once_the_printed_lines_are_added(
    template_repo: Path, tmp_path: Path, source: str, data: dict[str, Any], asked: list[str]
) -> None:
    """.env is the user's: the update never edits it. The new tier reads what it can from
    the old file (Celery's URLs from REDIS_URL, the password once), the update prints the
    lines it cannot derive, and with those added the README's local-run steps work."""
    project = generate(template_repo, tmp_path / "acme-orders", TIER_ANSWERS[source], "v1.1.0")
    env_before = (project / ".env").read_bytes()

    result = update(project, *_data(data))

    assert (project / ".env").read_bytes() == env_before
    lines = env_lines(result)
    assert sorted(lines) == asked, result.stderr
    with (project / ".env").open("a") as env:
        env.writelines(f"{name}={value}\n" for name, value in lines.items())
    uv_sync(project)
    ran = run_without_docker(project, tmp_path / "run")
    assert ran["ready"] == {"status": "ready"}
    assert ran["job"]["status"] == "finished", ran["job"]
