/* shmh_tool.c - shmh-tool, the C twin of the Swift CLI's segment commands, for cross-language tests:
 *
 *   shmh-tool create --native-key K --size N [--hold-seconds S]   create, print the key string, hold, detach
 *   shmh-tool attach --native-key K                               attach, print the size, detach
 *   shmh-tool hold   --native-key K                               attach and hold until SIGINT/SIGTERM
 *   shmh-tool dump   --native-key K [--offset O] [--length L]     attach read-only, lock, bytes to stdout
 *   shmh-tool write  --native-key K [--offset O]                  attach, lock, stdin's bytes at O
 *   shmh-tool add    --native-key K [--offset O] --iterations N   N x (lock, u64 LE at O += 1, unlock)
 *
 * Exit status: 0 success, 1 an operation failed (the error on stderr), 2 unusable input. */
#include "shmh.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOCK_TIMEOUT_NS (60LL * 1000000000LL)

static int usage(const char *why) {
    fprintf(stderr, "shmh-tool: %s\nusage: shmh-tool create|attach|hold|dump|write|add --native-key K "
                    "[--size N] [--offset O] [--length L] [--iterations N] [--hold-seconds S]\n", why);
    return 2;
}

static int failed(void) {
    char buf[1400];
    fprintf(stderr, "shmh-tool: %s\n", shmh_failure_format(buf, sizeof buf));
    return 1;
}

static int parse_size(const char *text, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || v < 0) return -1;
    *out = v;
    return 0;
}

/* Waits for SIGINT/SIGTERM (blocked beforehand, so none is lost) or `seconds` (< 0: no limit). */
static void hold(const sigset_t *signals, double seconds) {
    if (seconds < 0) {
        int received;
        sigwait(signals, &received);
        return;
    }
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (sigtimedwait(signals, NULL, &ts) == -1 && errno == EINTR) {}
}

static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage("no command");
    const char *command = argv[1], *key_text = NULL;
    long long size = -1, offset = 0, length = -1, iterations = 1000;
    double hold_seconds = -1;
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val) return usage("an option needs a value");
        i++;
        if (strcmp(opt, "--native-key") == 0) key_text = val;
        else if (strcmp(opt, "--size") == 0 && parse_size(val, &size) == 0) {}
        else if (strcmp(opt, "--offset") == 0 && parse_size(val, &offset) == 0) {}
        else if (strcmp(opt, "--length") == 0 && parse_size(val, &length) == 0) {}
        else if (strcmp(opt, "--iterations") == 0 && parse_size(val, &iterations) == 0) {}
        else if (strcmp(opt, "--hold-seconds") == 0) hold_seconds = atof(val);
        else return usage("bad option or value");
    }
    if (!key_text) return usage("give --native-key STRING (Qt's key string, e.g. posix:/name)");
    struct shmh_key key;
    if (shmh_key_from_string(&key, key_text, (size_t)-1) == -1) return usage("--native-key is not a valid key string");

    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);

    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    if (!seg) return failed();
    int rc = 0;
    if (strcmp(command, "create") == 0) {
        if (size <= 0) return usage("create needs --size N > 0");
        if (shmh_segment_create(seg, (size_t)size, SHMH_READ_WRITE) != 0) return failed();
        char *text = shmh_key_to_string(&key, NULL);
        printf("%s\n", text ? text : "");
        fflush(stdout);
        free(text);
        hold(&signals, hold_seconds);
    } else if (strcmp(command, "attach") == 0 || strcmp(command, "hold") == 0) {
        if (shmh_segment_attach(seg, SHMH_READ_WRITE) != 0) return failed();
        printf("%zu\n", shmh_segment_size(seg));
        fflush(stdout);
        if (command[0] == 'h') hold(&signals, hold_seconds);
    } else if (strcmp(command, "dump") == 0) {
        if (shmh_segment_attach(seg, SHMH_READ_ONLY) != 0 || shmh_segment_lock(seg, LOCK_TIMEOUT_NS) != 0) return failed();
        size_t total = shmh_segment_size(seg);
        size_t n = length < 0 ? (offset < (long long)total ? total - (size_t)offset : 0) : (size_t)length;
        if ((size_t)offset > total || n > total - (size_t)offset) {
            fprintf(stderr, "shmh-tool: dump: range %lld+%zu is outside the segment of %zu bytes: invalid-size\n",
                    offset, n, total);
            rc = 1;
        } else if (write_all(1, (unsigned char *)shmh_segment_data(seg) + offset, n) != 0) {
            rc = 1;
        }
        if (shmh_segment_unlock(seg) != 0) return failed();
    } else if (strcmp(command, "write") == 0) {
        size_t cap = 65536, used = 0;
        unsigned char *input = malloc(cap);
        for (;;) {
            if (used == cap && !(input = realloc(input, cap *= 2))) return 1;
            ssize_t r = read(0, input + used, cap - used);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) return 1;
            if (r == 0) break;
            used += (size_t)r;
        }
        if (shmh_segment_attach(seg, SHMH_READ_WRITE) != 0 || shmh_segment_lock(seg, LOCK_TIMEOUT_NS) != 0) return failed();
        size_t total = shmh_segment_size(seg);
        if ((size_t)offset > total || used > total - (size_t)offset) {
            fprintf(stderr, "shmh-tool: write: %zu bytes at %lld do not fit in %zu: invalid-size\n", used, offset, total);
            rc = 1;
        } else {
            memcpy((unsigned char *)shmh_segment_data(seg) + offset, input, used);
        }
        free(input);
        if (shmh_segment_unlock(seg) != 0) return failed();
    } else if (strcmp(command, "add") == 0) {
        if (shmh_segment_attach(seg, SHMH_READ_WRITE) != 0) return failed();
        if ((size_t)offset + 8 > shmh_segment_size(seg)) return usage("--offset leaves no room for a u64");
        for (long long i = 0; i < iterations; i++) {
            if (shmh_segment_lock(seg, LOCK_TIMEOUT_NS) != 0) return failed();
            unsigned char *p = (unsigned char *)shmh_segment_data(seg) + offset;
            uint64_t v = 0;
            for (int b = 0; b < 8; b++) v |= (uint64_t)p[b] << (8 * b); /* little-endian, as the Swift CLI */
            v++;
            for (int b = 0; b < 8; b++) p[b] = (unsigned char)(v >> (8 * b));
            if (shmh_segment_unlock(seg) != 0) return failed();
        }
        printf("done %lld\n", iterations);
    } else {
        return usage("unknown command");
    }
    if (shmh_segment_detach(seg) != 0) return failed();
    shmh_segment_free(seg);
    shmh_key_free(&key);
    return rc;
}
