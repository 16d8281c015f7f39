"""The runtime is a distribution of its own: it builds as an sdist and a wheel, each of
which installs in a clean virtualenv and imports, typed (``py.typed``), with its version."""

import tomllib
from pathlib import Path

import pytest

from helpers import REPO_ROOT, run

RUNTIME = REPO_ROOT / "template" / "vendor" / "tasktier"
IMPORT = (
    "import importlib.resources, tasktier, tasktier.model, tasktier.redaction, tasktier.http; "
    "print(tasktier.__version__, importlib.resources.files('tasktier').joinpath('py.typed')"
    ".is_file())"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("dist")
    run(["uv", "build", "--quiet", "--out-dir", str(out), str(RUNTIME)], cwd=out)
    return sorted(
        p for p in out.iterdir() if p.name.startswith("tasktier-")
    )  # uv adds a .gitignore


def test_the_runtime_builds_as_an_sdist_and_a_wheel(built: list[Path]) -> None:
    version = tomllib.loads((RUNTIME / "pyproject.toml").read_text())["project"]["version"]
    assert [p.name for p in built] == [
        f"tasktier-{version}-py3-none-any.whl",
        f"tasktier-{version}.tar.gz",
    ]


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_each_installs_in_a_clean_virtualenv_and_imports(
    built: list[Path], kind: str, tmp_path: Path
) -> None:
    (artifact,) = [p for p in built if p.name.endswith(".whl" if kind == "wheel" else ".gz")]
    venv = tmp_path / "venv"
    run(["uv", "venv", "--quiet", str(venv)], cwd=tmp_path)
    python = str(venv / "bin" / "python")
    run(["uv", "pip", "install", "--quiet", "--python", python, str(artifact)], cwd=tmp_path)
    version = tomllib.loads((RUNTIME / "pyproject.toml").read_text())["project"]["version"]
    assert run([python, "-c", IMPORT], cwd=tmp_path).stdout.split() == [version, "True"]
