#!/usr/bin/env bash
# test.sh — the README's test command: installs what the tests need, then runs every test (Swift and C),
# and fails if the run left any IPC object behind (System V, /dev/shm, the temp dir's qipc_* key files).
#
#   bash scripts/test.sh            # everything
#   SHM_HARNESS_SKIP_QT=1 bash scripts/test.sh   # without the live Qt peer (its tests are skipped, said so)
set -euo pipefail

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"
say() { printf '== %s\n' "$*"; }

# --- what the tests need from Debian (you are root on CI and the dev machines) ---
need=()
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
command -v cmark-gfm >/dev/null 2>&1 || need+=(cmark-gfm)   # renders `report summary --markdown` in its test
if [ -d CHarness ]; then
  [ -f /usr/include/cmocka.h ] || need+=(libcmocka-dev)
  command -v make >/dev/null 2>&1 || need+=(make)
fi
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: missing packages ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
    exit 2
  fi
  say "installing ${need[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- the real Qt peer (PySide6 from PyPI) in a virtual environment ---
if [ "${SHM_HARNESS_SKIP_QT:-0}" != 1 ]; then
  say "setting up the Qt peer (PySide6)"
  if qt_python="$(bash scripts/qt-venv.sh | tail -n 1)"; then
    export SHM_HARNESS_QT_PYTHON="$qt_python"
  elif [ "${CI:-}" = true ]; then
    echo "test.sh: could not set up the Qt peer; the Qt interop tests cannot run" >&2
    exit 1
  else
    echo "test.sh: no Qt peer: the Qt interop tests will be skipped" >&2
  fi
fi

before="$(mktemp)"
after="$(mktemp)"
trap 'rm -f "$before" "$after"' EXIT
bash scripts/ipc-snapshot.sh >"$before"

status=0
say "building"
swift build --build-tests

say "Swift tests"
swift test --skip-build || status=$?

if [ -d CHarness ] && [ -f CHarness/Makefile ]; then
  say "C tests (CHarness)"
  make -C CHarness test || status=$?
fi

say "the main job: the built-in scenario catalogue (with the C worker just built)"
# Every JUnit file of the run lands in one folder: the runner's report and cmocka's per-group files.
reports=.build/reports
rm -rf "$reports"
mkdir -p "$reports"
for dir in CHarness/build/junit CHarness/build/junit-asan; do
  if [ -d "$dir" ]; then
    mkdir -p "$reports/cmocka-$(basename "$dir")"
    cp "$dir"/*.xml "$reports/cmocka-$(basename "$dir")/" 2>/dev/null || true
  fi
done
report="$reports/shm-harness-junit.xml"
swift run --skip-build shm-harness run --junit "$report" || status=$?
if [ -f "$report" ]; then
  xmllint --noout --schema Tests/HarnessTests/Fixtures/junit-10.xsd "$report" || status=$?
  if [ -x CHarness/build/shmh-worker ] && grep -q 'skipped message="impl: c needs the C worker' "$report"; then
    echo "test.sh: the C worker is built but the main job skipped its testcases" >&2
    status=1
  fi
else
  echo "test.sh: the main job wrote no report" >&2
  status=1
fi


bash scripts/ipc-snapshot.sh >"$after"
if ! diff -u "$before" "$after" | grep '^+[^+]' >/dev/null; then
  say "no IPC object left behind"
else
  echo "test.sh: the tests left IPC objects behind:" >&2
  diff -u "$before" "$after" | grep '^+[^+]' >&2
  status=1
fi
exit "$status"
