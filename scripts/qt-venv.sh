#!/usr/bin/env bash
# qt-venv.sh — create (idempotently) the Python venv with real Qt (PySide6) used by the
# Qt interoperability tests and vector generators.
#
#   scripts/qt-venv.sh          # prints the absolute path of the venv's python (last stdout line)
#
# The venv lives at <repo>/.venv-qt. Progress goes to stderr; stdout carries only the path.
# Env: QT_VENV_PYTHON=<python3 to build the venv with> (default: python3 on PATH).
set -euo pipefail

PYSIDE_SPEC="PySide6-Essentials==6.12.0"

say() { printf 'qt-venv: %s\n' "$*" >&2; }
die() { printf 'qt-venv: error: %s\n' "$*" >&2; exit 1; }

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
VENV="$REPO/.venv-qt"
VPY="$VENV/bin/python"
BASE_PY="${QT_VENV_PYTHON:-python3}"

export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

qt_works() {
    [ -x "$VPY" ] && "$VPY" -c 'import PySide6.QtCore' >/dev/null 2>&1
}

if qt_works; then
    say "reusing $VENV"
    printf '%s\n' "$VPY"
    exit 0
fi

# A venv whose python no longer runs (e.g. the base interpreter moved) is rebuilt.
if [ -e "$VENV" ] && ! { [ -x "$VPY" ] && "$VPY" -c 'import sys' >/dev/null 2>&1; }; then
    say "removing broken venv at $VENV"
    rm -rf -- "$VENV"
fi

has_venv() { "$1" -c 'import venv, ensurepip' >/dev/null 2>&1; }

if [ ! -x "$VPY" ]; then
    command -v "$BASE_PY" >/dev/null 2>&1 || die "$BASE_PY not found; install python3 (>= 3.9)"
    "$BASE_PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
        || die "$BASE_PY is older than 3.9; PySide6 6.12 needs a newer python"
    # Debian's system python3 needs the python3-venv package (ensurepip) for `-m venv`.
    if ! has_venv "$BASE_PY"; then
        if [ -z "${QT_VENV_PYTHON:-}" ] && [ -x /usr/bin/python3 ] && [ "$(command -v "$BASE_PY")" != /usr/bin/python3 ]; then
            say "$BASE_PY lacks venv/ensurepip; falling back to /usr/bin/python3"
            BASE_PY=/usr/bin/python3
        fi
    fi
    if ! has_venv "$BASE_PY"; then
        if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && [ "$(command -v "$BASE_PY")" = /usr/bin/python3 ]; then
            ver="$("$BASE_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
            say "installing python${ver}-venv with apt-get (venv/ensurepip missing)"
            apt-get update -qq >&2 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${ver}-venv" >&2 \
                || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2 \
                || die "could not install python3-venv"
            has_venv "$BASE_PY" || die "python3-venv installed but 'import ensurepip' still fails"
        else
            die "$BASE_PY lacks the venv/ensurepip modules (on Debian, as root: apt-get install python3-venv)"
        fi
    fi
    say "creating venv at $VENV with $("$BASE_PY" -c 'import sys; print(sys.executable)')"
    "$BASE_PY" -m venv "$VENV" >&2 || { rm -rf -- "$VENV"; die "python -m venv failed"; }
fi

say "installing $PYSIDE_SPEC (this can take a minute)"
"$VPY" -m pip install --quiet --no-input "$PYSIDE_SPEC" >&2 \
    || die "pip install $PYSIDE_SPEC failed (needs PyPI access and glibc >= 2.34, x86_64/aarch64)"

qt_works || die "PySide6 installed but 'import PySide6.QtCore' fails; run: $VPY -c 'import PySide6.QtCore'"
say "ready: $("$VPY" -c 'from PySide6 import QtCore; print("Qt", QtCore.qVersion())' 2>/dev/null)"
printf '%s\n' "$VPY"
