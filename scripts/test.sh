#!/usr/bin/env bash
# test.sh — the README's test command: installs what the tests need, then runs every test suite and prints
# what each counted. The last line is "N passed, N failed" (the sum of the suites' real counts); the exit
# status is 0 only when nothing failed.
#
#   bash scripts/test.sh                          # everything
#   SHM_HARNESS_SKIP_QT=1 bash scripts/test.sh    # without the live Qt peer (its tests skip, said so; not with CI=true)
#
# Suites: the repository check (no machine paths, no missing docs), swift test, the cmocka suite (plain and
# ASan/UBSan), the pkg-config check, the C <-> Swift cross-language test, the runner with the C worker
# (worker end-to-end), the main job (the built-in catalogue, strict) with the debug and the release build,
# and a whole-run IPC leak check. With CI=true a suite that cannot run (a missing binary or peer) fails.
#
# Hermetic: each run has its own folder (TMPDIR and XDG_RUNTIME_DIR below it), and as root it runs in its own
# IPC and mount namespaces with a fresh /dev/shm, so that two runs at once on one machine neither see nor
# clean each other's objects and the leak check sees this run's objects only.
set -uo pipefail

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo" || exit 2
say() { printf '== %s\n' "$*"; }
ci=false
[ "${CI:-}" = true ] && ci=true

# --- what the tests need from Debian (you are root on CI and the dev machines) ---
if [ -z "${SHM_HARNESS_TEST_INSIDE:-}" ]; then
  need=()
  command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
  command -v unshare >/dev/null 2>&1 || need+=(util-linux)
  command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
  command -v cmark-gfm >/dev/null 2>&1 || need+=(cmark-gfm)   # renders `report summary --markdown` in its test
  [ -f /usr/include/cmocka.h ] || need+=(libcmocka-dev)
  command -v make >/dev/null 2>&1 || need+=(make)
  command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
  if [ "${#need[@]}" -gt 0 ]; then
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    if [ "$(id -u)" -ne 0 ]; then
      echo "test.sh: missing packages ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
      exit 2
    fi
    say "installing ${need[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || { echo "test.sh: apt-get install ${need[*]} failed" >&2; exit 2; }
  fi

  # --- this run's own folder, and (as root) its own IPC and mount namespaces ---
  base="${TMPDIR:-/tmp}"
  run_dir="$(mktemp -d "$base/shm-harness-test.XXXXXX")" || { echo "test.sh: cannot make a folder in $base" >&2; exit 2; }
  chmod 755 "$run_dir"
  mkdir -m 755 "$run_dir/tmp" && mkdir -m 700 "$run_dir/runtime"
  export SHM_HARNESS_TEST_RUN_DIR="$run_dir"
  export SHM_HARNESS_TEST_INSIDE=1
  status=0
  if [ "$(id -u)" -eq 0 ] && unshare --ipc --mount --propagation private true 2>/dev/null; then
    export SHM_HARNESS_TEST_NAMESPACES="own IPC and mount namespaces, fresh /dev/shm"
    unshare --ipc --mount --propagation private /bin/sh -c \
      'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm && exec bash "$0"' "$repo/scripts/test.sh" || status=$?
  else
    export SHM_HARNESS_TEST_NAMESPACES="none (not root, or unshare refused): the leak check compares the whole machine"
    bash "$repo/scripts/test.sh" || status=$?
  fi
  rm -rf "$run_dir"
  exit "$status"
fi

run_dir="$SHM_HARNESS_TEST_RUN_DIR"
export TMPDIR="$run_dir/tmp"
export XDG_RUNTIME_DIR="$run_dir/runtime"
reports=.build/reports
rm -rf "$reports"
mkdir -p "$reports"
say "run folder $run_dir (TMPDIR, XDG_RUNTIME_DIR); isolation: $SHM_HARNESS_TEST_NAMESPACES"

# --- the summary: one row per suite ---
rows=()
total_passed=0
total_failed=0
total_skipped=0
# record SUITE PASSED FAILED SKIPPED [NOTE]
record() {
  rows+=("$(printf '%-28s %6s passed %6s failed %6s skipped  %s' "$1" "$2" "$3" "$4" "${5:-}")")
  total_passed=$((total_passed + $2))
  total_failed=$((total_failed + $3))
  total_skipped=$((total_skipped + $4))
}
# junit_counts FILE...: "testcases failed skipped" over JUnit files (a <testcase> with <failure> or <error> failed)
junit_counts() {
  local t=0 f=0 s=0 n
  for file in "$@"; do
    [ -s "$file" ] || continue
    n=$(xmllint --xpath 'count(//testcase)' "$file" 2>/dev/null) || n=0
    t=$((t + ${n%.*}))
    n=$(xmllint --xpath 'count(//testcase[failure or error])' "$file" 2>/dev/null) || n=0
    f=$((f + ${n%.*}))
    n=$(xmllint --xpath 'count(//testcase[skipped])' "$file" 2>/dev/null) || n=0
    s=$((s + ${n%.*}))
  done
  echo "$t $f $s"
}
# counted_line NAME LOG: the "NAME: N passed, N failed[, N skipped]" line a script printed last
counted_line() {
  local line
  line=$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed" "$2" | tail -n 1)
  [ -n "$line" ] || return 1
  echo "$line" | sed -E 's/^[^:]*: ([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?.*/\1 \2 \3/'
}
# missing SUITE N WHY: a suite that cannot run: failed with CI=true, skipped otherwise
missing() {
  if $ci; then record "$1" 0 "$2" 0 "cannot run: $3"; else record "$1" 0 0 "$2" "cannot run: $3"; fi
}

# --- the real Qt peer (PySide6 from PyPI) in a virtual environment ---
if [ "${SHM_HARNESS_SKIP_QT:-0}" = 1 ] && $ci; then
  echo "test.sh: SHM_HARNESS_SKIP_QT=1 with CI=true: the Qt interop tests would not run" >&2
  record "qt-peer" 0 1 0 "SHM_HARNESS_SKIP_QT=1 in CI"
elif [ "${SHM_HARNESS_SKIP_QT:-0}" != 1 ]; then
  say "setting up the Qt peer (PySide6)"
  if qt_python="$(bash scripts/qt-venv.sh | tail -n 1)" && [ -x "$qt_python" ]; then
    export SHM_HARNESS_QT_PYTHON="$qt_python"
  elif $ci; then
    echo "test.sh: could not set up the Qt peer; the Qt interop tests cannot run" >&2
    record "qt-peer" 0 1 0 "PySide6 could not be installed"
  else
    echo "test.sh: no Qt peer: the Qt interop tests will be skipped" >&2
  fi
fi

before="$run_dir/ipc-before"
after="$run_dir/ipc-after"
bash scripts/ipc-snapshot.sh >"$before"

say "repository check"
bash scripts/check-repository.sh >"$reports/check-repository.log" 2>&1
cat "$reports/check-repository.log"
if c=$(counted_line check-repository "$reports/check-repository.log"); then
  read -r p f s <<<"$c"
  record "repository check" "$p" "$f" "${s:-0}"
else
  record "repository check" 0 1 0 "printed no count"
fi

say "building (debug, with tests)"
if swift build --build-tests; then built=true; else built=false; record "swift build (debug)" 0 1 0 "failed"; fi
debug_bin=.build/debug/shm-harness
# The release build before the Swift tests: ReleaseBuildTests runs the catalogue's SIGBUS case with it too.
say "building (release)"
if swift build -c release; then release_built=true; else release_built=false; fi

say "Swift tests"
if $built; then
  swift test --skip-build --xunit-output "$reports/swift-test.xml"
  rc=$?
  xml="$reports/swift-test-swift-testing.xml"
  [ -s "$xml" ] || xml="$reports/swift-test.xml"
  read -r t f s <<<"$(junit_counts "$xml")"
  if [ "$t" -eq 0 ]; then
    record "swift test" 0 1 0 "no test report (exit $rc)"
  else
    # a failure outside any test (a crash of the test process) still fails the suite
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    record "swift test" $((t - f - s)) "$f" "$s"
  fi
else
  missing "swift test" 1 "the build failed"
fi

say "C tests (CHarness): cmocka plain and ASan/UBSan, pkg-config, cross-language, worker end-to-end"
if make -C CHarness all; then
  make -C CHarness test-plain
  rc=$?
  read -r t f s <<<"$(junit_counts CHarness/build/junit/*.xml)"
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  record "cmocka (plain)" $((t - f - s)) "$f" "$s"
  make -C CHarness test-asan
  rc=$?
  read -r t f s <<<"$(junit_counts CHarness/build/junit-asan/*.xml)"
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  record "cmocka (ASan/UBSan)" $((t - f - s)) "$f" "$s"
  for dir in junit junit-asan; do
    mkdir -p "$reports/cmocka-$dir"
    cp CHarness/build/$dir/*.xml "$reports/cmocka-$dir/" 2>/dev/null
  done
  if make -C CHarness pkg-config-check; then record "pkg-config check" 1 0 0; else record "pkg-config check" 0 1 0; fi
  for suite in cross-lang worker-e2e; do
    log="$reports/$suite.log"
    if [ -x "$debug_bin" ]; then
      SHM_HARNESS_BIN="$repo/$debug_bin" make -C CHarness "$suite" 2>&1 | tee "$log"
    else
      make -C CHarness "$suite" 2>&1 | tee "$log"
    fi
    rc=${PIPESTATUS[0]}
    if c=$(counted_line "$suite" "$log"); then
      read -r p f s <<<"$c"
      [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
      record "$suite" "$p" "$f" "${s:-0}"
    else
      record "$suite" 0 1 0 "printed no count (exit $rc)"
    fi
  done
else
  record "make -C CHarness" 0 1 0 "the C build failed"
  for suite in "cmocka (plain)" "cmocka (ASan/UBSan)" "pkg-config check" cross-lang worker-e2e; do missing "$suite" 1 "the C build failed"; done
fi

# main_job NAME BINARY REPORT: the built-in catalogue, strict (a testcase this build cannot run is an error)
main_job() {
  local name=$1 bin=$2 report=$3 rc t f s note=""
  if [ ! -x "$bin" ]; then missing "$name" 1 "no $bin"; return; fi
  "$bin" run --strict --junit "$report"
  rc=$?
  if [ ! -s "$report" ]; then record "$name" 0 1 0 "no report (exit $rc)"; return; fi
  read -r t f s <<<"$(junit_counts "$report")"
  if ! xmllint --noout --schema Tests/HarnessTests/Fixtures/junit-10.xsd "$report"; then
    f=$((f + 1)); note="the report is not valid JUnit"
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; note="exit $rc"; fi
  if grep -q 'type="missing-worker"' "$report"; then note="${note:+$note; }a worker this build should have is missing"; fi
  record "$name" $((t - f - s)) "$f" "$s" "$note"
}

say "the main job (debug build): the built-in scenario catalogue, strict"
main_job "main job (debug)" "$debug_bin" "$reports/shm-harness-junit.xml"

say "the main job (release build): the catalogue, strict"
if $release_built; then
  main_job "main job (release)" .build/release/shm-harness "$reports/shm-harness-junit-release.xml"
else
  record "swift build (release)" 0 1 0 "failed"
  missing "main job (release)" 1 "the release build failed"
fi

say "IPC objects left behind by the whole run"
bash scripts/ipc-snapshot.sh >"$after"
left=$(diff "$before" "$after" | grep '^> ' | sed 's/^> //')
if [ -z "$left" ]; then
  record "IPC leak check" 1 0 0
else
  echo "test.sh: the tests left IPC objects behind:" >&2
  printf '%s\n' "$left" >&2
  record "IPC leak check" 0 1 0 "$(printf '%s\n' "$left" | wc -l) objects left"
fi

echo
say "summary (reports in $reports/)"
printf '%s\n' "${rows[@]}"
[ "$total_skipped" -gt 0 ] && echo "($total_skipped skipped, each with its reason above)"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
