#!/bin/sh
# cross_lang.sh - C (shmh-tool) and Swift (shm-harness) on one segment, both backends, native and legacy keys:
#   1. C creates, Swift writes, both read it back;
#   2. Swift creates, C writes, both read it back;
#   3. C and Swift processes add to one u64 counter under the segment lock: no update lost.
# Everything is removed afterwards (checked: /dev/shm, the temp dir, the System V keys of the key files).
# The Swift CLI is SHM_HARNESS_BIN, else .build/debug/shm-harness at the top of this checkout. Without it the
# test is skipped, saying why (exit 0) - except with CI=true, where a missing piece is a failure (exit 1).
# The last line is the count: "cross-lang: N passed, N failed[, N skipped]" (one per backend and key flavour).
set -u
here=$(cd "$(dirname "$0")/.." && pwd -P)
tool=${SHMH_TOOL:-$here/build/shmh-tool}
swift=${SHM_HARNESS_BIN:-$(cd "$here/.." && pwd -P)/.build/debug/shm-harness}
iterations=${CROSS_LANG_ITERATIONS:-500}
cases=4
if [ ! -x "$swift" ]; then
    if [ "${CI:-}" = true ]; then
        echo "cross-lang: FAIL: no Swift CLI at $swift (swift build, or set SHM_HARNESS_BIN); CI=true: a missing piece fails"
        echo "cross-lang: 0 passed, $cases failed"
        exit 1
    fi
    echo "cross-lang: SKIPPED: no Swift CLI at $swift (build it with swift build, or set SHM_HARNESS_BIN)"
    echo "cross-lang: 0 passed, 0 failed, $cases skipped"
    exit 0
fi
if [ ! -x "$tool" ]; then
    echo "cross-lang: FAIL: no shmh-tool at $tool"
    echo "cross-lang: 0 passed, $cases failed"
    exit 1
fi
work=$(mktemp -d)
tmp=$(cd "${TMPDIR:-/tmp}" 2>/dev/null && pwd -P || echo /tmp)
marker="shmhtestcl$$"
status=0
holder=
trap '[ -n "$holder" ] && kill "$holder" 2>/dev/null; rm -rf "$work"' EXIT

fail() { echo "cross-lang: FAIL: $*"; status=1; case_failed=1; }
passed=0
failed=0

# Starts "$@" (a create command) in the background; waits until it printed the key string.
start_holder() {
    rm -f "$work/holder.out"
    "$@" >"$work/holder.out" 2>"$work/holder.err" &
    holder=$!
    i=0
    while [ ! -s "$work/holder.out" ]; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 "$holder" 2>/dev/null; then
            fail "holder did not start: $* ($(cat "$work/holder.err"))"
            holder=
            return 1
        fi
        sleep 0.05
    done
}

stop_holder() {
    [ -n "$holder" ] || return 0
    kill -TERM "$holder"
    wait "$holder" || fail "holder exited with $? ($(cat "$work/holder.err"))"
    holder=
}

u64_at0() { od -An -tu8 -N8 | tr -d ' \n'; }

# The System V IPC key of a file (glibc's ftok formula, project id 'Q').
ftok_q() { stat -c '%d %i' "$1" 2>/dev/null | awk '{ printf "0x51%02x%04x\n", $1 % 256, $2 % 65536 }'; }

check_clean() {
    what=$1
    left=$(ls /dev/shm "$tmp" 2>/dev/null | grep -i "$marker")
    [ -z "$left" ] || fail "$what left files behind: $left"
    for k in $sysv_keys; do
        if ipcs -m -s | grep -qi "^$k "; then fail "$what left System V object $k behind"; fi
    done
}

run_case() {
    backend=$1 flavour=$2
    name="${marker}${backend}${flavour}"
    if [ "$flavour" = legacy ]; then
        key=$("$swift" key --type "$backend" -- "$name") || { fail "shm-harness key"; return; }
    elif [ "$backend" = posix ]; then
        key="posix:/$name"
    else
        key="systemv:$tmp/$name"
    fi
    sysv_keys=
    label="$backend/$flavour"
    case_failed=0

    # 1. C creates, Swift writes, both read
    start_holder "$tool" create --native-key "$key" --size 4096 || return
    if [ "$backend" = systemv ]; then
        path=$(printf '%s' "$key" | sed -e 's/^systemv://' -e 's/?legacyKey=.*//')
        sysv_keys="$(ftok_q "$path")"
        semkey=$("$swift" key --type systemv --semaphore --native -- "$name" 2>/dev/null)
        [ "$flavour" = legacy ] && sysv_keys="$sysv_keys $(ftok_q "$semkey")"
    fi
    printf 'from-swift' | "$swift" write --native-key "$key" --offset 100 || fail "$label: Swift write to C's segment"
    got=$("$tool" dump --native-key "$key" --offset 100 --length 10)
    [ "$got" = from-swift ] || fail "$label: C read '$got' after Swift's write"
    got=$("$swift" dump --native-key "$key" --offset 100 --length 10)
    [ "$got" = from-swift ] || fail "$label: Swift read '$got' from C's segment"
    stop_holder
    check_clean "$label C-creates"

    # 2. Swift creates, C writes, both read
    start_holder "$swift" create --native-key "$key" --size 4096 || return
    printf 'from-c' | "$tool" write --native-key "$key" --offset 7 || fail "$label: C write to Swift's segment"
    got=$("$swift" dump --native-key "$key" --offset 7 --length 6)
    [ "$got" = from-c ] || fail "$label: Swift read '$got' after C's write"
    got=$("$tool" dump --native-key "$key" --offset 7 --length 6)
    [ "$got" = from-c ] || fail "$label: C read '$got' from Swift's segment"
    stop_holder
    check_clean "$label Swift-creates"

    # 3. C and Swift hammer one counter under the segment lock (the holder is C; each side is last detacher once)
    start_holder "$tool" create --native-key "$key" --size 64 || return
    "$tool" add --native-key "$key" --iterations "$iterations" >/dev/null &
    p1=$!
    "$swift" debug add --native-key "$key" --iterations "$iterations" >/dev/null &
    p2=$!
    "$tool" add --native-key "$key" --iterations "$iterations" >/dev/null &
    p3=$!
    "$swift" debug add --native-key "$key" --iterations "$iterations" >/dev/null &
    p4=$!
    for p in $p1 $p2 $p3 $p4; do wait "$p" || fail "$label: an adder failed (exit $?)"; done
    want=$((4 * iterations))
    got=$("$swift" dump --native-key "$key" --length 8 | u64_at0)
    [ "$got" = "$want" ] || fail "$label: counter is $got, want $want (updates lost)"
    stop_holder
    check_clean "$label counter"
    [ $case_failed -eq 0 ] && echo "ok   cross-lang $label: C creates/Swift attaches, Swift creates/C attaches, counter $want"
}

start=$(date +%s)
for backend in posix systemv; do
    for flavour in native legacy; do
        case_failed=0
        run_case "$backend" "$flavour"
        # a case that returned early (a holder that did not start) has failed too
        if [ $case_failed -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    done
done
echo "cross-lang: done in $(( $(date +%s) - start ))s"
echo "cross-lang: $passed passed, $failed failed"
exit $status
