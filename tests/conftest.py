"""Shared fixtures of the template's test suite (pytest-copie provides `copie`)."""

from __future__ import annotations

import shutil

import pytest

from helpers import REPO_ROOT


def pytest_configure(config: pytest.Config) -> None:
    # pytest-copie renders the template found at --template (default "."): make it the repo.
    if getattr(config.option, "template", None) in (None, "."):
        config.option.template = str(REPO_ROOT)


@pytest.fixture(scope="session", autouse=True)
def _tools_present() -> None:
    """The suite needs uv on PATH to build each generated project's environment."""
    assert shutil.which("uv"), "uv is not on PATH: run the suite with `bash scripts/test.sh`"
