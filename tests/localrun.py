"""Follow a generated README's "Without Docker" steps, exactly as written, and prove they work.

The steps are the first ``bash`` block under the README's ``### Without Docker`` heading.
They start servers on the usual ports (Redis on 6379, RabbitMQ's packaged service on 5672,
the API on 8000) and end with ``uv run honcho start``. To run them verbatim beside parallel
tests, each run gets namespaces of its own (``unshare``, as root): a network namespace (its
own loopback, so the usual ports are free and nothing is reachable from outside), a PID
namespace (every process it started ends with it, daemons included) and a mount namespace
in which RabbitMQ's data, log and run directories are fresh temporary ones (the packaged
service's own files are never touched).

Inside, a poller (:data:`POLLER`) runs the steps, waits until ``GET /health/ready`` answers
200, enqueues the example welcome email and waits until the job is ``finished``, then
stops ``honcho`` (as the README's "Test" section asks). A test may ask for more
(tests/test_newcomer.py does): the README's other blocks of commands (``afterwards``), each
exactly as written, in a new shell that has not read ``.env`` (a new terminal): "Test" (the
tests, with the integration tests on the servers the steps started, lint and types) and
"Benchmark"; and a command run while every process still runs (``during``).
``scripts/test.sh`` installs what the steps use (redis-server, rabbitmq-server, sudo); the
network namespace has no route to the package index, so the project's environment is
synced before (its ``uv sync`` steps then have nothing to do).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from servers import require

#: What the steps need, from Debian's packages (scripts/test.sh installs them).
TOOLS = ("unshare", "ip", "sudo", "redis-server", "redis-cli")
RABBITMQ_DIRS = ("/var/lib/rabbitmq", "/var/log/rabbitmq", "/run")


def first_bash_block(readme: str, heading: str) -> str:
    """The first ``bash`` block under ``heading`` (a whole line of the README)."""
    section = readme.split(f"\n{heading}\n", 1)[1]
    match = re.search(r"```bash\n(.*?)\n```", section, re.DOTALL)
    assert match, f"no bash block under {heading!r}"
    return match.group(1) + "\n"


def without_docker_steps(readme: str) -> str:
    return first_bash_block(readme, "### Without Docker")


#: The README's blocks run once the service has run a job and honcho is stopped, in order.
AFTERWARDS = ("## Test", "## Benchmark")


POLLER = r"""
import json, os, signal, subprocess, sys, time, urllib.error, urllib.request

steps_log = open("local-run.log", "w")
steps = subprocess.Popen(["bash", "-euo", "pipefail", sys.argv[1]], stdout=steps_log,
                         stderr=subprocess.STDOUT, start_new_session=True)
during, afterwards = sys.argv[2], sys.argv[3:]

def run_block(script, log_name):
    # In a new shell, as a new terminal would run it: without .env's settings (the servers
    # the steps started stay up: they are daemons).
    # (MYPY_CACHE_DIR: the suite's shared cache, tests/conftest.py; it changes no result.)
    keep = ("PATH", "HOME", "LANG", "TERM", "MYPY_CACHE_DIR")
    shell = {k: v for k, v in os.environ.items() if k in keep}
    started = time.monotonic()
    with open(log_name, "w") as log:
        block = subprocess.Popen(["bash", "-euo", "pipefail", script], stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True, env=shell)
        try:
            code = block.wait(900)
        except subprocess.TimeoutExpired:
            stop(block, 10)
            code = "timed out after 900 s"
    return {"code": code, "seconds": time.monotonic() - started, "log": open(log_name).read()}

def stop(process, seconds):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

def call(method, path, body=None):
    request = urllib.request.Request("http://127.0.0.1:8000" + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError:
        return None, None

def wait(what, check, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if steps.poll() is not None:
            sys.exit(f"the steps ended ({steps.returncode}) before {what}")
        found = check()
        if found:
            return found
        time.sleep(0.5)
    sys.exit(f"timed out after {seconds} s waiting for {what}")

result = {}
try:
    result["ready"] = wait("GET /health/ready answered 200",
                           lambda: (r := call("GET", "/health/ready"))[0] == 200 and r[1], 300)
    status, body = call("POST", "/examples/welcome-email", {"email": "ada@example.com"})
    assert status == 202, (status, body)
    # Read back as the client that enqueued it: its status URL, no operator token.
    result["job"] = wait("the welcome email job to finish",
        lambda: (r := call("GET", body["status_url"]))[0] == 200
        and r[1]["status"] in ("finished", "failed") and r[1], 120)
    if during != "-":  # while every process still runs
        result["during"] = run_block(during, "local-run-during.log")
finally:
    stop(steps, 30)
    if result.get("job", {}).get("status") == "finished":
        result["afterwards"] = []
        for index, script in enumerate(afterwards):
            result["afterwards"].append(run_block(script, f"local-run-{index}.log"))
            if result["afterwards"][-1]["code"] != 0:
                break
    print(json.dumps(result))
"""

DRIVER = """\
set -euo pipefail
ip link set lo up
for pair in {mounts}; do mount --bind "${{pair%%=*}}" "${{pair#*=}}"; done
cd {project}
exec python3 {poller} {steps} {during} {afterwards}
"""


def run_without_docker(
    project: Path, workdir: Path, during: str = "", afterwards: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Run the README's steps in ``project``, then the first ``bash`` block under each
    heading of ``afterwards`` (e.g. :data:`AFTERWARDS`); returns the ready body, the job's
    status and, per block run, its exit code and output (in ``afterwards``, in order: it
    stops at the first that fails). ``during``, a script, runs once the job finished, while
    every process still runs (its result: ``during``)."""
    if os.geteuid() != 0 or any(shutil.which(tool) is None for tool in TOOLS):
        message = f"the local-run test needs root and {', '.join(TOOLS)} (scripts/test.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    readme = (project / "README.md").read_text()
    steps = without_docker_steps(readme)
    assert steps.rstrip().splitlines()[-1].startswith("uv run honcho start"), steps
    workdir.mkdir(parents=True, exist_ok=True)
    mounts = []
    if "rabbitmq" in steps:
        require(Path("/usr/sbin/rabbitmq-server"))
        for target in RABBITMQ_DIRS:
            source = workdir / "mounts" / target.strip("/").replace("/", "-")
            source.mkdir(parents=True)
            if "rabbitmq" in target:
                shutil.chown(source, "rabbitmq", "rabbitmq")
            mounts.append(f"{source}={target}")
    (workdir / "steps.sh").write_text(steps)
    (workdir / "poller.py").write_text(POLLER)
    blocks = []
    for index, heading in enumerate(afterwards):
        (workdir / f"after-{index}.sh").write_text(first_bash_block(readme, heading))
        blocks.append(str(workdir / f"after-{index}.sh"))
    if during:
        (workdir / "during.sh").write_text(during)
    driver = DRIVER.format(
        mounts=" ".join(mounts),
        project=project,
        poller=workdir / "poller.py",
        steps=workdir / "steps.sh",
        during=workdir / "during.sh" if during else "-",
        afterwards=" ".join(blocks),
    )
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    done = subprocess.run(
        ["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc", "bash", "-c", driver],
        capture_output=True,
        text=True,
        env=env,
        timeout=1100,  # within the test's own timeout (pytest-timeout)
    )
    log = (project / "local-run.log").read_text() if (project / "local-run.log").exists() else ""
    assert done.returncode == 0, (
        f"the README's steps failed ({done.returncode})\n--- steps\n{steps}\n--- stderr\n"
        f"{done.stderr[-4000:]}\n--- their output\n{log[-8000:]}"
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["log"] = log
    return result
