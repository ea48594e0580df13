#!/usr/bin/env python3
"""qt_peer.py: a peer process that does real Qt 6 IPC operations for the Swift interop tests.

Run it with the Python from scripts/qt-venv.sh (PySide6-Essentials 6.12.0):

    PY="$(scripts/qt-venv.sh | tail -n 1)"
    "$PY" Tests/QtPeer/qt_peer.py create --key 'posix:/demo' --size 4096 --hold

Usage:
    qt_peer.py create      --key K --size N [--ro] [--hold]
    qt_peer.py attach      --key K [--ro] [--hold]
    qt_peer.py read        --key K --offset O --length L
    qt_peer.py write       --key K --offset O --hex H
    qt_peer.py add         --key K --offset O --iterations N
    qt_peer.py hold-lock   --key K
    qt_peer.py sem-create  --key K --initial V [--hold]
    qt_peer.py sem-acquire --key K [--count N] [--hold]
    qt_peer.py sem-release --key K [--n N] [--hold]

K is a QNativeIpcKey string (QNativeIpcKey::toString() form, e.g. "posix:/name",
"systemv:/tmp/file", "systemv:/tmp/qipc_sharedmemory_x...?legacyKey=x"), parsed with
QNativeIpcKey::fromString; an invalid key is a usage error.

Output: one JSON object per line on stdout, flushed, ASCII-only (non-ASCII is \\u-escaped).
  events:  {"event":"ready",...}  {"event":"locked"}  {"event":"acquired","count":i}
           {"event":"released","n":n}  {"event":"terminated","signal":15}
  final:   {"ok":true,"command":C,"key":K,"nativeKey":...,...}
           {"ok":false,"command":C,"error":E,"message":M}
E is Qt's enum name (PermissionDenied, InvalidSize, KeyError, AlreadyExists, NotFound, LockError,
OutOfResources, UnknownError; QSystemSemaphore has no InvalidSize/LockError), or for usage errors
"Usage", "BadKey" or "OutOfRange". The final line is printed after the Qt objects were detached
and destroyed, so Qt's own clean-up has run when it appears.
Exit status: 0 ok, 1 Qt error, 2 bad usage, 128+signal after SIGTERM/SIGINT/SIGHUP received
while waiting on stdin (clean exit); the same signals at any other time (e.g. while blocked in
lock() or acquire()) kill the process without clean-up, like a crash.

--hold: after the operation, print the "ready"/"locked"/... event, then wait until a line can be
read from stdin or stdin reaches EOF, then clean up and print the final result.

Notes on PySide6 6.12: QSharedMemory.data() and constData() return a memoryview of size() bytes
(None when detached). The data() view is writable even after attach(ReadOnly) (writing then
crashes with SIGSEGV), so this script reads through constData() and writes through data() only
when attached ReadWrite. Views are released before detach().
"""

import argparse
import gc
import json
import os
import signal
import struct
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QNativeIpcKey, QSharedMemory, QSystemSemaphore  # noqa: E402

EXIT_OK, EXIT_QT, EXIT_USAGE = 0, 1, 2

_command = None


def emit(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=True, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def finish(ok, exit_code=None, **fields):
    obj = {"ok": ok, "command": _command}
    obj.update(fields)
    emit(obj)
    sys.exit(exit_code if exit_code is not None else (EXIT_OK if ok else EXIT_QT))


def usage_error(message, error="Usage"):
    finish(False, EXIT_USAGE, error=error, message=message)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print to stderr and exit 2
        sys.stderr.write(self.format_usage())
        usage_error(message)


HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def wait_for_release():
    """Blocks until a line is read from stdin or stdin is at EOF.

    Only while waiting here does SIGTERM/SIGINT/SIGHUP lead to a clean exit (detach, destroy,
    {"event":"terminated"}). Elsewhere they keep their default action: Qt retries its blocking
    calls (sem_wait / semop) on EINTR, so a Python handler could never run there anyway, and the
    process dies like a crashed Qt program would.
    """
    for s in HANDLED_SIGNALS:
        signal.signal(s, _on_signal)
    try:
        sys.stdin.readline()
    except (OSError, ValueError):
        pass  # closed or unusable stdin counts as EOF
    finally:
        for s in HANDLED_SIGNALS:
            signal.signal(s, signal.SIG_DFL)


class Terminated(BaseException):
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, _frame):
    raise Terminated(signum)


def parse_key(text):
    key = QNativeIpcKey.fromString(text)
    if not key.isValid():
        usage_error("invalid QNativeIpcKey string: %r" % text, error="BadKey")
    return key


def key_fields(key):
    return {"key": key.toString(), "nativeKey": key.nativeKey(), "type": int(key.type().value)}


def shm_fail(shm, key):
    fields = {"error": shm.error().name, "message": shm.errorString()}
    fields.update(key_fields(key))
    return fields


def sem_fail(sem, key):
    fields = {"error": sem.error().name, "message": sem.errorString()}
    fields.update(key_fields(key))
    return fields


def nonneg(text):
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError("not an integer: %r" % text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0: %r" % text)
    return v


def integer(text):
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError("not an integer: %r" % text)


def hexbytes(text):
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a hex string: %r" % text)


# ----------------------------------------------------------------------------------------------
# QSharedMemory commands. Each returns (ok, exit_code, fields) after all Qt objects are gone.
# ----------------------------------------------------------------------------------------------

def with_shm(key, body):
    """Runs body(shm) -> (ok, code, fields); guarantees detach + destruction before returning."""
    shm = QSharedMemory(key)
    try:
        return body(shm)
    finally:
        if shm.isAttached():
            shm.detach()  # also releases a lock() held by this object (Qt prints a warning)
        del shm


def check_range(shm, offset, length):
    size = shm.size()
    if offset + length > size:
        return {"error": "OutOfRange",
                "message": "offset %d + length %d exceeds segment size %d" % (offset, length, size),
                "size": size}
    return None


def cmd_create(args, key):
    mode = QSharedMemory.AccessMode.ReadOnly if args.ro else QSharedMemory.AccessMode.ReadWrite

    def body(shm):
        if not shm.create(args.size, mode):
            return False, EXIT_QT, shm_fail(shm, key)
        size = shm.size()
        if args.hold:
            emit({"event": "ready", "size": size})
            wait_for_release()
        detached = shm.detach()
        return True, EXIT_OK, dict(key_fields(key), size=size, detached=detached)

    return with_shm(key, body)


def cmd_attach(args, key):
    mode = QSharedMemory.AccessMode.ReadOnly if args.ro else QSharedMemory.AccessMode.ReadWrite

    def body(shm):
        if not shm.attach(mode):
            return False, EXIT_QT, shm_fail(shm, key)
        size = shm.size()
        if args.hold:
            emit({"event": "ready", "size": size})
            wait_for_release()
        detached = shm.detach()
        return True, EXIT_OK, dict(key_fields(key), size=size, detached=detached)

    return with_shm(key, body)


def cmd_read(args, key):
    def body(shm):
        if not shm.attach(QSharedMemory.AccessMode.ReadOnly):
            return False, EXIT_QT, shm_fail(shm, key)
        bad = check_range(shm, args.offset, args.length)
        if bad:
            return False, EXIT_USAGE, bad
        if not shm.lock():
            return False, EXIT_QT, shm_fail(shm, key)
        view = shm.constData()
        data = bytes(view[args.offset:args.offset + args.length])
        view.release()
        del view
        if not shm.unlock():
            return False, EXIT_QT, shm_fail(shm, key)
        size = shm.size()
        if not shm.detach():
            return False, EXIT_QT, shm_fail(shm, key)
        return True, EXIT_OK, dict(key_fields(key), size=size, offset=args.offset, hex=data.hex())

    return with_shm(key, body)


def cmd_write(args, key):
    def body(shm):
        if not shm.attach(QSharedMemory.AccessMode.ReadWrite):
            return False, EXIT_QT, shm_fail(shm, key)
        bad = check_range(shm, args.offset, len(args.hex))
        if bad:
            return False, EXIT_USAGE, bad
        if not shm.lock():
            return False, EXIT_QT, shm_fail(shm, key)
        view = shm.data()
        view[args.offset:args.offset + len(args.hex)] = args.hex
        view.release()
        del view
        if not shm.unlock():
            return False, EXIT_QT, shm_fail(shm, key)
        size = shm.size()
        if not shm.detach():
            return False, EXIT_QT, shm_fail(shm, key)
        return True, EXIT_OK, dict(key_fields(key), size=size, offset=args.offset,
                                   length=len(args.hex))

    return with_shm(key, body)


def cmd_add(args, key):
    def body(shm):
        # a handshake for tests: next come attach() and lock(), which both take the segment's lock
        emit({"event": "attaching"})
        if not shm.attach(QSharedMemory.AccessMode.ReadWrite):
            return False, EXIT_QT, shm_fail(shm, key)
        bad = check_range(shm, args.offset, 8)
        if bad:
            return False, EXIT_USAGE, bad
        o = args.offset
        value = None
        for _ in range(args.iterations):
            if not shm.lock():
                return False, EXIT_QT, shm_fail(shm, key)
            view = shm.data()
            value = (struct.unpack_from("<Q", view, o)[0] + 1) & 0xFFFFFFFFFFFFFFFF
            struct.pack_into("<Q", view, o, value)
            view.release()
            del view
            if not shm.unlock():
                return False, EXIT_QT, shm_fail(shm, key)
        if not shm.detach():
            return False, EXIT_QT, shm_fail(shm, key)
        return True, EXIT_OK, dict(key_fields(key), offset=o, iterations=args.iterations,
                                   last=value)

    return with_shm(key, body)


def cmd_hold_lock(args, key):
    def body(shm):
        if not shm.attach(QSharedMemory.AccessMode.ReadWrite):
            return False, EXIT_QT, shm_fail(shm, key)
        if not shm.lock():
            return False, EXIT_QT, shm_fail(shm, key)
        emit({"event": "locked"})
        wait_for_release()
        if not shm.unlock():
            return False, EXIT_QT, shm_fail(shm, key)
        if not shm.detach():
            return False, EXIT_QT, shm_fail(shm, key)
        return True, EXIT_OK, key_fields(key)

    return with_shm(key, body)


# ----------------------------------------------------------------------------------------------
# QSystemSemaphore commands
# ----------------------------------------------------------------------------------------------

def with_sem(key, initial, mode, body):
    sem = QSystemSemaphore(key, initial, mode)
    try:
        if sem.error() != QSystemSemaphore.SystemSemaphoreError.NoError:
            return False, EXIT_QT, sem_fail(sem, key)
        return body(sem)
    finally:
        del sem  # destructor: close, and remove the semaphore if this object owns it


def cmd_sem_create(args, key):
    def body(sem):
        if args.hold:
            emit({"event": "ready", "initial": args.initial})
            wait_for_release()
        return True, EXIT_OK, dict(key_fields(key), initial=args.initial)

    return with_sem(key, args.initial, QSystemSemaphore.AccessMode.Create, body)


def cmd_sem_acquire(args, key):
    def body(sem):
        for i in range(1, args.count + 1):
            if not sem.acquire():
                return False, EXIT_QT, dict(sem_fail(sem, key), acquired=i - 1)
            emit({"event": "acquired", "count": i})
        if args.hold:
            wait_for_release()
        return True, EXIT_OK, dict(key_fields(key), acquired=args.count)

    return with_sem(key, 0, QSystemSemaphore.AccessMode.Open, body)


def cmd_sem_release(args, key):
    def body(sem):
        if not sem.release(args.n):
            return False, EXIT_QT, dict(sem_fail(sem, key), released=0)
        emit({"event": "released", "n": args.n})
        if args.hold:
            wait_for_release()
        return True, EXIT_OK, dict(key_fields(key), released=args.n)

    return with_sem(key, 0, QSystemSemaphore.AccessMode.Open, body)


# ----------------------------------------------------------------------------------------------

def build_parser():
    p = Parser(prog="qt_peer.py", description="Real-Qt IPC peer for shm-harness interop tests.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    def cmd(name, func, help_text):
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument("--key", required=True, help="QNativeIpcKey string")
        sp.set_defaults(func=func)
        return sp

    sp = cmd("create", cmd_create, "QSharedMemory::create(size)")
    sp.add_argument("--size", type=integer, required=True)
    sp.add_argument("--ro", action="store_true", help="create(size, ReadOnly)")
    sp.add_argument("--hold", action="store_true")

    sp = cmd("attach", cmd_attach, "QSharedMemory::attach()")
    sp.add_argument("--ro", action="store_true", help="attach(ReadOnly)")
    sp.add_argument("--hold", action="store_true")

    sp = cmd("read", cmd_read, "attach(ReadOnly), lock, read, unlock, detach")
    sp.add_argument("--offset", type=nonneg, required=True)
    sp.add_argument("--length", type=nonneg, required=True)

    sp = cmd("write", cmd_write, "attach, lock, write, unlock, detach")
    sp.add_argument("--offset", type=nonneg, required=True)
    sp.add_argument("--hex", type=hexbytes, required=True)

    sp = cmd("add", cmd_add, "N x (lock; u64le at offset += 1; unlock)")
    sp.add_argument("--offset", type=nonneg, required=True)
    sp.add_argument("--iterations", type=nonneg, required=True)

    cmd("hold-lock", cmd_hold_lock, "attach, lock, wait for stdin, unlock, detach")

    sp = cmd("sem-create", cmd_sem_create, "QSystemSemaphore(key, V, Create)")
    sp.add_argument("--initial", type=nonneg, required=True)
    sp.add_argument("--hold", action="store_true")

    sp = cmd("sem-acquire", cmd_sem_acquire, "QSystemSemaphore(key, 0, Open).acquire() N times")
    sp.add_argument("--count", type=nonneg, default=1)
    sp.add_argument("--hold", action="store_true",
                    help="stay alive after acquiring (System V undoes the operations at exit)")

    sp = cmd("sem-release", cmd_sem_release, "QSystemSemaphore(key, 0, Open).release(n)")
    sp.add_argument("--n", type=integer, default=1)
    sp.add_argument("--hold", action="store_true",
                    help="stay alive after releasing (System V undoes the release at exit)")
    return p


def main(argv):
    global _command
    for s in HANDLED_SIGNALS:
        signal.signal(s, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if argv and not argv[0].startswith("-"):
        _command = argv[0]
    args = build_parser().parse_args(argv)
    _command = args.command
    key = parse_key(args.key)
    signum = None
    try:
        ok, code, fields = args.func(args, key)
    except Terminated as t:
        signum = t.signum
    if signum is not None:
        # The with_* helpers detached on the way out; the traceback (which kept the frames holding
        # the Qt objects alive) is gone now, so collect to make sure the destructors have run.
        gc.collect()
        emit({"event": "terminated", "signal": signum})
        sys.exit(128 + signum)
    finish(ok, code, **fields)


if __name__ == "__main__":
    main(sys.argv[1:])
