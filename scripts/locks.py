"""The generated projects' lock files: one ``uv.lock`` per set of dependencies.

    uv run python scripts/locks.py            # re-lock after changing template/pyproject.toml.jinja
    uv run python scripts/locks.py --upgrade  # move every pin to the newest allowed release
    uv run python scripts/locks.py --check    # fail when a lock no longer fits its pyproject

A generated project installs exactly what the template was tested with: its ``uv.lock`` is
rendered from ``locks/<variant>.uv.lock`` (``template/uv.lock.jinja`` picks the variant from
the answers). Only the answers below change the dependencies; the locks are universal
(every Python from 3.11, every platform), so nothing else needs a lock of its own.

For each variant this renders a project from this checkout (with its current lock, so that
``uv lock`` keeps every pin that still fits), runs ``uv lock`` there, and stores the result
with the project's name replaced by ``{{ project_slug }}``. ``tests/test_locks.py`` runs
``--check``; the rendering matrix installs every project with ``uv sync --locked``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LOCKS = REPO / "locks"

#: The answers that change a generated project's dependencies, one variant per set
#: (template/uv.lock.jinja maps the answers to these names; keep the two in step).
VARIANTS: dict[str, dict[str, Any]] = {
    "background_tasks": {"task_backend": "background_tasks", "scheduling": "none"},
    "background_tasks-apscheduler": {"task_backend": "background_tasks", "scheduling": "cron"},
    "rq": {"task_backend": "rq", "monitoring": False},
    "rq-monitoring": {"task_backend": "rq", "monitoring": True},
    "celery": {"task_backend": "celery", "monitoring": False},
    "celery-monitoring": {"task_backend": "celery", "monitoring": True},
}

#: The name the projects are rendered with here; replaced by the answer in the stored lock.
SLUG = "lock-variant-project"
NAME_LINE = f'name = "{SLUG}"'
JINJA = re.compile(r"\{\{|\{%|\{#")


def render(variant: str, destination: Path) -> None:
    answers = {"project_name": "Lock Variant Project", **VARIANTS[variant]}
    answers.setdefault("loss_tolerable", answers["task_backend"] == "background_tasks")
    data = [arg for key, value in answers.items() for arg in ("--data", f"{key}={value}")]
    subprocess.run(
        ["copier", "copy", "--trust", "--defaults", "--quiet", "--vcs-ref", "HEAD",
         *data, str(REPO), str(destination)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip


def stored(lock: str) -> str:
    """The lock as ``locks/`` keeps it: the project's name as a Jinja expression."""
    if JINJA.search(lock):
        raise SystemExit("the lock holds Jinja syntax: it cannot be rendered as it is")
    if lock.count(NAME_LINE) != 1 or lock.count(SLUG) != 1:
        raise SystemExit(f"expected the project's name once in the lock ({NAME_LINE})")
    return lock.replace(NAME_LINE, 'name = "{{ project_slug }}"')


def lock_one(variant: str, upgrade: bool, check: bool) -> str | None:
    """Re-lock ``variant`` (or check it); a problem, or None."""
    with tempfile.TemporaryDirectory(prefix="cft-lock-") as tmp:
        project = Path(tmp) / "project"
        render(variant, project)
        if check:
            if not (project / "uv.lock").exists():
                return f"{variant}: no lock (run: uv run python scripts/locks.py)"
            done = subprocess.run(["uv", "lock", "--check"], cwd=project,
                                  capture_output=True, text=True)  # fmt: skip
            if done.returncode:
                stale = "the lock is stale (run: uv run python scripts/locks.py)"
                return f"{variant}: {stale}\n{done.stderr}"
            return None
        rendered = project / "uv.lock"
        if not rendered.read_text().strip():  # a new variant: nothing stored yet
            rendered.unlink()
        args = ["uv", "lock", "--quiet", *(["--upgrade"] if upgrade else [])]
        subprocess.run(args, cwd=project, check=True)
        LOCKS.mkdir(exist_ok=True)
        (LOCKS / f"{variant}.uv.lock").write_text(stored((project / "uv.lock").read_text()))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upgrade", action="store_true", help="newest allowed releases")
    parser.add_argument("--check", action="store_true", help="only check: write nothing")
    parser.add_argument("variants", nargs="*", default=list(VARIANTS), help="default: all")
    options = parser.parse_args()
    unknown = sorted(set(options.variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")
    problems = [
        problem
        for variant in options.variants
        if (problem := lock_one(variant, options.upgrade, options.check)) is not None
    ]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise SystemExit(1)
    print(f"{'checked' if options.check else 'locked'}: {', '.join(options.variants)}")


if __name__ == "__main__":
    main()
