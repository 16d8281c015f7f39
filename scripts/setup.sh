# Shared set-up for scripts/test.sh and scripts/bench.sh (sourced, not run).
# ensure_uv: uv on PATH (from PyPI when missing), then the template's locked environment.
# ensure_debian_packages PKG:PROBE ...: installs each Debian package whose probe (a
# command name or an executable path) is missing.

log() { printf '\n== %s\n' "$*"; }

ensure_uv() {
    if ! command -v uv >/dev/null 2>&1; then
        log "installing uv from PyPI"
        python3 -m pip install --quiet --user "uv>=0.5" \
            || python3 -m pip install --quiet --user --break-system-packages "uv>=0.5"
        export PATH="$HOME/.local/bin:$PATH"
    fi
    log "uv $(uv --version)"
    log "syncing the template's environment"
    uv sync --locked --quiet
}

ensure_debian_packages() {
    local missing=() spec package probe
    for spec in "$@"; do
        package="${spec%%:*}"
        probe="${spec#*:}"
        if [[ "$probe" == /* ]]; then
            [ -x "$probe" ] || missing+=("$package")
        else
            command -v "$probe" >/dev/null 2>&1 || missing+=("$package")
        fi
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    log "installing ${missing[*]} from Debian's packages"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q "${missing[@]}" >/dev/null \
        || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "${missing[@]}" >/dev/null; }
}
