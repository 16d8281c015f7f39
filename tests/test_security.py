"""Security of what is generated (issue 7), one project per tier and broker: compose
refuses to start without each secret, no pickle in the code, bandit finds nothing, the
image runs as a non-root user with no secret baked in, SECURITY.md says all of it.

The behaviour behind these (a pickled job or message refused, passwords never shown,
Redis with a password) is proven end to end in tests/test_e2e_rq.py and
tests/test_e2e_celery.py.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from e2e.stack import Project, render
from helpers import compose_binary, run

pytestmark = pytest.mark.render

#: One project per tier and broker (e2e.stack.TIERS), each with every optional service
#: (dashboard, scheduler): the answers added to the tier's.
TIERS: dict[str, dict[str, Any]] = {
    "background_tasks": {"scheduling": "interval"},
    "rq": {"loss_tolerable": False, "scheduling": "cron"},
    "celery-redis": {"scheduling": "cron"},
    "celery-rabbitmq": {},
}

#: The secrets compose needs from .env, per project above (it refuses to start without).
REQUIRED: dict[str, set[str]] = {
    "background_tasks": set(),
    "rq": {"REDIS_PASSWORD", "DASHBOARD_PASSWORD"},
    "celery-redis": {"REDIS_PASSWORD", "FLOWER_BASIC_AUTH"},
    "celery-rabbitmq": {
        "REDIS_PASSWORD",
        "RABBITMQ_DEFAULT_USER",
        "RABBITMQ_DEFAULT_PASS",
        "FLOWER_BASIC_AUTH",
    },
}

#: Modules that deserialize into arbitrary objects (code execution on load).
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "jsonpickle", "shelve"}
UNSAFE_MODULES |= {"marshal"}
#: Serializer names that select pickle in Celery, kombu and RQ.
UNSAFE_SERIALIZERS = {"pickle", "application/x-python-serialize"}
#: Names of settings that hold secrets.
SECRET_NAME = re.compile(r"PASSWORD|_PASS\b|SECRET|TOKEN|BASIC_AUTH|API_KEY|PRIVATE_KEY")


@pytest.fixture(scope="module", params=list(TIERS))
def project(request: pytest.FixtureRequest, copie_session: Any) -> Project:
    answers = dict(TIERS[request.param])
    if request.param != "background_tasks":
        answers["monitoring"] = True
    return render(copie_session, request.param, sync=False, **answers)


#: The runtime's source in a generated project.
RUNTIME = "vendor/tasktier/src"


def compose_config(project: Project, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker compose config` with exactly these secrets (none inherited from the shell,
    nor from the .env that `copier copy` wrote with random local passwords)."""
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED[project.tier]}
    return subprocess.run(
        [str(compose_binary()), "--env-file", os.devnull, "config", "--quiet"],
        cwd=project.path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_refuses_to_start_without_each_secret(project: Project) -> None:
    compose = (project.path / "docker-compose.yml").read_text()
    assert set(re.findall(r"\$\{(\w+):\?", compose)) == REQUIRED[project.tier]
    secrets = {name: f"test-{name.lower()}" for name in REQUIRED[project.tier]}
    given = compose_config(project, secrets)
    assert given.returncode == 0, given.stderr
    for name in REQUIRED[project.tier]:
        for env in ({k: v for k, v in secrets.items() if k != name}, {**secrets, name: ""}):
            refused = compose_config(project, env)
            assert refused.returncode != 0, f"compose started without {name}"
            assert f"required variable {name} is missing a value" in refused.stderr, (
                name,
                refused.stderr,
            )


def test_ports_are_published_on_loopback_only(project: Project) -> None:
    published = [
        str(port) for service in project.services.values() for port in service.get("ports", [])
    ]
    assert published, "the API at least is published"
    assert all(port.startswith("127.0.0.1:") for port in published), published


def pickle_uses(source: str, in_package: bool = True) -> list[str]:
    """Lines of ``source`` that import a pickle-like module or name the pickle serializer
    (the latter in the package only: the project's tests may name it to refuse it)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [(node.module or "").split(".")[0]]
        else:
            modules = []
        found += [f"{node.lineno}: imports {m}" for m in modules if m in UNSAFE_MODULES]
        if in_package and isinstance(node, ast.Constant) and node.value in UNSAFE_SERIALIZERS:
            found += [f"{node.lineno}: names the {node.value!r} serializer"]
    return found


def test_pickle_uses_finds_imports_and_serializer_names() -> None:
    probe = "import pickle\nfrom shelve import open\nQueue(serializer='pickle')\n# pickle\n"
    assert pickle_uses(probe) == [
        "1: imports pickle",
        "2: imports shelve",
        "3: names the 'pickle' serializer",
    ]
    assert pickle_uses("import json\nQueue(serializer=JSONSerializer)") == []


def test_no_pickle_in_the_generated_code(project: Project) -> None:
    found = [
        f"{path.relative_to(project.path)}:{use}"
        for path in project.python_files()
        for use in pickle_uses(
            path.read_text(), in_package=path.relative_to(project.path).parts[0] == project.package
        )
    ]
    assert found == []


def test_bandit_finds_nothing_in_the_generated_package(project: Project) -> None:
    """Nor in the runtime it carries (``vendor/tasktier``)."""
    scan = run(
        [sys.executable, "-m", "bandit", "-r", project.package, RUNTIME, "-f", "json", "-q"],
        cwd=project.path,
        check=False,
    )
    report = json.loads(scan.stdout)
    assert report["errors"] == [], report["errors"]
    findings = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}"
        for r in report["results"]
    ]
    assert findings == []
    assert scan.returncode == 0, scan.stderr
    totals = report["metrics"]["_totals"]
    assert totals["loc"] > 500, "bandit scanned the package and the runtime"
    # A finding silenced with `# nosec` says why on the same line.
    for path in project.python_files(project.package):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "# nosec" in line:
                assert re.search(r"# nosec B\d+\s*[:(-]?\s*\w+", line), f"{path}:{number}"


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_image_runs_as_a_non_root_user_with_no_secret_baked_in(project: Project) -> None:
    instructions = _instructions((project.path / "Dockerfile").read_text())
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    final_stage = instructions[last_from:]
    users = [rest for keyword, rest in final_stage if keyword == "USER"]
    assert users, "the final stage sets no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0", ""), users
    # The last USER comes after every RUN of the final stage (nothing runs as root later).
    keywords = [keyword for keyword, _ in final_stage]
    assert "RUN" not in keywords[len(keywords) - keywords[::-1].index("USER") :]
    for keyword, rest in instructions:
        if keyword in ("ENV", "ARG", "LABEL"):
            assert not SECRET_NAME.search(rest.upper()), f"{keyword} {rest}"
        if keyword in ("COPY", "ADD"):
            assert ".env" not in rest.split(), f"{keyword} {rest}"
    # .env never reaches the build context, nor git.
    assert ".env" in (project.path / ".dockerignore").read_text().splitlines()
    assert ".env" in (project.path / ".gitignore").read_text().splitlines()


def test_env_example_holds_no_secret_value(project: Project) -> None:
    settings = dict(
        line.split("=", 1)
        for line in (project.path / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    secrets = {name: value for name, value in settings.items() if SECRET_NAME.search(name)}
    assert set(secrets) >= REQUIRED[project.tier] - {"RABBITMQ_DEFAULT_USER"}
    assert set(secrets.values()) <= {""}, secrets
    # No URL carries a literal password: only ${...} references to the secrets above.
    for name, value in settings.items():
        for password in re.findall(r"://[^:/@\s]*:([^@/\s]+)@", value):
            assert re.fullmatch(r"\$\{\w+\}", password), f"{name}={value}"


def test_security_md_says_what_the_project_does(project: Project) -> None:
    text = (project.path / "SECURITY.md").read_text()
    for topic in (
        "Reporting a vulnerability",
        "no pickle",
        "environment",
        "non-root",
        "TLS",
        "`JOBS_ADMIN_TOKEN`",
        "`tasktier.http.require_operator`",
        "status_url",
        "JobIdConflict",
        "cross-site" if project.answers.get("monitoring") else "TLS",
    ):
        assert topic in text, topic
    for name in REQUIRED[project.tier]:
        assert f"`{name}`" in text, name
    for service in project.services.values():
        for port in service.get("ports", []):
            assert f"({str(port).split(':')[1]})" in text, port
    tier = project.tier
    assert ("JSONSerializer" in text) == (tier == "rq")
    assert ("accept_content" in text) == tier.startswith("celery")
    assert ("`guest` user" in text) == (tier == "celery-rabbitmq")
    assert ("Redis requires a password" in text) == (tier != "background_tasks")
    assert ("basic auth" in text) == (tier != "background_tasks")
