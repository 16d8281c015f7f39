"""Team starter kits (presets/): answer files a team passes to `copier copy --data-file`.

Each preset also renders as a row of the rendering matrix (tests/test_render_matrix.py),
whose project lints, type-checks and passes its own tests; here: the files themselves, and
the documented command line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from decision import Needs, recommend
from helpers import REPO_ROOT

PRESETS = sorted((REPO_ROOT / "presets").glob("*.yml"))
QUESTIONS = {
    name: spec
    for name, spec in yaml.safe_load((REPO_ROOT / "copier.yml").read_text()).items()
    if not name.startswith("_")
}
#: Per project, not per team: a preset must leave them to the user.
PER_PROJECT = {"project_name", "project_slug", "package_name", "description"}


def test_there_is_a_kit_per_tier() -> None:
    tiers = {yaml.safe_load(path.read_text())["task_backend"] for path in PRESETS}
    assert tiers == {"background_tasks", "rq", "celery"}


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_answers_are_questions_with_valid_values(path: Path) -> None:
    answers: dict[str, Any] = yaml.safe_load(path.read_text())
    assert set(answers) <= set(QUESTIONS), set(answers) - set(QUESTIONS)
    assert not set(answers) & PER_PROJECT
    for name, value in answers.items():
        spec = QUESTIONS[name]
        if spec["type"] == "bool":
            assert isinstance(value, bool), name
        if "choices" in spec:
            choices = spec["choices"]
            values = list(choices.values()) if isinstance(choices, dict) else list(choices)
            assert value in [v["value"] if isinstance(v, dict) else v for v in values], name
    # A kit spells out every need, so the template's defaults can change under it safely,
    # and picks the tier the decision engine recommends for those needs.
    assert {"loss_tolerable", "needs_retries", "task_duration", "cpu_heavy"} <= set(answers)
    assert {"scheduling", "scale", "task_backend"} <= set(answers)
    assert answers["task_backend"] == recommend(Needs.from_answers(answers)).tier
    header = path.read_text().split("\n\n")[0]
    assert header.startswith("# Team starter kit:")
    assert f"--data-file presets/{path.name}" in header


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_through_the_documented_command(path: Path, tmp_path: Path) -> None:
    """`copier copy --trust --data-file presets/<kit>.yml` records the kit's answers."""
    dst = tmp_path / "my-service"
    result = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--vcs-ref", "HEAD",
         "--data-file", str(path), "--data", "project_name=My Service", str(REPO_ROOT), str(dst)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    recorded = yaml.safe_load((dst / ".copier-answers.yml").read_text())
    for name, value in yaml.safe_load(path.read_text()).items():
        assert recorded[name] == value, name
    assert (dst / "my_service" / "worker.py").exists() == (recorded["task_backend"] == "rq")
    assert (dst / "my_service" / "celery_app.py").exists() == (recorded["task_backend"] == "celery")
