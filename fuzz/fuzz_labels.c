/* fuzz_labels — labels files (one UTF-8 line per dataset row).
 *
 * One input is one whole file. The harness counts the lines itself (after an
 * optional byte-order mark; a final newline is optional), then checks that
 * npyfile_labels_open refuses any other row count, and, when it accepts the
 * text, that every line comes back inside the file with no '\n' in it, the
 * lines in order and back to back. */
#include "fuzzutil.h"
#include "npyfile.h"
#include <string.h>

/* Lines as npyfile.h defines them. */
static int64_t fuzz_labels_lines(const uint8_t *data, size_t len)
{
    size_t base = len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3) ? 3 : 0;
    int64_t n = 0;
    for (size_t i = base; i < len; i++)
        n += data[i] == '\n';
    return n + (len > base && data[len - 1] != '\n');
}

static void fuzz_labels_walk(const npyfile_labels *l, const uint8_t *data, size_t len, int64_t n)
{
    const char *s;
    size_t sl;
    const uint8_t *next = data + (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3) ? 3 : 0);
    FUZZ_REQUIRE(npyfile_labels_count(l) == n);
    FUZZ_REQUIRE(npyfile_labels_get(l, n, &s, &sl) != 0 && npyfile_labels_get(l, -1, &s, &sl) != 0);
    for (int64_t i = 0; i < n; i++) {
        FUZZ_REQUIRE(npyfile_labels_get(l, i, &s, &sl) == 0);
        FUZZ_REQUIRE(memchr(s, '\n', sl) == NULL);
        /* The line starts where the previous one ended (the mapping is a copy
         * of data, so compare contents and lengths, not addresses). */
        FUZZ_REQUIRE((size_t)(data + len - next) >= sl && !memcmp(s, next, sl));
        next += sl;
        if (next < data + len && *next == '\r')
            next++;
        FUZZ_REQUIRE(next == data + len || *next == '\n');
        next += next < data + len;
    }
    FUZZ_REQUIRE(next == data + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    fuzzutil_file mf;
    npyfile_labels *l;
    char err[320];
    int64_t n = fuzz_labels_lines(data, len);
    if (fuzzutil_file_make(&mf, data, len) != 0)
        return 0;
    FUZZ_REQUIRE(npyfile_labels_open(mf.path, n + 1, &l, err, sizeof err) != 0 && l == NULL);
    if (npyfile_labels_open(mf.path, n, &l, err, sizeof err) == 0) {
        fuzz_labels_walk(l, data, len, n);
        npyfile_labels_close(l);
    } else {
        FUZZ_REQUIRE(l == NULL && err[0] != '\0');
    }
    fuzzutil_file_drop(&mf);
    return 0;
}
