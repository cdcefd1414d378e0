/* fuzz_tar — the strict tar reader (core/tar.c), which reads the bodies of
 * POST /v1/saes (an SAE folder as a tar).
 *
 * One input is one whole archive. Checked: tar_next ends (at most one entry
 * per 512 bytes), every error carries a message, and every entry's data lie
 * inside the input, with a clean relative path (no ".." or empty component,
 * no leading "/"; a name such as "..cfg.json" is fine). */
#include "fuzzutil.h"
#include "tar.h"
#include <string.h>

/* 1 when path has no "..", "." or empty component and does not start with "/". */
static int fuzz_tar_clean(const char *path)
{
    if (path[0] == '/') return 0;
    for (const char *c = path; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return 0;
        c += n + (c[n] == '/');
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    tar_reader r;
    tar_entry e;
    char err[300];
    int rc;
    size_t entries = 0;
    tar_reader_init(&r, data, len);
    while ((rc = tar_next(&r, &e, err, sizeof err)) == 1) {
        FUZZ_REQUIRE(++entries <= len / TAR_BLOCK);
        FUZZ_REQUIRE(e.data >= data && e.size <= len && e.data + e.size <= data + len);
        FUZZ_REQUIRE(fuzz_tar_clean(e.path) && strlen(e.path) <= TAR_PATH_MAX);
        FUZZ_REQUIRE(!e.is_dir || e.size == 0);
    }
    FUZZ_REQUIRE(rc == 0 || (rc == -1 && err[0] != '\0'));
    return 0;
}
