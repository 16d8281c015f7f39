#!/usr/bin/env bash
# The template's benchmark, from a fresh clone, in one command:
#   bash scripts/bench.sh [benchmarks/run.py arguments, e.g. --quick]
#   bash scripts/bench.sh --against cd53649   # v0.4.0's projects side by side (git needed)
# It sets up what it needs (uv, the template's virtualenv, wrk and redis-server from
# Debian's packages when missing), then runs benchmarks/run.py: a table on stdout and
# JSON in benchmarks/results/latest.json. Figures only: nothing here passes or fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh

ensure_uv
ensure_debian_packages wrk:wrk redis-server:redis-server redis-tools:redis-benchmark
log "running the benchmark"
exec uv run python benchmarks/run.py "$@"
