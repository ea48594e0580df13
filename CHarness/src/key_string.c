/* key_string.c - QNativeIpcKey::fromString(): the part of QUrl's tolerant mode Qt's key strings reach.
 * A port of NativeIPCKey+String.swift (URLText), checked against the same Qt 6.12 vectors. Works on bytes:
 * every delimiter is ASCII, so splitting UTF-8 bytes splits the same places as splitting scalars. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct span {
    const char *p;
    size_t n;
};

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool has_stray_percent(struct span s) {
    for (size_t i = 0; i < s.n;) {
        if (s.p[i] == '%') {
            if (!(i + 2 < s.n && hexval((unsigned char)s.p[i + 1]) >= 0 && hexval((unsigned char)s.p[i + 2]) >= 0))
                return true;
            i += 3;
        } else {
            i++;
        }
    }
    return false;
}

static size_t put_scalar(char *out, uint32_t v) {
    if (v < 0x80) { out[0] = (char)v; return 1; }
    if (v < 0x800) { out[0] = (char)(0xC0 | v >> 6); out[1] = (char)(0x80 | (v & 0x3F)); return 2; }
    if (v < 0x10000) {
        out[0] = (char)(0xE0 | v >> 12); out[1] = (char)(0x80 | ((v >> 6) & 0x3F)); out[2] = (char)(0x80 | (v & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | v >> 18); out[1] = (char)(0x80 | ((v >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((v >> 6) & 0x3F)); out[3] = (char)(0x80 | (v & 0x3F));
    return 4;
}

/* Qt's QString::fromUtf8: every byte that does not start a valid, shortest-form, non-surrogate sequence
 * becomes one U+FFFD. Output at most 3x the input. */
static size_t utf8_like_qt(char *out, const unsigned char *b, size_t n) {
    size_t used = 0;
    for (size_t i = 0; i < n;) {
        unsigned char lead = b[i];
        uint32_t v = 0;
        size_t len = 0;
#define CONT(k) (i + (k) < n && (b[i + (k)] & 0xC0) == 0x80)
        if (lead < 0x80) {
            v = lead; len = 1;
        } else if (lead >= 0xC2 && lead <= 0xDF) {
            if (CONT(1)) { v = (uint32_t)(lead & 0x1F) << 6 | (b[i + 1] & 0x3F); len = 2; }
        } else if (lead >= 0xE0 && lead <= 0xEF) {
            if (CONT(1) && CONT(2)) {
                uint32_t t = (uint32_t)(lead & 0x0F) << 12 | (uint32_t)(b[i + 1] & 0x3F) << 6 | (b[i + 2] & 0x3F);
                if (t >= 0x800 && !(t >= 0xD800 && t <= 0xDFFF)) { v = t; len = 3; }
            }
        } else if (lead >= 0xF0 && lead <= 0xF4) {
            if (CONT(1) && CONT(2) && CONT(3)) {
                uint32_t t = (uint32_t)(lead & 0x07) << 18 | (uint32_t)(b[i + 1] & 0x3F) << 12 |
                             (uint32_t)(b[i + 2] & 0x3F) << 6 | (b[i + 3] & 0x3F);
                if (t >= 0x10000 && t <= 0x10FFFF) { v = t; len = 4; }
            }
        }
#undef CONT
        if (len) {
            used += put_scalar(out + used, v);
            i += len;
        } else {
            used += put_scalar(out + used, 0xFFFD);
            i += 1;
        }
    }
    return used;
}

/* One component, decoded as QUrl's tolerant mode does; malloc'd into *out. */
static int decode_component(struct span s, char **out, size_t *out_len) {
    char *result = malloc(3 * s.n + 1);
    if (!result) return -1;
    if (has_stray_percent(s)) {
        if (s.n) memcpy(result, s.p, s.n);
        *out_len = s.n;
    } else {
        unsigned char *bytes = malloc(s.n + 1);
        if (!bytes) {
            free(result);
            return -1;
        }
        size_t nb = 0;
        for (size_t i = 0; i < s.n;) {
            if (s.p[i] == '%') {
                bytes[nb++] = (unsigned char)(hexval((unsigned char)s.p[i + 1]) << 4 | hexval((unsigned char)s.p[i + 2]));
                i += 3;
            } else {
                bytes[nb++] = (unsigned char)s.p[i++];
            }
        }
        *out_len = utf8_like_qt(result, bytes, nb);
        free(bytes);
    }
    result[*out_len] = '\0';
    *out = result;
    return 0;
}

static const char *find(struct span s, char c) { return s.n ? memchr(s.p, c, s.n) : NULL; }

static char *copy_span(struct span s) {
    char *out = malloc(s.n + 1);
    if (!out) return NULL;
    if (s.n) memcpy(out, s.p, s.n);
    out[s.n] = '\0';
    return out;
}

static bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Parses a scheme (already lowercased): systemv, systemv-N (1..255, leading zeros allowed), posix, windows. */
static int type_from_scheme(const char *s, size_t n) {
    if (n == 7 && memcmp(s, "systemv", 7) == 0) return SHMH_TYPE_SYSTEMV;
    if (n == 5 && memcmp(s, "posix", 5) == 0) return SHMH_TYPE_POSIX;
    if (n == 7 && memcmp(s, "windows", 7) == 0) return SHMH_TYPE_WINDOWS;
    if (n <= 8 || memcmp(s, "systemv-", 8) != 0) return -1;
    unsigned long value = 0;
    for (size_t i = 8; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        value = value * 10 + (unsigned long)(s[i] - '0');
        if (value > 0xFF) return -1;
    }
    return value >= 1 ? (int)value : -1;
}

static bool is_empty_authority(struct span a) {
    const char *at = NULL;
    for (size_t i = 0; i < a.n; i++)
        if (a.p[i] == '@') at = a.p + i;
    if (at) {
        if (at != a.p) return false;
        a.n -= (size_t)(at + 1 - a.p);
        a.p = at + 1;
    }
    if (a.n && a.p[0] == ':') {
        a.p++;
        a.n--;
    }
    return a.n == 0;
}

int shmh_key_from_string(struct shmh_key *out, const char *text, size_t len) {
    if (len == (size_t)-1) len = strlen(text);
    struct span all = {text, len};
    const char *colon = find(all, ':');
    if (!colon || colon == text) return errno = EINVAL, -1;
    size_t scheme_len = (size_t)(colon - text);
    if (!is_letter(text[0])) return errno = EINVAL, -1;
    char scheme[32];
    for (size_t i = 0; i < scheme_len; i++) {
        char c = text[i];
        if (!(is_letter(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) return errno = EINVAL, -1;
    }
    if (scheme_len >= sizeof scheme) return errno = EINVAL, -1; /* no valid scheme is that long */
    for (size_t i = 0; i < scheme_len; i++) scheme[i] = (char)((text[i] >= 'A' && text[i] <= 'Z') ? text[i] + 32 : text[i]);
    int type = type_from_scheme(scheme, scheme_len);
    if (type < 0) return errno = EINVAL, -1;

    struct span rest = {colon + 1, len - scheme_len - 1};
    const char *hash = find(rest, '#');
    if (hash) rest.n = (size_t)(hash - rest.p);
    struct span query = {NULL, 0};
    bool has_query = false;
    const char *question = find(rest, '?');
    if (question) {
        has_query = true;
        query.p = question + 1;
        query.n = rest.n - (size_t)(question + 1 - rest.p);
        rest.n = (size_t)(question - rest.p);
    }
    if (rest.n >= 2 && rest.p[0] == '/' && rest.p[1] == '/') {
        struct span after = {rest.p + 2, rest.n - 2};
        const char *slash = find(after, '/');
        struct span authority = {after.p, slash ? (size_t)(slash - after.p) : after.n};
        if (!is_empty_authority(authority)) return errno = EINVAL, -1;
        rest.p = authority.p + authority.n;
        rest.n = after.n - authority.n;
    }

    char *legacy = NULL;
    size_t legacy_len = 0;
    if (has_query && query.n > 0) {
        bool literal = has_stray_percent(query);
        /* items split at '&' (empty ones kept, but not after a trailing '&') */
        size_t count = 1;
        for (size_t i = 0; i < query.n; i++) count += query.p[i] == '&';
        if (count > 1 && query.p[query.n - 1] == '&') {
            count--;
            query.n--; /* a trailing '&' ends the last item */
        }
        const char *item = query.p;
        for (size_t k = 0; k < count; k++) {
            const char *end = memchr(item, '&', (size_t)(query.p + query.n - item));
            if (!end) end = query.p + query.n;
            struct span whole = {item, (size_t)(end - item)};
            const char *eq = find(whole, '=');
            struct span name = {item, eq ? (size_t)(eq - item) : whole.n};
            struct span value = {eq ? eq + 1 : end, eq ? (size_t)(end - eq - 1) : 0};
            char *decoded_name = NULL, *decoded_value = NULL;
            size_t name_len = 0, value_len = 0;
            if (literal) {
                decoded_name = copy_span(name);
                name_len = name.n;
                decoded_value = copy_span(value);
                value_len = value.n;
            } else {
                if (decode_component(name, &decoded_name, &name_len) == 0 &&
                    decode_component(value, &decoded_value, &value_len) != 0)
                    decoded_value = NULL;
            }
            if (!decoded_name || !decoded_value) {
                free(decoded_name);
                free(decoded_value);
                free(legacy);
                return errno = ENOMEM, -1;
            }
            bool named = name_len == 9 && memcmp(decoded_name, "legacyKey", 9) == 0;
            free(decoded_name);
            if (!named) {
                free(decoded_value);
                free(legacy);
                return errno = EINVAL, -1;
            }
            free(legacy);
            legacy = decoded_value;
            legacy_len = value_len;
            item = end + 1;
        }
    }
    if (legacy && legacy_len == 0) {
        free(legacy);
        legacy = NULL;
    }
    char *native = NULL;
    size_t native_len = 0;
    if (decode_component(rest, &native, &native_len) != 0) {
        free(legacy);
        return errno = ENOMEM, -1;
    }
    out->type = (uint16_t)type;
    out->native = native;
    out->native_len = native_len;
    out->legacy = legacy;
    out->legacy_len = legacy_len;
    return 0;
}
