/* plan.c - the worker plan parser (format version 1, docs/worker-protocol.md), libc only.
 *
 * Follows Sources/WorkerKit/Plan.swift: lines split on '\n' (empty lines skipped), words on ' ', fields
 * `name=value` with percent-encoded values, anything after `end` is ignored. As strict as the Swift decoder: a
 * field the line's kind does not take, a field given twice, a number that does not parse or is out of range, a
 * malformed hex= value, an unknown seal, a mode other than ro/rw, a signal outside 1...64 is a broken plan. */
#include "plan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const step_names[] = {
    [PLAN_STEP_CREATE] = "create",         [PLAN_STEP_ATTACH] = "attach",       [PLAN_STEP_DETACH] = "detach",
    [PLAN_STEP_LOCK] = "lock",             [PLAN_STEP_UNLOCK] = "unlock",       [PLAN_STEP_TRY_LOCK] = "try-lock",
    [PLAN_STEP_ADD] = "add",               [PLAN_STEP_ATOMIC_ADD] = "atomic-add", [PLAN_STEP_STORE] = "store",
    [PLAN_STEP_CHECK] = "check",           [PLAN_STEP_FILL] = "fill",           [PLAN_STEP_CHECK_FILL] = "check-fill",
    [PLAN_STEP_TRUNCATE] = "truncate",     [PLAN_STEP_SEAL] = "seal",           [PLAN_STEP_TOUCH_ALL] = "touch-all",
    [PLAN_STEP_BARRIER] = "barrier",       [PLAN_STEP_SLEEP] = "sleep",         [PLAN_STEP_CRASH] = "crash",
    [PLAN_STEP_REPEAT_TIMES] = "repeat",   [PLAN_STEP_REPEAT_FOR] = "repeat",   [PLAN_STEP_LOAD] = "load",
    [PLAN_STEP_STORE_LOADED] = "store-loaded", [PLAN_STEP_COMPARE] = "compare",
    [PLAN_STEP_SEND_FD] = "send-fd",       [PLAN_STEP_RECEIVE_FD] = "receive-fd",
    [PLAN_STEP_SYNC] = "sync",             [PLAN_STEP_CHECK_FILE] = "check-file",
    [PLAN_STEP_ACQUIRE] = "acquire",       [PLAN_STEP_RELEASE] = "release",     [PLAN_STEP_TRY_ACQUIRE] = "try-acquire",
    [PLAN_STEP_CHECK_VALUE] = "check-value", [PLAN_STEP_CHECK_AT_MOST] = "check-at-most",
};

const char *plan_step_kind_name(enum plan_step_kind kind) {
    if ((unsigned)kind >= sizeof step_names / sizeof step_names[0]) return "?";
    return step_names[kind];
}

/* --- words and fields ------------------------------------------------------------------------------ */

struct word {
    const char *s;
    size_t len;
};

struct field {
    const char *name;
    size_t name_len;
    struct plan_text value;
};

struct fields {
    struct field *items;
    size_t n;
};

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int plan_decode(const char *text, size_t len, struct plan_text *out) {
    char *buf = malloc(len + 1);
    if (!buf) return -1;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (text[i] == '%') {
            int hi = i + 2 < len ? hexval(text[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(text[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(buf);
                return -1;
            }
            buf[n++] = (char)(hi << 4 | lo);
            i += 3;
        } else {
            buf[n++] = text[i++];
        }
    }
    buf[n] = '\0';
    out->s = buf;
    out->len = n;
    return 0;
}

static void text_free(struct plan_text *t) {
    free(t->s);
    t->s = NULL;
    t->len = 0;
}

static size_t split_words(const char *line, size_t len, struct word *words, size_t max) {
    size_t n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && line[i] == ' ') i++;
        if (i == len) break;
        size_t start = i;
        while (i < len && line[i] != ' ') i++;
        if (n < max) words[n] = (struct word){line + start, i - start};
        n++;
    }
    return n;
}

static int word_is(struct word w, const char *s) { return w.len == strlen(s) && memcmp(w.s, s, w.len) == 0; }

static void fields_free(struct fields *f) {
    for (size_t i = 0; i < f->n; i++) text_free(&f->items[i].value);
    free(f->items);
    f->items = NULL;
    f->n = 0;
}

/* `name=value` words. `allowed` is a space-separated list of the names the line takes (expect-error is always
 * allowed); into why: what is wrong with the first bad word. */
static int parse_fields(const struct word *words, size_t n, const char *allowed, struct fields *out, char *why, size_t whylen) {
    out->items = calloc(n ? n : 1, sizeof *out->items);
    out->n = 0;
    snprintf(why, whylen, "out of memory");
    if (!out->items) return -1;
    for (size_t i = 0; i < n; i++) {
        int shown = words[i].len > 60 ? 60 : (int)words[i].len;
        const char *eq = memchr(words[i].s, '=', words[i].len);
        if (!eq) {
            snprintf(why, whylen, "bad field '%.*s'", shown, words[i].s);
            return -1;
        }
        size_t name_len = (size_t)(eq - words[i].s);
        int known = name_len == strlen("expect-error") && memcmp(words[i].s, "expect-error", name_len) == 0;
        for (const char *a = allowed; !known && *a;) {
            size_t len = strcspn(a, " ");
            known = len == name_len && memcmp(a, words[i].s, len) == 0;
            a += len + (a[len] == ' ');
        }
        if (!known) {
            snprintf(why, whylen, "unknown field '%.*s'; expected one of: %s expect-error", (int)(name_len > 40 ? 40 : name_len),
                     words[i].s, allowed);
            return -1;
        }
        for (size_t j = 0; j < out->n; j++)
            if (out->items[j].name_len == name_len && memcmp(out->items[j].name, words[i].s, name_len) == 0) {
                snprintf(why, whylen, "field '%.*s' given twice", (int)(name_len > 40 ? 40 : name_len), words[i].s);
                return -1;
            }
        struct field *f = &out->items[out->n];
        f->name = words[i].s;
        f->name_len = name_len;
        if (plan_decode(eq + 1, words[i].len - name_len - 1, &f->value) == -1) {
            snprintf(why, whylen, "bad field '%.*s' (a bad %%-escape)", shown, words[i].s);
            return -1;
        }
        out->n++;
    }
    return 0;
}

/* The last field of that name (as a Swift dictionary built in order keeps the last). */
static const struct plan_text *field(const struct fields *f, const char *name) {
    size_t len = strlen(name);
    for (size_t i = f->n; i-- > 0;)
        if (f->items[i].name_len == len && memcmp(f->items[i].name, name, len) == 0) return &f->items[i].value;
    return NULL;
}

static int text_copy(const struct plan_text *from, struct plan_text *to) {
    to->s = malloc(from->len + 1);
    if (!to->s) return -1;
    memcpy(to->s, from->s, from->len);
    to->s[from->len] = '\0';
    to->len = from->len;
    return 0;
}

/* Swift's Int(String): an optional sign, then decimal digits only, within range. */
static int parse_i64(const char *s, size_t len, int64_t *out) {
    size_t i = 0;
    int negative = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
    if (i == len) return -1;
    uint64_t v = 0;
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = negative ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 0;
}

static int parse_u64(const char *s, size_t len, uint64_t *out) {
    size_t i = 0;
    if (i < len && s[i] == '+') i++;
    if (i == len) return -1;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* --- errors ------------------------------------------------------------------------------------------ */

struct parser {
    char *err;
    size_t errlen;
};

static int broken(struct parser *p, size_t line, const char *fmt, ...) {
    if (p->err && p->errlen) {
        int n = snprintf(p->err, p->errlen, "plan line %zu: ", line);
        va_list ap;
        va_start(ap, fmt);
        if (n >= 0 && (size_t)n < p->errlen) vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* --- steps ---------------------------------------------------------------------------------------- */

struct step_line {
    size_t number; /* line in the plan */
    const char *s;
    size_t len;
};

struct step_list {
    struct plan_step *items;
    size_t n, cap;
};

static struct plan_step *step_append(struct step_list *list) {
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 16;
        struct plan_step *items = realloc(list->items, cap * sizeof *items);
        if (!items) return NULL;
        list->items = items;
        list->cap = cap;
    }
    struct plan_step *s = &list->items[list->n++];
    memset(s, 0, sizeof *s);
    return s;
}

static void step_free(struct plan_step *s) {
    text_free(&s->res);
    text_free(&s->expect);
    text_free(&s->count);
    text_free(&s->name);
    free(s->bytes);
    s->bytes = NULL;
}

static const struct {
    const char *name;
    enum plan_step_kind kind;
} step_kinds[] = {
    {"create", PLAN_STEP_CREATE},       {"attach", PLAN_STEP_ATTACH},     {"detach", PLAN_STEP_DETACH},
    {"lock", PLAN_STEP_LOCK},           {"unlock", PLAN_STEP_UNLOCK},     {"try-lock", PLAN_STEP_TRY_LOCK},
    {"add", PLAN_STEP_ADD},             {"atomic-add", PLAN_STEP_ATOMIC_ADD}, {"store", PLAN_STEP_STORE},
    {"check", PLAN_STEP_CHECK},         {"fill", PLAN_STEP_FILL},         {"check-fill", PLAN_STEP_CHECK_FILL},
    {"truncate", PLAN_STEP_TRUNCATE},   {"seal", PLAN_STEP_SEAL},         {"touch-all", PLAN_STEP_TOUCH_ALL},
    {"barrier", PLAN_STEP_BARRIER},     {"sleep", PLAN_STEP_SLEEP},       {"crash", PLAN_STEP_CRASH},
    {"load", PLAN_STEP_LOAD},           {"store-loaded", PLAN_STEP_STORE_LOADED}, {"compare", PLAN_STEP_COMPARE},
    {"send-fd", PLAN_STEP_SEND_FD},     {"receive-fd", PLAN_STEP_RECEIVE_FD},
    {"sync", PLAN_STEP_SYNC},           {"check-file", PLAN_STEP_CHECK_FILE},
    {"acquire", PLAN_STEP_ACQUIRE},     {"release", PLAN_STEP_RELEASE},   {"try-acquire", PLAN_STEP_TRY_ACQUIRE},
    {"check-value", PLAN_STEP_CHECK_VALUE}, {"check-at-most", PLAN_STEP_CHECK_AT_MOST},
};

/* The fields each kind takes, besides expect-error (Plan.stepFields in Swift). */
static const char *step_fields(enum plan_step_kind k) {
    switch (k) {
    case PLAN_STEP_CREATE:
    case PLAN_STEP_TRUNCATE: return "res size";
    case PLAN_STEP_ATTACH: return "res mode";
    case PLAN_STEP_LOCK: return "res timeout-ns";
    case PLAN_STEP_DETACH:
    case PLAN_STEP_UNLOCK:
    case PLAN_STEP_TRY_LOCK:
    case PLAN_STEP_TOUCH_ALL: return "res";
    case PLAN_STEP_ADD:
    case PLAN_STEP_ATOMIC_ADD: return "res offset value";
    case PLAN_STEP_STORE:
    case PLAN_STEP_CHECK: return "res offset u64 hex";
    case PLAN_STEP_FILL:
    case PLAN_STEP_CHECK_FILL: return "res byte";
    case PLAN_STEP_SEAL: return "res seals";
    case PLAN_STEP_BARRIER: return "name";
    case PLAN_STEP_SLEEP: return "ns";
    case PLAN_STEP_CRASH: return "signal";
    case PLAN_STEP_REPEAT_TIMES:
    case PLAN_STEP_REPEAT_FOR: return "times for-ns body";
    case PLAN_STEP_LOAD: return "res offset";
    case PLAN_STEP_STORE_LOADED: return "res offset plus";
    case PLAN_STEP_COMPARE: return "res offset with";
    case PLAN_STEP_SEND_FD: return "res to";
    case PLAN_STEP_RECEIVE_FD:
    case PLAN_STEP_SYNC: return "res";
    case PLAN_STEP_CHECK_FILE: return "res offset u64 hex";
    case PLAN_STEP_ACQUIRE: return "res n timeout-ns";
    case PLAN_STEP_RELEASE: return "res n";
    case PLAN_STEP_TRY_ACQUIRE: return "res";
    case PLAN_STEP_CHECK_VALUE: return "res value";
    case PLAN_STEP_CHECK_AT_MOST: return "res offset max";
    }
    return "";
}

static int needs_res(enum plan_step_kind k) {
    return k != PLAN_STEP_BARRIER && k != PLAN_STEP_SLEEP && k != PLAN_STEP_CRASH;
}

/* An optional integer field: absent leaves *out alone (the default); present must parse. */
static int int_field(struct parser *p, size_t line, const struct fields *f, const char *name, int64_t *out, int *present) {
    const struct plan_text *t = field(f, name);
    if (present) *present = t != NULL;
    if (!t) return 0;
    if (parse_i64(t->s, t->len, out) == -1) return broken(p, line, "%s=%s is not an integer", name, t->s);
    return 0;
}

static int parse_hex(const struct plan_text *t, uint8_t **bytes, size_t *n) {
    if (t->len % 2) return -1;
    *n = t->len / 2;
    *bytes = malloc(*n ? *n : 1);
    if (!*bytes) return -1;
    for (size_t i = 0; i < *n; i++) {
        int hi = hexval(t->s[2 * i]), lo = hexval(t->s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(*bytes);
            *bytes = NULL;
            return -1;
        }
        (*bytes)[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int parse_seals(const struct plan_text *t, unsigned int *out) {
    *out = 0;
    const char *s = t->s;
    const char *end = t->s + t->len;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        size_t len = comma ? (size_t)(comma - s) : (size_t)(end - s);
        struct word w = {s, len};
        if (word_is(w, "shrink")) *out |= PLAN_SEAL_SHRINK;
        else if (word_is(w, "grow")) *out |= PLAN_SEAL_GROW;
        else if (word_is(w, "write")) *out |= PLAN_SEAL_WRITE;
        else if (word_is(w, "future-write")) *out |= PLAN_SEAL_FUTURE_WRITE;
        else if (word_is(w, "seal")) *out |= PLAN_SEAL_SEAL;
        else return -1;
        s += len + (comma ? 1 : 0);
        if (comma && s == end) return -1; /* a trailing comma: an empty seal name */
    }
    return 0;
}

static int fill_step(struct parser *p, size_t number, struct plan_step *s, const struct fields *f) {
    const struct plan_text *t;
    if ((t = field(f, "expect-error")) && text_copy(t, &s->expect) == -1) return broken(p, number, "out of memory");
    if (s->expect.s && memchr(s->expect.s, ',', s->expect.len)) {
        /* a list of outcomes (none = success): distinct names separated by single commas */
        const char *a = s->expect.s, *end = s->expect.s + s->expect.len;
        while (a <= end) {
            const char *comma = memchr(a, ',', (size_t)(end - a));
            size_t len = comma ? (size_t)(comma - a) : (size_t)(end - a);
            if (len == 0) return broken(p, number, "expect-error=%.80s: a list is distinct names separated by single commas", s->expect.s);
            for (const char *b = s->expect.s; b < a;) {
                size_t blen = strcspn(b, ",");
                if (blen == len && memcmp(a, b, len) == 0)
                    return broken(p, number, "expect-error=%.80s: a list is distinct names separated by single commas", s->expect.s);
                b += blen + 1;
            }
            if (!comma) break;
            a = comma + 1;
        }
    }
    if ((t = field(f, "count"))) {
        if (t->len == 0) return broken(p, number, "count= needs a name");
        if (text_copy(t, &s->count) == -1) return broken(p, number, "out of memory");
    }
    if (needs_res(s->kind)) {
        if (!(t = field(f, "res"))) return broken(p, number, "%s needs res=", plan_step_kind_name(s->kind));
        if (text_copy(t, &s->res) == -1) return broken(p, number, "out of memory");
    }
    switch (s->kind) {
    case PLAN_STEP_CREATE:
        if (int_field(p, number, f, "size", &s->size, &s->has_size) == -1) return -1;
        return s->size < 0 ? broken(p, number, "size=%lld is negative", (long long)s->size) : 0;
    case PLAN_STEP_ATTACH:
        if ((t = field(f, "mode")) && strcmp(t->s, "ro") != 0 && strcmp(t->s, "rw") != 0 && strcmp(t->s, "private") != 0)
            return broken(p, number, "mode=%s: want ro, rw or private", t->s);
        s->read_only = t && strcmp(t->s, "ro") == 0;
        s->private_map = t && strcmp(t->s, "private") == 0;
        return 0;
    case PLAN_STEP_ADD:
    case PLAN_STEP_ATOMIC_ADD:
        s->value = 1;
        if (int_field(p, number, f, "offset", &s->offset, NULL) == -1) return -1;
        return int_field(p, number, f, "value", &s->value, NULL);
    case PLAN_STEP_STORE:
    case PLAN_STEP_CHECK:
    case PLAN_STEP_CHECK_FILE: {
        if (int_field(p, number, f, "offset", &s->offset, NULL) == -1) return -1;
        const struct plan_text *u = field(f, "u64"), *h = field(f, "hex");
        if (u && h) return broken(p, number, "%s takes u64= or hex=, not both", plan_step_kind_name(s->kind));
        if (u && parse_u64(u->s, u->len, &s->u64) == 0) {
            s->is_u64 = 1;
            s->nbytes = 8;
            s->bytes = malloc(8);
            if (!s->bytes) return broken(p, number, "out of memory");
            for (int i = 0; i < 8; i++) s->bytes[i] = (uint8_t)(s->u64 >> (8 * i));
            return 0;
        }
        if (u && !h) return broken(p, number, "u64=%s is not an unsigned 64-bit integer", u->s);
        if (!h) return broken(p, number, "%s needs u64= or hex=", plan_step_kind_name(s->kind));
        if (parse_hex(h, &s->bytes, &s->nbytes) == -1) return broken(p, number, "hex=%s is not pairs of hex digits", h->s);
        return 0;
    }
    case PLAN_STEP_FILL:
    case PLAN_STEP_CHECK_FILL: {
        int64_t b = 0;
        if (int_field(p, number, f, "byte", &b, NULL) == -1) return -1;
        if (b < 0 || b > 255) return broken(p, number, "byte=%lld is not in 0...255", (long long)b);
        s->byte = (uint8_t)b;
        return 0;
    }
    case PLAN_STEP_LOAD: return int_field(p, number, f, "offset", &s->offset, NULL);
    case PLAN_STEP_STORE_LOADED:
        if (int_field(p, number, f, "offset", &s->offset, NULL) == -1) return -1;
        return int_field(p, number, f, "plus", &s->value, NULL);
    case PLAN_STEP_COMPARE: {
        int has_with;
        if (int_field(p, number, f, "offset", &s->offset, NULL) == -1) return -1;
        if (int_field(p, number, f, "with", &s->with, &has_with) == -1) return -1;
        return has_with ? 0 : broken(p, number, "compare needs with=");
    }
    case PLAN_STEP_TRUNCATE:
        if (int_field(p, number, f, "size", &s->size, NULL) == -1) return -1;
        return s->size < 0 ? broken(p, number, "size=%lld is negative", (long long)s->size) : 0;
    case PLAN_STEP_SEAL:
        if (!(t = field(f, "seals"))) return broken(p, number, "seal needs seals=");
        if (parse_seals(t, &s->seals) == -1)
            return broken(p, number, "seals=%.80s: unknown seal; expected shrink, grow, write, future-write, seal", t->s);
        return 0;
    case PLAN_STEP_SEND_FD:
        if (!(t = field(f, "to")) || t->len == 0) return broken(p, number, "send-fd needs to=");
        if (text_copy(t, &s->name) == -1) return broken(p, number, "out of memory");
        return 0;
    case PLAN_STEP_BARRIER:
        if (!(t = field(f, "name")) || t->len == 0) return broken(p, number, "barrier needs name=");
        if (text_copy(t, &s->name) == -1) return broken(p, number, "out of memory");
        return 0;
    case PLAN_STEP_SLEEP:
        if (int_field(p, number, f, "ns", &s->ns, NULL) == -1) return -1;
        return s->ns < 0 ? broken(p, number, "ns=%lld is negative", (long long)s->ns) : 0;
    case PLAN_STEP_LOCK: {
        int present = 0;
        if (int_field(p, number, f, "timeout-ns", &s->ns, &present) == -1) return -1;
        if (present && s->ns <= 0) return broken(p, number, "timeout-ns=%lld is not a positive number", (long long)s->ns);
        return 0;
    }
    case PLAN_STEP_ACQUIRE:
    case PLAN_STEP_RELEASE: {
        int present = 0;
        s->n = 1;
        if (int_field(p, number, f, "n", &s->n, NULL) == -1) return -1;
        int64_t low = s->kind == PLAN_STEP_ACQUIRE ? 1 : 0;
        if (s->n < low || s->n > 32767) return broken(p, number, "n=%lld is not in %lld...32767", (long long)s->n, (long long)low);
        if (s->kind == PLAN_STEP_RELEASE) return 0;
        if (int_field(p, number, f, "timeout-ns", &s->ns, &present) == -1) return -1;
        if (present && s->ns <= 0) return broken(p, number, "timeout-ns=%lld is not a positive number", (long long)s->ns);
        return 0;
    }
    case PLAN_STEP_CHECK_VALUE: {
        int present = 0;
        if (int_field(p, number, f, "value", &s->value, &present) == -1) return -1;
        if (!present) return broken(p, number, "check-value needs value=");
        if (s->value < 0 || s->value > INT32_MAX) return broken(p, number, "value=%lld is not in 0...%d", (long long)s->value, INT32_MAX);
        return 0;
    }
    case PLAN_STEP_CHECK_AT_MOST: {
        if (int_field(p, number, f, "offset", &s->offset, NULL) == -1) return -1;
        if (s->offset < 0) return broken(p, number, "offset=%lld is negative", (long long)s->offset);
        if (!(t = field(f, "max"))) return broken(p, number, "check-at-most needs max=");
        if (parse_u64(t->s, t->len, &s->u64) == -1) return broken(p, number, "max=%s is not an unsigned 64-bit integer", t->s);
        return 0;
    }
    case PLAN_STEP_CRASH: {
        int64_t sig = 9;
        if (int_field(p, number, f, "signal", &sig, NULL) == -1) return -1;
        if (!field(f, "signal")) return broken(p, number, "crash needs signal=");
        if (sig < 1 || sig > 64) return broken(p, number, "signal=%lld is not a signal number (1...64)", (long long)sig);
        s->signal = (int)sig;
        return 0;
    }
    default: return 0;
    }
}

/* Parses step lines from *cursor into `list`: all of them (count < 0) or `count` items (a repeat body). */
static int parse_steps(struct parser *p, const struct step_line *lines, size_t nlines, size_t *cursor, long count,
                       struct step_list *list) {
    long made = 0;
    while (*cursor < nlines && (count < 0 || made < count)) {
        const struct step_line *l = &lines[(*cursor)++];
        struct word words[64];
        size_t nw = split_words(l->s, l->len, words, 64);
        if (nw > 64) return broken(p, l->number, "too many fields");
        int64_t source_line;
        if (nw < 2 || parse_i64(words[1].s, words[1].len, &source_line) == -1 || source_line < 0 || source_line > INT32_MAX)
            return broken(p, l->number, "step LINE KIND fields...");
        made++;
        if (word_is(words[0], "repeat")) {
            struct fields f;
            char why[200];
            if (parse_fields(words + 2, nw - 2, step_fields(PLAN_STEP_REPEAT_TIMES), &f, why, sizeof why) == -1) {
                fields_free(&f);
                return broken(p, l->number, "%s", why);
            }
            size_t index = list->n;
            struct plan_step *s = step_append(list);
            if (!s) {
                fields_free(&f);
                return broken(p, l->number, "out of memory");
            }
            s->line = (int)source_line;
            int64_t body = 0, times = 0, ns = 0;
            int has_body, has_times, has_ns;
            const struct plan_text *t;
            int rc = int_field(p, l->number, &f, "body", &body, &has_body);
            if (rc == 0 && !has_body) rc = broken(p, l->number, "repeat needs body=");
            if (rc == 0 && body < 0) rc = broken(p, l->number, "body=%lld is negative", (long long)body);
            if (rc == 0) rc = int_field(p, l->number, &f, "times", &times, &has_times);
            if (rc == 0 && !has_times) rc = int_field(p, l->number, &f, "for-ns", &ns, &has_ns);
            if (rc == 0 && !has_times && !has_ns) rc = broken(p, l->number, "repeat needs times= or for-ns=");
            if (rc == 0 && has_times && field(&f, "for-ns")) rc = broken(p, l->number, "repeat takes times= or for-ns=, not both");
            if (rc == 0 && (times < 0 || ns < 0)) rc = broken(p, l->number, "a repeat's times= or for-ns= is negative");
            if (rc == 0 && (t = field(&f, "expect-error")) && text_copy(t, &list->items[index].expect) == -1)
                rc = broken(p, l->number, "out of memory");
            fields_free(&f);
            if (rc == -1) return -1;
            s->kind = has_times ? PLAN_STEP_REPEAT_TIMES : PLAN_STEP_REPEAT_FOR;
            s->times = times;
            s->ns = ns;
            s->body = (size_t)body;
            if (body > 0 && parse_steps(p, lines, nlines, cursor, (long)body, list) == -1) return -1;
            list->items[index].span = list->n - index - 1; /* `s` may have moved */
            continue;
        }
        if (!word_is(words[0], "step")) return broken(p, l->number, "step LINE KIND fields...");
        int known = -1;
        if (nw >= 3)
            for (size_t i = 0; i < sizeof step_kinds / sizeof step_kinds[0]; i++)
                if (word_is(words[2], step_kinds[i].name)) known = (int)i;
        if (known < 0) return broken(p, l->number, "unknown step '%.*s'", nw >= 3 ? (int)(words[2].len > 40 ? 40 : words[2].len) : 0, nw >= 3 ? words[2].s : "");
        struct fields f;
        char why[200];
        char allowed[64]; /* a step may also carry count= (a repeat line may not) */
        snprintf(allowed, sizeof allowed, "%s count", step_fields(step_kinds[known].kind));
        if (parse_fields(words + 3, nw - 3, allowed, &f, why, sizeof why) == -1) {
            fields_free(&f);
            return broken(p, l->number, "%s", why);
        }
        struct plan_step *s = step_append(list);
        if (!s) {
            fields_free(&f);
            return broken(p, l->number, "out of memory");
        }
        s->kind = step_kinds[known].kind;
        s->line = (int)source_line;
        int rc = fill_step(p, l->number, s, &f);
        fields_free(&f);
        if (rc == -1) return -1;
    }
    if (count >= 0 && made != count)
        return broken(p, nlines ? lines[nlines - 1].number : 0, "a repeat body is cut short");
    return 0;
}

/* --- the plan ------------------------------------------------------------------------------------------ */

const struct plan_resource *plan_resource(const struct plan *plan, const char *id, size_t len) {
    for (size_t i = 0; i < plan->nresources; i++)
        if (plan->resources[i].id.len == len && memcmp(plan->resources[i].id.s, id, len) == 0) return &plan->resources[i];
    return NULL;
}

void plan_free(struct plan *plan) {
    text_free(&plan->file);
    text_free(&plan->group);
    for (size_t i = 0; i < plan->nresources; i++) {
        text_free(&plan->resources[i].id);
        text_free(&plan->resources[i].key);
        text_free(&plan->resources[i].path);
    }
    free(plan->resources);
    for (size_t i = 0; i < plan->nsteps; i++) step_free(&plan->steps[i]);
    free(plan->steps);
    for (size_t i = 0; i < plan->nchannels; i++) text_free(&plan->channels[i].group);
    free(plan->channels);
    memset(plan, 0, sizeof *plan);
}

static int parse_resource(struct parser *p, size_t number, const struct word *words, size_t nw, struct plan_resource *r) {
    memset(r, 0, sizeof *r);
    if (nw < 2 || plan_decode(words[1].s, words[1].len, &r->id) == -1) return broken(p, number, "resource ID fields...");
    struct fields f;
    char why[200];
    if (parse_fields(words + 2, nw - 2, "kind key size lock lock-offset path fd private initial", &f, why, sizeof why) == -1) {
        fields_free(&f);
        text_free(&r->id);
        return broken(p, number, "%s", why);
    }
    int rc = 0;
    const struct plan_text *kind = field(&f, "kind"), *lock = field(&f, "lock"), *t;
    if (!kind || !lock) rc = broken(p, number, "resource needs kind= and lock=");
    else if (!strcmp(kind->s, "segment")) r->kind = PLAN_RES_SEGMENT;
    else if (!strcmp(kind->s, "file")) r->kind = PLAN_RES_FILE;
    else if (!strcmp(kind->s, "memfd")) r->kind = PLAN_RES_MEMFD;
    else if (!strcmp(kind->s, "semaphore")) r->kind = PLAN_RES_SEMAPHORE;
    else rc = broken(p, number, "resource needs kind= and lock=");
    if (rc == 0) {
        if (!strcmp(lock->s, "semaphore")) r->lock = PLAN_LOCK_SEMAPHORE;
        else if (!strcmp(lock->s, "futex")) r->lock = PLAN_LOCK_FUTEX;
        else if (!strcmp(lock->s, "robust-mutex")) r->lock = PLAN_LOCK_ROBUST_MUTEX;
        else if (!strcmp(lock->s, "lockfile")) r->lock = PLAN_LOCK_LOCKFILE;
        else rc = broken(p, number, "resource needs kind= and lock=");
    }
    if (rc == 0 && (t = field(&f, "key")) && text_copy(t, &r->key) == -1) rc = broken(p, number, "out of memory");
    if (rc == 0 && (t = field(&f, "path")) && text_copy(t, &r->path) == -1) rc = broken(p, number, "out of memory");
    if (rc == 0) rc = int_field(p, number, &f, "size", &r->size, &r->has_size);
    if (rc == 0) rc = int_field(p, number, &f, "lock-offset", &r->lock_offset, NULL);
    if (rc == 0) rc = int_field(p, number, &f, "initial", &r->initial, &r->has_initial);
    if (rc == 0 && r->has_initial && (r->initial < 0 || r->initial > INT32_MAX))
        rc = broken(p, number, "initial=%lld is not in 0...%d", (long long)r->initial, INT32_MAX);
    int64_t fd = -1;
    if (rc == 0) rc = int_field(p, number, &f, "fd", &fd, &r->has_fd);
    if (rc == 0 && r->has_fd && (fd < 0 || fd > INT32_MAX)) rc = broken(p, number, "fd=%lld is not a descriptor", (long long)fd);
    r->fd = (int)fd;
    if (rc == 0 && r->has_size && r->size < 0) rc = broken(p, number, "size=%lld is negative", (long long)r->size);
    if (rc == 0 && r->lock_offset < 0) rc = broken(p, number, "lock-offset=%lld is negative", (long long)r->lock_offset);
    r->is_private = (t = field(&f, "private")) && strcmp(t->s, "1") == 0;
    if (rc == 0 && t && strcmp(t->s, "1") != 0 && strcmp(t->s, "0") != 0) rc = broken(p, number, "private=%.20s: want 0 or 1", t->s);
    fields_free(&f);
    if (rc == -1) {
        text_free(&r->id);
        text_free(&r->key);
        text_free(&r->path);
    }
    return rc;
}

/* `channel GROUP INDEX fd=N` (Plan.Channel). */
static int parse_channel(struct parser *p, size_t number, const struct word *words, size_t nw, struct plan_channel *c) {
    memset(c, 0, sizeof *c);
    int64_t index = -1, fd = -1;
    if (nw != 4 || plan_decode(words[1].s, words[1].len, &c->group) == -1 || c->group.len == 0 ||
        parse_i64(words[2].s, words[2].len, &index) == -1 || index < 0) {
        text_free(&c->group);
        return broken(p, number, "channel GROUP INDEX fd=N");
    }
    struct fields f;
    char why[200];
    int rc = 0;
    if (parse_fields(words + 3, 1, "fd", &f, why, sizeof why) == -1) rc = broken(p, number, "%s", why);
    else if (field(&f, "expect-error") || !field(&f, "fd")) rc = broken(p, number, "channel needs fd=N (a descriptor number)");
    else if (int_field(p, number, &f, "fd", &fd, NULL) == -1) rc = -1;
    else if (fd < 0 || fd > INT32_MAX) rc = broken(p, number, "fd=%lld is not a descriptor", (long long)fd);
    fields_free(&f);
    if (rc == -1) text_free(&c->group);
    c->index = (long)index;
    c->fd = (int)fd;
    return rc;
}

int plan_parse(const char *text, size_t len, struct plan *out, char *err, size_t errlen) {
    struct parser p = {err, errlen};
    memset(out, 0, sizeof *out);
    out->count = 1;
    if (err && errlen) err[0] = '\0';
    static const char magic[] = "shm-harness-plan 1";
    const char *nl = memchr(text, '\n', len);
    size_t first = nl ? (size_t)(nl - text) : len;
    if (first != sizeof magic - 1 || memcmp(text, magic, first) != 0) return broken(&p, 1, "not a version 1 plan");

    struct step_line *lines = NULL;
    size_t nlines = 0, cap = 0;
    size_t number = 1;
    size_t pos = nl ? first + 1 : len;
    int rc = -1;
    int ended = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *end = memchr(line, '\n', len - pos);
        size_t llen = end ? (size_t)(end - line) : len - pos;
        pos += llen + (end ? 1 : 0);
        number++;
        if (memchr(line, '\0', llen)) {
            broken(&p, number, "a NUL byte");
            goto done;
        }
        struct word words[64];
        size_t nw = split_words(line, llen, words, 64);
        if (nw == 0) continue;
        if (word_is(words[0], "file")) {
            text_free(&out->file);
            if (nw != 2 || plan_decode(words[1].s, words[1].len, &out->file) == -1) {
                broken(&p, number, "file PATH (one percent-encoded word)");
                goto done;
            }
        } else if (word_is(words[0], "worker")) {
            int64_t index, count;
            text_free(&out->group);
            if (nw != 4 || plan_decode(words[1].s, words[1].len, &out->group) == -1 ||
                parse_i64(words[2].s, words[2].len, &index) == -1 || parse_i64(words[3].s, words[3].len, &count) == -1) {
                broken(&p, number, "worker GROUP INDEX COUNT");
                goto done;
            }
            out->index = (long)index;
            out->count = (long)count;
        } else if (word_is(words[0], "resource")) {
            if (nw > 64) {
                broken(&p, number, "too many fields");
                goto done;
            }
            struct plan_resource *rs = realloc(out->resources, (out->nresources + 1) * sizeof *rs);
            if (!rs) {
                broken(&p, number, "out of memory");
                goto done;
            }
            out->resources = rs;
            if (parse_resource(&p, number, words, nw, &rs[out->nresources]) == -1) goto done;
            out->nresources++;
        } else if (word_is(words[0], "channel")) {
            struct plan_channel *cs = realloc(out->channels, (out->nchannels + 1) * sizeof *cs);
            if (!cs) {
                broken(&p, number, "out of memory");
                goto done;
            }
            out->channels = cs;
            if (parse_channel(&p, number, words, nw, &cs[out->nchannels]) == -1) goto done;
            out->nchannels++;
        } else if (word_is(words[0], "step") || word_is(words[0], "repeat")) {
            if (nlines == cap) {
                cap = cap ? cap * 2 : 32;
                struct step_line *more = realloc(lines, cap * sizeof *more);
                if (!more) {
                    broken(&p, number, "out of memory");
                    goto done;
                }
                lines = more;
            }
            lines[nlines++] = (struct step_line){number, line, llen};
        } else if (word_is(words[0], "end")) {
            ended = 1;
            break;
        } else {
            broken(&p, number, "unknown line '%.*s'", (int)(words[0].len > 40 ? 40 : words[0].len), words[0].s);
            goto done;
        }
    }
    if (!ended) {
        broken(&p, number + 1, "missing end");
        goto done;
    }
    {
        struct step_list list = {0};
        size_t cursor = 0;
        if (parse_steps(&p, lines, nlines, &cursor, -1, &list) == -1) {
            for (size_t i = 0; i < list.n; i++) step_free(&list.items[i]);
            free(list.items);
            goto done;
        }
        out->steps = list.items;
        out->nsteps = list.n;
    }
    if (!out->file.s && !(out->file.s = strdup(""))) goto done;
    if (!out->group.s && !(out->group.s = strdup(""))) goto done;
    rc = 0;
done:
    free(lines);
    if (rc == -1) plan_free(out);
    return rc;
}
