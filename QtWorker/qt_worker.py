#!/usr/bin/env python3
"""qt_worker.py: the Qt worker of shm-harness (`impl: qt`): runs one worker plan with real Qt.

    python qt_worker.py PLAN [--user USER]
    python qt_worker.py --check PLAN        # parse the plan only: exit 0, or 2 naming the broken line

PLAN is a worker plan (docs/worker-protocol.md, version 1). Every segment operation is Qt's own, through
PySide6 (Qt 6): QSharedMemory (create, attach, detach, lock, unlock, data) keyed by QNativeIpcKey strings, so
the segment, its key file and its lock semaphore are exactly what a Qt application makes. The runner writes
this file into the run's private folder (it is embedded in the shm-harness binary) and starts it with the Qt
peer's python (SHM_HARNESS_QT_PYTHON, or the checkout's .venv-qt).

Steps: create, attach (rw/ro), detach, lock (optionally timeout-ns=N), unlock, add, load, store-loaded,
compare, store, check, fill, check-fill, check-at-most, barrier, sleep, repeat, crash; on semaphore resources
(QSystemSemaphore: create is Create mode, attach Open mode, detach its destructor) acquire (n=, timeout-ns= as
lock) and release (n=). Qt has no try-lock, no try-acquire, no way to read a semaphore's count, no atomic add
and no files, memfds, seals or in-memory locks: those are refused when the scenario is validated, and
`unsupported` here if a plan asks.

Reads/writes of the memory are checked by this worker (as the Swift and C workers do): past the end is
invalid-size, a write through a read-only attachment is permission-denied (Qt itself would fault), and an
access while detached is not-found.

Protocol (stdout): `barrier NAME` then a line `go NAME` / `abort NAME REASON` on stdin; the last line is
`result {json}`. Exit status: 0 every step did what it should, 1 a step failed its expectation, 2 broken
(an unreadable plan: the message names the plan line), 3 not applicable here (PySide6 missing, no such user).

A lock with a deadline (`timeout-ns`): Qt's lock() has no timeout and the call cannot be abandoned (it blocks
in sem_wait/semop, retries on EINTR and holds Python's GIL). A lock step that expects lock-error is made in a
child process, which is ended at the deadline (it never got the lock), and the worker goes on. Any other timed
lock is made here, watched by a helper process (started once) that, if the deadline passes, writes the step's
failure as the result line and ends the worker with SIGKILL: a failed step ends a worker anyway.
"""

import ctypes
import json
import os
import select
import signal
import sys
import time

EXIT_OK, EXIT_FAILED, EXIT_BROKEN, EXIT_NOT_HERE = 0, 1, 2, 3
MAX_LATENCY_SAMPLES = 200_000
SAFE = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~/,+-")

# ------------------------------------------------------------------------------------------------
# The plan (docs/worker-protocol.md): parsed strictly; anything unknown is a broken plan.
# ------------------------------------------------------------------------------------------------


class BrokenPlan(Exception):
    def __init__(self, line, message):
        super().__init__("plan line %d: %s" % (line, message))


def decode(text, line):
    raw = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x25:  # %
            digits = raw[i + 1:i + 3]
            try:
                if len(digits) != 2:
                    raise ValueError
                out.append(int(digits, 16))
            except ValueError:
                raise BrokenPlan(line, "bad percent-encoding in %r" % text)
            i += 3
        elif c in SAFE:
            out.append(c)
            i += 1
        else:
            raise BrokenPlan(line, "character %r must be percent-encoded in %r" % (chr(c), text))
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise BrokenPlan(line, "not UTF-8: %r" % text)


def fields_of(words, line, allowed):
    result = {}
    for word in words:
        name, eq, value = word.partition("=")
        if not eq or not name:
            raise BrokenPlan(line, "bad field %r (want name=value)" % word)
        if name not in allowed:
            raise BrokenPlan(line, "unknown field %r (this line takes: %s)" % (name, ", ".join(sorted(allowed))))
        if name in result:
            raise BrokenPlan(line, "field %r given twice" % name)
        result[name] = decode(value, line)
    return result


def integer(fields, name, line, low=None, high=None, default=None):
    if name not in fields:
        if default is None:
            raise BrokenPlan(line, "missing %s=" % name)
        return default
    text = fields[name]
    if not text or not (text.isdigit() or (text[0] == "-" and text[1:].isdigit())):
        raise BrokenPlan(line, "%s=%s is not a number" % (name, text))
    value = int(text)
    if (low is not None and value < low) or (high is not None and value > high):
        raise BrokenPlan(line, "%s=%s is out of range" % (name, text))
    return value


INT64 = (-(1 << 63), (1 << 63) - 1)
STEP_FIELDS = {
    "create": {"res", "size"},
    "attach": {"res", "mode"},
    "detach": {"res"},
    "lock": {"res", "timeout-ns"},
    "unlock": {"res"},
    "try-lock": {"res"},
    "add": {"res", "offset", "value"},
    "atomic-add": {"res", "offset", "value"},
    "store": {"res", "offset", "u64", "hex"},
    "check": {"res", "offset", "u64", "hex"},
    "fill": {"res", "byte"},
    "check-fill": {"res", "byte"},
    "truncate": {"res", "size"},
    "seal": {"res", "seals"},
    "touch-all": {"res"},
    "barrier": {"name"},
    "sleep": {"ns"},
    "crash": {"signal"},
    "load": {"res", "offset"},
    "store-loaded": {"res", "offset", "plus"},
    "compare": {"res", "offset", "with"},
    "acquire": {"res", "n", "timeout-ns"},
    "release": {"res", "n"},
    "try-acquire": {"res"},
    "check-value": {"res", "value"},
    "check-at-most": {"res", "offset", "max"},
}
ERROR_NAMES = {"permission-denied", "invalid-size", "key-error", "already-exists", "not-found", "lock-error",
               "out-of-resources", "busy", "sealed", "bus-error", "owner-died", "unknown"}
RESOURCE_FIELDS = {"kind", "key", "size", "lock", "lock-offset", "path", "fd", "private", "initial"}


class Step:
    __slots__ = ("line", "kind", "f", "expect", "body", "times", "for_ns", "value", "accepts", "count")

    def __init__(self, line, kind, f, expect):
        self.line, self.kind, self.f, self.expect = line, kind, f, expect
        self.body, self.times, self.for_ns, self.value = None, None, None, None
        # The outcomes the step may end in ("ok": success): expect-error absent, one name, or a comma list
        # in which "none" is success. `count=NAME` tallies the outcome under NAME.
        self.accepts, self.count = {"ok"} if expect is None else {expect}, f.get("count")

    def shown(self):
        """expect-error as the other workers word it: `already-exists` or `[none, already-exists]`."""
        if self.expect is None:
            return "success"
        return "[" + ", ".join(self.expect.split(",")) + "]" if "," in self.expect else self.expect


def parse_plan(text):
    lines = text.split("\n")
    if not lines or lines[0] != "shm-harness-plan 1":
        raise BrokenPlan(1, "not a version 1 plan (the first line must be 'shm-harness-plan 1')")
    plan = {"file": None, "worker": None, "resources": {}, "steps": None}
    items = []  # (plan line, words) of step/repeat lines
    for number, line in enumerate(lines[1:], start=2):
        if line == "":
            if number == len(lines):
                break  # the final newline
            raise BrokenPlan(number, "empty line")
        words = line.split(" ")
        if "" in words:
            raise BrokenPlan(number, "words are separated by exactly one space")
        head = words[0]
        if plan["steps"] is not None:
            raise BrokenPlan(number, "text after 'end'")
        if head == "file":
            if len(words) != 2 or plan["file"] is not None:
                raise BrokenPlan(number, "one 'file PATH' line")
            plan["file"] = decode(words[1], number)
        elif head == "worker":
            if len(words) != 4 or plan["worker"] is not None:
                raise BrokenPlan(number, "one 'worker GROUP INDEX COUNT' line")
            f = {"index": words[2], "count": words[3]}
            plan["worker"] = (decode(words[1], number), integer(f, "index", number, 0),
                              integer(f, "count", number, 1))
        elif head == "resource":
            if len(words) < 2:
                raise BrokenPlan(number, "resource ID field=value...")
            rid = decode(words[1], number)
            f = fields_of(words[2:], number, RESOURCE_FIELDS)
            if "kind" not in f or "lock" not in f:
                raise BrokenPlan(number, "a resource needs kind= and lock=")
            if f["kind"] not in ("segment", "file", "memfd", "semaphore"):
                raise BrokenPlan(number, "unknown resource kind %r" % f["kind"])
            if f["lock"] not in ("semaphore", "futex", "robust-mutex", "lockfile"):
                raise BrokenPlan(number, "unknown lock %r" % f["lock"])
            if rid in plan["resources"]:
                raise BrokenPlan(number, "resource %r given twice" % rid)
            size = integer(f, "size", number, 0, default=-1)
            plan["resources"][rid] = {"id": rid, "kind": f["kind"], "key": f.get("key"), "size": size,
                                      "lock": f["lock"], "initial": integer(f, "initial", number, 0, (1 << 31) - 1,
                                                                            default=0)}
        elif head in ("step", "repeat"):
            items.append((number, words))
        elif head == "end":
            if len(words) != 1:
                raise BrokenPlan(number, "'end' stands alone")
            cursor = [0]
            plan["steps"] = parse_steps(items, cursor, None, plan["resources"])
        else:
            raise BrokenPlan(number, "unknown line %r" % head)
    if plan["steps"] is None:
        raise BrokenPlan(len(lines), "missing 'end'")
    if plan["file"] is None or plan["worker"] is None:
        raise BrokenPlan(1, "a plan needs its 'file' and 'worker' lines")
    return plan


def parse_steps(items, cursor, count, resources):
    steps = []
    while cursor[0] < len(items) and (count is None or len(steps) < count):
        number, words = items[cursor[0]]
        cursor[0] += 1
        if len(words) < 2 or not words[1].isdigit():
            raise BrokenPlan(number, "%s LINE ..." % words[0])
        line = int(words[1])
        if words[0] == "repeat":
            f = fields_of(words[2:], number, {"times", "for-ns", "body", "expect-error"})
            body = integer(f, "body", number, 0)
            step = Step(line, "repeat", f, f.get("expect-error"))
            if ("times" in f) == ("for-ns" in f):
                raise BrokenPlan(number, "repeat needs times= or for-ns=")
            if "times" in f:
                step.times = integer(f, "times", number, 0)
            else:
                step.for_ns = integer(f, "for-ns", number, 0)
            step.body = parse_steps(items, cursor, body, resources)
            if len(step.body) != body:
                raise BrokenPlan(number, "a repeat body is cut short")
            steps.append(step)
            continue
        if len(words) < 3 or words[2] not in STEP_FIELDS:
            raise BrokenPlan(number, "unknown step %r" % (words[2] if len(words) > 2 else ""))
        kind = words[2]
        f = fields_of(words[3:], number, STEP_FIELDS[kind] | {"expect-error", "count"})
        step = Step(line, kind, f, f.get("expect-error"))
        if step.expect is not None and "," in step.expect:
            names = step.expect.split(",")
            if "" in names or len(set(names)) != len(names):
                raise BrokenPlan(number, "expect-error=%s: a list is distinct names separated by single commas"
                                 % step.expect)
            unknown = [name for name in names if name != "none" and name not in ERROR_NAMES]
            if unknown:
                raise BrokenPlan(number, "expect-error=%s: %r is neither none nor an error name"
                                 % (step.expect, unknown[0]))
            step.accepts = {"ok" if name == "none" else name for name in names}
        if "count" in f and not f["count"]:
            raise BrokenPlan(number, "count= needs a name")
        if "res" in STEP_FIELDS[kind]:
            if "res" not in f:
                raise BrokenPlan(number, "%s needs res=" % kind)
            if f["res"] not in resources:
                raise BrokenPlan(number, "unknown resource %r" % f["res"])
        if kind == "create":
            step.value = integer(f, "size", number, 0, default=-1)
        elif kind == "attach":
            if f.get("mode", "rw") not in ("rw", "ro"):
                raise BrokenPlan(number, "mode is ro or rw, not %r" % f["mode"])
        elif kind == "lock":
            step.value = integer(f, "timeout-ns", number, 0, default=-1)
        elif kind in ("add", "atomic-add"):
            step.value = (integer(f, "offset", number, 0, default=0),
                          integer(f, "value", number, INT64[0], INT64[1], default=1))
        elif kind == "load":
            step.value = integer(f, "offset", number, 0, default=0)
        elif kind == "store-loaded":
            step.value = (integer(f, "offset", number, 0, default=0),
                          integer(f, "plus", number, INT64[0], INT64[1], default=0))
        elif kind == "compare":
            if "with" not in f:
                raise BrokenPlan(number, "compare needs with=")
            step.value = (integer(f, "offset", number, 0, default=0), integer(f, "with", number, 0))
        elif kind in ("store", "check"):
            offset = integer(f, "offset", number, 0, default=0)
            if ("u64" in f) == ("hex" in f):
                raise BrokenPlan(number, "%s needs u64= or hex=" % kind)
            if "u64" in f:
                data = integer(f, "u64", number, 0, (1 << 64) - 1).to_bytes(8, "little")
                shown = "u64 %d" % int.from_bytes(data, "little")
            else:
                try:
                    data = bytes.fromhex(f["hex"])
                except ValueError:
                    raise BrokenPlan(number, "hex=%s is not hex digits" % f["hex"])
                if len(f["hex"]) % 2 or not data:
                    raise BrokenPlan(number, "hex=%s needs an even, non-zero number of digits" % f["hex"])
                shown = "hex " + data.hex()
            step.value = (offset, data, shown, "u64" in f)
        elif kind in ("fill", "check-fill"):
            step.value = integer(f, "byte", number, 0, 255, default=0)
        elif kind == "barrier":
            if not f.get("name"):
                raise BrokenPlan(number, "barrier needs name=")
        elif kind == "sleep":
            step.value = integer(f, "ns", number, 0, default=0)
        elif kind == "crash":
            step.value = integer(f, "signal", number, 1, 64, default=9)
        elif kind == "acquire":
            step.value = (integer(f, "n", number, 1, 32767, default=1), integer(f, "timeout-ns", number, 1, default=-1)
                          if "timeout-ns" in f else -1)
        elif kind == "release":
            step.value = integer(f, "n", number, 0, 32767, default=1)
        elif kind == "check-value":
            step.value = integer(f, "value", number, 0, (1 << 31) - 1)
        elif kind == "check-at-most":
            step.value = (integer(f, "offset", number, 0, default=0), integer(f, "max", number, 0, (1 << 64) - 1))
        steps.append(step)
    return steps


# ------------------------------------------------------------------------------------------------
# Running the plan with Qt.
# ------------------------------------------------------------------------------------------------

class StepError(Exception):
    """A step ended in an error: `name` is a scenario error name, or check-mismatch, barrier-aborted..."""

    def __init__(self, name, message):
        super().__init__(message)
        self.name, self.message = name, message


# Qt's QSharedMemory::SharedMemoryError -> the scenario spellings (the library's SharedMemoryError.Code.name).
QT_ERRORS = {
    "PermissionDenied": "permission-denied",
    "InvalidSize": "invalid-size",
    "KeyError": "key-error",
    "AlreadyExists": "already-exists",
    "NotFound": "not-found",
    "LockError": "lock-error",
    "OutOfResources": "out-of-resources",
    "UnknownError": "unknown",
}


def monotonic_ns():
    return time.monotonic_ns()


class Segment:
    """One plan resource as a QSharedMemory."""

    def __init__(self, qt, spec):
        self.qt, self.spec = qt, spec
        self.shm = None
        self.view = None       # memoryview of the mapping while attached (data() or constData())
        self.read_only = False

    def usable(self, what):
        spec = self.spec
        if spec["kind"] != "segment":
            raise StepError("unsupported", "%s: Qt has no %s resources (resource %s); impl: qt works on segments"
                            % (what, spec["kind"], spec["id"]))
        if spec["lock"] != "semaphore":
            raise StepError("unsupported", "%s: Qt's lock is the segment's semaphore, not lock: %s (resource %s)"
                            % (what, spec["lock"], spec["id"]))
        if self.shm is None:
            key = self.qt.QNativeIpcKey.fromString(spec["key"] or "")
            if not key.isValid():
                raise StepError("key-error", "%s: %r is not a QNativeIpcKey string" % (what, spec["key"]))
            self.shm = self.qt.QSharedMemory(key)
        return self.shm

    def fail(self, what):
        error = self.shm.error()
        if error.name == "NoError":
            return StepError("unknown", "%s: Qt returned false without an error [%s]" % (what, self.spec["key"]))
        name = QT_ERRORS.get(error.name, "unknown")
        return StepError(name, "%s: QSharedMemory %s: %s [%s]" % (what, error.name, self.shm.errorString(),
                                                                   self.spec["key"]))

    def create(self, size):
        shm = self.usable("create")
        if not shm.create(size, self.qt.QSharedMemory.AccessMode.ReadWrite):
            raise self.fail("create")
        self.read_only = False
        self.view = shm.data()

    def attach(self, read_only):
        shm = self.usable("attach")
        mode = self.qt.QSharedMemory.AccessMode
        was_attached = shm.isAttached()
        if not shm.attach(mode.ReadOnly if read_only else mode.ReadWrite):
            if was_attached:  # Qt returns false at once and leaves error() as it was
                raise StepError("already-exists", "attach: Qt's attach() returned false: this object is attached "
                                "already [%s]" % self.spec["key"])
            raise self.fail("attach")
        self.read_only = read_only
        # data() is writable even after a read-only attach (a write would then fault): read-only attachments
        # use constData(), whose view refuses writes.
        self.view = shm.constData() if read_only else shm.data()

    def detach(self):
        shm = self.usable("detach")
        if self.view is not None:
            self.view.release()
            self.view = None
        was_attached = shm.isAttached()
        if not shm.detach():
            if not was_attached:  # Qt returns false at once and leaves error() as it was
                raise StepError("not-found", "detach: Qt's detach() returned false: not attached [%s]"
                                % self.spec["key"])
            raise self.fail("detach")

    def lock(self):
        if not self.usable("lock").lock():
            raise self.fail("lock")

    def unlock(self):
        if not self.usable("unlock").unlock():
            raise self.fail("unlock")

    def bytes_at(self, what, offset, count, write):
        self.usable(what)
        if self.view is None:
            raise StepError("not-found", "%s: not attached [%s]" % (what, self.spec["key"]))
        if write and self.read_only:
            raise StepError("permission-denied", "%s: attached read-only [%s]" % (what, self.spec["key"]))
        size = len(self.view)
        if offset < 0 or count > size or offset > size - count:
            raise StepError("invalid-size", "%s: offset %d+%d is outside %d bytes [%s]"
                            % (what, offset, count, size, self.spec["key"]))
        return self.view

    def close(self):
        if self.view is not None:
            self.view.release()
            self.view = None
        if self.shm is not None:
            if self.shm.isAttached():
                self.shm.detach()  # the last detach removes a System V segment, as in Qt
            self.shm = None


# Qt's QSystemSemaphore::SystemSemaphoreError -> the scenario spellings.
QT_SEMAPHORE_ERRORS = {
    "PermissionDenied": "permission-denied",
    "KeyError": "key-error",
    "AlreadyExists": "already-exists",
    "NotFound": "not-found",
    "OutOfResources": "out-of-resources",
    "UnknownError": "unknown",
}


class Semaphore:
    """One plan resource of kind semaphore as a QSystemSemaphore: create is Qt's Create mode, attach its Open
    mode (both with the resource's initial count), detach destroys the object (Qt's destructor: the process
    that created the semaphore - or opened it in Create mode - removes it then, even while others use it)."""

    def __init__(self, qt, spec):
        self.qt, self.spec = qt, spec
        self.sem = None

    def fail(self, what):
        error = self.sem.error()
        if error.name == "NoError":
            return StepError("unknown", "%s: Qt returned false without an error [%s]" % (what, self.spec["key"]))
        return StepError(QT_SEMAPHORE_ERRORS.get(error.name, "unknown"), "%s: QSystemSemaphore %s: %s [%s]"
                         % (what, error.name, self.sem.errorString(), self.spec["key"]))

    def open(self, what, mode):
        if self.sem is not None:
            raise StepError("already-exists", "%s: the semaphore is open already [%s]" % (what, self.spec["key"]))
        key = self.qt.QNativeIpcKey.fromString(self.spec["key"] or "")
        if not key.isValid():
            raise StepError("key-error", "%s: %r is not a QNativeIpcKey string" % (what, self.spec["key"]))
        self.sem = self.qt.QSystemSemaphore(key, self.spec["initial"], mode)
        if self.sem.error().name != "NoError":
            error = self.fail(what)
            self.destroy()
            raise error

    def create(self, size):
        self.open("create", self.qt.QSystemSemaphore.AccessMode.Create)

    def attach(self, read_only):
        if read_only:
            raise StepError("unsupported", "attach: a semaphore has no read-only mode")
        self.open("attach", self.qt.QSystemSemaphore.AccessMode.Open)

    def destroy(self):
        import shiboken6
        sem, self.sem = self.sem, None
        if sem is not None:
            shiboken6.delete(sem)  # Qt's destructor now, not whenever Python collects the wrapper

    def detach(self):
        if self.sem is None:
            raise StepError("not-found", "detach: the semaphore is not open [%s]" % self.spec["key"])
        self.destroy()

    def usable(self, what):
        if self.sem is None:
            raise StepError("not-found", "%s: the semaphore is not open (create or attach it first) [%s]"
                            % (what, self.spec["key"]))
        return self.sem

    def acquire(self):
        if not self.usable("acquire").acquire():
            raise self.fail("acquire")

    def release(self, n):
        if not self.usable("release").release(n):
            raise self.fail("release")

    def acquire_in_child(self, sem):
        return None if sem.acquire() else self.fail("acquire")

    @staticmethod
    def release_in_child(sem):
        sem.release(1)

    def lock(self):
        raise StepError("unsupported", "lock: a semaphore is taken with acquire")

    unlock = lock

    def bytes_at(self, what, offset, count, write):
        raise StepError("unsupported", "%s: a semaphore has no memory (resource %s)" % (what, self.spec["id"]))

    def close(self):
        self.destroy()


class Worker:
    def __init__(self, qt, plan, stdin_fd):
        self.qt = qt
        self.plan = plan
        self.stdin_fd = stdin_fd
        self.segments = {rid: (Semaphore(qt, spec) if spec["kind"] == "semaphore" else Segment(qt, spec))
                         for rid, spec in plan["resources"].items()}
        self.ops = 0
        self.latencies = []
        self.start = monotonic_ns()
        self.elapsed = 0
        # The watchdog is forked before the first step: a child forked while a segment is attached inherits the
        # attachment (System V counts it in shm_nattch, a POSIX mapping shows in its /proc/PID/maps), so the
        # library's last detach elsewhere would see a user that is not there and leave the segment behind.
        self.watchdog = Watchdog() if needs_watchdog(plan["steps"]) else None
        self.loaded = None        # the register of load / store-loaded
        self.tallies = {}         # count=NAME steps: name -> outcome -> how many times

    # --- the protocol ---

    def read_line(self):
        data = bytearray()
        while True:
            chunk = os.read(self.stdin_fd, 1)
            if not chunk:
                return None
            if chunk == b"\n":
                return data.decode("utf-8", "replace")
            data += chunk

    def barrier(self, name):
        sys.stdout.write("barrier %s\n" % name)
        sys.stdout.flush()
        reply = self.read_line()
        if reply is None:
            raise StepError("barrier-aborted", "the runner went away")
        if reply == "go " + name:
            return
        raise StepError("barrier-aborted", reply[len("abort "):] if reply.startswith("abort ") else reply)

    # --- steps ---

    def run(self, steps):
        for step in steps:
            if step.kind == "repeat":
                if step.times is not None:
                    for _ in range(step.times):
                        self.run(step.body)
                else:
                    end = monotonic_ns() + step.for_ns
                    while monotonic_ns() < end:
                        self.run(step.body)
            else:
                self.perform(step)

    def perform(self, step):
        self.ops += 1
        try:
            self.act(step)
        except StepError as error:
            if error.name in ("check-mismatch", "barrier-aborted", "unsupported") or step.expect is None:
                raise Failure(step, error.name, error.message)
            if error.name not in step.accepts or error.name == "ok":
                raise Failure(step, error.name, "expected %s, got %s: %s" % (step.shown(), error.name, error.message))
            self.tally(step, error.name)
            return
        if "ok" not in step.accepts:
            raise Failure(step, "unexpected-success", "expected %s, but the step succeeded" % step.shown())
        self.tally(step, "ok")

    def tally(self, step, outcome):
        if step.count is not None:
            counter = self.tallies.setdefault(step.count, {})
            counter[outcome] = counter.get(outcome, 0) + 1

    def act(self, step):
        kind, f = step.kind, step.f
        seg = self.segments.get(f.get("res")) if "res" in f else None
        if kind == "create":
            seg.create(step.value if step.value >= 0 else max(seg.spec["size"], 0))
        elif kind == "attach":
            seg.attach(f.get("mode") == "ro")
        elif kind == "detach":
            seg.detach()
        elif kind == "lock":
            started = monotonic_ns()
            if step.value >= 0 and step.expect == "lock-error":
                # Qt's lock() in a child: if it returns, the child unlocks at once (an unexpected success)
                self.probe(seg.usable("lock"), lambda shm: None if shm.lock() else seg.fail("lock"),
                           lambda shm: shm.unlock(), "lock", "Qt's lock()", step.value, seg.spec["key"])
                return
            if step.value >= 0:
                started = self.watched(step, "lock", "Qt's lock()", seg.lock, step.value, started, seg.spec["key"])
            else:
                seg.lock()
            if len(self.latencies) < MAX_LATENCY_SAMPLES:
                self.latencies.append(monotonic_ns() - started)
        elif kind == "unlock":
            seg.unlock()
        elif kind == "add":
            offset, value = step.value
            view = seg.bytes_at("add", offset, 8, True)
            old = int.from_bytes(view[offset:offset + 8], "little")
            view[offset:offset + 8] = ((old + value) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
        elif kind == "load":
            # The first half of a split read-modify-write (needs a read-write attachment, like add).
            offset = step.value
            view = seg.bytes_at("load", offset, 8, True)
            self.loaded = int.from_bytes(view[offset:offset + 8], "little")
        elif kind == "store-loaded":
            offset, plus = step.value
            if self.loaded is None:
                raise StepError("unsupported", "store-loaded before any load: nothing was loaded")
            view = seg.bytes_at("store-loaded", offset, 8, True)
            view[offset:offset + 8] = ((self.loaded + plus) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
        elif kind == "compare":
            offset, other = step.value
            view = seg.bytes_at("compare", offset, 8, False)
            seg.bytes_at("compare", other, 8, False)
            a = int.from_bytes(view[offset:offset + 8], "little")
            b = int.from_bytes(view[other:other + 8], "little")
            if a != b:
                raise StepError("check-mismatch", "at offset %d of %s: u64 %d, but at offset %d: u64 %d"
                                % (offset, f["res"], a, other, b))
        elif kind in ("store", "check"):
            offset, data, shown, is_u64 = step.value
            view = seg.bytes_at(kind, offset, len(data), kind == "store")
            if kind == "store":
                view[offset:offset + len(data)] = data
            else:
                got = bytes(view[offset:offset + len(data)])
                if got != data:
                    got_text = "u64 %d" % int.from_bytes(got, "little") if is_u64 else "hex " + got.hex()
                    raise StepError("check-mismatch", "at offset %d of %s: want %s, got %s"
                                    % (offset, f["res"], shown, got_text))
        elif kind in ("fill", "check-fill"):
            view = seg.bytes_at(kind, 0, 0, kind == "fill")
            size = len(view)
            if kind == "fill":
                view[0:size] = bytes([step.value]) * size
            else:
                data = bytes(view)
                bad = next((i for i, b in enumerate(data) if b != step.value), None)
                if bad is not None:
                    raise StepError("check-mismatch", "at offset %d of %s: want byte %d, got %d"
                                    % (bad, f["res"], step.value, data[bad]))
        elif kind in ("acquire", "release", "check-at-most"):
            self.semaphore_step(step, seg)
        elif kind == "barrier":
            self.barrier(f["name"])
        elif kind == "sleep":
            time.sleep(step.value / 1e9)
        elif kind == "crash":
            sys.stdout.flush()
            try:
                signal.signal(step.value, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
            os.kill(os.getpid(), step.value)
            os._exit(128 + step.value)
        else:
            reasons = {
                "try-lock": "Qt's QSharedMemory has no try-lock (lock() always waits)",
                "atomic-add": "Qt has no atomic add on QSharedMemory memory (PySide6 binds no QAtomicInteger)",
                "truncate": "Qt's segments have no file size to change",
                "seal": "Qt has no memfd seals",
                "touch-all": "the Qt worker has no unguarded plain loads",
                "try-acquire": "QSystemSemaphore has no try-acquire (acquire() always waits)",
                "check-value": "QSystemSemaphore cannot read its count",
            }
            raise StepError("unsupported", reasons.get(kind, "%s is not a Qt operation" % kind))

    def semaphore_step(self, step, res):
        """acquire (n times; with a deadline as lock does), release(n), and check-at-most on a segment."""
        kind = step.kind
        if kind == "check-at-most":
            offset, most = step.value
            view = res.bytes_at("check-at-most", offset, 8, False)
            got = int.from_bytes(view[offset:offset + 8], "little")
            if got > most:
                raise StepError("check-mismatch", "at offset %d of %s: u64 %d is more than %d"
                                % (offset, step.f["res"], got, most))
            return
        if not isinstance(res, Semaphore):
            raise StepError("key-error", "%s: resource %s is not a semaphore" % (kind, step.f["res"]))
        if kind == "release":
            res.release(step.value)
            return
        n, timeout_ns = step.value
        taken = 0
        try:
            for _ in range(n):
                started = monotonic_ns()
                if timeout_ns > 0 and step.expect == "lock-error":
                    self.probe(res.usable("acquire"), res.acquire_in_child, res.release_in_child, "acquire",
                               "QSystemSemaphore's acquire()", timeout_ns, res.spec["key"])
                elif timeout_ns > 0:
                    self.watched(step, "acquire", "QSystemSemaphore's acquire()", res.acquire, timeout_ns, started,
                                 res.spec["key"])
                else:
                    res.acquire()
                taken += 1
        except StepError:
            # all or nothing, as in the Swift and C workers: a failure gives back the units already taken
            if taken:
                res.release(taken)
            raise

    def probe(self, handle, call, undo, what, name, timeout_ns, key):
        """A waiting call that is expected to time out (lock-error), made in a child process: if it returns,
        `undo` gives back what it took and the step has succeeded (unexpected); if the deadline passes first,
        the child (which never got it) is killed, the step fails with lock-error and the worker goes on."""
        sys.stdout.flush()
        ready_r, ready_w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(ready_r)
            set_parent_death_signal(None)
            error = call(handle)
            if error is None:
                undo(handle)
                os.write(ready_w, b"ok")
            else:
                os.write(ready_w, ("%s %s" % (error.name, error.message)).encode("utf-8", "replace")[:4000])
            os._exit(0)
        os.close(ready_w)
        readable, _, _ = select.select([ready_r], [], [], timeout_ns / 1e9)
        answer = os.read(ready_r, 4096) if readable else b""
        os.close(ready_r)
        if not answer:
            os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        if not answer:
            raise StepError("lock-error", "%s: %s did not return within %s (Qt has no timed wait: the call was "
                            "made in a child process, ended at the deadline) [%s]" % (what, name, fmt_ns(timeout_ns), key))
        if answer != b"ok":
            name, _, message = answer.decode("utf-8", "replace").partition(" ")
            raise StepError(name, message)

    def watched(self, step, what, name, call, timeout_ns, started, key):
        """A waiting call (Qt's lock(), QSystemSemaphore's acquire()) with a deadline that is not expected to pass,
        watched by the watchdog, which ends the worker (with this step's failure as its result) if the call
        outlives the deadline. Returns when the call was made (the latency is Qt's call, not the watchdog's
        bookkeeping)."""
        if self.watchdog is None:
            self.watchdog = Watchdog()
        failure = self.result(Failure(step, "lock-error", "%s: %s did not return within %s (Qt has no timed wait "
                                      "and cannot abandon the call: the worker was ended) [%s]"
                                      % (what, name, fmt_ns(timeout_ns), key)), percentiles=False)
        failure["startNs"] = self.start
        self.watchdog.arm(started + timeout_ns, failure)
        called = monotonic_ns()
        try:
            call()
        finally:
            self.watchdog.disarm()
        return called

    def result(self, failure, percentiles=True):
        self.elapsed = monotonic_ns() - self.start
        result = {"ok": failure is None, "ops": self.ops, "elapsedNs": self.elapsed,
                  "lockCount": len(self.latencies)}
        if self.latencies and percentiles:
            ordered = sorted(self.latencies)

            def percentile(p):
                index = min(len(ordered) - 1, -(-len(ordered) * p // 1) - 1)
                return ordered[max(0, int(index))]
            result.update(lockP50Ns=percentile(0.5), lockP90Ns=percentile(0.9), lockP99Ns=percentile(0.99),
                          lockMaxNs=ordered[-1])
        if self.tallies:
            result["outcomes"] = {name: dict(counts) for name, counts in self.tallies.items()}
        if failure is not None:
            result.update(line=failure.step.line, step=failure.step.kind, error=failure.error,
                          message=failure.message)
        return result

    def close(self):
        for seg in self.segments.values():
            seg.close()
        if self.watchdog is not None:
            self.watchdog.stop()


def needs_watchdog(steps):
    """Whether a plan has a timed lock or acquire that is not expected to fail (one watched() makes): the watchdog
    is then forked before anything is attached."""
    for step in steps:
        if step.kind == "repeat" and needs_watchdog(step.body):
            return True
        if step.kind == "lock" and step.value is not None and step.value >= 0 and step.expect != "lock-error":
            return True
        if step.kind == "acquire" and step.value is not None and step.value[1] > 0 and step.expect != "lock-error":
            return True
    return False


class Watchdog:
    """A helper process that ends the worker when Qt's lock() outlives its deadline.

    Qt's lock() cannot be interrupted (it retries sem_wait/semop on EINTR while holding Python's GIL), so the
    deadline is kept by another process: armed before the call with the deadline and the result the worker
    would report, disarmed after it (two small pipe writes per lock). At the deadline it writes that result line
    to the worker's stdout and SIGKILLs the worker, which has not got the lock and would never return."""

    def __init__(self):
        sys.stdout.flush()
        read_end, self.fd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.fd)
            try:
                watch(read_end, os.getppid())
            finally:
                os._exit(0)
        os.close(read_end)

    def arm(self, deadline_ns, failure):
        os.write(self.fd, b"arm %d %s\n" % (deadline_ns, json.dumps(failure, sort_keys=True).encode()))

    def disarm(self):
        os.write(self.fd, b"disarm\n")

    def stop(self):
        os.close(self.fd)
        os.waitpid(self.pid, 0)


def watch(fd, worker):
    set_parent_death_signal(worker)
    pending = b""
    armed = None
    while True:
        wait = None if armed is None else max(0.0, (armed[0] - monotonic_ns()) / 1e9)
        readable, _, _ = select.select([fd], [], [], wait)
        if not readable:
            result = json.loads(armed[1])
            result["elapsedNs"] = monotonic_ns() - result.pop("startNs")
            os.write(1, ("result " + json.dumps(result, sort_keys=True, separators=(",", ":")) + "\n").encode())
            os.kill(worker, signal.SIGKILL)
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line == b"disarm":
                armed = None
            elif line.startswith(b"arm "):
                _, deadline, payload = line.split(b" ", 2)
                armed = (int(deadline), payload)


class Failure(Exception):
    def __init__(self, step, error, message):
        super().__init__(message)
        self.step, self.error, self.message = step, error, message


def fmt_ns(ns):
    if ns % 1_000_000_000 == 0:
        return "%ds" % (ns // 1_000_000_000)
    if ns % 1_000_000 == 0:
        return "%dms" % (ns // 1_000_000)
    return "%dns" % ns


# ------------------------------------------------------------------------------------------------
# Process set-up: parent-death signal, user, Qt.
# ------------------------------------------------------------------------------------------------

def set_parent_death_signal(expected_parent):
    """Asks the kernel to SIGKILL this process when its parent dies; False if the parent is gone already."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    return expected_parent is None or os.getppid() == expected_parent


def drop_to(user):
    import pwd
    try:
        entry = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        return "no such user"
    if os.geteuid() != 0:
        return "dropping to another user needs root"
    try:
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    except OSError as error:
        return error.strerror
    return None


def say(message):
    sys.stderr.write("qt-worker: %s\n" % message)
    sys.stderr.flush()


def main(argv):
    args = argv[1:]
    user = None
    check_only = len(args) == 2 and args[0] == "--check"
    if check_only:
        args = args[1:]
    if len(args) == 3 and args[1] == "--user":
        user = args[2]
        args = args[:1]
    if len(args) != 1:
        say("usage: qt_worker.py PLAN [--user USER] | --check PLAN")
        return EXIT_BROKEN
    runner = os.environ.get("SHM_HARNESS_RUNNER_PID")
    expected_parent = int(runner) if runner and runner.isdigit() else None
    if not set_parent_death_signal(expected_parent):
        return EXIT_BROKEN
    try:
        with open(args[0], "r", encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        say("cannot read the plan %s: %s" % (args[0], error))
        return EXIT_BROKEN
    try:
        plan = parse_plan(text)
    except BrokenPlan as error:
        say("%s: %s" % (args[0], error))
        return EXIT_BROKEN
    if check_only:
        return EXIT_OK
    # Qt is loaded before dropping to another user, who may not be able to read the venv.
    try:
        from PySide6 import QtCore
    except ImportError as error:
        say("impl: qt needs PySide6 (run scripts/qt-venv.sh or set SHM_HARNESS_QT_PYTHON): %s" % error)
        return EXIT_NOT_HERE
    if user is not None:
        reason = drop_to(user)
        if reason:
            say("cannot run as %s: %s" % (user, reason))
            return EXIT_NOT_HERE
        if not set_parent_death_signal(expected_parent):  # a credential change clears it
            return EXIT_BROKEN
    worker = Worker(QtCore, plan, sys.stdin.fileno())
    failure = None
    try:
        worker.run(plan["steps"])
    except Failure as error:
        failure = error
    result = worker.result(failure)
    worker.close()
    sys.stdout.write("result " + json.dumps(result, sort_keys=True, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return EXIT_OK if failure is None else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
