#!/usr/bin/python3
"""A hostile local user for the tests (run as nobody with setpriv): makes System V objects at a given key and
hands them to another uid with IPC_SET, as a squatter would; reads and sets them afterwards (the creator keeps
control after IPC_SET). Also used by root to remove what the tests made. Linux x86-64 / aarch64 glibc only:
struct ipc_perm starts with key, uid, gid, cuid, cgid (4 bytes each).

  stranger_ipc.py sem KEY NSEMS VALUE GIVE_TO_UID   -> prints the semid
  stranger_ipc.py shm KEY SIZE GIVE_TO_UID          -> prints the shmid
  stranger_ipc.py getval SEMID | setval SEMID VALUE
  stranger_ipc.py read SHMID COUNT                  -> prints the bytes (latin-1), trailing NULs dropped
  stranger_ipc.py rmsem SEMID | rmshm SHMID
"""
import ctypes
import os
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]

IPC_CREAT, IPC_EXCL = 0o1000, 0o2000
IPC_RMID, IPC_SET, IPC_STAT = 0, 1, 2
GETVAL, SETVAL = 12, 16
SHM_RDONLY = 0o10000


def check(result, what):
    if result == -1 or result is None:
        err = ctypes.get_errno()
        sys.exit(f"stranger_ipc: {what}: {os.strerror(err)}")
    return result


def give(ctl, ident, uid):
    """IPC_STAT, set the owner uid and gid, IPC_SET: the object now 'belongs' to uid; cuid stays ours."""
    buf = ctypes.create_string_buffer(512)
    check(ctl(ident, IPC_STAT, buf), "IPC_STAT")
    struct.pack_into("II", buf, 4, uid, uid)
    check(ctl(ident, IPC_SET, buf), "IPC_SET")


def main(argv):
    cmd = argv[1]
    if cmd == "sem":
        key, nsems, value, uid = int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5])
        semid = check(libc.semget(key, nsems, IPC_CREAT | IPC_EXCL | 0o600), "semget")
        check(libc.semctl(semid, 0, SETVAL, ctypes.c_long(value)), "SETVAL")
        give(lambda i, c, b: libc.semctl(i, 0, c, b), semid, uid)
        print(semid)
    elif cmd == "shm":
        key, size, uid = int(argv[2]), int(argv[3]), int(argv[4])
        shmid = check(libc.shmget(key, ctypes.c_size_t(size), IPC_CREAT | IPC_EXCL | 0o600), "shmget")
        give(libc.shmctl, shmid, uid)
        print(shmid)
    elif cmd == "getval":
        print(check(libc.semctl(int(argv[2]), 0, GETVAL), "GETVAL"))
    elif cmd == "setval":
        check(libc.semctl(int(argv[2]), 0, SETVAL, ctypes.c_long(int(argv[3]))), "SETVAL")
    elif cmd == "read":
        addr = libc.shmat(int(argv[2]), None, SHM_RDONLY)
        if addr is None or addr == ctypes.c_void_p(-1).value:
            check(-1, "shmat")
        data = ctypes.string_at(addr, int(argv[3]))
        libc.shmdt(ctypes.c_void_p(addr))
        print(data.rstrip(b"\0").decode("latin-1"))
    elif cmd == "rmsem":
        check(libc.semctl(int(argv[2]), 0, IPC_RMID), "semctl(IPC_RMID)")
    elif cmd == "rmshm":
        check(libc.shmctl(int(argv[2]), IPC_RMID, None), "shmctl(IPC_RMID)")
    else:
        sys.exit(f"stranger_ipc: unknown command {cmd}")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv)
