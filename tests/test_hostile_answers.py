"""Property-based tests of the template's input (hypothesis): whatever a user types.

- Text answers (`project_name`, `description`) may hold anything a keyboard or a paste
  can produce: quotes, backslashes, newlines, Jinja and Markdown syntax, non-ASCII,
  control characters. Every output that carries them (YAML, TOML, Python, Markdown)
  must still parse, and carry them back unchanged.
- Name answers (`project_slug`, `package_name`) and answers with choices are either
  refused, with copier's error naming the question and nothing written, or accepted, and
  then the name works where it is used.
- Accepted answer sets, drawn at random, render projects that lint, type-check and pass
  their own tests (a small sample: the rendering matrix covers the chosen combinations).
"""

from __future__ import annotations

import ast
import keyword
import os
import re
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import decision
from decision import Needs, refusal
from helpers import REPO_ROOT, compose_services, jinja_leftovers, run, servers_env, uv_sync

pytestmark = pytest.mark.filterwarnings("ignore::copier.errors.DirtyLocalWarning")

NAMES = {"project_slug": "acme-orders", "package_name": "acme_orders"}
REFUSED = re.compile(r"(?:Validation error for question|Invalid choice for) '(\w+)'")

# Text as users produce it, with the characters that break naive templating weighted in.
NASTY = [
    '"', "'", "\\", "\n", "\r\n", "\t", "{{", "}}", "{%", "%}", "{#", "#}", "${", "`", "#",
    "<!--", "-->", "---", "|", "*", "_", "[x](y)", "<script>", "&amp;", ": ", "- ",
    "\u00e9", "\u00fc", "\u4e2d", "\U0001f680", "\u202e", "\x00", "\x1b[31m", "\u2028",
    "True", "null", "~", "'''", '"""', "{{ project_name }}", "{% raw %}", "{% endraw %}",
]  # fmt: skip
CHARACTERS = st.characters(exclude_categories=["Cs"])  # lone surrogates cannot be written
TEXT = st.lists(st.sampled_from(NASTY) | st.text(CHARACTERS, max_size=8), max_size=8).map("".join)
TIERS = ["background_tasks", "rq", "celery"]
TIER_NEEDS: dict[str, dict[str, Any]] = {
    "background_tasks": {},
    "rq": {"loss_tolerable": False},
    "celery": {"loss_tolerable": False},
}
#: No shrinking: a failure is reported as found, so the suite's time stays bounded.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate]
#: In CI the examples are derived from the test's name (the same every run, so a run that
#: lands is reproducible); locally every run draws new ones.
DERANDOMIZE = bool(os.environ.get("CI"))


def bounded(max_examples: int, derandomize: bool = DERANDOMIZE) -> settings:
    """The settings of every test here: ``max_examples`` examples, no shrinking, no
    deadline or example database (each example renders a project)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=PHASES,
        derandomize=derandomize,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def unwritable(text: str) -> bool:
    """Characters YAML cannot hold: control characters other than tab and line breaks."""
    return any(
        (unicodedata.category(c) == "Cc" and c not in "\t\n\r") or c in "\ufffe\uffff" for c in text
    )


def _template_copy() -> Path:
    """The template's files (as a fresh clone has them, uncommitted edits included) in a
    plain directory: copier renders it as is, without cloning the repository per example."""
    import atexit
    import shutil
    import subprocess
    import tempfile

    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    copy = Path(tempfile.mkdtemp(prefix="template-")) / "copier-fastapi-tasks"
    atexit.register(shutil.rmtree, copy.parent, True)
    for name in filter(None, listed.split("\0")):
        if (REPO_ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, copy / name)
    return copy


TEMPLATE = _template_copy()


def render(dst: Path, data: dict[str, Any]) -> None:
    copier.run_copy(
        src_path=str(TEMPLATE), dst_path=str(dst), data=data, defaults=True, unsafe=True,
        quiet=True,
    )  # fmt: skip


def refused_question(dst: Path, data: dict[str, Any]) -> str | None:
    """Render; the question copier refused (and nothing written), or None if accepted."""
    try:
        render(dst, data)
    except ValueError as error:
        match = REFUSED.search(str(error))
        assert match, f"not a refusal naming a question: {error!r}"
        assert not dst.exists() or not any(dst.iterdir()), "a refused answer wrote files"
        return match.group(1)
    return None


def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile") / "service"


def headings(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("## ")]


@pytest.fixture(scope="module")
def readme_headings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The README's sections per tier with a plain project name."""
    found = {}
    for tier in TIERS:
        dst = fresh(tmp_path_factory)
        render(dst, {"project_name": "Plain", **NAMES, "task_backend": tier, **TIER_NEEDS[tier]})
        found[tier] = headings((dst / "README.md").read_text())
    return found


@bounded(20)
@given(name=TEXT, description=TEXT, tier=st.sampled_from(TIERS))
def test_hostile_text_survives_every_output(
    tmp_path_factory: pytest.TempPathFactory,
    readme_headings: dict[str, list[str]],
    name: str,
    description: str,
    tier: str,
) -> None:
    dst = fresh(tmp_path_factory)
    data = {"project_name": name, "description": description, **NAMES, "task_backend": tier}
    refused = refused_question(dst, {**data, **TIER_NEEDS[tier]})
    if not name.strip() or unwritable(name):
        assert refused == "project_name"
        return
    if unwritable(description):
        assert refused == "description"
        return
    assert refused is None

    # YAML: the answers file and every YAML file still parse; the answers come back.
    answers = yaml.safe_load((dst / ".copier-answers.yml").read_text())
    assert (answers["project_name"], answers["description"]) == (name, description)
    for path in [dst / "docker-compose.yml", *dst.glob(".github/workflows/*.yml")]:
        yaml.safe_load(path.read_text())
    assert "api" in compose_services(dst)
    # TOML: the description is data, unchanged.
    pyproject = tomllib.loads((dst / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == description
    # Python: every module parses; the title is the name, as a literal.
    for path in dst.rglob("*.py"):
        ast.parse(path.read_text(), filename=str(path))
    config = ast.parse((dst / "acme_orders" / "config.py").read_text())
    titles = [
        ast.literal_eval(node.value)
        for node in ast.walk(config)
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == "app_title"
        and node.value is not None
    ]
    assert titles == [name]
    # Markdown: one title line, the same sections as with a plain name.
    readme = (dst / "README.md").read_text()
    assert readme.startswith("# ") and readme.splitlines()[0] == "# " + " ".join(name.split())
    assert headings(readme) == readme_headings[tier]
    # Nothing is left of Jinja except what the user typed.
    typed = {name, description, " ".join(name.split()), " ".join(description.split())}
    assert jinja_leftovers(dst, tuple(text for text in typed if text)) == []


NAME_TEXT = (
    st.from_regex(r"[a-z][a-z0-9]{0,10}(-[a-z0-9]{1,8}){0,3}", fullmatch=True)
    | st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True)
    | TEXT
)


@bounded(40)
@given(slug=NAME_TEXT, package=NAME_TEXT)
def test_names_are_refused_by_name_or_work(
    tmp_path_factory: pytest.TempPathFactory, slug: str, package: str
) -> None:
    dst = fresh(tmp_path_factory)
    data = {"project_name": "Acme Orders", "project_slug": slug, "package_name": package}
    refused = refused_question(dst, data)
    if refused is not None:
        assert refused in {"project_slug", "package_name"}
        return
    # Accepted: the slug is a distribution name, the package an importable, lowercase
    # identifier that shadows nothing; both are used as given.
    assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", slug) and len(slug) <= 64
    assert package.isidentifier() and package == package.lower()
    assert not keyword.iskeyword(package) and not keyword.issoftkeyword(package)
    assert tomllib.loads((dst / "pyproject.toml").read_text())["project"]["name"] == slug
    assert (dst / package / "main.py").is_file()
    for path in dst.rglob("*.py"):
        ast.parse(path.read_text(), filename=str(path))


# Questions with a list of choices. (Yes/no questions cannot refuse anything: copier reads
# every value as a boolean, `"maybe"` as true, before any validator sees it.)
CHOICES = {
    name: spec
    for name, spec in yaml.safe_load((REPO_ROOT / "copier.yml").read_text()).items()
    if not name.startswith("_") and "choices" in spec
}


def allowed(spec: dict[str, Any]) -> set[str]:
    choices = spec["choices"]
    values = list(choices.values()) if isinstance(choices, dict) else list(choices)
    return {str(v["value"] if isinstance(v, dict) else v) for v in values}


@bounded(25)
@given(question=st.sampled_from(sorted(CHOICES)), value=TEXT | st.integers() | st.floats())
def test_a_value_outside_the_choices_is_refused_by_name(
    tmp_path_factory: pytest.TempPathFactory, question: str, value: Any
) -> None:
    if str(value) in allowed(CHOICES[question]):
        return
    data = {"project_name": "Acme Orders", **NAMES, question: value}
    if question == "celery_broker":
        data["task_backend"] = "celery"
    if question == "monitoring":
        data["task_backend"] = "rq"
    dst = fresh(tmp_path_factory)
    assert refused_question(dst, data) == question


def accepted_answer_sets() -> st.SearchStrategy[dict[str, Any]]:
    """Whole answer sets the questionnaire accepts: needs, a tier that can keep them."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        needs = {
            "loss_tolerable": draw(st.booleans()),
            "needs_retries": draw(st.booleans()),
            "task_duration": draw(st.sampled_from(["short", "medium", "long"])),
            "cpu_heavy": draw(st.booleans()),
            "scheduling": draw(st.sampled_from(["none", "interval", "cron"])),
            "scale": draw(st.sampled_from(["single", "multi", "distributed"])),
        }
        tiers = [t for t in decision.TIERS if not refusal(t, Needs.from_answers(needs))]
        answers = {**needs, "task_backend": draw(st.sampled_from(tiers))}
        if answers["task_backend"] == "celery":
            answers["celery_broker"] = draw(st.sampled_from(["redis", "rabbitmq"]))
        if answers["task_backend"] != "background_tasks":
            answers["monitoring"] = draw(st.booleans())
        answers["include_examples"] = draw(st.booleans())
        answers["tracing"] = draw(st.booleans())
        answers["ci"] = draw(st.sampled_from(["github", "none"]))
        answers["python_version"] = draw(st.sampled_from(["3.11", "3.12", "3.13"]))
        answers["project_name"] = draw(TEXT.filter(lambda s: bool(s.strip()) and not unwritable(s)))
        return answers

    return build()


@pytest.mark.render
@pytest.mark.timeout(1200)  # two projects rendered and tested: 292 s on a busy run
@bounded(2, derandomize=True)
@given(answers=accepted_answer_sets())
def test_accepted_answers_render_a_project_that_passes_its_tests(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, answers: Any
) -> None:
    dst = fresh(tmp_path_factory)
    render(dst, {**answers, **NAMES})
    uv_sync(dst)
    run(["uv", "run", "--quiet", "ruff", "check"], cwd=dst)
    run(["uv", "run", "--quiet", "ruff", "format", "--check"], cwd=dst)
    run(["uv", "run", "--quiet", "mypy"], cwd=dst)
    run(["uv", "run", "--quiet", "python", "-c", "import acme_orders.main"], cwd=dst)
    env = servers_env(request, answers["task_backend"], answers)
    tests = run(
        ["uv", "run", "--quiet", "pytest", "-q", "-p", "no:cacheprovider"], cwd=dst, env=env
    )
    assert " passed" in tests.stdout and "failed" not in tests.stdout, tests.stdout
