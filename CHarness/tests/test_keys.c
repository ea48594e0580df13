/* test_keys.c - key derivation and string forms against the vectors recorded from Qt 6.12
 * (Tests/SharedMemoryKitTests/Resources/qt-key-vectors.json, turned into C by scripts/gen_vectors.py). */
#include "support.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vectors.h"

static int same(const char *a, size_t an, const char *b, size_t bn) { return an == bn && (an == 0 || memcmp(a, b, an) == 0); }

static void vectors_loaded(void **state) {
    (void)state;
    assert_true(legacy_vector_count > 1000);
    assert_true(to_string_vector_count > 1000);
    assert_true(from_string_vector_count > 1000);
    assert_int_equal(vectors_default_type, SHMH_TYPE_POSIX);
    assert_int_equal(vectors_legacy_default_type, SHMH_TYPE_SYSTEMV);
}

static void legacy_derivation_matches_qt(void **state) {
    (void)state;
    size_t mismatches = 0;
    for (size_t i = 0; i < legacy_vector_count; i++) {
        const struct legacy_vector *v = &legacy_vectors[i];
        struct shmh_key key;
        assert_int_equal(shmh_key_legacy(&key, v->key, v->key_len, (uint16_t)v->type,
                                         v->semaphore ? SHMH_KIND_SYSTEM_SEMAPHORE : SHMH_KIND_SHARED_MEMORY,
                                         vectors_temp_dir), 0);
        size_t len = 0;
        char *text = shmh_key_to_string(&key, &len);
        bool ok = same(key.native, key.native_len, v->native, v->native_len) &&
                  (v->string ? text && same(text, len, v->string, v->string_len) : text == NULL);
        if (ok && v->round_trip && v->string) {
            struct shmh_key back;
            ok = shmh_key_from_string(&back, v->string, v->string_len) == 0 && shmh_key_equal(&back, &key);
            if (shmh_key_equal(&back, &key) || ok) shmh_key_free(&back);
        }
        if (!ok && mismatches++ < 5)
            print_error("legacy %zu (type %u, key %.*s): got %s, Qt %s\n", i, v->type, (int)v->key_len, v->key,
                        text ? text : "(null)", v->string ? v->string : "(null)");
        free(text);
        shmh_key_free(&key);
    }
    assert_int_equal(mismatches, 0);
}

static void to_string_matches_qt(void **state) {
    (void)state;
    size_t mismatches = 0;
    for (size_t i = 0; i < to_string_vector_count; i++) {
        const struct to_string_vector *v = &to_string_vectors[i];
        struct shmh_key key = {.type = (uint16_t)v->type};
        key.native = malloc(v->native_len + 1);
        memcpy(key.native, v->native, v->native_len + 1);
        key.native_len = v->native_len;
        if (v->legacy) {
            key.legacy = malloc(v->legacy_len + 1);
            memcpy(key.legacy, v->legacy, v->legacy_len + 1);
            key.legacy_len = v->legacy_len;
        }
        size_t len = 0;
        char *text = shmh_key_to_string(&key, &len);
        bool ok = v->string ? text && same(text, len, v->string, v->string_len) : text == NULL;
        if (ok && v->round_trip && v->string) {
            struct shmh_key back;
            ok = shmh_key_from_string(&back, v->string, v->string_len) == 0;
            if (ok) {
                ok = shmh_key_equal(&back, &key);
                shmh_key_free(&back);
            }
        }
        if (!ok && mismatches++ < 5)
            print_error("toString %zu: got %s, Qt %s\n", i, text ? text : "(null)", v->string ? v->string : "(null)");
        free(text);
        shmh_key_free(&key);
    }
    assert_int_equal(mismatches, 0);
}

static void from_string_matches_qt(void **state) {
    (void)state;
    size_t mismatches = 0;
    for (size_t i = 0; i < from_string_vector_count; i++) {
        const struct from_string_vector *v = &from_string_vectors[i];
        struct shmh_key key;
        int rc = shmh_key_from_string(&key, v->input, v->input_len);
        bool ok;
        if (!v->valid) {
            ok = rc == -1;
            if (rc == 0) shmh_key_free(&key);
        } else {
            ok = rc == 0 && key.type == v->type && same(key.native, key.native_len, v->native, v->native_len) &&
                 (v->legacy ? key.legacy && same(key.legacy, key.legacy_len, v->legacy, v->legacy_len) : !key.legacy);
            if (ok && v->string) {
                size_t len;
                char *text = shmh_key_to_string(&key, &len);
                ok = text && same(text, len, v->string, v->string_len);
                free(text);
            }
            if (rc == 0) shmh_key_free(&key);
        }
        if (!ok && mismatches++ < 5)
            print_error("fromString %zu %.*s: valid %d, got rc %d\n", i, (int)v->input_len, v->input, v->valid, rc);
    }
    assert_int_equal(mismatches, 0);
}

/* QDir::tempPath(): $TMPDIR cleaned and made canonical; /tmp without it. */
static void temp_path_follows_tmpdir(void **state) {
    (void)state;
    char *saved = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
    char buf[4096];
    unsetenv("TMPDIR");
    assert_int_equal(shmh_qt_temp_path(buf, sizeof buf), 0);
    assert_string_equal(buf, "/tmp");
    setenv("TMPDIR", "/tmp//./nonexistent-" SUPPORT_MARKER "/../x/", 1);
    assert_int_equal(shmh_qt_temp_path(buf, sizeof buf), 0);
    assert_string_equal(buf, "/tmp/x"); /* cleaned; not canonicalised because it does not exist */
    setenv("TMPDIR", "/usr/../tmp/", 1);
    assert_int_equal(shmh_qt_temp_path(buf, sizeof buf), 0);
    assert_string_equal(buf, "/tmp");
    setenv("TMPDIR", "/tmp/x", 1);
    struct shmh_key key;
    assert_int_equal(shmh_key_legacy(&key, "test", 4, SHMH_TYPE_SYSTEMV, SHMH_KIND_SHARED_MEMORY, NULL), 0);
    assert_string_equal(key.native, "/tmp/x/qipc_sharedmemory_testa94a8fe5ccb19ba61c4c0873d391e987982fbbd3");
    shmh_key_free(&key);
    assert_int_equal(shmh_qt_temp_path(buf, 4), -1);
    if (saved) setenv("TMPDIR", saved, 1);
    else unsetenv("TMPDIR");
    free(saved);
}

/* Qt 6.6+ semaphoreNativeKey(): legacy -> the semaphore derivation beside the key file; native -> same key. */
static void lock_semaphore_key(void **state) {
    (void)state;
    struct shmh_key key, sem;
    assert_int_equal(shmh_key_legacy(&key, "test", 4, SHMH_TYPE_SYSTEMV, SHMH_KIND_SHARED_MEMORY, "/var/x"), 0);
    assert_int_equal(shmh_key_lock_semaphore_key(&key, &sem), 0);
    assert_string_equal(sem.native, "/var/x/qipc_systemsem_testa94a8fe5ccb19ba61c4c0873d391e987982fbbd3");
    assert_string_equal(sem.legacy, "test");
    shmh_key_free(&sem);
    shmh_key_free(&key);
    assert_int_equal(shmh_key_legacy(&key, "test", 4, SHMH_TYPE_POSIX, SHMH_KIND_SHARED_MEMORY, NULL), 0);
    assert_int_equal(shmh_key_lock_semaphore_key(&key, &sem), 0);
    assert_string_equal(sem.native, "/qipc_systemsem_testa94a8fe5ccb19ba61c4c0873d391e987982fbbd3");
    shmh_key_free(&sem);
    shmh_key_free(&key);
    assert_int_equal(shmh_key_init(&key, SHMH_TYPE_POSIX, "/name", (size_t)-1), 0);
    assert_int_equal(shmh_key_lock_semaphore_key(&key, &sem), 0);
    assert_true(shmh_key_equal(&key, &sem));
    shmh_key_free(&sem);
    shmh_key_free(&key);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vectors_loaded),
        cmocka_unit_test(legacy_derivation_matches_qt),
        cmocka_unit_test(to_string_matches_qt),
        cmocka_unit_test(from_string_matches_qt),
        cmocka_unit_test(temp_path_follows_tmpdir),
        cmocka_unit_test(lock_semaphore_key),
    };
    return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}
