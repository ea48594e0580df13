/* test_sha1.c - the small SHA-1 against FIPS 180 / RFC 3174 vectors and Qt's legacy-key hashes. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hex(const void *data, size_t len, char out[41]) {
    uint8_t d[20];
    shmh_sha1(data, len, d);
    for (int i = 0; i < 20; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static void known_vectors(void **state) {
    (void)state;
    static const struct { const char *in; const char *want; } rows[] = {
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "a49b2446a02c645bf419f995b67091253a04a259"},
        {"The quick brown fox jumps over the lazy dog", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"},
        /* Qt's legacy keys: QSharedMemory::legacyNativeKey hashes the key with SHA-1 */
        {"test", "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"},
        {"No\xc3\xabl", "f74a492d6bd59d7591144462d27aa3e29d1701c1"},
        {"klogshm", "fb1af3dd737ffaabf27e9cc69efabf7be177b28f"},
        {"my key/1", "5c59c3ff752e8ed462071c0c01c31c2f9a564bbc"},
    };
    char out[41];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        hex(rows[i].in, strlen(rows[i].in), out);
        assert_string_equal(out, rows[i].want);
    }
}

/* Lengths around the padding boundary (55, 56, 63, 64, 65 bytes) against a million 'a's split differently. */
static void block_boundaries_and_long_input(void **state) {
    (void)state;
    char *a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    char out[41];
    hex(a, 1000000, out);
    assert_string_equal(out, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    static const struct { size_t n; const char *want; } rows[] = {
        {55, "c1c8bbdc22796e28c0e15163d20899b65621d65a"},
        {56, "c2db330f6083854c99d4b5bfb6e8f29f201be699"},
        {64, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        hex(a, rows[i].n, out);
        assert_string_equal(out, rows[i].want);
    }
    free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_vectors),
        cmocka_unit_test(block_boundaries_and_long_input),
    };
    return cmocka_run_group_tests_name("sha1", tests, NULL, NULL);
}
