"""What ``copier copy`` and ``copier update`` need beyond the questions.

Plain Python, exposed to Jinja by :class:`LifecycleExtension` at the bottom:

- :func:`recorded_answers`: the answers file records the template's source so that
  ``copier update`` finds it again. Copier writes the path as it was typed; a relative one
  (``copier copy --trust . ../my-service``) would later be read relative to the project
  and the update would fail. Such a path is recorded as the absolute path it meant.
- :func:`new_secret`: random local passwords for the ``.env`` written at copy time.
- :func:`env_todo`: after an update (a tier switch above all), what the user's ``.env``
  lacks for the new tier. ``.env`` is the user's file and copier never touches it, so
  the update prints exactly the lines to add instead.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import pass_context
from jinja2.ext import Extension

#: Sources copier reads as URLs or VCS shortcuts, never as local paths.
_REMOTE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|gh:|gl:|git@|[\w.-]+@[\w.-]+:)")


def absolute_source(source: str, cwd: str | None = None) -> str:
    """``source`` as ``copier update`` can find it from anywhere: a relative local path
    becomes absolute (resolved against ``cwd``, the directory copier ran in)."""
    if not source or _REMOTE.match(source) or os.path.isabs(source):
        return source
    return str(Path(cwd or os.getcwd(), source).resolve())


def recorded_answers(answers: Mapping[str, Any]) -> dict[str, Any]:
    """The answers copier remembers, with ``_src_path`` made absolute (see above)."""
    recorded = dict(answers)
    if isinstance(recorded.get("_src_path"), str):
        recorded["_src_path"] = absolute_source(recorded["_src_path"])
    return recorded


def new_secret() -> str:
    """A random password made of letters and digits only (it goes into URLs)."""
    return secrets.token_hex(16)


def read_env(text: str) -> dict[str, str]:
    """``KEY=value`` lines of a ``.env`` file (comments, blanks and ``export`` skipped,
    one level of quotes removed)."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.removeprefix("export ").split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def env_additions(
    env: Mapping[str, str], tier: str, broker: str | None, monitoring: bool
) -> list[str]:
    """The lines ``env`` (a parsed ``.env``) lacks for ``tier``: the secrets compose
    requires and the settings that cannot be derived from what is there. Every other
    setting has a default or is derived (Celery's URLs from ``REDIS_URL``)."""
    needed: list[tuple[str, str]] = [("JOBS_ADMIN_TOKEN", new_secret())]
    if tier in ("rq", "celery"):
        needed.append(("REDIS_PASSWORD", new_secret()))
    if tier == "rq" and monitoring:
        needed.append(("DASHBOARD_PASSWORD", new_secret()))
    if tier == "celery" and broker == "rabbitmq":
        needed += [("RABBITMQ_DEFAULT_USER", "app"), ("RABBITMQ_DEFAULT_PASS", new_secret())]
    if tier == "celery" and monitoring:
        needed.append(("FLOWER_BASIC_AUTH", f"admin:{new_secret()}"))
    lines = [f"{name}={value}" for name, value in needed if not env.get(name)]
    if tier == "celery":
        broker_url = env.get("CELERY_BROKER_URL", "")
        on_amqp = broker_url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")
        if broker == "rabbitmq" and not on_amqp:
            lines.append("CELERY_BROKER_URL=amqp://localhost:5672//")
        elif broker == "redis" and on_amqp:
            lines.append("CELERY_BROKER_URL=redis://localhost:6379/0")
    return lines


def env_todo(dst: str | os.PathLike[str], answers: Mapping[str, Any]) -> str:
    """What to tell the user after an update about their ``.env``."""
    path = Path(dst) / ".env"
    tier = str(answers.get("task_backend", ""))
    if not path.is_file():
        return "There is no .env: copy .env.example to .env and fill in its empty secrets."
    env = read_env(path.read_text(errors="replace"))
    lines = env_additions(env, tier, answers.get("celery_broker"), bool(answers.get("monitoring")))
    if lines:
        changed = [line for line in lines if line.startswith("CELERY_BROKER_URL=")]
        verb = "add (or change)" if changed else "add"
        parts = [
            f"Your .env is yours: copier left it as it was. For {tier}, {verb} these lines",
            "(new random passwords; .env.example lists every setting):",
            *(f"    {line}" for line in lines),
        ]
        if any(line.startswith("JOBS_ADMIN_TOKEN=") for line in lines):
            parts += [
                "JOBS_ADMIN_TOKEN is new: the job routes (/jobs, /schedules) now want",
                "`Authorization: Bearer <it>`. Until .env (or your deployment) sets it they",
                "refuse everyone with 401, and the API's log says so at start.",
            ]
    else:
        parts = [f"Your .env (left as it was) has what {tier} needs."]
    references = sorted(name for name, value in env.items() if "${" in value)
    if references:
        parts += [
            "",
            f"These settings of .env refer to other variables (${{...}}): {', '.join(references)}.",
            "Compose and the settings expand such references, `honcho start` does not: write",
            "them as .env.example does, URLs without a password (REDIS_PASSWORD is added).",
        ]
    return "\n".join(parts)


class LifecycleExtension(Extension):
    """Jinja: the ``recorded_answers`` filter and the ``new_secret()`` and ``env_todo()``
    globals (the last reads the answers and the destination of the running copier)."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)

        @pass_context
        def todo(context: Any) -> str:
            return env_todo(str(context["_copier_conf"]["dst_path"]), context)

        environment.filters["recorded_answers"] = recorded_answers
        environment.globals.update(new_secret=new_secret, env_todo=todo)
