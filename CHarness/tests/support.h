/* support.h - what every CHarness test binary shares: the cmocka 1.1.5 include order, unique keys, the
 * leak guard (every test leaves ipcs -m/-s, /dev/shm and the temp dir's qipc_* files as it found them),
 * and small helpers for child processes. */
#ifndef SHMH_TEST_SUPPORT_H
#define SHMH_TEST_SUPPORT_H

/* cmocka 1.1.5 needs these before <cmocka.h> */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <sys/types.h>

#include "shmh.h"

/* Every object a test makes carries this marker in its name (legacy keys keep letters only). */
#define SUPPORT_MARKER "shmhtest"

/* A unique name: "shmhtest<pid>x<n><what>" (letters of `what` only matter to Qt's derivation). malloc'd. */
char *support_unique(const char *what);
/* A unique legacy key for `kind`/`type`, derived with the default temp dir. */
void support_legacy_key(struct shmh_key *key, const char *what, uint16_t type, enum shmh_kind kind);
/* A unique native key: POSIX "/shmhtest...", System V "<tmp>/shmhtest..." (type = project id). */
void support_native_key(struct shmh_key *key, const char *what, uint16_t type);

/* Remembers the System V IPC key of a key file (ftok(path, project_id)) so teardown checks it is gone. */
void support_track_key_file(const char *path, int project_id);

/* cmocka fixtures: setup starts tracking; teardown fails the test if anything the test made is still there
 * (and removes it, so that one leak does not cascade). */
int support_setup(void **state);
int support_teardown(void **state);

/* Asserts the last failure has this code, printing it otherwise. */
#define assert_failure(code_)                                                                                    \
    do {                                                                                                         \
        char buf_[1400];                                                                                         \
        if (shmh_last_failure()->code != (code_))                                                                \
            fail_msg("expected %s, got: %s", shmh_error_name(code_), shmh_failure_format(buf_, sizeof buf_));    \
    } while (0)

/* Asserts a library call succeeded, printing the recorded failure otherwise. */
#define assert_ok(expr_)                                                                                         \
    do {                                                                                                         \
        char buf_[1400];                                                                                         \
        if ((expr_) != 0) fail_msg("%s failed: %s", #expr_, shmh_failure_format(buf_, sizeof buf_));            \
    } while (0)
#define assert_nonnull_ok(ptr_)                                                                                  \
    do {                                                                                                         \
        char buf_[1400];                                                                                         \
        if ((ptr_) == NULL) fail_msg("%s failed: %s", #ptr_, shmh_failure_format(buf_, sizeof buf_));           \
    } while (0)

/* Child processes: the exit status (0..255) or 128 + signal number. */
int support_wait(pid_t pid);
/* A pipe pair for "ready" signalling: the child writes one byte, the parent waits for it (timeout 10 s). */
void support_signal(int fd);
int support_await(int fd);
/* Whether a path exists (lstat). */
int support_exists(const char *path);
/* Mode bits (lstat), or -1. */
int support_mode(const char *path);

#endif
