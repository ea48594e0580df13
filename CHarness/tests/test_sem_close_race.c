/* test_sem_close_race.c - two last users of one standalone semaphore closing at the same moment: exactly the
 * protocol of shmh_sem_close, in its two steps (1: drop this handle's usage record; 2: claim the removal,
 * remove if claimed, close), driven for two handles in all six interleavings. Two handles are two open file
 * descriptions, which is all the usage records tell apart: to the protocol they are two processes, so no
 * scheduling luck is needed. In every interleaving exactly one of them removes the semaphore (and its key
 * file): nothing is left behind. The negative control runs the order the library had before (claim while
 * still recording) in the interleaving that breaks it, and sees the semaphore left behind. */
#include "support.h"

#include "../src/internal.h"

#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/sem.h>

struct party {
    struct shmh_sem *sem;
    int step;     /* 0: open, 1: first step done, 2: closed */
    bool claimed; /* the old order: what the claim of its first step gave */
};

static void step(struct party *p, bool old_order) {
    if (!old_order) {
        if (p->step == 0) shmh_sem_drop_record_before_close(p->sem); /* shmh_sem_close, first step */
        else shmh_sem_close_if(p->sem, 1, NULL, NULL);                 /* and second */
    } else {
        /* The order before: claim (and remove) while the own record is still held, then close. Its first step
         * is the claim alone, the second whatever the claim allowed. */
        if (p->step == 0) p->claimed = shmh_objfile_claim_for_removal(&p->sem->file, p->sem->systemv ? p->sem->key.type : 0);
        else shmh_sem_close_if(p->sem, p->claimed, NULL, NULL);
    }
    p->step++;
}

/* Whether the semaphore behind `key` (opened by nobody now) is still there: its set, or its /dev/shm file. */
static bool left_behind(const struct shmh_key *key, key_t ipc_key) {
    if (shmh_key_is_systemv(key->type)) return semget(ipc_key, 0, 0) != -1 || support_exists(key->native);
    char path[4200];
    snprintf(path, sizeof path, "/dev/shm/sem.%s", key->native + 1);
    return support_exists(path);
}

/* Runs one interleaving ("ABAB": A's first step, B's first, A's second, B's second); returns whether the
 * semaphore was left behind. */
static bool run(uint16_t type, const char *order, bool old_order) {
    struct shmh_key key;
    support_legacy_key(&key, "closerace", type, SHMH_KIND_SYSTEM_SEMAPHORE);
    if (shmh_key_is_systemv(type)) support_track_key_file(key.native, type);
    struct party a = {shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL), 0, false};
    struct party b = {shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL), 0, false};
    assert_nonnull_ok(a.sem);
    assert_nonnull_ok(b.sem);
    key_t ipc_key = shmh_key_is_systemv(type) ? shmh_objfile_ftok(&a.sem->file, type) : 0;
    for (const char *c = order; *c; c++) step(*c == 'A' ? &a : &b, old_order);
    bool left = left_behind(&key, ipc_key);
    if (left && shmh_key_is_systemv(type)) { /* the negative control's leftovers: ours, made above */
        int id = semget(ipc_key, 0, 0);
        if (id != -1) semctl(id, 0, IPC_RMID);
        unlink(key.native);
    } else if (left) {
        sem_unlink(key.native);
    }
    shmh_key_free(&key);
    return left;
}

static const char *const orders[] = {"AABB", "ABAB", "ABBA", "BAAB", "BABA", "BBAA"};

static void every_interleaving_removes(uint16_t type) {
    for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
        if (run(type, orders[i], false)) fail_msg("%s: %s left the semaphore behind", type == SHMH_TYPE_POSIX ? "posix" : "systemv", orders[i]);
    }
}

static void systemv_every_interleaving_removes(void **state) {
    (void)state;
    every_interleaving_removes(SHMH_TYPE_SYSTEMV);
}

static void posix_every_interleaving_removes(void **state) {
    (void)state;
    every_interleaving_removes(SHMH_TYPE_POSIX);
}

/* Negative control: claiming before dropping the own record, the interleaving ABAB (both claim, each seeing the
 * other's record) leaves it behind; the check above would turn red. */
static void claim_first_leaves_it_behind(void **state) {
    (void)state;
    assert_true(run(SHMH_TYPE_SYSTEMV, "ABAB", true));
    assert_true(run(SHMH_TYPE_POSIX, "ABAB", true));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(systemv_every_interleaving_removes, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(posix_every_interleaving_removes, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(claim_first_leaves_it_behind, support_setup, support_teardown),
    };
    return cmocka_run_group_tests_name("sem_close_race", tests, NULL, NULL);
}
