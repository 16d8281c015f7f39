"""The screenshots of docs/dashboards.md, taken by the browser tests:

    uv run python scripts/screenshots.py

runs ``tests/test_browser.py`` (headless Chromium against every tier's running stack,
Redis and RabbitMQ started by the tests) with ``BROWSER_SCREENSHOTS`` set to a temporary
directory, then copies the pictures the docs show into ``docs/img/`` under stable names.
A picture over 200 kB fails the run: the docs' repository stays small.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "docs" / "img"
LIMIT = 200_000  # bytes

#: docs/img/<name>: the test's picture it is made from.
WANTED = {
    "swagger-ui.png": "swagger-ui-rq.png",
    "swagger-ui-try-it-out.png": "swagger-ui-try-it-out-rq.png",
    "rq-dashboard-jobs.png": "rq-dashboard-jobs.png",
    "rq-dashboard-job.png": "rq-dashboard-job.png",
    "flower-tasks.png": "flower-tasks-redis.png",
    "flower-task.png": "flower-task-redis.png",
}


def main() -> int:
    with tempfile.TemporaryDirectory() as shots:
        env = {**os.environ, "BROWSER_SCREENSHOTS": shots}
        tests = [sys.executable, "-m", "pytest", "tests/test_browser.py", "-q", "-n", "2"]
        if subprocess.run(tests, cwd=REPO, env=env, check=False).returncode != 0:
            print("the browser tests failed: no screenshot was replaced", file=sys.stderr)
            return 1
        too_big = []
        IMAGES.mkdir(parents=True, exist_ok=True)
        for name, taken in WANTED.items():
            source = Path(shots) / taken
            if source.stat().st_size > LIMIT:
                too_big.append(f"{taken}: {source.stat().st_size} bytes")
                continue
            shutil.copyfile(source, IMAGES / name)
            print(f"docs/img/{name} ({source.stat().st_size // 1000} kB)")
    if too_big:
        print(f"over {LIMIT // 1000} kB, not copied: {', '.join(too_big)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
