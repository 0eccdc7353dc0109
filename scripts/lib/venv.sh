# Sourced by the scripts: makes .venv with the project and its dev tools.
# Re-installs only when pyproject.toml changed, so repeated runs take seconds.

ensure_venv() {
    local python="${PYTHON:-python3}"
    if ! command -v "$python" >/dev/null 2>&1; then
        install_debian_packages python3 python3-venv
    fi
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "oneinfra needs Python 3.11 or newer; $("$python" --version 2>&1) found" >&2
        exit 1
    fi
    if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import sys' 2>/dev/null; then
        rm -rf .venv  # made by a Python that is gone
    fi
    if [ ! -x .venv/bin/python ]; then
        if ! "$python" -m venv .venv 2>/dev/null; then
            rm -rf .venv
            install_debian_packages python3-venv  # Debian splits venv out of python3
            "$python" -m venv .venv
        fi
    fi
    local stamp=.venv/.installed-from
    local wanted
    wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        .venv/bin/python -m pip install --quiet --upgrade pip
        # compat: a plain path in a .pth file. The default editable finder
        # costs every `oneinfra` run ~20 ms at start-up.
        .venv/bin/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
        echo "$wanted" >"$stamp"
    fi
}

install_debian_packages() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "missing: $* (install them, or run as root on Debian to have them installed)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
