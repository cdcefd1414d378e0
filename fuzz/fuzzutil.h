/* fuzzutil — what the libFuzzer targets under fuzz/ share: a file made from
 * the fuzzer's bytes (for readers that take a path) and invariant checks that
 * abort, so libFuzzer records the input as a crash. */
#ifndef SAED_FUZZUTIL_H
#define SAED_FUZZUTIL_H
#include <stddef.h>
#include <stdint.h>

/* An anonymous in-memory file holding data[0..len), named by a path
 * ("/proc/self/fd/N") that open(), stat() and gzopen() accept. */
typedef struct {
    int fd;
    char path[64];
} fuzzutil_file;

/* 0, or -1 (the target then skips the input). */
int fuzzutil_file_make(fuzzutil_file *f, const uint8_t *data, size_t len);
void fuzzutil_file_drop(fuzzutil_file *f);

/* Aborts with "what" when cond is false: a broken invariant is a bug. */
void fuzzutil_require(int cond, const char *what);
#define FUZZ_REQUIRE(cond) fuzzutil_require((cond) != 0, #cond)

#endif
