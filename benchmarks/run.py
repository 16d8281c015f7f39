"""The template's benchmark: every figure side by side with its reference, per tier.

    bash scripts/bench.sh            # the full run (about 5 minutes on 2 cores)
    bash scripts/bench.sh --quick    # a smoke run (rq only, short, 1 repeat)

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
* ``copier copy`` wall time against copier's own start-up (``copier --version``).

It prints a table and writes JSON (``--json``, default benchmarks/results/latest.json).
Needs: uv, redis-server and redis-benchmark, wrk (``apt-get install wrk redis-server``).
Nothing here is a pass/fail test: figures go to the table, goals are printed beside them.
"""

from __future__ import annotations

import argparse
import json
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
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Loopback ports without a race (tests/ports.py): the test suite runs this script too.
sys.path.insert(0, str(REPO / "tests"))
from ports import free_port  # noqa: E402

TIERS = ("background_tasks", "rq", "celery")
PACKAGE = "bench_service"

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


# --- measurements -----------------------------------------------------------------------


def render(tier: str, destination: Path) -> float:
    """``copier copy`` of this checkout (HEAD plus uncommitted changes); wall seconds."""
    args = [
        "uv", "run", "--quiet", "copier", "copy", "--trust", "--defaults", "--quiet",
        "--vcs-ref", "HEAD", "--data", "project_name=Bench Service",
        "--data", f"task_backend={tier}",
        "--data", f"loss_tolerable={'true' if tier == 'background_tasks' else 'false'}",
        str(REPO), str(destination),
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(args, cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - start


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


def serve(project: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [str(project / ".venv/bin/uvicorn"), f"{PACKAGE}.main:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=project, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port)
    return process


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
    tier: str, base: str, options: argparse.Namespace, workdir: Path
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
    log(f"{tier}: GET /metrics with {count} jobs waiting")
    return {"waiting": count, "metrics": wrk(f"{base}/metrics", options.seconds, None, workdir),
            "health": wrk(f"{base}/health", options.seconds, None, workdir)}  # fmt: skip


def python_json(project: Path, args: list[str], env: dict[str, str], timeout: float) -> Any:
    out = subprocess.run(
        [str(project / ".venv/bin/python"), *args], cwd=project, env=env, check=True,
        capture_output=True, text=True, timeout=timeout,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def bench_tier(tier: str, options: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {"tier": tier, "load_average_before": os.getloadavg()}
    project = workdir / tier
    copies = [render(tier, project)]
    for i in range(1, options.repeats):
        copies.append(render(tier, workdir / f"{tier}-copy{i}"))
    figures["copy_seconds"] = copies
    log(f"{tier}: rendered in {copies[0]:.2f} s; uv sync")
    subprocess.run(["uv", "sync", "--quiet"], cwd=project, env=clean_env(), check=True)

    redis = Redis(workdir)
    try:
        env = {
            **clean_env(),
            "LOG_LEVEL": "WARNING",
            "JOB_TIMEOUT_SECONDS": "30",
            "JOBS_ADMIN_TOKEN": OPERATOR_TOKEN,
        }
        if tier != "background_tasks":
            env["REDIS_URL"] = redis.url(1 if tier == "celery" else 0)
        if tier == "celery":
            env["CELERY_BROKER_URL"] = redis.url(0)
            env["CELERY_RESULT_BACKEND"] = redis.url(1)

        port = free_port()
        server = serve(project, env, port)
        base = f"http://127.0.0.1:{port}"
        # Three fresh servers beside it, loaded only by this comparison (a server that has
        # taken every other run is slower: the in-process tier's registry, for one, is
        # full): the app with metrics on, the same app with them off (no /metrics route,
        # nothing recorded), and a second copy with them on, for the noise of two
        # identical servers (A/A).
        port_on, port_off, port_again = free_port(), free_port(), free_port()
        server_on = serve(project, env, port_on)
        server_off = serve(project, {**env, "METRICS_ENABLED": "false"}, port_off)
        server_again = serve(project, env, port_again)
        report = '{"seconds": 0}'
        compared = {
            "on": f"http://127.0.0.1:{port_on}/examples/report",
            "off": f"http://127.0.0.1:{port_off}/examples/report",
            "on again": f"http://127.0.0.1:{port_again}/examples/report",
        }
        for url in compared.values():  # warm each server up once
            wrk(url, 1, report, workdir)

        def new_job() -> str:  # read by the status run; enqueued just before it
            job = post_json(f"{base}/examples/report", {"seconds": 0})["job_id"]
            return f"{base}/jobs/{job}"

        endpoints: dict[str, tuple[str | Callable[[], str], str | None]] = {
            "health": (f"{base}/health", None),
            "report": (f"{base}/examples/report", '{"seconds": 0}'),
            "welcome-email": (f"{base}/examples/welcome-email", '{"email": "a@example.com"}'),
            # Job API 2: a caller's id (new for each request), a delay, a status read.
            "report with id": (f"{base}/examples/report", '{"report_id": "wrk-RUN-%d"}'),
            "welcome-email delayed": (
                f"{base}/examples/welcome-email",
                '{"email": "a@example.com", "send_in_seconds": 3600}',
            ),
            "status": (new_job, None),
        }
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in endpoints}
        try:
            for attempt in range(options.repeats):
                log(f"{tier}: wrk round {attempt + 1}/{options.repeats}")
                for name, (url, body) in endpoints.items():
                    if body is not None:
                        body = body.replace("RUN", f"{attempt}")
                    target = url() if callable(url) else url
                    runs[name].append(wrk(target, options.seconds, body, workdir))
                # Symmetric order (on, off, again, again, off, on): a drift of the machine
                # during the round weighs the same on each.
                rates: dict[str, float] = dict.fromkeys(compared, 0.0)
                for name in ("on", "off", "on again", "on again", "off", "on"):
                    rates[name] += wrk(compared[name], options.seconds, report, workdir)[
                        "per_second"
                    ]
                runs.setdefault("metrics on/off", []).append(rates)
            figures["scrape"] = scrape_figures(tier, base, options, workdir)
        finally:
            stop(server)
            for extra in (server_on, server_off, server_again):
                stop(extra)
        figures["http"] = runs
        redis.flush()  # the jobs wrk enqueued: no worker ran them

        benches: list[Any] = []
        stocks: list[Any] = []
        reliable: list[Any] = []
        for attempt in range(options.repeats):
            log(f"{tier}: bench and stock worker round {attempt + 1}/{options.repeats}")
            benches.append(python_json(
                project, ["-m", f"{PACKAGE}.bench", "--json", "--jobs", str(options.jobs),
                          "--latency-seconds", str(options.latency_seconds)],
                env, timeout=600,
            ))  # fmt: skip
            redis.flush()
            stocks.append(python_json(
                project, [str(REPO / "benchmarks/stock.py"), tier, redis.url(2), str(options.jobs)],
                env, timeout=600,
            ))  # fmt: skip
            redis.flush()
            if tier != "background_tasks":
                reliable.append(python_json(
                    project, [str(REPO / "benchmarks/stock.py"), tier, redis.url(2),
                              str(options.jobs), "reliable"],
                    env, timeout=600,
                ))  # fmt: skip
                redis.flush()
        figures["bench"], figures["stock"], figures["stock_reliable"] = benches, stocks, reliable
        figures["lpush_per_second"] = [lpush_rate(redis) for _ in range(options.repeats)]
    finally:
        redis.stop()
    figures["load_average_after"] = os.getloadavg()
    return figures


# --- the table --------------------------------------------------------------------------


def rows(figures: dict[str, Any], copier_start: list[float]) -> list[dict[str, Any]]:
    """One row per figure: value, reference and their ratio, each as min/median/max."""
    tier = figures["tier"]
    out: list[dict[str, Any]] = []

    def add(name: str, values: list[float], refs: list[float] | None, unit: str) -> None:
        row: dict[str, Any] = {"tier": tier, "figure": name, "unit": unit, "value": spread(values)}
        if refs is not None:
            row["reference"] = spread(refs)
            row["ratio"] = spread([v / r for v, r in zip(values, refs, strict=True)])
        goal = GOALS.get((tier, name))
        if goal is not None:
            op, target = goal
            measured = row["ratio"]["median"] if "ratio" in row else row["value"]["median"]
            row["goal"] = f"{op} {target:g}"
            row["met"] = measured >= target if op == ">=" else measured < target
        out.append(row)

    http = figures["http"]
    health = [run["per_second"] for run in http["health"]]
    for endpoint in ("report", "welcome-email"):
        rates = [run["per_second"] for run in http[endpoint]]
        add(f"{endpoint} / health req/s", rates, health, "req/s")
        add(f"{endpoint} p50 / health p50", [r["p50_ms"] for r in http[endpoint]],
            [r["p50_ms"] for r in http["health"]], "ms")  # fmt: skip
        add(f"{endpoint} p99 / health p99", [r["p99_ms"] for r in http[endpoint]],
            [r["p99_ms"] for r in http["health"]], "ms")  # fmt: skip
    for endpoint in ("report with id", "welcome-email delayed", "status"):
        if endpoint in http:
            rates = [run["per_second"] for run in http[endpoint]]
            add(f"{endpoint} / health req/s", rates, health, "req/s")
    if "metrics on/off" in http:
        pairs = http["metrics on/off"]  # each rate a sum of two runs
        add("report, metrics on / off req/s", [r["on"] / 2 for r in pairs],
            [r["off"] / 2 for r in pairs], "req/s")  # fmt: skip
        add("report, metrics on / on again (A/A)", [r["on"] / 2 for r in pairs],
            [r["on again"] / 2 for r in pairs], "req/s")  # fmt: skip
    if "scrape" in figures:
        scrape = figures["scrape"]
        add("jobs waiting at the scrape", [scrape["waiting"]], None, "jobs")
        metrics, health_alone = scrape["metrics"], scrape["health"]
        add("GET /metrics / health req/s", [metrics["per_second"]],
            [health_alone["per_second"]], "req/s")  # fmt: skip
        add("GET /metrics p50 ms", [metrics["p50_ms"]], None, "ms")
    bench, stock = figures["bench"], figures["stock"]
    throughput = [b["throughput_per_second"] for b in bench]
    add("worker / stock jobs/s", throughput, [s["throughput_per_second"] for s in stock], "jobs/s")
    if figures.get("stock_reliable"):
        add("worker / stock+reliability jobs/s", throughput,
            [s["throughput_per_second"] for s in figures["stock_reliable"]], "jobs/s")  # fmt: skip
    add("worker / redis LPUSH", throughput, figures["lpush_per_second"], "jobs/s")
    add("enqueue x16 (bench) / s", [b["enqueue_16"]["per_second"] for b in bench], None, "/s")
    add("enqueue x1 p50 ms", [b["enqueue_1"]["p50_ms"] for b in bench], None, "ms")
    plain = [b["enqueue_16"]["per_second"] for b in bench]
    for key, name in (("enqueue_with_id", "enqueue with id x16"),
                      ("enqueue_delayed", "enqueue delayed x16"),
                      ("status", "status x16"), ("cancel", "cancel x16")):  # fmt: skip
        if "controls" in bench[0]:
            add(f"{name} / enqueue x16", [b["controls"][key]["per_second"] for b in bench],
                plain, "/s")  # fmt: skip
    add("enqueue-to-finished p50 ms", [b["latency"]["p50_ms"] for b in bench], None, "ms")
    add("enqueue-to-finished p99 ms", [b["latency"]["p99_ms"] for b in bench], None, "ms")
    if "startup_seconds" in bench[0]:
        add("worker start-up s", [b["startup_seconds"] for b in bench], None, "s")
        add("stock worker start-up s", [s["startup_seconds"] for s in stock], None, "s")
    add("copier copy / copier start-up", figures["copy_seconds"],
        copier_start[: len(figures["copy_seconds"])], "s")  # fmt: skip
    return out


def table(all_rows: list[dict[str, Any]]) -> str:
    def triple(d: dict[str, float] | None) -> str:
        if d is None:
            return "-"
        fmt = (lambda v: f"{v:.0f}") if d["median"] >= 100 else (lambda v: f"{v:.3g}")
        return f"{fmt(d['min'])} / {fmt(d['median'])} / {fmt(d['max'])}"

    header = ("tier", "figure", "value min/med/max", "reference min/med/max",
              "ratio min/med/max", "goal", "met")  # fmt: skip
    lines = [header]
    for row in all_rows:
        met = row.get("met")
        lines.append((
            row["tier"], row["figure"], triple(row["value"]), triple(row.get("reference")),
            triple(row.get("ratio")), row.get("goal", ""),
            "" if met is None else ("yes" if met else "NO"),
        ))  # fmt: skip
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    rendered = [
        " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    ]
    rendered.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(rendered)


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


def main() -> None:
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
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/latest.json")
    options = parser.parse_args()
    if options.quick:
        options.tiers, options.repeats, options.seconds = "rq", 1, 1
        options.jobs, options.latency_seconds, options.waiting = 40, 1, 200
    require("uv", "wrk", "redis-server", "redis-cli", "redis-benchmark")
    tiers = [tier.strip() for tier in options.tiers.split(",") if tier.strip()]

    started = time.time()
    copier_start = [copier_startup() for _ in range(options.repeats + 1)][1:]  # warm once
    results, all_rows = [], []
    with tempfile.TemporaryDirectory(prefix="cft-bench-") as tmp:
        for tier in tiers:
            figures = bench_tier(tier, options, Path(tmp))
            results.append(figures)
            all_rows += rows(figures, copier_start)
    report = {
        "machine": machine(), "started": started, "seconds": time.time() - started,
        "options": {k: str(v) for k, v in vars(options).items()},
        "copier_startup_seconds": copier_start, "tiers": results, "rows": all_rows,
    }  # fmt: skip
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(report, indent=2) + "\n")
    print(table(all_rows))
    for figures in results:
        print(f"{figures['tier']}: load average (1, 5, 15 min) before "
              f"{', '.join(f'{v:.1f}' for v in figures['load_average_before'])}, after "
              f"{', '.join(f'{v:.1f}' for v in figures['load_average_after'])}")  # fmt: skip
    print(f"\n{report['machine']['cpus']} CPUs ({report['machine']['cpu']}), "
          f"load {report['machine']['load_average']}; JSON: {options.json}")  # fmt: skip


if __name__ == "__main__":
    main()
