/* test_tar — the ustar writer and the strict reader (core/tar.c): a round
 * trip, archives written by GNU tar (with "./" names and a directory entry)
 * and by Python's tarfile (PAX headers with float mtimes, a long path), each
 * refusal with its message (traversal, absolute path, links, bad checksum,
 * truncation, data after the end), and random damage to a good archive,
 * which must fail cleanly or read entries inside the buffer. Fixtures go to
 * a fresh temporary directory, removed at the end. */
#include "check.h"
#include "tar.h"
#include "tartest.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads every entry of buf; the number of files (not directories), or -1 with err. */
static int read_all(const unsigned char *buf, size_t len, tar_entry *out, int cap, char *err, size_t errlen)
{
    tar_reader r;
    tar_entry e;
    int n = 0, rc;
    tar_reader_init(&r, buf, len);
    while ((rc = tar_next(&r, &e, err, errlen)) == 1) {
        if (e.is_dir) continue;
        if (n < cap) out[n] = e;
        n++;
    }
    return rc < 0 ? -1 : n;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = n > 0 ? malloc((size_t)n) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    *len = b ? (size_t)n : 0;
    return b;
}

static unsigned char *build(const tar_file *f, int n, size_t *len)
{
    *len = tar_archive_size(f, n);
    unsigned char *b = malloc(*len);
    if (b && tar_write(f, n, 1700000000, b, *len)) { free(b); b = NULL; }
    return b;
}

static void test_roundtrip(void)
{
    char big[1500];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7);
    tar_file f[] = { { "cfg.json", "{}", 2 }, { "sae_weights.safetensors", big, sizeof big }, { "empty", NULL, 0 } };
    size_t len;
    unsigned char *b = build(f, 3, &len);
    CHECK(b && len == 512 * (1 + 1 + 1 + 3 + 1) + 1024, "archive size %zu", len);
    tar_entry e[4];
    char err[256] = "";
    CHECK(read_all(b, len, e, 4, err, sizeof err) == 3, "three files back: %s", err);
    CHECK(!strcmp(e[0].path, "cfg.json") && e[0].size == 2 && !memcmp(e[0].data, "{}", 2), "cfg.json");
    CHECK(!strcmp(e[1].path, "sae_weights.safetensors") && e[1].size == sizeof big &&
          !memcmp(e[1].data, big, sizeof big), "weights");
    CHECK(e[2].size == 0, "empty file");
    tar_file bad[] = { { "../x", "a", 1 } };
    CHECK(tar_write(bad, 1, 0, b, tar_archive_size(bad, 1)) == -1, "writer refuses '..'");
    size_t need = tar_archive_size(f, 1);
    CHECK(len >= need && tar_write(f, 1, 0, b, need - 512) == -1 && tar_write(f, 1, 0, b, need + 1) == -1,
          "writer refuses a buffer length other than tar_archive_size (also where asserts are off)");
    CHECK(tar_write(f, 1, 0, b, need) == 0, "and writes with the exact length");
    free(b);
}

/* GNU tar (./-prefixed names, a directory entry) and Python's tarfile (PAX, float mtime, a long name). */
static void test_foreign(const char *dir)
{
    char cmd[1024], path[512], err[256] = "";
    snprintf(cmd, sizeof cmd, "cd '%s' && mkdir -p sae && printf '{\"a\":1}' > sae/cfg.json && "
             "head -c 3000 /dev/zero > sae/w.bin && tar -C sae -cf gnu.tar . && "
             "/usr/bin/python3 -c \"import tarfile; t=tarfile.open('py.tar','w'); t.add('sae/cfg.json', "
             "arcname='d/' + 'x'*150 + '/cfg.json'); t.add('sae/w.bin', arcname='w.bin'); t.close()\"", dir);
    CHECK(system(cmd) == 0, "fixtures by tar(1) and python");
    const char *names[] = { "gnu.tar", "py.tar" };
    for (int i = 0; i < 2; i++) {
        size_t len;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unsigned char *b = slurp(path, &len);
        tar_entry e[4];
        int n = b ? read_all(b, len, e, 4, err, sizeof err) : -1;
        CHECK(n == 2, "%s: two files (%d): %s", names[i], n, err);
        int saw_cfg = 0;
        for (int k = 0; k < n && k < 4; k++) {
            size_t pl = strlen(e[k].path);
            if (pl >= 8 && !strcmp(e[k].path + pl - 8, "cfg.json"))
                saw_cfg = e[k].size == 7 && !memcmp(e[k].data, "{\"a\":1}", 7);
            if (!strcmp(e[k].path, "w.bin")) CHECK(e[k].size == 3000, "%s: w.bin size", names[i]);
        }
        CHECK(saw_cfg, "%s: cfg.json read", names[i]);
        free(b);
    }
}

static void expect_refused(const unsigned char *b, size_t len, const char *needle, const char *what)
{
    char err[256] = "";
    tar_entry e[2];
    int n = read_all(b, len, e, 2, err, sizeof err);
    CHECK(n == -1 && strstr(err, needle), "%s refused with '%s': %d '%s'", what, needle, n, err);
}

static void test_refusals(void)
{
    unsigned char b[512 * 4];
    static const struct { const char *name; char type; unsigned size; const char *needle; } one[] = {
        { "../etc/passwd", '0', 0, "traversal" }, { "a/../../b", '0', 0, "traversal" },
        { "/etc/passwd", '0', 0, "absolute" }, { "link", '2', 0, "symbolic link" },
        { "dev", '3', 0, "device" }, { "a//b", '0', 0, "empty path component" }, { "big", '0', 4096, "past the end" },
    };
    memset(b, 0, sizeof b);
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
        tartest_header(b, one[i].name, one[i].type, one[i].size);
        expect_refused(b, sizeof b, one[i].needle, one[i].name);
    }
    tartest_header(b, "ok", '0', 0);
    b[0] = 'O'; /* checksum no longer matches */
    expect_refused(b, sizeof b, "checksum", "a damaged header");
    tartest_header(b, "ok", '0', 0);
    expect_refused(b, 512, "truncated", "no end block");
    memset(b + 512, 0, sizeof b - 512);
    b[sizeof b - 1] = 1;
    expect_refused(b, sizeof b, "after the end", "trailing garbage");
    tartest_header(b, "ok", '0', 0);
    memcpy(b + 124, "\x80\0\0\0\0\0\0\0\0\0\0\x01", 12); /* base-256 size */
    tartest_checksum(b);
    expect_refused(b, sizeof b, "not octal", "a base-256 size");
    char err[64];
    tar_reader r;
    tar_entry e;
    tar_reader_init(&r, b, 0);
    CHECK(tar_next(&r, &e, err, sizeof err) == -1, "an empty buffer is not an archive");
}

/* Random bytes changed in a good archive: every outcome is an error or entries inside the buffer. */
static void test_damage(void)
{
    char data[700];
    memset(data, 'x', sizeof data);
    tar_file f[] = { { "cfg.json", data, 300 }, { "w", data, 700 } };
    size_t len;
    unsigned char *good = build(f, 2, &len), *b = malloc(len);
    int bad = 0;
    srand(7);
    for (int it = 0; it < 20000 && good && b; it++) {
        memcpy(b, good, len);
        for (int k = 0; k < 1 + it % 4; k++) b[(size_t)rand() % len] = (unsigned char)rand();
        tar_reader r;
        tar_entry e;
        char err[256];
        int rc, steps = 0;
        tar_reader_init(&r, b, len);
        while ((rc = tar_next(&r, &e, err, sizeof err)) == 1 && steps++ < 10)
            if (e.data < b || e.data + e.size > b + len) bad++;
        if (rc == -1 && !err[0]) bad++;
    }
    CHECK(bad == 0, "damaged archives: %d entries outside the buffer or errors without a message", bad);
    free(good);
    free(b);
}

int main(void)
{
    char dir[] = "/tmp/saed-test-tar-XXXXXX", cmd[128];
    if (!mkdtemp(dir)) {
        CHECK(0, "cannot create a temporary directory");
        return check_report();
    }
    test_roundtrip();
    test_foreign(dir);
    test_refusals();
    test_damage();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", dir);
    return check_report();
}
