"""Every generated project installs exactly the versions the template was tested with.

``template/uv.lock.jinja`` renders ``locks/<variant>.uv.lock`` into each project; the
rendering matrix and every end-to-end test install projects with ``uv sync --locked``
(``helpers.uv_sync``), which fails on a missing or stale lock. Here: each stored lock still
fits its pyproject (``uv lock --check``), and the variants cover the answers that change
the dependencies.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from typing import Any

import pytest

from helpers import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
from locks import LOCKS, VARIANTS, stored

pytestmark = pytest.mark.render


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_lock_fits_its_pyproject(variant: str) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/locks.py"), "--check", variant],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_stored_locks_are_the_variants_and_name_the_project_by_its_answer() -> None:
    assert sorted(p.name for p in LOCKS.glob("*.uv.lock")) == sorted(
        f"{v}.uv.lock" for v in VARIANTS
    )
    for path in LOCKS.glob("*.uv.lock"):
        text = path.read_text()
        assert text.count("{{ project_slug }}") == 1, path
        assert not re.search(r"\{%|\{#", text), path
        assert 'requires-python = ">=3.11"' in text, path


COMBINATIONS = [
    {"task_backend": "background_tasks", "loss_tolerable": True, "scheduling": scheduling}
    for scheduling in ("none", "interval", "cron")
] + [
    {"task_backend": tier, "scheduling": scheduling, "monitoring": monitoring, **broker}
    for tier, broker in (("rq", {}), ("celery", {"celery_broker": "redis"}),
                         ("celery", {"celery_broker": "rabbitmq"}))
    for scheduling in ("none", "cron")
    for monitoring in (False, True)
]  # fmt: skip


def _names(requirements: list[str]) -> set[str]:
    return {
        re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements
    }


@pytest.mark.parametrize(
    "answers", COMBINATIONS, ids=["-".join(map(str, a.values())) for a in COMBINATIONS]
)
def test_every_combination_of_answers_gets_the_lock_of_its_dependencies(
    copie_session: Any, answers: dict[str, Any]
) -> None:
    result = copie_session.copy(extra_answers={"project_name": "Acme Orders", **answers})
    assert result.exit_code == 0, result.exception
    project = result.project_dir
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    lock = tomllib.loads((project / "uv.lock").read_text())
    (own,) = [p for p in lock["package"] if p["source"] == {"virtual": "."}]
    assert own["name"] == pyproject["project"]["name"] == "acme-orders"
    locked = {r["name"] for r in own["metadata"]["requires-dist"]}
    extras = pyproject["project"].get("optional-dependencies", {})
    assert set(extras) == {"tracing"}
    wanted = _names(pyproject["project"]["dependencies"]) | _names(extras["tracing"])
    assert locked == wanted
    locked_dev = {r["name"] for r in own["metadata"]["requires-dev"]["dev"]}
    assert locked_dev == _names(pyproject["dependency-groups"]["dev"])


def test_stored_refuses_a_lock_it_could_not_render() -> None:
    with pytest.raises(SystemExit):
        stored('name = "lock-variant-project"\n{{ not a lock }}\n')
    with pytest.raises(SystemExit):
        stored("no project here\n")
