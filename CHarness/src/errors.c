/* errors.c - the one errno -> error table, error names, and the per-thread record of the last failure. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const names[] = {
    [SHMH_OK] = "ok",
    [SHMH_PERMISSION_DENIED] = "permission-denied",
    [SHMH_INVALID_SIZE] = "invalid-size",
    [SHMH_KEY_ERROR] = "key-error",
    [SHMH_ALREADY_EXISTS] = "already-exists",
    [SHMH_NOT_FOUND] = "not-found",
    [SHMH_LOCK_ERROR] = "lock-error",
    [SHMH_OUT_OF_RESOURCES] = "out-of-resources",
    [SHMH_BUSY] = "busy",
    [SHMH_SEALED] = "sealed",
    [SHMH_BUS_ERROR] = "bus-error",
    [SHMH_OWNER_DIED] = "owner-died",
    [SHMH_UNKNOWN] = "unknown",
};
_Static_assert(sizeof names / sizeof names[0] == SHMH_ERROR_COUNT + 1, "one name per code");

const char *shmh_error_name(enum shmh_error code) {
    if ((int)code < 0 || (int)code > SHMH_ERROR_COUNT) return NULL;
    return names[code];
}

enum shmh_error shmh_error_from_name(const char *name) {
    for (int i = 1; i <= SHMH_ERROR_COUNT; i++)
        if (name && strcmp(names[i], name) == 0) return (enum shmh_error)i;
    return SHMH_OK;
}

enum shmh_error shmh_error_from_errno(enum shmh_op op, int err) {
    switch (err) {
    case 0: return SHMH_OK;
    case EPERM:
        if (op == SHMH_OP_SEAL) return SHMH_SEALED;
        if (op == SHMH_OP_LOCK || op == SHMH_OP_TRYLOCK) return SHMH_LOCK_ERROR;
        return SHMH_PERMISSION_DENIED;
    case EACCES: return op == SHMH_OP_TRYLOCK ? SHMH_BUSY : SHMH_PERMISSION_DENIED;
    case EEXIST: return SHMH_ALREADY_EXISTS;
    case ENOENT:
    case EIDRM: return SHMH_NOT_FOUND;
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case ENOSPC:
    case ERANGE: return SHMH_OUT_OF_RESOURCES;
    case ENAMETOOLONG:
    case ELOOP: return SHMH_KEY_ERROR;
    case EINVAL:
        switch (op) {
        case SHMH_OP_NAME: return SHMH_KEY_ERROR;
        case SHMH_OP_SIZE: return SHMH_INVALID_SIZE;
        case SHMH_OP_SEMOP: return SHMH_NOT_FOUND;
        case SHMH_OP_POST: return SHMH_OUT_OF_RESOURCES;
        default: return SHMH_UNKNOWN;
        }
    case EAGAIN: return op == SHMH_OP_TRYLOCK ? SHMH_BUSY : SHMH_LOCK_ERROR;
    case EBUSY: return op == SHMH_OP_TRYLOCK || op == SHMH_OP_SEAL ? SHMH_BUSY : SHMH_UNKNOWN;
    case ETIMEDOUT:
    case EDEADLK:
    case ENOTRECOVERABLE: return SHMH_LOCK_ERROR;
    case EOWNERDEAD: return SHMH_OWNER_DIED;
    default: return SHMH_UNKNOWN;
    }
}

const char *shmh_errno_symbol(int err) {
    switch (err) {
#define E(x) case x: return #x;
        E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES)
        E(EFAULT) E(EBUSY) E(EEXIST) E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(EFBIG)
        E(ENOSPC) E(ESPIPE) E(EROFS) E(ERANGE) E(EDEADLK) E(ENAMETOOLONG) E(ENOLCK) E(ENOSYS) E(ELOOP) E(EIDRM)
        E(EOVERFLOW) E(ETIMEDOUT) E(EOWNERDEAD) E(ENOTRECOVERABLE)
#undef E
    default: return NULL;
    }
}

static _Thread_local struct shmh_failure last;

const struct shmh_failure *shmh_last_failure(void) { return &last; }

void shmh_fail_save(struct shmh_failure *saved) { *saved = last; }
void shmh_fail_restore(const struct shmh_failure *saved) { last = *saved; }

static void record(const struct shmh_site *site, enum shmh_error code, int err, const char *call, const char *fmt,
                   va_list ap) {
    last.code = code;
    last.err = err;
    last.call = call;
    last.operation = site && site->operation ? site->operation : "";
    last.object[0] = '\0';
    if (site && site->key) shmh_key_describe(site->key, last.object, sizeof last.object);
    else if (site && site->path) snprintf(last.object, sizeof last.object, "%s", site->path);
    last.detail[0] = '\0';
    if (fmt) vsnprintf(last.detail, sizeof last.detail, fmt, ap);
}

int shmh_fail_call(const struct shmh_site *site, const char *call, enum shmh_op op, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record(site, shmh_error_from_errno(op, err), err, call, fmt, ap);
    va_end(ap);
    errno = err;
    return -1;
}

int shmh_fail_refuse(const struct shmh_site *site, enum shmh_error code, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record(site, code, 0, NULL, fmt, ap);
    va_end(ap);
    errno = err;
    return -1;
}

void shmh_fail_relabel(const char *operation, enum shmh_error code, const char *prefix) {
    last.operation = operation;
    last.code = code;
    if (prefix) {
        char old[sizeof last.detail];
        memcpy(old, last.detail, sizeof old);
        snprintf(last.detail, sizeof last.detail, "%s%s", prefix, old[0] ? old : names[code]);
    }
}

char *shmh_failure_format(char *buf, size_t len) {
    const struct shmh_failure *f = &last;
    size_t used = 0;
#define PUT(...)                                                                                                   \
    do {                                                                                                           \
        int n_ = snprintf(buf + used, used < len ? len - used : 0, __VA_ARGS__);                                   \
        if (n_ > 0) used += (size_t)n_;                                                                            \
    } while (0)
    if (!buf || len == 0) return buf;
    buf[0] = '\0';
    PUT("%s: ", f->operation ? f->operation : "");
    if (f->call) {
        PUT("%s", f->call);
        if (f->detail[0]) PUT("(%s)", f->detail);
        PUT(": ");
    } else if (f->detail[0]) {
        PUT("%s: ", f->detail);
    }
    PUT("%s", shmh_error_name(f->code) ? shmh_error_name(f->code) : "unknown");
    if (f->err) {
        const char *symbol = shmh_errno_symbol(f->err);
        if (symbol) PUT(" (%s: %s)", symbol, strerror(f->err));
        else PUT(" (errno %d: %s)", f->err, strerror(f->err));
    }
    if (f->object[0]) PUT(" [%s]", f->object);
#undef PUT
    return buf;
}
