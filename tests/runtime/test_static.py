"""The runtime's own code passes the checks a generated project runs on its package:
ruff (lint and format) and mypy in strict mode, once, here."""

from helpers import REPO_ROOT, run

RUNTIME = REPO_ROOT / "template" / "vendor" / "tasktier"
SOURCE = RUNTIME / "src"


def test_ruff_finds_nothing() -> None:
    run(["ruff", "check", "--no-cache", str(SOURCE)], cwd=REPO_ROOT)
    run(["ruff", "format", "--check", "--no-cache", str(SOURCE)], cwd=REPO_ROOT)


def test_mypy_strict_finds_nothing() -> None:
    run(
        ["mypy", "--config-file", str(RUNTIME / "pyproject.toml"), "--no-incremental", str(SOURCE)],
        cwd=REPO_ROOT,
    )
