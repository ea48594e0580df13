/* key.c - QNativeIpcKey: Qt's legacy derivation, its string form (toString), the lock semaphore's key.
 * Same rules as Sources/SharedMemoryKit/Keys/LegacyKey.swift and NativeIPCKey+String.swift. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *shmh_strdup_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0) out = NULL;
    va_end(ap);
    return out;
}

static char *dup_bytes(const char *s, size_t len) {
    char *out = malloc(len + 1);
    if (!out) return NULL;
    if (len) memcpy(out, s, len);
    out[len] = '\0';
    return out;
}

int shmh_key_is_systemv(uint16_t type) { return type >= 1 && type <= 0xFF; }

static int set_key(struct shmh_key *key, uint16_t type, const char *native, size_t native_len, const char *legacy,
                   size_t legacy_len) {
    key->type = type;
    key->native = dup_bytes(native ? native : "", native ? native_len : 0);
    key->native_len = native ? native_len : 0;
    key->legacy = legacy ? dup_bytes(legacy, legacy_len) : NULL;
    key->legacy_len = legacy ? legacy_len : 0;
    if (!key->native || (legacy && !key->legacy)) {
        shmh_key_free(key);
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int shmh_key_init(struct shmh_key *key, uint16_t type, const char *native, size_t len) {
    if (native && len == (size_t)-1) len = strlen(native);
    return set_key(key, type, native, len, NULL, 0);
}

void shmh_key_free(struct shmh_key *key) {
    if (!key) return;
    free(key->native);
    free(key->legacy);
    key->native = key->legacy = NULL;
    key->native_len = key->legacy_len = 0;
}

int shmh_key_copy(struct shmh_key *out, const struct shmh_key *key) {
    return set_key(out, key->type, key->native, key->native_len, key->legacy, key->legacy_len);
}

int shmh_key_equal(const struct shmh_key *a, const struct shmh_key *b) {
    if (a->type != b->type || a->native_len != b->native_len) return 0;
    if (memcmp(a->native, b->native, a->native_len) != 0) return 0;
    if ((a->legacy == NULL) != (b->legacy == NULL)) return 0;
    if (a->legacy && (a->legacy_len != b->legacy_len || memcmp(a->legacy, b->legacy, a->legacy_len) != 0)) return 0;
    return 1;
}

/* QDir::cleanPath(): collapses //, drops ., resolves .. textually, drops a trailing /. */
static char *clean_path(const char *path) {
    size_t n = strlen(path);
    bool absolute = n > 0 && path[0] == '/';
    const char **parts = calloc(n + 1, sizeof *parts);
    size_t *lens = calloc(n + 1, sizeof *lens);
    char *out = malloc(n + 3);
    if (!parts || !lens || !out) {
        free(parts);
        free(lens);
        free(out);
        return NULL;
    }
    size_t count = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && path[i] == '/') i++;
        size_t start = i;
        while (i < n && path[i] != '/') i++;
        size_t len = i - start;
        if (len == 0) continue;
        const char *part = path + start;
        if (len == 1 && part[0] == '.') continue;
        bool dotdot = len == 2 && part[0] == '.' && part[1] == '.';
        if (dotdot && count > 0 && !(lens[count - 1] == 2 && memcmp(parts[count - 1], "..", 2) == 0)) {
            count--;
            continue;
        }
        if (dotdot && absolute) continue;
        parts[count] = part;
        lens[count++] = len;
    }
    size_t used = 0;
    if (absolute) out[used++] = '/';
    for (size_t i = 0; i < count; i++) {
        if (i) out[used++] = '/';
        memcpy(out + used, parts[i], lens[i]);
        used += lens[i];
    }
    if (!absolute && used == 0) out[used++] = '.';
    out[used] = '\0';
    free(parts);
    free(lens);
    return out;
}

int shmh_qt_temp_path(char *buf, size_t len) {
    const char *raw = getenv("TMPDIR");
    if (!raw || !*raw) raw = "/tmp";
    char *cleaned = clean_path(raw);
    if (!cleaned) return errno = ENOMEM, -1;
    char *real = realpath(cleaned, NULL);
    const char *result = real ? real : cleaned;
    int rc = 0;
    if (strlen(result) + 1 > len) {
        errno = ERANGE;
        rc = -1;
    } else {
        strcpy(buf, result);
    }
    free(real);
    free(cleaned);
    return rc;
}

/* Whether folder `dir` is `root` or below it. */
static bool folder_inside(const char *dir, const char *root) {
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return true;
    return strncmp(dir, root, n) == 0 && (dir[n] == '\0' || dir[n] == '/');
}

/* The key path rule (Keys/KeyPathPolicy.swift): a System V key file is in the temp folder, /tmp or $XDG_RUNTIME_DIR
 * (or below), its folder resolved with realpath; anything else is refused unless the caller opted in. */
int shmh_check_key_path(const struct shmh_key *key, bool allow_any_path, const struct shmh_site *site) {
    if (allow_any_path || !shmh_key_is_systemv(key->type) || key->native_len == 0) return 0;
    char *absolute;
    if (key->native[0] == '/') {
        absolute = strdup(key->native);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return shmh_fail_call(site, "getcwd", SHMH_OP_GENERIC, errno, "%s", key->native);
        absolute = shmh_strdup_printf("%s/%s", cwd, key->native);
    }
    char *cleaned = absolute ? clean_path(absolute) : NULL;
    free(absolute);
    if (!cleaned) return shmh_fail_call(site, "malloc", SHMH_OP_GENERIC, ENOMEM, NULL);
    char *slash = strrchr(cleaned, '/');
    char *folder = slash && slash != cleaned ? strndup(cleaned, (size_t)(slash - cleaned)) : strdup("/");
    char *real = folder ? realpath(folder, NULL) : NULL;
    const char *where = real ? real : folder;
    char temp[PATH_MAX];
    bool ok = false;
    if (where && shmh_qt_temp_path(temp, sizeof temp) == 0) {
        ok = folder_inside(where, temp) || folder_inside(where, "/tmp");
        if (!ok) {
            char *tmp_real = realpath("/tmp", NULL);
            ok = tmp_real && folder_inside(where, tmp_real);
            free(tmp_real);
        }
        const char *runtime = getenv("XDG_RUNTIME_DIR");
        if (!ok && runtime && runtime[0] == '/') {
            char *runtime_clean = clean_path(runtime);
            char *runtime_real = runtime_clean ? realpath(runtime_clean, NULL) : NULL;
            ok = (runtime_clean && folder_inside(where, runtime_clean)) || (runtime_real && folder_inside(where, runtime_real));
            free(runtime_real);
            free(runtime_clean);
        }
    } else {
        strcpy(temp, "?");
    }
    free(real);
    free(folder);
    int rc = 0;
    if (!ok) {
        const char *runtime = getenv("XDG_RUNTIME_DIR");
        rc = shmh_fail_refuse(site, SHMH_KEY_ERROR, EINVAL,
                              "the key names the file %s, which is outside the temp folder %s, /tmp and the runtime folder %s; "
                              "System V key files must be in one of them (set allow_any_path to use any path)",
                              cleaned, temp, runtime ? runtime : "($XDG_RUNTIME_DIR, unset)");
    }
    free(cleaned);
    return rc;
}

int shmh_key_legacy(struct shmh_key *out, const char *legacy, size_t len, uint16_t type, enum shmh_kind kind,
                    const char *tempdir) {
    if (legacy && len == (size_t)-1) len = strlen(legacy);
    if (!legacy || len == 0) return set_key(out, type, "", 0, NULL, 0);
    if (type == SHMH_TYPE_WINDOWS) return set_key(out, type, "", 0, NULL, 0); /* unsupported here, as in Qt */
    const char *prefix = kind == SHMH_KIND_SYSTEM_SEMAPHORE ? "qipc_systemsem_" : "qipc_sharedmemory_";
    char temp[PATH_MAX];
    if (type != SHMH_TYPE_POSIX && !tempdir) {
        if (shmh_qt_temp_path(temp, sizeof temp) == -1) return -1;
        tempdir = temp;
    }
    const char *head = type == SHMH_TYPE_POSIX ? "/" : tempdir;
    size_t head_len = strlen(head);
    size_t cap = head_len + 1 + strlen(prefix) + len + 40 + 1;
    char *native = malloc(cap);
    if (!native) return errno = ENOMEM, -1;
    size_t used = 0;
    memcpy(native, head, head_len);
    used += head_len;
    if (type != SHMH_TYPE_POSIX) native[used++] = '/';
    memcpy(native + used, prefix, strlen(prefix));
    used += strlen(prefix);
    for (size_t i = 0; i < len; i++) {
        char c = legacy[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) native[used++] = c;
    }
    uint8_t digest[20];
    shmh_sha1(legacy, len, digest);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 20; i++) {
        native[used++] = hex[digest[i] >> 4];
        native[used++] = hex[digest[i] & 0xF];
    }
    native[used] = '\0';
    int rc = set_key(out, type, native, used, legacy, len);
    free(native);
    return rc;
}

char *shmh_key_directory(const struct shmh_key *key) {
    const char *slash = NULL;
    for (size_t i = 0; i < key->native_len; i++)
        if (key->native[i] == '/') slash = key->native + i;
    if (!slash || slash == key->native) return NULL;
    return dup_bytes(key->native, (size_t)(slash - key->native));
}

int shmh_key_lock_semaphore_key(const struct shmh_key *key, struct shmh_key *out) {
    if (!key->legacy) return set_key(out, key->type, key->native, key->native_len, NULL, 0);
    char *dir = shmh_key_is_systemv(key->type) ? shmh_key_directory(key) : NULL;
    int rc = shmh_key_legacy(out, key->legacy, key->legacy_len, key->type, SHMH_KIND_SYSTEM_SEMAPHORE, dir);
    free(dir);
    return rc;
}

/* --- toString --- */

static size_t encode(char *out, const char *text, size_t len, const char *extra) {
    static const char hex[] = "0123456789ABCDEF";
    size_t used = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x80 && (c < 0x20 || c == 0x7F || c == '%' || (c && strchr(extra, c)))) {
            out[used++] = '%';
            out[used++] = hex[c >> 4];
            out[used++] = hex[c & 0xF];
        } else {
            out[used++] = (char)c;
        }
    }
    return used;
}

char *shmh_key_to_string(const struct shmh_key *key, size_t *len_out) {
    char scheme[16];
    if (key->type == SHMH_TYPE_SYSTEMV) strcpy(scheme, "systemv");
    else if (shmh_key_is_systemv(key->type)) snprintf(scheme, sizeof scheme, "systemv-%u", (unsigned)key->type);
    else if (key->type == SHMH_TYPE_POSIX) strcpy(scheme, "posix");
    else if (key->type == SHMH_TYPE_WINDOWS) strcpy(scheme, "windows");
    else return errno = EINVAL, NULL;
    size_t cap = strlen(scheme) + 1 + 3 * key->native_len + 2 + (key->legacy ? 11 + 3 * key->legacy_len : 0) + 1;
    char *out = malloc(cap);
    if (!out) return errno = ENOMEM, NULL;
    size_t used = strlen(scheme);
    memcpy(out, scheme, used);
    out[used++] = ':';
    char *path = out + used;
    size_t path_len = encode(path, key->native, key->native_len, "#?");
    if (path_len >= 2 && path[0] == '/' && path[1] == '/') {
        /* a leading // becomes /%2F: shift the rest right by two */
        memmove(path + 4, path + 2, path_len - 2);
        memcpy(path, "/%2F", 4);
        path_len += 2;
    }
    used += path_len;
    if (key->legacy) {
        memcpy(out + used, "?legacyKey=", 11);
        used += 11;
        used += encode(out + used, key->legacy, key->legacy_len, "#&=");
    }
    out[used] = '\0';
    if (len_out) *len_out = used;
    return out;
}

const char *shmh_key_describe(const struct shmh_key *key, char *buf, size_t len) {
    size_t n = 0;
    char *text = shmh_key_to_string(key, &n);
    if (!text) {
        snprintf(buf, len, "invalid key");
        return buf;
    }
    for (size_t i = 0; i < n; i++)
        if (text[i] == '\0') text[i] = '?'; /* messages are C strings */
    snprintf(buf, len, "%s", text);
    free(text);
    return buf;
}

const char *shmh_posix_bare_name(const struct shmh_key *key) {
    if (strlen(key->native) != key->native_len) return NULL; /* an inner NUL: not a usable name */
    const char *bare = key->native;
    while (*bare == '/') bare++;
    if (!*bare || strchr(bare, '/')) return NULL;
    return bare;
}
