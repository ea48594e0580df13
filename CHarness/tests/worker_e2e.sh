#!/bin/sh
# worker_e2e.sh - the scenario runner (shm-harness run) with the C worker (impl: c):
#   1. scenarios/lock/counter.yaml filtered to *impl=c*: both backends must pass (not skip);
#   2. tests/scenarios/cworker/: barriers, expected errors, crashes, Swift+C counters, owner-died, shrink, seals
#      - once with build/shmh-worker, once with the ASan/UBSan build build/asan/shmh-worker;
#   3. tests/scenarios/failing/: a deliberately wrong expectation must make the run exit 1 with a <failure>.
# Every report is checked with xmllint against the JUnit schema; nothing may be left in /dev/shm or the temp dir.
# The runner is SHM_HARNESS_BIN, else .build/debug/shm-harness at the top of this checkout. Without it the test
# is skipped, saying why (exit 0) - except with CI=true, where a missing piece is a failure (exit 1).
# The last line is the count: "worker-e2e: N passed, N failed[, N skipped]" (one per run below).
set -u
here=$(cd "$(dirname "$0")/.." && pwd -P)
root=$(cd "$here/.." && pwd -P)
runner=${SHM_HARNESS_BIN:-$root/.build/debug/shm-harness}
runs=4
passed=0
failed=0
missing() {
    if [ "${CI:-}" = true ]; then
        echo "worker-e2e: FAIL: $* (CI=true: a missing piece fails)"
        echo "worker-e2e: 0 passed, $runs failed"
        exit 1
    fi
    echo "worker-e2e: SKIPPED: $*"
    echo "worker-e2e: 0 passed, 0 failed, $runs skipped"
    exit 0
}
[ -x "$runner" ] || missing "no runner at $runner (build it with swift build, or set SHM_HARNESS_BIN)"
worker=$here/build/shmh-worker
asan_worker=$here/build/asan/shmh-worker
for w in "$worker" "$asan_worker"; do
    if [ ! -x "$w" ]; then
        echo "worker-e2e: FAIL: no worker at $w (make -C CHarness all build/asan/shmh-worker)"
        echo "worker-e2e: 0 passed, $runs failed"
        exit 1
    fi
done
counter=$root/scenarios/lock/counter.yaml
schema=$root/Tests/HarnessTests/Fixtures/junit-10.xsd
command -v xmllint >/dev/null 2>&1 || missing "no xmllint (apt-get install libxml2-utils): the reports cannot be validated"
out=$here/build/worker-e2e
mkdir -p "$out"
rm -f "$out"/*.xml "$out"/*.log
tmp=$(cd "${TMPDIR:-/tmp}" 2>/dev/null && pwd -P || echo /tmp)
status=0
ours() { ls /dev/shm "$tmp" 2>/dev/null | grep -e 'qipc_[a-z]*_cwee' -e '^shm-harness-[a-z-]*-[0-9a-f-]*$' | sort; }
before=$(ours)
# the runner's own leak check looks at the objects it named; a machine-wide one would trip over other tests
leak_check=
"$runner" run --help 2>&1 | grep -q -- '--leak-check' && leak_check="--leak-check own"

fail() { echo "worker-e2e: FAIL: $*"; status=1; }
# count NAME STATUS_BEFORE: one run passed if it added no failure
count() { if [ "$status" -eq "$1" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi; }

# run NAME WANT_EXIT WORKER ARGS... : runs the runner from the repository root, checks exit status and the report.
run() {
    name=$1 want=$2 w=$3
    shift 3
    xml=$out/$name.xml
    start=$(date +%s.%N)
    (cd "$root" && SHM_HARNESS_C_WORKER=$w ASAN_OPTIONS=detect_leaks=1:handle_sigbus=0:handle_segv=0 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$runner" run "$@" --junit "$xml" $leak_check) >"$out/$name.log" 2>&1
    rc=$?
    secs=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }")
    if [ "$rc" -ne "$want" ]; then
        fail "$name: shm-harness run exited $rc, want $want:"
        cat "$out/$name.log"
        return 1
    fi
    if [ ! -s "$xml" ]; then
        fail "$name: no report $xml"
        return 1
    fi
    if ! xmllint --noout --schema "$schema" "$xml" >"$out/$name.xmllint" 2>&1; then
        fail "$name: $xml is not valid against $schema:"
        cat "$out/$name.xmllint"
        return 1
    fi
    tests=$(grep -o '<testcase ' "$xml" | wc -l)
    echo "ok   worker-e2e $name: $tests testcases, exit $rc as wanted, report valid (${secs}s)"
    return 0
}

# no testcase skipped, failed or erred in the report
all_passed() {
    xml=$out/$1.xml
    if grep -q '<skipped' "$xml"; then
        fail "$1: skipped testcases:"
        grep -o '<skipped[^>]*>' "$xml"
    fi
    if grep -q -e '<failure' -e '<error' "$xml"; then
        fail "$1: failed testcases:"
        grep -o -e '<failure message="[^"]*"' -e '<error message="[^"]*"' "$xml"
    fi
}

# 1. the counter scenario, impl: c only: both backends run and pass
s0=0
if run counter 0 "$worker" "$counter" --filter '*impl=c*'; then
    all_passed counter
    n=$(grep -c '<testcase [^>]*impl=c' "$out/counter.xml")
    [ "$n" -eq 2 ] || fail "counter: want 2 impl=c testcases, got $n"
fi
count 0
# 2. the C worker's own scenarios, plain and ASan/UBSan
s0=$status
run scenarios 0 "$worker" "$here/tests/scenarios/cworker" && all_passed scenarios
count "$s0"
s0=$status
run scenarios-asan 0 "$asan_worker" "$here/tests/scenarios/cworker" && all_passed scenarios-asan
if grep -q -e 'Sanitizer' -e 'runtime error:' "$out/scenarios-asan.xml" 2>/dev/null; then
    fail "scenarios-asan: a sanitizer spoke:"
    grep -e 'Sanitizer' -e 'runtime error:' "$out/scenarios-asan.xml"
fi
count "$s0"
# 3. a wrong expectation: exit 1 and a <failure> naming the worker and its step
s0=$status
if run failing 1 "$worker" "$here/tests/scenarios/failing/wrong-expectation.yaml"; then
    xml=$out/failing.xml
    grep -q '<failure message="worker checker/0, step at [^"]*wrong-expectation.yaml:24 (check): check-mismatch' "$xml" ||
        fail "failing: no <failure> naming checker/0 and its check step in $xml"
    grep -q 'expect memory seg@0 [^<]*want u64 6, got u64 5' "$xml" || fail "failing: the memory expectation is not reported in $xml"
fi
count "$s0"

# nothing left behind: the scenarios' keys all start with cwe2e (Qt keeps the letters: cwee...), files with shm-harness-
left=$(ours | while read -r f; do echo "$before" | grep -qxF "$f" || echo "$f"; done)
if [ -n "$left" ]; then
    fail "left behind in /dev/shm or $tmp: $left"
    failed=$((failed + 1))
fi
[ "$status" -eq 0 ] && echo "ok   worker-e2e: reports in $out"
echo "worker-e2e: $passed passed, $failed failed"
exit $status
