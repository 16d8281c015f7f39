"""The template's benchmark: every figure side by side with its reference, per tier.

    bash scripts/bench.sh            # the full run (about 5 minutes on 2 cores)
    bash scripts/bench.sh --quick    # a smoke run (rq only, short, 1 repeat)
    bash scripts/bench.sh --against cd53649   # and, side by side, a release's project

(scripts/bench.sh installs uv, wrk and redis-server when missing, then runs this file.)

For each tier it renders a project from this checkout (timing ``copier copy``), builds its
virtualenv, starts a throwaway Redis on a free loopback port, and measures, repeated
``--repeats`` times and reported as min/median/max:

* request path: req/s and p50/p99 of ``POST /examples/report`` (an enqueue) and
  ``POST /examples/welcome-email`` (an enqueue after email validation) against
  ``GET /health`` of the same app, served by one uvicorn process, loaded by wrk
  (16 connections, ``--seconds`` each); and the req/s of the Job API's other paths: a
  report with a caller's id (a new one per request), a welcome email delayed an hour, and
  ``GET /jobs/{id}``;
* the job controls through the project's ``JobQueue`` (its ``bench`` command), 16 at
  once, against its plain enqueue: enqueue with an id, delayed enqueue, status, cancel;
* worker throughput: no-op jobs/s of the project's worker (its ``bench`` command) against
  the same library with its default settings and worker command (``stock.py``), and
  against ``redis-benchmark`` LPUSH (unpipelined, 50 clients) on the same Redis; and
  against the stock library with only the reliability settings the template keeps added
  (acks late, prefetch 1, JSON), to tell what they cost from the template's own overhead;
* enqueue-to-finished latency p50/p99 at half the measured throughput;
* worker start-up: seconds from launch until the first job ran (project and stock);
* the metrics' cost: ``POST /examples/report`` req/s of the app against the same app with
  ``METRICS_ENABLED=false``, and against a second copy with metrics on (the noise of two
  identical servers), loaded in turn in a symmetric order in each round; and ``GET /metrics`` (req/s
  against ``GET /health``, p50) with ``--waiting`` jobs (10,000) waiting on a queue;
* API start-up: seconds from launching uvicorn until ``GET /health`` answers (the better
  of two launches in each round);
* ``copier copy`` wall time against copier's own start-up (``copier --version``).

With ``--against REF`` (a commit of this repository: a release's, a branch, ``HEAD~3``),
each tier also gets a project rendered from REF's template (``git archive`` into a
throwaway git repository, then the same ``copier copy``), with its own virtualenv and
Redis, and every figure above is measured for both in the same run, the two projects
taking turns in each round (REF first, then this checkout, then the reverse in the next
round) so that a drift of the machine weighs on both alike. A figure REF's project cannot
give shows as "-". A second table then sets side by side what a release is held to: each
enqueue path's req/s over ``GET /health`` (this / REF, goal >= 0.95), the API's and the
worker's start-up (this / REF, goal <= 1.05), and worker throughput over the stock
library's (goal >= 0.9, for each).

It prints a table and writes JSON (``--json``, default benchmarks/results/latest.json).
Needs: uv, redis-server and redis-benchmark, wrk (``apt-get install wrk redis-server``).
Nothing here is a pass/fail test: figures go to the table, goals are printed beside them.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Loopback ports without a race (tests/ports.py): the test suite runs this script too.
sys.path.insert(0, str(REPO / "tests"))
from ports import free_port  # noqa: E402

TIERS = ("background_tasks", "rq", "celery")
PACKAGE = "bench_service"
#: The label of the project rendered from this checkout (a REF's project is labelled REF).
THIS = "this checkout"

#: The issue's goals: ratio (or seconds) and the direction that meets them.
GOALS: dict[tuple[str, str], tuple[str, float]] = {
    ("rq", "report / health req/s"): (">=", 0.35),
    ("celery", "report / health req/s"): (">=", 0.35),
    ("background_tasks", "report / health req/s"): (">=", 0.7),
    ("rq", "worker / stock jobs/s"): (">=", 0.9),
    ("celery", "worker / stock jobs/s"): (">=", 0.9),
    ("background_tasks", "worker / stock jobs/s"): (">=", 0.9),
    ("rq", "worker start-up s"): ("<", 0.6),
    ("celery", "worker start-up s"): ("<", 1.5),
}

#: ``--against REF``: what the issue holds this checkout to, beside REF's project in the
#: same run (figure: direction and bound of this / REF, or of each project's own ratio).
AGAINST_GOALS: dict[str, tuple[str, float]] = {
    "enqueue": (">=", 0.95),  # each enqueue path's req/s / GET /health, this / REF
    "start-up": ("<=", 1.05),  # API and worker start-up seconds, this / REF
    "worker / stock jobs/s": (">=", 0.9),  # each project's, against its own stock worker
}
#: The enqueue paths (wrk runs) whose req/s over ``GET /health`` must not regress.
ENQUEUE_PATHS = ("report", "welcome-email", "report with id", "welcome-email delayed")

COMPARE = {">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt}


def log(message: str) -> None:
    print(f"-- {message}", file=sys.stderr, flush=True)


def require(*binaries: str) -> None:
    missing = [binary for binary in binaries if not shutil.which(binary)]
    if missing:
        sys.exit(
            f"missing {', '.join(missing)}: install them from Debian's packages "
            f"(apt-get install -y wrk redis-server; redis-benchmark comes with redis-server)"
        )


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    return env


# --- servers ----------------------------------------------------------------------------


class Redis:
    """A throwaway redis-server (AOF everysec, noeviction, as compose runs it)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir / f"redis-{self.port}"
        self.dir.mkdir()
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", str(self.dir), "--save", "", "--appendonly", "yes",
             "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
             "--logfile", str(self.dir / "redis.log")],
        )  # fmt: skip
        wait_port(self.port)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def flush(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "flushall"], check=True,
                       capture_output=True)  # fmt: skip

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


# --- --against REF: a commit's template -------------------------------------------------


class RefError(ValueError):
    """``--against`` names nothing this repository's history holds."""


def git_env() -> dict[str, str]:
    """The environment for git: none of a caller's ``GIT_DIR`` and the like (a hook's), so
    that git works on the repository or directory it is run in, and no other."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


def git(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, env=git_env(), check=check,
                          capture_output=True, text=True)  # fmt: skip


def resolve_ref(ref: str, repo: Path = REPO) -> str:
    """The full id of the commit ``ref`` names (a commit id, short or long, a branch,
    ``HEAD~3``, ...) in this repository; :class:`RefError`, with a message saying why,
    when git knows no such commit or the commit holds no template."""
    if not ref.strip() or ref.startswith("-"):
        raise RefError(f"--against {ref!r}: give a commit of this repository (e.g. cd53649)")
    found = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo, check=False)
    if found.returncode != 0 or not found.stdout.strip():
        shallow = git("rev-parse", "--is-shallow-repository", cwd=repo, check=False)
        hint = (
            "; this clone is shallow: `git fetch --unshallow` brings the rest of the history"
            if shallow.stdout.strip() == "true"
            else " (a tag this clone lacks? give its commit id, e.g. cd53649 for v0.4.0)"
        )
        raise RefError(f"--against {ref}: no such commit in this repository's history{hint}")
    commit = found.stdout.strip()
    if git("cat-file", "-e", f"{commit}:copier.yml", cwd=repo, check=False).returncode != 0:
        raise RefError(f"--against {ref}: commit {commit[:12]} has no copier.yml (no template)")
    return commit


def export_template(commit: str, destination: Path, repo: Path = REPO) -> Path:
    """The template as it was at ``commit``: ``git archive`` of it unpacked in
    ``destination``, committed to a git repository of its own there, so that ``copier
    copy --vcs-ref HEAD`` renders it exactly as it renders this checkout (a clone)."""
    destination.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=repo,
                             env=git_env(), check=True, capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@localhost",
                "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"]  # fmt: skip
    git("init", "--quiet", cwd=destination)
    git("add", "--all", cwd=destination)
    git(*identity, "commit", "--quiet", "--no-verify", "-m", f"git archive {commit}",
        cwd=destination)  # fmt: skip
    return destination


@dataclass
class Source:
    """Where a measured project comes from: this checkout, or REF's exported template."""

    label: str
    template: Path
    commit: str | None = None


@dataclass
class Project:
    """One tier's project from one source, with its own Redis, servers and figures."""

    source: Source
    tier: str
    path: Path
    figures: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    redis: Redis | None = None
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    broken: bool = False

    @property
    def name(self) -> str:
        return self.tier if self.source.label == THIS else f"{self.tier} @ {self.source.label}"

    def measure(self, what: str, run: Callable[[], Any]) -> Any:
        """``run()``; for REF's project, None when it fails (logged), so that a figure an
        older project cannot give is "-" in the table, never the end of the run."""
        if self.source.label == THIS:
            return run()
        try:
            return run()
        except Exception as error:  # any failure of the old project's, whatever it is
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            log(f"{self.name}: {what} failed, reported as '-' ({first[:200]})")
            return None


def in_turn(projects: list[Project], attempt: int) -> list[Project]:
    """The projects in the order of round ``attempt``: REF first, then this checkout, and
    the reverse in the next round (ABBA...), so that a drift weighs on both alike."""
    live = [project for project in projects if not project.broken]
    return live[::-1] if attempt % 2 == 0 else live


# --- measurements -----------------------------------------------------------------------


def render(tier: str, destination: Path, template: Path = REPO) -> float:
    """``copier copy`` of ``template``: this checkout (HEAD plus uncommitted changes) or a
    REF's exported template; wall seconds."""
    args = [
        "uv", "run", "--quiet", "copier", "copy", "--trust", "--defaults", "--quiet",
        "--vcs-ref", "HEAD", "--data", "project_name=Bench Service",
        "--data", f"task_backend={tier}",
        "--data", f"loss_tolerable={'true' if tier == 'background_tasks' else 'false'}",
        str(template), str(destination),
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"copier copy of {template} failed:\n{done.stderr[-3000:]}")
    return elapsed


def copier_startup() -> float:
    start = time.perf_counter()
    subprocess.run(["uv", "run", "--quiet", "copier", "--version"], cwd=REPO, check=True,
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - start


WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)


#: A POST whose body holds a job id of the client's, new for each request: ``{n}`` is the
#: request's number (one wrk thread), ``{run}`` tells one wrk run from the others.
NUMBERED_POST = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format({body}, n))
end
"""


#: The operators' token of the measured APIs (JOBS_ADMIN_TOKEN): every request carries it,
#: as an operator's or a trusted client's would (the report route and GET /jobs/{id} want it).
OPERATOR_TOKEN = "bench-operator-token"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def wrk(url: str, seconds: float, body: str | None, workdir: Path) -> dict[str, float]:
    """wrk's figures for ``url``: a GET, or a POST of ``body`` (JSON); a body holding
    ``%d`` gets each request's number there (a new job id per request)."""
    args = ["wrk", "-t1", "-c16", f"-d{seconds:g}s", "--latency", "--timeout", "5s"]
    args += ["-H", f"Authorization: {OPERATOR['Authorization']}"]
    if body is not None:
        script = workdir / "post.lua"
        if "%d" in body:
            script.write_text(NUMBERED_POST.replace("{body}", json.dumps(body)))
        else:
            script.write_text(
                'wrk.method = "POST"\n'
                f"wrk.body = {json.dumps(body)}\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], check=True, capture_output=True, text=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} error responses\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    latency = {f"p{q}_ms": float(v) * scale[u] for q, v, u in WRK_LATENCY.findall(out)}
    return {"per_second": rate, **latency}


def launch(project: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(project / ".venv/bin/uvicorn"), f"{PACKAGE}.main:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=project, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def serve(project: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = launch(project, env, port)
    try:
        wait_port(port)
    except TimeoutError:
        stop(process)
        raise
    return process


def api_startup(project: Path, env: dict[str, str], timeout: float = 60) -> float:
    """Seconds from launching the API (one uvicorn process, as ``serve``) until
    ``GET /health`` answers 200; the server is stopped after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/health"
    start = time.perf_counter()
    process = launch(project, env, port)
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:  # loopback only
                    if answer.status == 200:
                        return time.perf_counter() - start
            except (urllib.error.URLError, OSError):
                pass  # not listening yet (refused), or not ready (an error status)
            if process.poll() is not None:
                raise RuntimeError(f"the API exited ({process.returncode}) before it answered")
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"GET /health did not answer in {timeout:g} s")
            time.sleep(0.01)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def post_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **OPERATOR},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # loopback only
        return json.loads(answer.read())


def lpush_rate(redis: Redis) -> float:
    out = subprocess.run(
        ["redis-benchmark", "-p", str(redis.port), "-t", "lpush", "-n", "100000", "-c", "50",
         "-P", "1", "-q"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return float(re.findall(r"LPUSH[^:]*:\s+([\d.]+) requests per second", out)[-1])


WAITING_LINE = re.compile(r'^background_jobs_waiting\{queue="default"\} ([0-9.e+]+)$', re.M)


def waiting(base: str) -> int:
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as answer:  # loopback only
        found = WAITING_LINE.search(answer.read().decode())
    return int(float(found.group(1))) if found else 0


def scrape_figures(
    tier: str, base: str, options: argparse.Namespace, workdir: Path, name: str | None = None
) -> dict[str, Any]:
    """``GET /metrics`` loaded by wrk with at least ``options.waiting`` jobs waiting on
    the default queue (no worker runs): topped up through the API after the enqueue
    runs. The in-process tier runs its jobs at once: nothing waits there."""
    count = waiting(base)
    if tier != "background_tasks" and count < options.waiting:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda _: post_json(f"{base}/examples/report", {"seconds": 0}),
                          range(options.waiting - count)))  # fmt: skip
        count = waiting(base)
    log(f"{name or tier}: GET /metrics with {count} jobs waiting")
    return {"waiting": count, "metrics": wrk(f"{base}/metrics", options.seconds, None, workdir),
            "health": wrk(f"{base}/health", options.seconds, None, workdir)}  # fmt: skip


def python_json(project: Path, args: list[str], env: dict[str, str], timeout: float) -> Any:
    done = subprocess.run(
        [str(project / ".venv/bin/python"), *args], cwd=project, env=env,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(
            f"python {' '.join(args[:2])} exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


#: The request paths wrk loads in each round (the body's ``RUN`` is the round's number).
ENDPOINTS: dict[str, tuple[str, str | None]] = {
    "health": ("/health", None),
    "report": ("/examples/report", '{"seconds": 0}'),
    "welcome-email": ("/examples/welcome-email", '{"email": "a@example.com"}'),
    # Job API 2: a caller's id (new for each request), a delay, a status read.
    "report with id": ("/examples/report", '{"report_id": "wrk-RUN-%d"}'),
    "welcome-email delayed": (
        "/examples/welcome-email",
        '{"email": "a@example.com", "send_in_seconds": 3600}',
    ),
    "status": ("/jobs/{id}", None),  # of a job posted just before the run
}
REPORT = '{"seconds": 0}'


def tier_env(tier: str, redis: Redis) -> dict[str, str]:
    env = {
        **clean_env(),
        "LOG_LEVEL": "WARNING",
        "JOB_TIMEOUT_SECONDS": "30",
        # This checkout's job routes want it; an older project (v0.4.0) ignores it.
        "JOBS_ADMIN_TOKEN": OPERATOR_TOKEN,
    }
    if tier != "background_tasks":
        env["REDIS_URL"] = redis.url(1 if tier == "celery" else 0)
    if tier == "celery":
        env["CELERY_BROKER_URL"] = redis.url(0)
        env["CELERY_RESULT_BACKEND"] = redis.url(1)
    return env


def start_servers(project: Project, workdir: Path) -> dict[str, str]:
    """The project's API, loaded by every wrk run; and three fresh servers beside it,
    loaded only by the metrics comparison (a server that has taken every other run is
    slower: the in-process tier's registry, for one, is full): the app with metrics on,
    the same app with them off (no /metrics route, nothing recorded), and a second copy
    with them on, for the noise of two identical servers (A/A). Their base URLs."""
    urls: dict[str, str] = {}
    for name, extra in (("base", {}), ("on", {}), ("off", {"METRICS_ENABLED": "false"}),
                        ("on again", {})):  # fmt: skip
        port = free_port()
        project.servers.append(serve(project.path, {**project.env, **extra}, port))
        urls[name] = f"http://127.0.0.1:{port}"
    for name in ("on", "off", "on again"):  # warm each server up once
        wrk(f"{urls[name]}/examples/report", 1, REPORT, workdir)
    return urls


def http_round(
    project: Project, urls: dict[str, str] | None, attempt: int,
    options: argparse.Namespace, workdir: Path,
) -> None:  # fmt: skip
    """One round of the request path for ``project``: API start-up (the better of two
    launches; one in a ``--quick`` run), each endpoint under wrk, then the metrics
    comparison."""
    figures = project.figures
    launches = [project.measure("API start-up", partial(api_startup, project.path, project.env))
                for _ in range(1 if options.quick else 2)]  # fmt: skip
    kept = [seconds for seconds in launches if seconds is not None]
    figures["api_startup_seconds"].append(min(kept) if kept else None)
    runs = figures["http"]
    if urls is None:  # REF's servers did not start: nothing to load
        for name in [*ENDPOINTS, "metrics on/off"]:
            runs[name].append(None)
        return
    base = urls["base"]

    def load(path: str, body: str | None) -> dict[str, float]:
        if path == "/jobs/{id}":  # a job enqueued just before the run
            path = f"/jobs/{post_json(f'{base}/examples/report', {'seconds': 0})['job_id']}"
        return wrk(f"{base}{path}", options.seconds, body, workdir)

    for name, (path, body) in ENDPOINTS.items():
        if body is not None:
            body = body.replace("RUN", f"{attempt}")
        runs[name].append(project.measure(f"wrk {name}", partial(load, path, body)))
    # Symmetric order (on, off, again, again, off, on): a drift of the machine during the
    # round weighs the same on each.
    rates: dict[str, float] | None = dict.fromkeys(("on", "off", "on again"), 0.0)
    for name in ("on", "off", "on again", "on again", "off", "on"):
        run = project.measure(
            f"wrk metrics {name}",
            partial(wrk, f"{urls[name]}/examples/report", options.seconds, REPORT, workdir),
        )
        if run is None or rates is None:
            rates = None
            continue
        rates[name] += run["per_second"]
    runs["metrics on/off"].append(rates)


def worker_round(project: Project, options: argparse.Namespace) -> None:
    """One round of the worker figures: the project's ``bench`` command, the stock
    library's worker, and (RQ, Celery) stock with the template's reliability settings."""
    assert project.redis is not None
    figures, env, path = project.figures, project.env, project.path
    stock = [str(REPO / "benchmarks/stock.py"), project.tier, project.redis.url(2),
             str(options.jobs)]  # fmt: skip
    figures["bench"].append(project.measure("bench command", partial(
        python_json, path,
        ["-m", f"{PACKAGE}.bench", "--json", "--jobs", str(options.jobs),
         "--latency-seconds", str(options.latency_seconds)],
        env, timeout=600,
    )))  # fmt: skip
    project.redis.flush()
    figures["stock"].append(project.measure(
        "stock worker", partial(python_json, path, stock, env, timeout=600)
    ))  # fmt: skip
    project.redis.flush()
    if project.tier != "background_tasks":
        figures["stock_reliable"].append(project.measure(
            "stock worker, reliable", partial(python_json, path, [*stock, "reliable"], env,
                                              timeout=600),
        ))  # fmt: skip
        project.redis.flush()


def bench_tier(
    tier: str, options: argparse.Namespace, workdir: Path, sources: list[Source] | None = None
) -> list[dict[str, Any]]:
    """Every figure of ``tier`` for a project of each source (this checkout, and REF's
    with ``--against``), the projects taking turns in each round (:func:`in_turn`). One
    figures dict per source, in the order of ``sources``."""
    sources = sources or [Source(THIS, REPO)]
    projects: list[Project] = []
    for source in sources:
        path = workdir / (tier if source.label == THIS else f"{tier}-ref")
        projects.append(Project(source=source, tier=tier, path=path, figures={
            "tier": tier, "project": source.label, "commit": source.commit,
            "load_average_before": os.getloadavg(), "copy_seconds": [],
            "api_startup_seconds": [],
            "http": {name: [] for name in [*ENDPOINTS, "metrics on/off"]},
            "bench": [], "stock": [], "stock_reliable": [], "lpush_per_second": [],
        }))  # fmt: skip

    for attempt in range(options.repeats):
        for project in in_turn(projects, attempt):
            destination = project.path
            if attempt:
                destination = project.path.with_name(f"{project.path.name}-copy{attempt}")
            seconds = project.measure("copier copy", partial(
                render, tier, destination, project.source.template))  # fmt: skip
            project.figures["copy_seconds"].append(seconds)
            if seconds is None and attempt == 0:
                project.broken = True
    try:
        for project in projects:
            if project.broken:
                continue
            log(f"{project.name}: rendered in {project.figures['copy_seconds'][0]:.2f} s; uv sync")
            synced = project.measure("uv sync", partial(
                subprocess.run, ["uv", "sync", "--quiet"], cwd=project.path, env=clean_env(),
                check=True,
            ))  # fmt: skip
            if synced is None:
                project.broken = True
                continue
            project.redis = Redis(workdir)
            project.env = tier_env(tier, project.redis)

        urls = {id(p): p.measure("API servers", partial(start_servers, p, workdir))
                for p in projects if not p.broken}  # fmt: skip
        for attempt in range(options.repeats):
            for project in in_turn(projects, attempt):
                log(f"{project.name}: wrk round {attempt + 1}/{options.repeats}")
                http_round(project, urls[id(project)], attempt, options, workdir)
        for project in in_turn(projects, 0):
            base = (urls[id(project)] or {}).get("base")
            project.figures["scrape"] = None if base is None else project.measure(
                "GET /metrics", partial(scrape_figures, tier, base, options, workdir, project.name)
            )  # fmt: skip
            for server in project.servers:
                stop(server)
            project.servers.clear()
            assert project.redis is not None
            project.redis.flush()  # the jobs wrk enqueued: no worker ran them

        for attempt in range(options.repeats):
            for project in in_turn(projects, attempt):
                log(f"{project.name}: bench and stock worker round {attempt + 1}/{options.repeats}")
                worker_round(project, options)
        for attempt in range(options.repeats):
            for project in in_turn(projects, attempt):
                assert project.redis is not None
                project.figures["lpush_per_second"].append(
                    project.measure("redis-benchmark", partial(lpush_rate, project.redis))
                )
    finally:
        for project in projects:
            for server in project.servers:
                stop(server)
            if project.redis is not None:
                project.redis.stop()
    for project in projects:
        project.figures["load_average_after"] = os.getloadavg()
    return [project.figures for project in projects]


# --- the table --------------------------------------------------------------------------


def per_round(runs: list[Any], *keys: str) -> list[float | None]:
    """``run[keys[0]][keys[1]]...`` of each round's figures (a number), None for a round
    that lacks it (a figure an older project cannot give, or a run that failed)."""
    out: list[float | None] = []
    for run in runs:
        value = run
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        out.append(float(value) if isinstance(value, int | float) else None)
    return out


def ratios(values: list[float | None], refs: list[float | None]) -> list[float | None]:
    """``value / ref`` of each round, None where either is missing (or the ref is 0)."""
    return [v / r if v is not None and r else None for v, r in zip(values, refs, strict=False)]


def spread_of(values: list[float | None]) -> dict[str, float] | None:
    """min/median/max of the values present; None when there are none ("-")."""
    kept = [value for value in values if value is not None]
    return spread(kept) if kept else None


def met(op: str, target: float, measured: dict[str, float] | None) -> bool | None:
    return None if measured is None else COMPARE[op](measured["median"], target)


def rows(figures: dict[str, Any], copier_start: list[float]) -> list[dict[str, Any]]:
    """One row per figure: value, reference and their ratio, each as min/median/max ("-"
    where a project, REF's, gives no such figure). The rows are those of the tier, the
    same for every project, whatever it measured."""
    tier = figures["tier"]
    project = figures.get("project", THIS)
    out: list[dict[str, Any]] = []

    def add(
        name: str, values: list[float | None], refs: list[float | None] | None, unit: str
    ) -> None:
        row: dict[str, Any] = {"tier": tier, "project": project, "figure": name, "unit": unit,
                               "value": spread_of(values)}  # fmt: skip
        if refs is not None:
            row["reference"] = spread_of(refs)
            row["ratio"] = spread_of(ratios(values, refs))
        goal = GOALS.get((tier, name))
        if goal is not None:
            op, target = goal
            row["goal"] = f"{op} {target:g}"
            row["met"] = met(op, target, row["ratio"] if refs is not None else row["value"])
        out.append(row)

    http = figures["http"]
    health = per_round(http.get("health", []), "per_second")
    for endpoint in ("report", "welcome-email"):
        runs = http.get(endpoint, [])
        add(f"{endpoint} / health req/s", per_round(runs, "per_second"), health, "req/s")
        for q in ("p50", "p99"):
            add(f"{endpoint} {q} / health {q}", per_round(runs, f"{q}_ms"),
                per_round(http.get("health", []), f"{q}_ms"), "ms")  # fmt: skip
    for endpoint in ("report with id", "welcome-email delayed", "status"):
        add(f"{endpoint} / health req/s", per_round(http.get(endpoint, []), "per_second"),
            health, "req/s")  # fmt: skip
    pairs = http.get("metrics on/off", [])  # each rate a sum of two runs
    on = [None if v is None else v / 2 for v in per_round(pairs, "on")]
    add("report, metrics on / off req/s", on,
        [None if v is None else v / 2 for v in per_round(pairs, "off")], "req/s")  # fmt: skip
    add("report, metrics on / on again (A/A)", on,
        [None if v is None else v / 2 for v in per_round(pairs, "on again")], "req/s")  # fmt: skip
    scrape = [figures.get("scrape")]
    add("jobs waiting at the scrape", per_round(scrape, "waiting"), None, "jobs")
    add("GET /metrics / health req/s", per_round(scrape, "metrics", "per_second"),
        per_round(scrape, "health", "per_second"), "req/s")  # fmt: skip
    add("GET /metrics p50 ms", per_round(scrape, "metrics", "p50_ms"), None, "ms")
    bench, stock = figures.get("bench", []), figures.get("stock", [])
    throughput = per_round(bench, "throughput_per_second")
    add("worker / stock jobs/s", throughput, per_round(stock, "throughput_per_second"), "jobs/s")
    if tier != "background_tasks":
        reliable = per_round(figures.get("stock_reliable", []), "throughput_per_second")
        add("worker / stock+reliability jobs/s", throughput, reliable, "jobs/s")
    add("worker / redis LPUSH", throughput,
        [float(v) if v is not None else None for v in figures.get("lpush_per_second", [])],
        "jobs/s")  # fmt: skip
    plain = per_round(bench, "enqueue_16", "per_second")
    add("enqueue x16 (bench) / s", plain, None, "/s")
    add("enqueue x1 p50 ms", per_round(bench, "enqueue_1", "p50_ms"), None, "ms")
    for key, name in (("enqueue_with_id", "enqueue with id x16"),
                      ("enqueue_delayed", "enqueue delayed x16"),
                      ("status", "status x16"), ("cancel", "cancel x16")):  # fmt: skip
        add(f"{name} / enqueue x16", per_round(bench, "controls", key, "per_second"), plain, "/s")
    add("enqueue-to-finished p50 ms", per_round(bench, "latency", "p50_ms"), None, "ms")
    add("enqueue-to-finished p99 ms", per_round(bench, "latency", "p99_ms"), None, "ms")
    if tier != "background_tasks":  # its jobs run in the API process: no worker starts
        add("worker start-up s", per_round(bench, "startup_seconds"), None, "s")
        add("stock worker start-up s", per_round(stock, "startup_seconds"), None, "s")
    add("API start-up s", list(figures.get("api_startup_seconds", [])), None, "s")
    copies = list(figures.get("copy_seconds", []))
    add("copier copy / copier start-up", copies, list(copier_start[: len(copies)]), "s")
    return out


def against_rows(this: dict[str, Any], ref: dict[str, Any]) -> list[dict[str, Any]]:
    """What the issue holds this checkout to beside REF's project, measured in the same
    rounds: each figure of both projects, round by round, and this / REF of each round
    (min/median/max). Goals are judged on the median."""
    tier, label = this["tier"], ref.get("project", "REF")
    out: list[dict[str, Any]] = []

    def add(
        name: str, mine: list[float | None], theirs: list[float | None], unit: str,
        goal: tuple[str, float] | None, each: bool = False,
    ) -> None:  # fmt: skip
        row: dict[str, Any] = {
            "tier": tier, "figure": name, "unit": unit, "ref": label,
            "this": spread_of(mine), "against": spread_of(theirs),
            "ratio": spread_of(ratios(mine, theirs)),
        }  # fmt: skip
        if goal is not None:
            op, target = goal
            if each:  # each project's own figure against the bound
                row["goal"] = f"each {op} {target:g}"
                row["met"] = met(op, target, row["this"])
                row["ref_met"] = met(op, target, row["against"])
            else:  # this / REF against the bound
                row["goal"] = f"{op} {target:g}"
                row["met"] = met(op, target, row["ratio"])
        out.append(row)

    def over_health(figures: dict[str, Any], endpoint: str) -> list[float | None]:
        http = figures.get("http", {})
        return ratios(per_round(http.get(endpoint, []), "per_second"),
                      per_round(http.get("health", []), "per_second"))  # fmt: skip

    for endpoint in (*ENQUEUE_PATHS, "status"):
        add(f"{endpoint} / health req/s", over_health(this, endpoint),
            over_health(ref, endpoint), "ratio",
            AGAINST_GOALS["enqueue"] if endpoint in ENQUEUE_PATHS else None)  # fmt: skip
    add("API start-up s", list(this.get("api_startup_seconds", [])),
        list(ref.get("api_startup_seconds", [])), "s", AGAINST_GOALS["start-up"])  # fmt: skip
    if tier != "background_tasks":
        add("worker start-up s", per_round(this.get("bench", []), "startup_seconds"),
            per_round(ref.get("bench", []), "startup_seconds"), "s",
            AGAINST_GOALS["start-up"])  # fmt: skip

    def over_stock(figures: dict[str, Any]) -> list[float | None]:
        return ratios(per_round(figures.get("bench", []), "throughput_per_second"),
                      per_round(figures.get("stock", []), "throughput_per_second"))  # fmt: skip

    add("worker / stock jobs/s", over_stock(this), over_stock(ref), "ratio",
        AGAINST_GOALS["worker / stock jobs/s"], each=True)  # fmt: skip
    return out


def triple(d: dict[str, float] | None) -> str:
    if d is None:
        return "-"
    fmt = (lambda v: f"{v:.0f}") if d["median"] >= 100 else (lambda v: f"{v:.3g}")
    return f"{fmt(d['min'])} / {fmt(d['median'])} / {fmt(d['max'])}"


def yes_no(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "NO")


def aligned(lines: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]))]
    rendered = [
        " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    ]
    rendered.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(rendered)


def table(all_rows: list[dict[str, Any]]) -> str:
    """The figures; a REF's rows (``--against``) read ``<tier> @ <REF>``, each below the
    same figure of this checkout."""
    header = ("tier", "figure", "value min/med/max", "reference min/med/max",
              "ratio min/med/max", "goal", "met")  # fmt: skip
    lines = [header]
    for row in all_rows:
        project = row.get("project", THIS)
        lines.append((
            row["tier"] if project == THIS else f"{row['tier']} @ {project}", row["figure"],
            triple(row["value"]), triple(row.get("reference")), triple(row.get("ratio")),
            row.get("goal", ""), yes_no(row.get("met")),
        ))  # fmt: skip
    return aligned(lines)


def against_table(comparison: list[dict[str, Any]], label: str) -> str:
    """This checkout beside REF, figure by figure (min/median/max of the rounds)."""
    header = ("tier", "figure", f"{THIS} min/med/max", f"{label} min/med/max",
              f"this / {label} min/med/max", "goal", "met")  # fmt: skip
    lines = [header]
    for row in comparison:
        verdict = yes_no(row.get("met"))
        if "ref_met" in row:
            verdict = f"{verdict or '-'} ({label}: {yes_no(row['ref_met']) or '-'})"
        lines.append((row["tier"], row["figure"], triple(row["this"]), triple(row["against"]),
                      triple(row["ratio"]), row.get("goal", ""), verdict))  # fmt: skip
    return aligned(lines)


def side_by_side(mine: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This checkout's rows, each followed by REF's row of the same figure."""
    by_figure = {row["figure"]: row for row in theirs}
    out: list[dict[str, Any]] = []
    for row in mine:
        out.append(row)
        if row["figure"] in by_figure:
            out.append(by_figure.pop(row["figure"]))
    return out + list(by_figure.values())


def machine() -> dict[str, Any]:
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = found.group(1) if found else ""
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                   text=True).stdout.strip()  # fmt: skip
    return {
        "cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
        "platform": platform.platform(), "redis": redis_version,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }  # fmt: skip


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; ``--against`` resolved to its commit (``options.against_commit``) before
    anything runs, so that a REF git does not know ends the run at once, with a message."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiers", default=",".join(TIERS), help="comma-separated tiers")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4, help="each wrk run")
    parser.add_argument("--jobs", type=int, default=400, help="no-op jobs per throughput run")
    parser.add_argument("--latency-seconds", type=float, default=3)
    parser.add_argument("--waiting", type=int, default=10_000,
                        help="jobs waiting while GET /metrics is measured")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: rq only, 1 repeat, 1 s wrk runs, 40 jobs")  # fmt: skip
    parser.add_argument(
        "--against", metavar="REF",
        help="also measure, side by side in the same rounds, a project rendered from the "
             "template at REF, a commit of this repository (e.g. cd53649, v0.4.0's)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/latest.json")
    options = parser.parse_args(argv)
    if options.quick:
        options.tiers, options.repeats, options.seconds = "rq", 1, 1
        options.jobs, options.latency_seconds, options.waiting = 40, 1, 200
    options.tier_list = [tier.strip() for tier in options.tiers.split(",") if tier.strip()]
    unknown = sorted(set(options.tier_list) - set(TIERS))
    if unknown or not options.tier_list:
        given = ", ".join(unknown) or "none given"
        parser.error(f"--tiers: {given}; choose from {', '.join(TIERS)}")
    if options.repeats < 1:
        parser.error("--repeats: at least 1")
    options.against_commit = None
    if options.against is not None:
        if not shutil.which("git"):
            parser.error("--against needs git (apt-get install -y git)")
        try:
            options.against_commit = resolve_ref(options.against)
        except RefError as error:
            parser.error(str(error))
    return options


def main(argv: list[str] | None = None) -> None:
    options = parse(argv)
    require("uv", "wrk", "redis-server", "redis-cli", "redis-benchmark")
    label = options.against

    started = time.time()
    copier_start = [copier_startup() for _ in range(options.repeats + 1)][1:]  # warm once
    results, all_rows, ref_results, ref_rows, comparison = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="cft-bench-") as tmp:
        sources = [Source(THIS, REPO)]
        if label is not None:
            log(f"--against {label}: the template at {options.against_commit}")
            template = export_template(options.against_commit, Path(tmp) / "ref-template")
            sources.append(Source(label, template, options.against_commit))
        for tier in options.tier_list:
            figures = bench_tier(tier, options, Path(tmp), sources)
            results.append(figures[0])
            mine = rows(figures[0], copier_start)
            all_rows += mine
            if label is not None:
                ref_results.append(figures[1])
                theirs = rows(figures[1], copier_start)
                ref_rows += theirs
                comparison += against_rows(figures[0], figures[1])
    options_json = {k: str(v) for k, v in vars(options).items() if k != "tier_list"}
    report: dict[str, Any] = {
        "machine": machine(), "started": started, "seconds": time.time() - started,
        "options": options_json,
        "copier_startup_seconds": copier_start, "tiers": results, "rows": all_rows,
    }  # fmt: skip
    if label is not None:
        report["against"] = {
            "ref": label, "commit": options.against_commit, "tiers": ref_results,
            "rows": ref_rows, "comparison": comparison,
        }  # fmt: skip
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(report, indent=2) + "\n")
    if label is None:
        print(table(all_rows))
    else:
        shown: list[dict[str, Any]] = []
        for tier in options.tier_list:
            shown += side_by_side([r for r in all_rows if r["tier"] == tier],
                                  [r for r in ref_rows if r["tier"] == tier])  # fmt: skip
        print(table(shown))
        print(f"\nThis checkout against {label} ({options.against_commit[:12]}), in turn in "
              f"each of {options.repeats} round(s); this / {label} of each round:")  # fmt: skip
        print(against_table(comparison, label))
    for done in [*results, *ref_results]:
        name = done["tier"] if done["project"] == THIS else f"{done['tier']} @ {done['project']}"
        print(f"{name}: load average (1, 5, 15 min) before "
              f"{', '.join(f'{v:.1f}' for v in done['load_average_before'])}, after "
              f"{', '.join(f'{v:.1f}' for v in done['load_average_after'])}")  # fmt: skip
    print(f"\n{report['machine']['cpus']} CPUs ({report['machine']['cpu']}), "
          f"load {report['machine']['load_average']}; JSON: {options.json}")  # fmt: skip


if __name__ == "__main__":
    main()
