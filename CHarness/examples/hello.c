/* hello.c - the README's example: a C program of your own on libshmh, built with pkg-config. */
#include <shmh.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "hello-shmh";
    struct shmh_key key;
    char message[1400];
    /* Qt's QSharedMemory("hello-shmh"): a legacy key, System V (Qt's legacy default on Linux) */
    if (shmh_key_legacy(&key, name, (size_t)-1, SHMH_TYPE_SYSTEMV, SHMH_KIND_SHARED_MEMORY, NULL) != 0) return 1;
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    if (shmh_segment_create(seg, 4096, SHMH_READ_WRITE) != 0 && shmh_segment_attach(seg, SHMH_READ_WRITE) != 0) {
        fprintf(stderr, "%s\n", shmh_failure_format(message, sizeof message));
        return 1;
    }
    if (shmh_segment_lock(seg, 5000000000LL) == 0) {
        strcpy(shmh_segment_data(seg), "hello from C");
        shmh_segment_unlock(seg);
    }
    char *text = shmh_key_to_string(&key, NULL);
    printf("%s: %s\n", text, (char *)shmh_segment_data(seg));
    free(text);
    shmh_segment_free(seg); /* detaches; the last detacher removes the segment */
    shmh_key_free(&key);
    return 0;
}
