/* test_plan.c - the worker's plan parser (worker/plan.c, format version 1 of docs/worker-protocol.md) and the
 * worker binary's exit statuses and result line (SHMH_WORKER, default build/shmh-worker; skipped if missing). */
#include "support.h"
#include "plan.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int parse(const char *text, struct plan *p, char *err, size_t len) { return plan_parse(text, strlen(text), p, err, len); }

static void counter_plan(void **state) {
    (void)state;
    const char *text = "shm-harness-plan 1\n"
                       "file scenarios/lock/counter.yaml\n"
                       "worker hammer 3 8\n"
                       "resource seg kind=segment key=systemv%3A%2Ftmp%2Fqipc_sharedmemory_counter%3FlegacyKey%3Dcounter-1a2b-0 "
                       "size=4096 lock=semaphore lock-offset=0\n"
                       "step 21 attach res=seg mode=rw\n"
                       "step 22 barrier name=start\n"
                       "repeat 23 times=2000 body=3\n"
                       "step 25 lock res=seg\n"
                       "step 26 add res=seg offset=0 value=1\n"
                       "step 27 unlock res=seg\n"
                       "step 28 detach res=seg\n"
                       "end\n";
    struct plan p;
    char err[256];
    assert_int_equal(parse(text, &p, err, sizeof err), 0);
    assert_string_equal(p.file.s, "scenarios/lock/counter.yaml");
    assert_string_equal(p.group.s, "hammer");
    assert_int_equal(p.index, 3);
    assert_int_equal(p.count, 8);
    assert_int_equal(p.nresources, 1);
    const struct plan_resource *r = plan_resource(&p, "seg", 3);
    assert_non_null(r);
    assert_int_equal(r->kind, PLAN_RES_SEGMENT);
    assert_string_equal(r->key.s, "systemv:/tmp/qipc_sharedmemory_counter?legacyKey=counter-1a2b-0");
    assert_true(r->has_size);
    assert_int_equal(r->size, 4096);
    assert_int_equal(r->lock, PLAN_LOCK_SEMAPHORE);
    assert_int_equal(r->lock_offset, 0);
    assert_null(r->path.s);
    assert_false(r->has_fd);
    assert_false(r->is_private);
    assert_int_equal(p.nsteps, 7);
    assert_int_equal(p.steps[0].kind, PLAN_STEP_ATTACH);
    assert_int_equal(p.steps[0].line, 21);
    assert_false(p.steps[0].read_only);
    assert_string_equal(p.steps[0].res.s, "seg");
    assert_int_equal(p.steps[1].kind, PLAN_STEP_BARRIER);
    assert_string_equal(p.steps[1].name.s, "start");
    assert_int_equal(p.steps[2].kind, PLAN_STEP_REPEAT_TIMES);
    assert_int_equal(p.steps[2].times, 2000);
    assert_int_equal(p.steps[2].body, 3);
    assert_int_equal(p.steps[2].span, 3);
    assert_int_equal(p.steps[4].kind, PLAN_STEP_ADD);
    assert_int_equal(p.steps[4].offset, 0);
    assert_int_equal(p.steps[4].value, 1);
    assert_int_equal(p.steps[6].kind, PLAN_STEP_DETACH);
    assert_null(p.steps[6].expect.s);
    assert_string_equal(plan_step_kind_name(p.steps[2].kind), "repeat");
    plan_free(&p);
}

/* lock timeout-ns=N: how long the lock step waits (0: without limit when absent). */
static void lock_timeout(void **state) {
    (void)state;
    const char *text = "shm-harness-plan 1\nstep 5 lock res=seg timeout-ns=2000000000\nstep 6 lock res=seg\nend\n";
    struct plan p;
    char err[256];
    assert_int_equal(parse(text, &p, err, sizeof err), 0);
    assert_int_equal(p.nsteps, 2);
    assert_int_equal(p.steps[0].kind, PLAN_STEP_LOCK);
    assert_int_equal(p.steps[0].ns, 2000000000LL);
    assert_int_equal(p.steps[1].ns, 0);
    plan_free(&p);
}

/* A semaphore resource and its steps (Plan.swift: initial=, acquire n= timeout-ns=, release n=, try-acquire,
 * check-value value=, check-at-most offset= max=). */
static void semaphore_steps(void **state) {
    (void)state;
    const char *text = "shm-harness-plan 1\n"
                       "resource sem kind=semaphore key=posix%3A%2Fx lock=semaphore lock-offset=0 initial=3\n"
                       "step 5 acquire res=sem n=2 timeout-ns=1000\n"
                       "step 6 acquire res=sem\n"
                       "step 7 release res=sem n=0\n"
                       "step 8 try-acquire res=sem expect-error=busy\n"
                       "step 9 check-value res=sem value=1\n"
                       "step 10 check-at-most res=sem offset=8 max=18446744073709551615\n"
                       "end\n";
    struct plan p;
    char err[256];
    if (parse(text, &p, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(p.nresources, 1);
    assert_int_equal(p.resources[0].kind, PLAN_RES_SEMAPHORE);
    assert_true(p.resources[0].has_initial);
    assert_int_equal(p.resources[0].initial, 3);
    assert_int_equal(p.nsteps, 6);
    assert_int_equal(p.steps[0].kind, PLAN_STEP_ACQUIRE);
    assert_int_equal(p.steps[0].n, 2);
    assert_int_equal(p.steps[0].ns, 1000);
    assert_int_equal(p.steps[1].n, 1);
    assert_int_equal(p.steps[1].ns, 0);
    assert_int_equal(p.steps[2].kind, PLAN_STEP_RELEASE);
    assert_int_equal(p.steps[2].n, 0);
    assert_int_equal(p.steps[3].kind, PLAN_STEP_TRY_ACQUIRE);
    assert_string_equal(p.steps[3].expect.s, "busy");
    assert_int_equal(p.steps[4].kind, PLAN_STEP_CHECK_VALUE);
    assert_int_equal(p.steps[4].value, 1);
    assert_int_equal(p.steps[5].kind, PLAN_STEP_CHECK_AT_MOST);
    assert_int_equal(p.steps[5].offset, 8);
    assert_true(p.steps[5].u64 == UINT64_MAX);
    assert_string_equal(plan_step_kind_name(PLAN_STEP_CHECK_AT_MOST), "check-at-most");
    plan_free(&p);
}

/* repeat 2 { step; repeat for { step }; repeat 3 { repeat 4 { step } } } step */
static void nested_repeats(void **state) {
    (void)state;
    const char *text = "shm-harness-plan 1\nworker w 0 1\n"
                       "repeat 10 times=2 body=3\n"
                       "step 11 sleep ns=5\n"
                       "repeat 12 for-ns=1000000 body=1 expect-error=busy\n"
                       "step 13 try-lock res=r expect-error=busy\n"
                       "repeat 14 times=3 body=1\n"
                       "repeat 15 times=4 body=1\n"
                       "step 16 atomic-add res=r offset=8 value=-3\n"
                       "step 17 crash signal=9\n"
                       "end\n";
    struct plan p;
    char err[256];
    assert_int_equal(parse(text, &p, err, sizeof err), 0);
    assert_int_equal(p.nsteps, 8);
    assert_int_equal(p.steps[0].kind, PLAN_STEP_REPEAT_TIMES);
    assert_int_equal(p.steps[0].body, 3);
    assert_int_equal(p.steps[0].span, 6);
    assert_int_equal(p.steps[2].kind, PLAN_STEP_REPEAT_FOR);
    assert_int_equal(p.steps[2].ns, 1000000);
    assert_int_equal(p.steps[2].span, 1);
    assert_string_equal(p.steps[2].expect.s, "busy");
    assert_string_equal(p.steps[3].expect.s, "busy");
    assert_int_equal(p.steps[4].span, 2);
    assert_int_equal(p.steps[5].times, 4);
    assert_int_equal(p.steps[5].span, 1);
    assert_int_equal(p.steps[6].value, -3);
    assert_int_equal(p.steps[7].kind, PLAN_STEP_CRASH);
    assert_int_equal(p.steps[7].signal, 9);
    assert_int_equal(p.steps[7].line, 17);
    plan_free(&p);

    /* a repeat whose body is empty, and an empty plan */
    assert_int_equal(parse("shm-harness-plan 1\nrepeat 1 times=5 body=0\nstep 2 sleep\nend", &p, err, sizeof err), 0);
    assert_int_equal(p.nsteps, 2);
    assert_int_equal(p.steps[0].span, 0);
    assert_int_equal(p.steps[1].ns, 0);
    plan_free(&p);
    assert_int_equal(parse("shm-harness-plan 1\nend\n", &p, err, sizeof err), 0);
    assert_int_equal(p.nsteps, 0);
    assert_string_equal(p.file.s, "");
    assert_int_equal(p.count, 1);
    plan_free(&p);
}

static void percent_encoding_and_values(void **state) {
    (void)state;
    const char *text = "shm-harness-plan 1\n"
                       "file dir%20with%20space/a%3Db.yaml\n"
                       "worker gr%C3%BCppe 0 2\n"
                       "resource a%00b kind=file size=64 lock=robust-mutex lock-offset=64 path=%2Fdev%2Fshm%2Fx%2f1 private=1\n"
                       "resource m kind=memfd lock=lockfile lock-offset=0 fd=7\n"
                       "step 3 store res=a%00b offset=8 u64=18446744073709551615\n"
                       "step 4 check res=a%00b offset=16 hex=48656C6c6f\n"
                       "step 5 store res=a%00b offset=24 hex=\n"
                       "step 6 fill res=m byte=255\n"
                       "step 7 seal res=m seals=shrink,grow,write,future-write,seal\n"
                       "step 8 barrier name=a%20b%25c expect-error=not-found\n"
                       "step 9 attach res=m mode=ro\n"
                       "step 10 add res=m offset=-8\n"
                       "step 11 truncate res=m size=0\n"
                       "step 12 load res=m offset=16\n"
                       "step 13 store-loaded res=m offset=16 plus=-2\n"
                       "step 14 compare res=m offset=16 with=24\n"
                       "step 15 seal res=m seals=\n"
                       "end\n"
                       "anything after the end is ignored\n";
    struct plan p;
    char err[256];
    assert_int_equal(parse(text, &p, err, sizeof err), 0);
    assert_string_equal(p.file.s, "dir with space/a=b.yaml");
    assert_string_equal(p.group.s, "gr\xc3\xbcppe");
    assert_int_equal(p.nresources, 2);
    const struct plan_resource *r = &p.resources[0];
    assert_int_equal(r->id.len, 3);
    assert_memory_equal(r->id.s, "a\0b", 3);
    assert_ptr_equal(plan_resource(&p, "a\0b", 3), r);
    assert_null(plan_resource(&p, "a", 1));
    assert_int_equal(r->kind, PLAN_RES_FILE);
    assert_int_equal(r->lock, PLAN_LOCK_ROBUST_MUTEX);
    assert_int_equal(r->lock_offset, 64);
    assert_string_equal(r->path.s, "/dev/shm/x/1");
    assert_true(r->is_private);
    assert_null(r->key.s);
    const struct plan_resource *m = &p.resources[1];
    assert_int_equal(m->kind, PLAN_RES_MEMFD);
    assert_int_equal(m->lock, PLAN_LOCK_LOCKFILE);
    assert_true(m->has_fd);
    assert_int_equal(m->fd, 7);
    assert_false(m->has_size);

    assert_true(p.steps[0].is_u64);
    assert_int_equal(p.steps[0].nbytes, 8);
    assert_memory_equal(p.steps[0].bytes, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    assert_int_equal(p.steps[0].res.len, 3);
    assert_false(p.steps[1].is_u64);
    assert_int_equal(p.steps[1].nbytes, 5);
    assert_memory_equal(p.steps[1].bytes, "Hello", 5);
    assert_int_equal(p.steps[2].nbytes, 0);
    assert_int_equal(p.steps[3].byte, 255);
    assert_int_equal(p.steps[4].seals, PLAN_SEAL_SHRINK | PLAN_SEAL_GROW | PLAN_SEAL_WRITE | PLAN_SEAL_FUTURE_WRITE | PLAN_SEAL_SEAL);
    assert_string_equal(p.steps[5].name.s, "a b%c");
    assert_string_equal(p.steps[5].expect.s, "not-found");
    assert_true(p.steps[6].read_only);
    assert_int_equal(p.steps[7].offset, -8);
    assert_int_equal(p.steps[7].value, 1); /* Plan.swift's default */
    assert_int_equal(p.steps[8].size, 0);
    assert_int_equal(p.steps[9].kind, PLAN_STEP_LOAD);
    assert_int_equal(p.steps[9].offset, 16);
    assert_int_equal(p.steps[10].kind, PLAN_STEP_STORE_LOADED);
    assert_int_equal(p.steps[10].value, -2);
    assert_string_equal(plan_step_kind_name(p.steps[10].kind), "store-loaded");
    assert_int_equal(p.steps[11].kind, PLAN_STEP_COMPARE);
    assert_int_equal(p.steps[11].with, 24);
    assert_int_equal(p.steps[12].seals, 0);
    plan_free(&p);

    struct plan_text t;
    assert_int_equal(plan_decode("%41%62c", 7, &t), 0);
    assert_string_equal(t.s, "Abc");
    free(t.s);
    assert_int_equal(plan_decode("abc%4", 5, &t), -1);
    assert_int_equal(plan_decode("%", 1, &t), -1);
    assert_int_equal(plan_decode("%zz", 3, &t), -1);
}

/* Every broken plan is refused (the worker exits 2), naming the plan line. */
/* attach mode=private: a file mapped MAP_PRIVATE (copy-on-write). */
static void attach_private(void **state) {
    (void)state;
    struct plan p;
    char err[256];
    assert_int_equal(parse("shm-harness-plan 1\nstep 3 attach res=f mode=private\nstep 4 attach res=f mode=ro\nstep 5 attach res=f\nend\n", &p, err, sizeof err), 0);
    assert_int_equal(p.nsteps, 3);
    assert_true(p.steps[0].private_map);
    assert_false(p.steps[0].read_only);
    assert_false(p.steps[1].private_map);
    assert_true(p.steps[1].read_only);
    assert_false(p.steps[2].private_map);
    assert_false(p.steps[2].read_only);
    plan_free(&p);
    assert_int_equal(parse("shm-harness-plan 1\nstep 3 sync res=f\nstep 4 check-file res=f offset=8 u64=7\nend\n", &p, err, sizeof err), 0);
    assert_int_equal(p.steps[0].kind, PLAN_STEP_SYNC);
    assert_string_equal(plan_step_kind_name(p.steps[0].kind), "sync");
    assert_int_equal(p.steps[1].kind, PLAN_STEP_CHECK_FILE);
    assert_string_equal(plan_step_kind_name(p.steps[1].kind), "check-file");
    assert_int_equal(p.steps[1].offset, 8);
    assert_true(p.steps[1].is_u64);
    assert_int_equal(p.steps[1].nbytes, 8);
    plan_free(&p);
    assert_int_equal(parse("shm-harness-plan 1\nstep 3 check-file res=f offset=8\nend\n", &p, err, sizeof err), -1);  /* u64= or hex= */
    assert_int_equal(parse("shm-harness-plan 1\nstep 3 sync res=f offset=8\nend\n", &p, err, sizeof err), -1);        /* sync takes res only */
    assert_int_equal(parse("shm-harness-plan 1\nstep 3 attach res=f mode=shared\nend\n", &p, err, sizeof err), -1);
    assert_string_equal(err, "plan line 2: mode=shared: want ro, rw or private");
}

/* send-fd / receive-fd and the `channel` lines (Plan+Channels.swift). */
static void descriptor_passing(void **state) {
    (void)state;
    const char *text = "shm-harness-plan 1\nworker owner 0 1\n"
                       "resource m kind=memfd size=4096 lock=futex lock-offset=0\n"
                       "channel receiver 0 fd=7\n"
                       "channel re%20ceiver 12 fd=9\n"
                       "step 5 create res=m\n"
                       "step 6 send-fd res=m to=receiver\n"
                       "step 7 receive-fd res=m expect-error=not-found\n"
                       "end\n";
    struct plan p;
    char err[256];
    assert_int_equal(parse(text, &p, err, sizeof err), 0);
    assert_int_equal(p.nchannels, 2);
    assert_string_equal(p.channels[0].group.s, "receiver");
    assert_int_equal(p.channels[0].index, 0);
    assert_int_equal(p.channels[0].fd, 7);
    assert_string_equal(p.channels[1].group.s, "re ceiver");
    assert_int_equal(p.channels[1].index, 12);
    assert_int_equal(p.channels[1].fd, 9);
    assert_false(p.resources[0].has_fd); /* share: pass: nothing inherited */
    assert_int_equal(p.nsteps, 3);
    assert_int_equal(p.steps[1].kind, PLAN_STEP_SEND_FD);
    assert_string_equal(p.steps[1].res.s, "m");
    assert_string_equal(p.steps[1].name.s, "receiver");
    assert_string_equal(plan_step_kind_name(p.steps[1].kind), "send-fd");
    assert_int_equal(p.steps[2].kind, PLAN_STEP_RECEIVE_FD);
    assert_string_equal(p.steps[2].expect.s, "not-found");
    assert_string_equal(plan_step_kind_name(p.steps[2].kind), "receive-fd");
    plan_free(&p);
    assert_null(p.channels);
}

static void broken_plans(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int line;
    } rows[] = {
        {"", 1},
        {"shm-harness-plan 2\nend\n", 1},
        {"shm-harness-plan 1 \nend\n", 1},
        {"shm-harness-plan 1\n", 2},                                                   /* missing end */
        {"shm-harness-plan 1\nstep 1 sleep ns=1\n", 3},                                /* missing end */
        {"shm-harness-plan 1\nhello world\nend\n", 2},                                 /* unknown line */
        {"shm-harness-plan 1\nworker w 0\nend\n", 2},                                  /* worker GROUP INDEX COUNT */
        {"shm-harness-plan 1\nworker w x 1\nend\n", 2},
        {"shm-harness-plan 1\nresource\nend\n", 2},
        {"shm-harness-plan 1\nresource r kind=segment\nend\n", 2},                     /* no lock= */
        {"shm-harness-plan 1\nresource r kind=pipe lock=futex\nend\n", 2},             /* unknown kind */
        {"shm-harness-plan 1\nresource r kind=file lock=spin\nend\n", 2},              /* unknown lock */
        {"shm-harness-plan 1\nresource r kind=file lock=futex size=4k\nend\n", 2},     /* not an integer */
        {"shm-harness-plan 1\nresource r%4 kind=file lock=futex\nend\n", 2},           /* bad escape in the id */
        {"shm-harness-plan 1\nresource r kind=file lock=futex path=%zz\nend\n", 2},    /* bad escape in a value */
        {"shm-harness-plan 1\nresource r kind=file lock=futex fd=-1\nend\n", 2},
        {"shm-harness-plan 1\nstep\nend\n", 2},
        {"shm-harness-plan 1\nstep x sleep\nend\n", 2},                                /* LINE not a number */
        {"shm-harness-plan 1\nstep 1 jump\nend\n", 2},                                 /* unknown step */
        {"shm-harness-plan 1\nstep 1 repeat times=1 body=0\nend\n", 2},                /* repeat is its own line kind */
        {"shm-harness-plan 1\nstep 1\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 sleep expect-error=none,,busy\nend\n", 2},           /* an empty outcome */
        {"shm-harness-plan 1\nstep 1 sleep expect-error=none,busy,none\nend\n", 2},      /* an outcome twice */
        {"shm-harness-plan 1\nstep 1 sleep expect-error=busy,\nend\n", 2},               /* a trailing comma */
        {"shm-harness-plan 1\nstep 1 sleep count=\nend\n", 2},                           /* count without a name */
        {"shm-harness-plan 1\nrepeat 1 times=1 body=0 count=c\nend\n", 2},               /* a repeat is not counted */
        {"shm-harness-plan 1\nresource r kind=file lock=futex count=c\nend\n", 2},       /* nor a resource */
        {"shm-harness-plan 1\nstep 1 lock\nend\n", 2},                                 /* needs res= */
        {"shm-harness-plan 1\nstep 1 lock res\nend\n", 2},                             /* a field without = */
        {"shm-harness-plan 1\nstep 1 lock res=r timeout-ns=0\nend\n", 2},              /* a timeout must be positive */
        {"shm-harness-plan 1\nstep 1 lock res=r timeout-ns=2s\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 add res=r offset=1x\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 add res=r value=99999999999999999999\nend\n", 2}, /* out of range */
        {"shm-harness-plan 1\nstep 1 store res=r offset=0\nend\n", 2},                 /* needs u64= or hex= */
        {"shm-harness-plan 1\nstep 1 store res=r u64=-1\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 check res=r hex=abc\nend\n", 2},                  /* odd hex */
        {"shm-harness-plan 1\nstep 1 check res=r hex=zz\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 attach res=r mode=wo\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 seal res=r seals=shrink,melt\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 crash signal=0\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 sleep ns=soon\nend\n", 2},
        {"shm-harness-plan 1\nrepeat 1 times=2\nend\n", 2},                            /* needs body= */
        {"shm-harness-plan 1\nrepeat 1 body=1\nstep 2 sleep\nend\n", 2},               /* needs times= or for-ns= */
        {"shm-harness-plan 1\nrepeat 1 times=2 body=-1\nend\n", 2},
        {"shm-harness-plan 1\nrepeat 1 times=2 body=2\nstep 2 sleep\nend\n", 3},       /* body cut short */
        {"shm-harness-plan 1\nrepeat 1 times=2 body=1\nrepeat 2 times=2 body=2\nstep 3 sleep\nend\n", 4},
        {"shm-harness-plan 1\nstep 1 sleep\nrepeat 2 times=1 body=1\nstep 3 bogus\nend\n", 4},
        /* strict fields: nothing unknown, repeated or malformed is read as a default */
        {"shm-harness-plan 1\nstep 1 sleep ns=1 colour=red\nend\n", 2},             /* unknown field */
        {"shm-harness-plan 1\nstep 1 lock res=r offset=0\nend\n", 2},               /* a field lock does not take */
        {"shm-harness-plan 1\nstep 1 add res=r value=1 value=2\nend\n", 2},         /* given twice */
        {"shm-harness-plan 1\nstep 1 add res=r value=one\nend\n", 2},               /* bad value (was 1) */
        {"shm-harness-plan 1\nstep 1 add res=r value=\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 crash signal=KILL\nend\n", 2},                 /* bad signal (was 9) */
        {"shm-harness-plan 1\nstep 1 crash signal=65\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 crash\nend\n", 2},                             /* needs signal= */
        {"shm-harness-plan 1\nstep 1 check res=r hex=0g\nend\n", 2},                /* bad hex digit (was dropped) */
        {"shm-harness-plan 1\nstep 1 store res=r hex=01 u64=1\nend\n", 2},          /* both */
        {"shm-harness-plan 1\nstep 1 seal res=r seals=shrink,,grow\nend\n", 2},     /* an empty seal */
        {"shm-harness-plan 1\nstep 1 seal res=r seals=shrink,\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 seal res=r\nend\n", 2},                        /* needs seals= */
        {"shm-harness-plan 1\nstep 1 fill res=r byte=256\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 barrier\nend\n", 2},                           /* needs name= */
        {"shm-harness-plan 1\nstep 1 sleep ns=-1\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 truncate res=r size=-1\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 compare res=r offset=0\nend\n", 2},            /* needs with= */
        {"shm-harness-plan 1\nstep 1 compare res=r offset=0 with=8x\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 store-loaded res=r plus=+-1\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 load res=r plus=1\nend\n", 2},                 /* load takes no plus= */
        {"shm-harness-plan 1\nrepeat 1 times=1 for-ns=5 body=0\nend\n", 2},         /* both */
        {"shm-harness-plan 1\nrepeat 1 times=1 body=0 every=2\nend\n", 2},
        {"shm-harness-plan 1\nresource r kind=file lock=futex colour=red\nend\n", 2},
        {"shm-harness-plan 1\nresource r kind=file lock=futex private=yes\nend\n", 2},
        {"shm-harness-plan 1\nresource r kind=file lock=futex size=-4\nend\n", 2},
        {"shm-harness-plan 1\nfile a%zz.yaml\nend\n", 2},                          /* bad escape in the file name */
        {"shm-harness-plan 1\nstep 1 send-fd res=m\nend\n", 2},                   /* needs to= */
        {"shm-harness-plan 1\nstep 1 send-fd res=m to=\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 receive-fd res=m to=b\nend\n", 2},           /* receive-fd takes no to= */
        {"shm-harness-plan 1\nstep 1 receive-fd\nend\n", 2},                      /* needs res= */
        {"shm-harness-plan 1\nchannel b 0\nend\n", 2},                            /* channel GROUP INDEX fd=N */
        {"shm-harness-plan 1\nchannel b x fd=3\nend\n", 2},
        {"shm-harness-plan 1\nchannel b -1 fd=3\nend\n", 2},
        {"shm-harness-plan 1\nchannel b 0 fd=-3\nend\n", 2},
        {"shm-harness-plan 1\nchannel b 0 fd=three\nend\n", 2},
        {"shm-harness-plan 1\nchannel b 0 pipe=3\nend\n", 2},
        {"shm-harness-plan 1\nchannel b 0 expect-error=busy\nend\n", 2},
        {"shm-harness-plan 1\nchannel %zz 0 fd=3\nend\n", 2},
        {"shm-harness-plan 1\nresource s kind=semaphore lock=semaphore initial=-1\nend\n", 2},
        {"shm-harness-plan 1\nresource s kind=semaphore lock=semaphore initial=2147483648\nend\n", 2},
        {"shm-harness-plan 1\nresource s kind=flag lock=semaphore\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 acquire res=s n=0\nend\n", 2},               /* takes at least one unit */
        {"shm-harness-plan 1\nstep 1 acquire res=s n=32768\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 acquire res=s timeout-ns=0\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 release res=s n=-1\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 release res=s timeout-ns=5\nend\n", 2},      /* release does not wait */
        {"shm-harness-plan 1\nstep 1 try-acquire res=s n=1\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 check-value res=s\nend\n", 2},              /* needs value= */
        {"shm-harness-plan 1\nstep 1 check-value res=s value=-1\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 check-at-most res=s offset=0\nend\n", 2},   /* needs max= */
        {"shm-harness-plan 1\nstep 1 check-at-most res=s max=-3\nend\n", 2},
        {"shm-harness-plan 1\nstep 1 check-at-most res=s offset=-8 max=3\nend\n", 2},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct plan p;
        char err[256], want[32];
        memset(&p, 0x5a, sizeof p);
        if (parse(rows[i].text, &p, err, sizeof err) != -1) fail_msg("row %zu was accepted:\n%s", i, rows[i].text);
        snprintf(want, sizeof want, "plan line %d: ", rows[i].line);
        if (strncmp(err, want, strlen(want)) != 0) fail_msg("row %zu: want '%s...', got '%s'", i, want, err);
        assert_null(p.steps); /* nothing left to free */
        assert_null(p.resources);
    }
    /* a NUL byte inside the text */
    struct plan p;
    char err[256];
    static const char with_nul[] = "shm-harness-plan 1\nstep 1 sl\0eep\nend\n";
    assert_int_equal(plan_parse(with_nul, sizeof with_nul - 1, &p, err, sizeof err), -1);
}

/* --- the worker binary ------------------------------------------------------------------------------------ */

static const char *worker(void) {
    const char *w = getenv("SHMH_WORKER");
    return w && *w ? w : "build/shmh-worker";
}

/* Runs the worker on `plan_text` (NULL: no plan argument) with `extra` arguments and `input` on stdin; its stdout
 * into out. Returns the exit status, or 128 + signal. */
static int run_worker(const char *plan_text, const char *const *extra, const char *input, char *out, size_t outlen) {
    char path[] = "/tmp/shmhtestplanXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    if (plan_text) assert_int_equal(write(fd, plan_text, strlen(plan_text)), (ssize_t)strlen(plan_text));
    close(fd);
    int in[2], outp[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(outp), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(outp[1], 1);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        close(in[1]);
        close(outp[0]);
        const char *argv[16] = {worker()};
        int n = 1;
        if (plan_text) argv[n++] = path;
        for (; extra && *extra && n < 15; extra++) argv[n++] = *extra;
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(outp[1]);
    if (input) assert_int_equal(write(in[1], input, strlen(input)), (ssize_t)strlen(input));
    close(in[1]);
    size_t used = 0;
    ssize_t got;
    while ((got = read(outp[0], out + used, outlen - 1 - used)) > 0) used += (size_t)got;
    out[used] = '\0';
    close(outp[0]);
    int status = support_wait(pid);
    unlink(path);
    return status;
}

static int have_worker(void) {
    if (access(worker(), X_OK) == 0) return 1;
    print_message("no worker at %s (SHMH_WORKER): skipped\n", worker());
    return 0;
}

static void worker_exit_statuses(void **state) {
    (void)state;
    if (!have_worker()) skip();
    char out[8192];
    /* 0: every step did what it should */
    assert_int_equal(run_worker("shm-harness-plan 1\nstep 1 sleep ns=1000\nrepeat 2 times=3 body=1\nstep 3 sleep\nend\n", NULL, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "result {\"elapsedNs\":"));
    assert_non_null(strstr(out, ",\"lockCount\":0,\"ok\":true,\"ops\":4}\n"));
    /* 1: a step failed; a resource the plan does not name is a key-error, and expected it is success */
    assert_int_equal(run_worker("shm-harness-plan 1\nstep 7 check res=nope offset=0 u64=1 expect-error=key-error\nend\n", NULL, NULL, out, sizeof out), 0);
    assert_int_equal(run_worker("shm-harness-plan 1\nstep 7 check res=nope offset=0 u64=1\nend\n", NULL, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "\"error\":\"key-error\",\"line\":7,\"lockCount\":0,\"message\":\"resource: no resource nope in this plan: key-error\",\"ok\":false,\"ops\":1,\"step\":\"check\"}"));
    assert_int_equal(run_worker("shm-harness-plan 1\nstep 8 sleep expect-error=busy\nend\n", NULL, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "\"error\":\"unexpected-success\",\"line\":8,"));
    assert_non_null(strstr(out, "\"message\":\"expected busy, but the step succeeded\""));
    /* store-loaded with nothing loaded: unsupported (the loader refuses such a scenario; a hand-made plan may not) */
    assert_int_equal(run_worker("shm-harness-plan 1\nresource r kind=file lock=futex path=%2Fnonexistent\nstep 9 store-loaded res=r offset=0\nend\n", NULL, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "\"error\":\"unsupported\",\"line\":9,"));
    /* 2: broken */
    assert_int_equal(run_worker("shm-harness-plan 1\nstep 1 jump\nend\n", NULL, NULL, out, sizeof out), 2);
    assert_string_equal(out, "");
    assert_int_equal(run_worker(NULL, NULL, NULL, out, sizeof out), 2);
    const char *const missing[] = {"/nonexistent/plan", NULL};
    assert_int_equal(run_worker(NULL, missing, NULL, out, sizeof out), 2);
    const char *const bad_flag[] = {"--frobnicate", NULL};
    assert_int_equal(run_worker("shm-harness-plan 1\nend\n", bad_flag, NULL, out, sizeof out), 2);
    /* 3: the user cannot be switched to */
    const char *const user[] = {"--user", "no-such-user-shmhtest", NULL};
    assert_int_equal(run_worker("shm-harness-plan 1\nend\n", user, NULL, out, sizeof out), 3);
    /* crash: the signal itself */
    assert_int_equal(run_worker("shm-harness-plan 1\nstep 1 crash signal=15\nend\n", NULL, NULL, out, sizeof out), 128 + SIGTERM);
    assert_int_equal(run_worker("shm-harness-plan 1\nstep 1 crash signal=9\nend\n", NULL, NULL, out, sizeof out), 128 + SIGKILL);
}

/* Outcome counting: a list of accepted outcomes (none = success) and count=NAME tallies, in the result line as
 * the Swift worker writes them (keys sorted, only what happened). */
static void worker_outcome_counting(void **state) {
    (void)state;
    if (!have_worker()) skip();
    char out[8192];
    const char *plan = "shm-harness-plan 1\n"
                       "repeat 1 times=3 body=2\n"
                       "step 2 check res=nope offset=0 u64=1 expect-error=none,key-error count=probe\n"
                       "step 3 sleep ns=1 expect-error=none,busy count=b-sleep\n"
                       "step 4 sleep ns=1 count=probe\n"
                       "end\n";
    assert_int_equal(run_worker(plan, NULL, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, ",\"ok\":true,\"ops\":7,\"outcomes\":{\"b-sleep\":{\"ok\":3},\"probe\":{\"key-error\":3,\"ok\":1}}}\n"));
    /* an outcome the list does not accept fails the worker, worded as the Swift worker words it */
    assert_int_equal(run_worker("shm-harness-plan 1\nstep 5 check res=nope offset=0 u64=1 expect-error=none,busy count=c\nend\n", NULL, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "\"message\":\"expected [none, busy], got key-error: resource: no resource nope in this plan: key-error\""));
    assert_null(strstr(out, "outcomes"));
    /* a list without none: success is unexpected */
    assert_int_equal(run_worker("shm-harness-plan 1\nstep 6 sleep expect-error=busy,key-error\nend\n", NULL, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "\"message\":\"expected [busy, key-error], but the step succeeded\""));
    /* a name that is neither none nor an error: a broken plan */
    assert_int_equal(run_worker("shm-harness-plan 1\nstep 7 sleep expect-error=none,nope\nend\n", NULL, NULL, out, sizeof out), 2);
}

static void worker_barrier_protocol(void **state) {
    (void)state;
    if (!have_worker()) skip();
    char out[8192];
    const char *plan = "shm-harness-plan 1\nstep 4 barrier name=start%20now\nstep 5 barrier name=b2\nend\n";
    assert_int_equal(run_worker(plan, NULL, "go start now\ngo b2\n", out, sizeof out), 0);
    assert_memory_equal(out, "barrier start now\nbarrier b2\nresult {", 37);
    /* abort: barrier-aborted, the runner's reason JSON-escaped */
    assert_int_equal(run_worker(plan, NULL, "abort start now worker \"x/1\" ended\t(exit 1)\n", out, sizeof out), 1);
    assert_non_null(strstr(out, "\"error\":\"barrier-aborted\",\"line\":4,"));
    assert_non_null(strstr(out, "\"message\":\"start now worker \\\"x\\/1\\\" ended\\t(exit 1)\""));
    /* the runner went away */
    assert_int_equal(run_worker(plan, NULL, "go start now\n", out, sizeof out), 1);
    assert_non_null(strstr(out, "\"line\":5,"));
    assert_non_null(strstr(out, "\"message\":\"the runner went away\""));
    /* expect-error does not turn an aborted barrier into success */
    assert_int_equal(run_worker("shm-harness-plan 1\nstep 4 barrier name=x expect-error=barrier-aborted\nend\n", NULL, "", out, sizeof out), 1);
}

/* A whole run on a POSIX segment: create, data steps, locks (latencies counted), check mismatch. */
static void worker_segment_run(void **state) {
    (void)state;
    if (!have_worker()) skip();
    char *name = support_unique("workerseg");
    char plan[2048], out[8192];
    snprintf(plan, sizeof plan,
             "shm-harness-plan 1\n"
             "resource seg kind=segment key=posix%%3A%%2F%s size=4096 lock=semaphore lock-offset=0\n"
             "step 1 create res=seg\n"
             "repeat 2 times=10 body=3\n"
             "step 3 lock res=seg\n"
             "step 4 add res=seg offset=0 value=2\n"
             "step 5 unlock res=seg\n"
             "step 6 atomic-add res=seg offset=12 expect-error=invalid-size\n"
             "step 7 check res=seg offset=0 u64=20\n"
             "step 8 store res=seg offset=4095 hex=0102 expect-error=invalid-size\n"
             "step 9 unlock res=seg expect-error=lock-error\n"
             "step 10 load res=seg offset=0\n"
             "step 11 store-loaded res=seg offset=8 plus=5\n"
             "step 12 check res=seg offset=8 u64=25\n"
             "step 13 compare res=seg offset=0 with=16\n"
             "end\n",
             name);
    assert_int_equal(run_worker(plan, NULL, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "\"error\":\"check-mismatch\",\"line\":13,\"lockCount\":10,\"lockMaxNs\":"));
    assert_non_null(strstr(out, "\"message\":\"at offset 0 of seg: u64 20, but at offset 16: u64 0\",\"ok\":false,\"ops\":39,"));
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    assert_false(support_exists(path)); /* the last detach (at the end of the run) removed it */
    free(name);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counter_plan),
        cmocka_unit_test(lock_timeout),
        cmocka_unit_test(nested_repeats),
        cmocka_unit_test(semaphore_steps),
        cmocka_unit_test(percent_encoding_and_values),
        cmocka_unit_test(broken_plans),
        cmocka_unit_test(descriptor_passing),
        cmocka_unit_test(attach_private),
        cmocka_unit_test_setup_teardown(worker_exit_statuses, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(worker_barrier_protocol, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(worker_outcome_counting, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(worker_segment_run, support_setup, support_teardown),
    };
    return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
