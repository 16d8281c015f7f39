"""The questionnaire, through copier itself: refused answers, the tier default and
what the interactive ``task_backend`` list shows.

These tests only look at validation, at the answers copier records and at the
questionnaire's screen, never at the generated files (other tests cover those). A
refused answer must name its question and leave nothing in the destination. One
test drives the real interactive ``copier copy`` in an 80x24 pseudo-terminal
(tests/terminal.py) to see the refused tier's reason whole on its line.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from jinja2.sandbox import SandboxedEnvironment
from questionary import Choice
from questionary.prompts.common import InquirerControl
from wcwidth import wcswidth

import decision
from decision import Needs
from helpers import REPO_ROOT
from names import NamesExtension
from terminal import CTRL_C, DOWN, ENTER, Terminal

COPIER_YML = REPO_ROOT / "copier.yml"

pytestmark = pytest.mark.filterwarnings("ignore::copier.errors.DirtyLocalWarning")


def copy(dst: Path, data: dict[str, Any], **kwargs: Any) -> Any:
    """``copier copy --defaults`` of this repository's working tree."""
    return copier.run_copy(
        src_path=str(REPO_ROOT),
        dst_path=str(dst),
        data=data,
        defaults=True,
        unsafe=True,
        vcs_ref="HEAD",
        quiet=True,
        **kwargs,
    )


def assert_nothing_written(dst: Path) -> None:
    assert not dst.exists() or not any(dst.iterdir()), sorted(p.name for p in dst.iterdir())


def bg_fits(n: Needs) -> bool:
    """docs/architecture.md ("Decision rules"): background_tasks keeps its promise
    only for loss-tolerable, retry-free, short, I/O-bound work on one API process."""
    return not bg_unmet(n)


def bg_unmet(n: Needs) -> set[str]:
    """The questions whose answers background_tasks cannot keep."""
    blocks = {
        "loss_tolerable": not n.loss_tolerable,
        "needs_retries": n.needs_retries,
        "task_duration": n.task_duration != "short",
        "cpu_heavy": n.cpu_heavy,
        "scale": n.scale != "single",
    }
    return {question for question, blocked in blocks.items() if blocked}


# --- (a) refused answers, through the Python API -----------------------------

# How copier words a refusal: a question's validator ("Validation error for question
# 'X'") or a choice's validator, which disables it ("Invalid choice for 'X'").
REFUSED_PREFIX = r"(?:Validation error for question|Invalid choice for)"

REFUSED = [
    # (question, data, words the message must hold besides the question's name)
    ("project_slug", {"project_slug": "Acme-Orders"}, []),
    ("project_slug", {"project_slug": "1abc"}, []),
    ("project_slug", {"project_slug": "acme--orders"}, []),
    ("project_slug", {"project_slug": "acme-"}, []),
    ("project_slug", {"project_slug": "acme orders"}, []),
    ("project_slug", {"project_slug": "x" * 65}, []),
    ("package_name", {"package_name": "celery"}, ["celery"]),
    ("package_name", {"package_name": "rq"}, ["rq"]),
    ("package_name", {"package_name": "fastapi"}, ["fastapi"]),
    ("package_name", {"package_name": "class"}, ["class"]),
    ("package_name", {"package_name": "match"}, ["match"]),
    ("package_name", {"package_name": "queue"}, ["queue"]),
    ("package_name", {"package_name": "test"}, ["test"]),
    ("package_name", {"package_name": "1abc"}, ["1abc"]),
    ("package_name", {"package_name": "acme-orders"}, ["acme-orders"]),
    # A default derived from another answer is validated too.
    ("package_name", {"project_name": "Celery"}, ["celery"]),
    ("package_name", {"project_slug": "logging"}, ["logging"]),
    ("project_name", {"project_name": "   "}, []),
    (
        "task_backend",
        {"task_backend": "background_tasks", "loss_tolerable": False, "needs_retries": True},
        ["loss_tolerable", "needs_retries"],
    ),
    (
        "task_backend",
        {
            "task_backend": "background_tasks",
            "task_duration": "long",
            "cpu_heavy": True,
            "scale": "multi",
        },
        ["task_duration", "cpu_heavy", "scale"],
    ),
    (
        "task_backend",
        {"task_backend": "background_tasks", "scale": "distributed"},
        ["scale"],
    ),
    # Every need unmet: given up front, the message names them all (the interactive
    # list has room for a count only).
    (
        "task_backend",
        {
            "task_backend": "background_tasks",
            "loss_tolerable": False,
            "needs_retries": True,
            "task_duration": "medium",
            "cpu_heavy": True,
            "scale": "multi",
        },
        ["loss_tolerable", "needs_retries", "task_duration", "cpu_heavy", "scale"],
    ),
]
REFUSED_IDS = [f"{q}-{'-'.join(f'{k}={v}' for k, v in d.items())}"[:60] for q, d, _ in REFUSED]


@pytest.mark.render
@pytest.mark.parametrize(("question", "data", "words"), REFUSED, ids=REFUSED_IDS)
def test_refused_answer_names_its_question_and_writes_nothing(
    tmp_path: Path, question: str, data: dict[str, Any], words: list[str]
) -> None:
    dst = tmp_path / "service"
    with pytest.raises(ValueError, match=rf"{REFUSED_PREFIX} '{question}'") as excinfo:
        copy(dst, data)
    message = str(excinfo.value)
    # The validator's own message names the field too, not only copier's prefix.
    detail = message.split(":", 1)[1]
    assert question in detail, message
    for word in words:
        assert word in detail, message
    assert_nothing_written(dst)


@pytest.mark.render
@pytest.mark.parametrize(
    "data",
    [
        {"package_name": "celery"},
        {"task_backend": "background_tasks", "needs_retries": True},
    ],
    ids=["package", "tier"],
)
def test_refusal_leaves_an_existing_empty_destination_empty(
    tmp_path: Path, data: dict[str, Any]
) -> None:
    dst = tmp_path / "service"
    dst.mkdir()
    with pytest.raises(ValueError, match=REFUSED_PREFIX):
        copy(dst, data)
    assert dst.is_dir()
    assert_nothing_written(dst)


@pytest.mark.render
def test_background_tasks_refusal_names_only_the_unmet_needs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=rf"{REFUSED_PREFIX} 'task_backend'") as excinfo:
        copy(
            tmp_path / "service",
            {"task_backend": "background_tasks", "loss_tolerable": False, "needs_retries": True},
        )
    detail = str(excinfo.value).split(":", 1)[1]
    assert "loss_tolerable" in detail and "needs_retries" in detail
    for met in ("task_duration", "cpu_heavy", "scale", "scheduling"):
        assert met not in detail, detail
    assert_nothing_written(tmp_path / "service")


@pytest.mark.render
def test_invalid_choice_names_its_question(tmp_path: Path) -> None:
    dst = tmp_path / "service"
    with pytest.raises(ValueError, match="task_backend"):
        copy(dst, {"task_backend": "kubernetes"})
    assert_nothing_written(dst)


@pytest.mark.render
@pytest.mark.parametrize(
    "data",
    [
        {"task_backend": "background_tasks", "scheduling": "cron"},
        {"task_backend": "background_tasks", "scheduling": "interval"},
        {"project_slug": "acme-orders", "package_name": "acme_orders"},
    ],
    ids=["bg-cron", "bg-interval", "good-names"],
)
def test_accepted_answers_pass_validation(tmp_path: Path, data: dict[str, Any]) -> None:
    # pretend: validation runs in full, nothing is written.
    worker = copy(tmp_path / "service", data, pretend=True, exclude=["*"])
    for key, value in data.items():
        assert worker.answers.combined[key] == value
    assert_nothing_written(tmp_path / "service")


# --- (b) refused answers, through the CLI -------------------------------------


@pytest.mark.render
@pytest.mark.parametrize(
    ("answer", "question"),
    [
        ("package_name=celery", "package_name"),
        ("project_slug=Bad_Slug", "project_slug"),
        ("task_backend=background_tasks", "task_backend"),
    ],
)
def test_cli_refusal_exits_non_zero_names_the_field_and_writes_nothing(
    tmp_path: Path, answer: str, question: str
) -> None:
    dst = tmp_path / "service"
    extra = ["--data", "needs_retries=true"] if question == "task_backend" else []
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "copier",
            "copy",
            "--trust",
            "--defaults",
            "--vcs-ref",
            "HEAD",
            "--data",
            answer,
            *extra,
            str(REPO_ROOT),
            str(dst),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert question in output
    # docs/architecture.md ("Questions"): copier reports it as its own validation error; any other
    # traceback would be a bug in the template.
    assert re.search(rf"{REFUSED_PREFIX} '{question}'", output), output[-2000:]
    assert_nothing_written(dst)


# --- (c) the task_backend default is the engine's recommendation --------------

DEFAULT_CASES = [
    # (answers, the tier docs/architecture.md's rules give, written out by hand)
    ({}, "background_tasks"),
    ({"scheduling": "interval"}, "background_tasks"),
    ({"scheduling": "cron"}, "background_tasks"),
    ({"loss_tolerable": False}, "rq"),
    ({"needs_retries": True}, "rq"),
    ({"task_duration": "medium", "scheduling": "interval"}, "rq"),
    ({"scale": "multi"}, "rq"),
    ({"task_duration": "long"}, "celery"),
    ({"loss_tolerable": False, "scheduling": "cron"}, "celery"),
    ({"scale": "distributed"}, "celery"),
]
DEFAULT_IDS = ["-".join(f"{k}={v}" for k, v in d.items()) or "defaults" for d, _ in DEFAULT_CASES]


def recorded_answers(dst: Path, data: dict[str, Any]) -> dict[str, Any]:
    """The answers copier records in a real render's ``.copier-answers.yml``. A render
    that fails fails the test: there is no weaker fallback (a pretend run that skipped
    every file once stood in for it, and hid whatever broke the render)."""
    copy(dst, data)
    answers: dict[str, Any] = yaml.safe_load((dst / ".copier-answers.yml").read_text())
    return answers


@pytest.mark.render
@pytest.mark.parametrize(("data", "tier"), DEFAULT_CASES, ids=DEFAULT_IDS)
def test_task_backend_default_is_the_recommendation(
    tmp_path: Path, data: dict[str, Any], tier: str
) -> None:
    assert decision.recommend(Needs.from_answers(data)).tier == tier
    answers = recorded_answers(tmp_path / "service", data)
    assert answers["task_backend"] == tier
    for key, value in data.items():
        assert answers[key] == value


# --- copier.yml wiring, every combination (no rendering) ----------------------


@pytest.fixture(scope="module")
def questions() -> dict[str, Any]:
    return yaml.safe_load(COPIER_YML.read_text())


def choice_values(spec: dict[str, Any]) -> list[Any]:
    choices = spec["choices"]
    values = list(choices.values()) if isinstance(choices, dict) else list(choices)
    # A choice with its own validator is written {value: ..., validator: ...}.
    return [v["value"] if isinstance(v, dict) else v for v in values]


def test_need_questions_match_the_engine(questions: dict[str, Any]) -> None:
    for field in dataclasses.fields(Needs):
        spec = questions[field.name]
        assert spec["default"] == field.default, field.name
        assert spec.get("help"), field.name
    assert choice_values(questions["task_duration"]) == ["short", "medium", "long"]
    assert choice_values(questions["scheduling"]) == ["none", "interval", "cron"]
    assert choice_values(questions["scale"]) == ["single", "multi", "distributed"]
    assert choice_values(questions["task_backend"]) == ["background_tasks", "rq", "celery"]
    for name in ("loss_tolerable", "needs_retries", "cpu_heavy"):
        assert questions[name]["type"] == "bool"


def test_every_question_has_help_and_default(questions: dict[str, Any]) -> None:
    for name, spec in questions.items():
        if name.startswith("_"):
            continue
        assert spec.get("help"), name
        assert "default" in spec, name


def test_task_backend_is_asked_after_the_needs(questions: dict[str, Any]) -> None:
    order = [name for name in questions if not name.startswith("_")]
    for field in dataclasses.fields(Needs):
        assert order.index(field.name) < order.index("task_backend"), field.name


ALL = list(decision.all_needs())


# What copier puts in the render context: the --data answers, and --defaults.
ASKED_IN_A_LIST = {"data": {}, "defaults": False}
GIVEN_WITH_DATA = {"data": {"task_backend": "background_tasks"}, "defaults": False}
WITH_DEFAULTS = {"data": {}, "defaults": True}


@pytest.mark.parametrize("tier", decision.TIERS)
def test_copier_yml_default_help_and_validator_over_every_combination(
    questions: dict[str, Any], tier: str
) -> None:
    env = SandboxedEnvironment(extensions=[decision.DecisionExtension, NamesExtension])
    spec = questions["task_backend"]
    default = env.from_string(spec["default"])
    help_ = env.from_string(spec["help"])
    # Each tier's choice carries its own validator: copier disables the choice
    # (interactive) or refuses it (--data) when the validator says why.
    [(title, choice)] = [(t, c) for t, c in spec["choices"].items() if c["value"] == tier]
    validator = env.from_string(choice["validator"])
    for needs in ALL:
        context = {
            "project_name": "Acme Orders",
            "project_slug": "acme-orders",
            "package_name": "acme_orders",
            **dataclasses.asdict(needs),
        }
        recommended = decision.recommend(needs).tier
        assert default.render(context) == recommended, needs
        assert recommended in help_.render(context), needs
        unmet = bg_unmet(needs) if tier == "background_tasks" else set()
        accepted = not unmet
        for conf in (None, ASKED_IN_A_LIST, GIVEN_WITH_DATA, WITH_DEFAULTS):
            rendered = {**context, "_copier_conf": conf} if conf else context
            message = validator.render(rendered).strip()
            assert (message == "") == accepted, (needs, conf, message)
            if accepted:
                continue
            if conf is ASKED_IN_A_LIST:
                # The disabled choice's line, as questionary draws it, fits 80 columns.
                line = disabled_line(title, message)
                assert len(line) <= 80, line
                assert message == decision.list_reason(tier, needs)
            else:
                # Copier's error: every unmet need, by question name.
                for question in unmet:
                    assert question in message, (needs, message)
                assert message == decision.refusal(tier, needs)


def disabled_line(title: str, reason: str) -> str:
    """The line questionary draws for a disabled choice ``title`` with ``reason``."""
    control = InquirerControl([Choice(title, value="x", disabled=reason), Choice("other")])
    text = "".join(token[1] for token in control._get_choice_tokens())
    return text.split("\n")[0]


def test_disabled_line_is_what_the_engine_sizes_its_reason_for() -> None:
    assert disabled_line("Title (x)", "why") == "   - Title (x) (why)"
    assert disabled_line("Title (x)", "why") == decision.LIST_LINE.format(
        title="Title (x)", reason="why"
    )


def test_task_backend_titles_are_the_engines(questions: dict[str, Any]) -> None:
    # decision.list_reason sizes the reason to the title beside it.
    choices = questions["task_backend"]["choices"]
    assert {c["value"]: title for title, c in choices.items()} == decision.TITLES


@pytest.mark.parametrize(
    ("question", "value", "accepted"),
    [
        ("project_slug", "acme-orders", True),
        ("project_slug", "Acme", False),
        ("package_name", "acme_orders", True),
        ("package_name", "redis", False),
        ("project_name", "Acme", True),
        ("project_name", " ", False),
    ],
)
def test_copier_yml_name_validators(
    questions: dict[str, Any], question: str, value: str, accepted: bool
) -> None:
    env = SandboxedEnvironment(extensions=[NamesExtension])
    message = env.from_string(questions[question]["validator"]).render({question: value}).strip()
    assert (message == "") == accepted, message
    if not accepted:
        assert question in message


@pytest.mark.parametrize(
    ("project_name", "slug", "package"),
    [
        ("Acme Orders", "acme-orders", "acme_orders"),
        ("Café Ünïcode", "cafe-unicode", "cafe_unicode"),
    ],
)
def test_copier_yml_name_defaults(
    questions: dict[str, Any], project_name: str, slug: str, package: str
) -> None:
    env = SandboxedEnvironment(extensions=[NamesExtension])
    rendered_slug = env.from_string(questions["project_slug"]["default"]).render(
        project_name=project_name
    )
    assert rendered_slug == slug
    rendered_package = env.from_string(questions["package_name"]["default"]).render(
        project_slug=rendered_slug
    )
    assert rendered_package == package


@pytest.mark.render
def test_name_defaults_through_copier(tmp_path: Path) -> None:
    worker = copy(
        tmp_path / "service", {"project_name": "Café Ünïcode"}, pretend=True, exclude=["*"]
    )
    assert worker.answers.combined["project_slug"] == "cafe-unicode"
    assert worker.answers.combined["package_name"] == "cafe_unicode"


# --- (d) the interactive list, in a real 80x24 terminal -----------------------


def keys_to_the_tier(questions: dict[str, Any], answers: dict[str, str]) -> list[tuple[str, str]]:
    """(words of each question's help, the keys that answer it) for every question
    before task_backend: Enter takes the default unless ``answers`` has other keys."""
    steps = []
    for name, spec in questions.items():
        if name == "task_backend":
            return steps
        if not name.startswith("_"):
            steps.append((str(spec["help"])[:40], answers.get(name, ENTER)))
    raise AssertionError("task_backend is not asked")


@pytest.mark.render
def test_interactive_list_shows_the_refused_tiers_reason_whole_in_80_columns(
    tmp_path: Path, questions: dict[str, Any]
) -> None:
    # loss_tolerable No, scale "several API instances": rq is recommended, and
    # background_tasks is refused for loss_tolerable and scale.
    needs = Needs(loss_tolerable=False, scale="multi")
    steps = keys_to_the_tier(questions, {"loss_tolerable": "n", "scale": DOWN + ENTER})
    titles = {c["value"]: title for title, c in questions["task_backend"]["choices"].items()}
    reason = decision.list_reason("background_tasks", needs)
    assert reason == "refused: loss_tolerable, scale"
    expected_list = [
        "   (Use arrow keys)",
        f"   - {titles['background_tasks']} ({reason})",
        f" » {titles['rq']}",  # the default, the recommendation
        f"   {titles['celery']}",
    ]
    help_lines = decision.help_text(needs).splitlines()
    dst = tmp_path / "service"
    temp = tmp_path / "tmp"  # copier's own temporary files, to see that none is left
    temp.mkdir()
    argv = [sys.executable, "-m", "copier", "copy", "--trust", "--vcs-ref", "HEAD"]
    argv += [str(REPO_ROOT), str(dst)]

    def list_drawn(rows: list[str]) -> bool:
        """The instruction, then the last choice below it: the whole list is drawn."""
        marks = [i for i, row in enumerate(rows) if row == expected_list[0]]
        return bool(marks) and any(titles["celery"] in row for row in rows[marks[-1] :])

    with Terminal(argv, cwd=tmp_path, env={"TMPDIR": str(temp)}, columns=80, lines=24) as term:
        for words, keys in steps:
            term.wait_for(words)
            term.send(keys)
        rows = [row for row in term.wait_for(list_drawn) if row]

        # The list: each line whole, the refused tier's reason to its closing parenthesis.
        assert rows[-len(expected_list) :] == expected_list, "\n".join(rows)
        assert all(wcswidth(row) <= 80 for row in rows)
        # The help above it, whole: no line cut at the 80th column.
        start = rows.index(f"🎤 {help_lines[0]}")
        assert rows[start + 1 : start + len(help_lines)] == help_lines[1:], "\n".join(rows)
        assert rows[start + len(help_lines)] == expected_list[0]

        # Abort, as a user would with Ctrl-C: copier stops and writes nothing.
        term.send(CTRL_C)
        term.wait_for("stopped by user")
        assert term.wait_exit() != 0
    assert not dst.exists()
    assert not any(temp.iterdir()), sorted(p.name for p in temp.iterdir())
