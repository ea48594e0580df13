#!/usr/bin/env bash
# System calls per operation of each in-process bench case, per variant (library = the Swift library, floor = the
# raw C calls, libshmh = the C library): strace -c of `bench-worker loop CASE ROLE N` at N and 2N operations, the
# difference divided by N (set-up and clean-up cancel out). Usage: scripts/bench-syscalls.sh [BINARY] [CASE...]
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-.build-release/release/shm-harness}
shift || true
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(lock-sysv lock-posix lock-futex lock-robust lock-lockfile attach-sysv attach-posix)
n=2000
count() { # case role n -> "name count" lines
    local out
    out=$(mktemp)
    strace -f -c -o "$out" "$binary" bench-worker loop "$1" "$2" "$3" >/dev/null
    awk 'NR > 2 && $1 !~ /^-/ && $NF != "total" { print $NF, $4 }' "$out"
    rm -f "$out"
}
for c in "${cases[@]}"; do
    for role in library floor libshmh; do
        a=$(count "$c" "$role" "$n" 2>/dev/null) || continue
        b=$(count "$c" "$role" $((2 * n)))
        per=$(join -a1 -a2 -e 0 -o 0,1.2,2.2 <(sort <<<"$a") <(sort <<<"$b") |
            awk -v n="$n" '{ d = ($3 - $2) / n; if (d >= 0.5) printf "%s %.1f, ", $1, d }')
        printf '%-14s %-8s %s\n' "$c" "$role" "${per%, }"
    done
done
