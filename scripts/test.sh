#!/usr/bin/env bash
# The template's whole test suite, from a fresh clone, in one command:
#   bash scripts/test.sh [extra pytest arguments]
# It sets up everything it needs: uv, the template's virtualenv (.venv, from uv.lock),
# then runs every test (decision engine, questionnaire, rendering matrix, end to end)
# in parallel and builds the docs with --strict.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/setup.sh
source scripts/setup.sh

ensure_uv

# --- brokers --------------------------------------------------------------------
# The end-to-end tests run real Redis and RabbitMQ servers as child processes on free
# loopback ports (tests/servers.py starts and stops them). Only the binaries are
# needed here: install them from Debian's packages when missing. Installing may start
# the packaged services; the tests never reach those. wrk and redis-benchmark are for the
# benchmark's smoke test (tests/test_bench.py); sudo, ip and unshare for the test that follows
# a generated README's "Without Docker" steps (tests/localrun.py: its own namespaces, in
# which even the packaged RabbitMQ service it starts has fresh directories). Chromium, Debian's,
# is the headless browser of tests/test_browser.py (driven by Playwright, which downloads no
# browser of its own here).
ensure_debian_packages redis-server:redis-server rabbitmq-server:/usr/lib/rabbitmq/bin/rabbitmq-server \
    wrk:wrk redis-tools:redis-benchmark sudo:sudo iproute2:ip util-linux:unshare chromium:chromium
log "$(redis-server --version | cut -d' ' -f1-3); rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo '?')"

# --- tests ----------------------------------------------------------------------
log "running the test suite"
# Two test processes per core: the end-to-end tests spend most of their time waiting (for
# a worker's recovery, a scheduler's next slot, a server's start), so with one per core
# the cores sit about half idle.
workers=$(( $(nproc) * 2 ))
status=0
uv run pytest -n "$workers" --dist worksteal --durations=20 "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure, not a pass" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    exit "$status"
fi

# --- docs -----------------------------------------------------------------------
log "building the docs (mkdocs --strict)"
export NO_MKDOCS_2_WARNING=1
uv run mkdocs build --strict --quiet --site-dir .tmp/site
log "all checks passed"
