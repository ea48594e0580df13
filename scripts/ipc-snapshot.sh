#!/usr/bin/env bash
# ipc-snapshot.sh — print this machine's IPC objects, one per line, sorted: System V segments and
# semaphore sets (by key and id), /dev/shm entries, and Qt-style key files in the temp dir (and one level below it).
# Two snapshots diffed show what a run left behind.
set -euo pipefail
tmp="${TMPDIR:-/tmp}"
{
  awk 'NR > 1 { printf "sysv-shm key=%s id=%s\n", $1, $2 }' /proc/sysvipc/shm 2>/dev/null || true
  awk 'NR > 1 { printf "sysv-sem key=%s id=%s\n", $1, $2 }' /proc/sysvipc/sem 2>/dev/null || true
  find /dev/shm -mindepth 1 -maxdepth 1 -printf 'dev-shm %f\n' 2>/dev/null || true
  find "$tmp" -maxdepth 2 -name 'qipc_*' -printf 'key-file %p\n' 2>/dev/null || true
} | sort
