/* test_api_disk — a full disk, on a real small file system (issue 15, item 10): a
 * saed whose data directory is a 16 MiB tmpfs.
 *
 *   - /v1/health reports the data directory's free and total bytes, "ok"
 *     while there is room and "degraded" (disk.low) when it is nearly full;
 *   - importing an .npy by path that does not fit is a 507 problem naming
 *     the field (it was a 500), creating no dataset and leaving no staging
 *     folder;
 *   - a train job whose checkpoint no longer fits fails with a message that
 *     says to free space and submit it again, and leaves no checkpoint;
 *   - once space is freed health says "ok" again.
 *
 * Mounting needs root (CAP_SYS_ADMIN): without it the suite says why and
 * skips. */
#include "check.h"
#include "apitest.h"
#include "npy.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define DISK_MB 16

static at_daemon g_d;
static char g_mnt[256], g_imp[256];

static long long free_bytes(void)
{
    struct statvfs v;
    return statvfs(g_mnt, &v) ? -1 : (long long)v.f_bavail * (long long)v.f_frsize;
}

/* Grows mnt/filler until `leave` bytes are free (or shrinks nothing: it only writes). */
static void fill_leaving(long long leave)
{
    char path[300];
    snprintf(path, sizeof path, "%s/filler", g_mnt);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    static char block[65536];
    long long want = free_bytes() - leave;
    while (fd >= 0 && want > 0) {
        ssize_t n = write(fd, block, want < (long long)sizeof block ? (size_t)want : sizeof block);
        if (n <= 0) break;
        want -= n;
    }
    if (fd >= 0) close(fd);
}

static void unfill(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/filler", g_mnt);
    unlink(path);
}

static json_t *health(void)
{
    return at_expect_json(at_http("GET", "/v1/health", NULL), 200);
}

static int staging_left(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/datasets", g_mnt);
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += !strncmp(e->d_name, ".staging-", 9);
    if (d) closedir(d);
    return n;
}

/* A valid 20 MiB .npy of zeros in the import directory: more than the whole tmpfs. */
static int write_big_npy(void)
{
    char path[300], hdr[NPY_HEADER_MAX];
    int64_t shape[2] = { 5120, 1024 };
    size_t hl = npy_header(hdr, sizeof hdr, "<f4", shape, 2);
    snprintf(path, sizeof path, "%s/big.npy", g_imp);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int ok = fd >= 0 && write(fd, hdr, hl) == (ssize_t)hl && ftruncate(fd, (off_t)(hl + 5120u * 1024u * 4u)) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

static void test_health_ok(void)
{
    json_t *h = health();
    json_t *disk = json_object_get(h, "disk");
    CHECK(!strcmp(at_jstr(h, "status"), "ok"), "an empty disk is ok: %s", at_jstr(h, "status"));
    CHECK(at_jint(disk, "total_bytes") >= (DISK_MB - 1) << 20 && at_jint(disk, "total_bytes") <= DISK_MB << 20,
          "health names the data directory's file system: total %lld", at_jint(disk, "total_bytes"));
    CHECK(at_jint(disk, "free_bytes") > 0 && json_is_false(json_object_get(disk, "low")), "with room free (%lld)",
          at_jint(disk, "free_bytes"));
    json_decref(h);
}

static void test_import_full(void)
{
    json_t *before = at_expect_json(at_http("GET", "/v1/datasets", NULL), 200);
    size_t n0 = json_array_size(json_object_get(before, "items"));
    json_decref(before);
    at_expect_problem("an import larger than the disk",
                      at_http("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"big.npy\"}"), 507, "path");
    json_t *after = at_expect_json(at_http("GET", "/v1/datasets", NULL), 200);
    CHECK(json_array_size(json_object_get(after, "items")) == n0, "no dataset was created");
    json_decref(after);
    CHECK(staging_left() == 0, "and no staging folder is left (%d)", staging_left());
}

/* A train job writing a ~3 MiB checkpoint every 50 steps; once one is on disk, all but 1.5 MiB is filled. */
static void test_job_full(void)
{
    long long ds = at_post_id("/v1/datasets", "{\"kind\":\"circles\",\"name\":\"c\",\"params\":{\"n_circles\":50,"
                              "\"dim\":32}}", 201);
    long long job = at_post_id("/v1/jobs", at_fmt("{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\","
                               "\"n_latents\":4096},\"train\":{\"steps\":1000000,\"batch_size\":32,"
                               "\"checkpoint_every\":50,\"eval_rows\":64}}", ds), 202);
    char ckpt[400];
    snprintf(ckpt, sizeof ckpt, "%s/jobs/%lld/checkpoint.bin", g_mnt, job);
    double t0 = at_now_s();
    while (access(ckpt, F_OK) && at_now_s() - t0 < 60) at_sleep_ms(100);
    CHECK(access(ckpt, F_OK) == 0, "the job wrote a checkpoint");
    fill_leaving((long long)3 << 19);
    json_t *j = at_wait_job(job, "failed succeeded cancelled", 60);
    const char *err = at_jstr(j, "error");
    CHECK(!strcmp(at_jstr(j, "state"), "failed") && strstr(err, "No space left") && strstr(err, "free space there") &&
          strstr(err, "submit this job again"), "a job out of disk fails saying what to do: %s %.400s",
          at_jstr(j, "state"), err);
    CHECK(access(ckpt, F_OK) != 0, "and leaves no checkpoint behind");
    json_decref(j);
}

static void test_health_low(void)
{
    fill_leaving(64 << 10);
    json_t *h = health();
    CHECK(!strcmp(at_jstr(h, "status"), "degraded") && json_is_true(json_object_get(json_object_get(h, "disk"), "low")),
          "a nearly full disk is degraded: %s, %lld bytes free", at_jstr(h, "status"),
          at_jint(json_object_get(h, "disk"), "free_bytes"));
    json_decref(h);
    unfill();
    h = health();
    CHECK(!strcmp(at_jstr(h, "status"), "ok"), "and ok again once space is freed: %s", at_jstr(h, "status"));
    json_decref(h);
}

int main(void)
{
    snprintf(g_mnt, sizeof g_mnt, "/tmp/saed-diskfs-XXXXXX");
    snprintf(g_imp, sizeof g_imp, "/tmp/saed-diskimp-XXXXXX");
    if (!mkdtemp(g_mnt) || !mkdtemp(g_imp)) { perror("mkdtemp"); return 1; }
    if (mount("tmpfs", g_mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m")) {
        printf("skipped: cannot mount a %d MiB tmpfs for a full disk (%s; needs root)\n", DISK_MB, strerror(errno));
        rmdir(g_mnt), rmdir(g_imp);
        return check_report();
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CHECK(write_big_npy(), "a 20 MiB .npy to import");
    const char *args[] = { "--data-dir", g_mnt, "--import-dir", g_imp, NULL };
    int up = at_daemon_start(&g_d, "disk", args);
    CHECK(up, "daemon answers /v1/health on a %d MiB tmpfs", DISK_MB);
    if (up) {
        test_health_ok();
        test_import_full();
        test_job_full();
        test_health_low();
        CHECK(at_daemon_stop(&g_d), "SIGTERM exits 0");
    }
    if (check_failed) at_daemon_show_log(&g_d);
    else at_daemon_cleanup(&g_d);
    umount2(g_mnt, MNT_DETACH);
    rmdir(g_mnt);
    char path[300];
    snprintf(path, sizeof path, "%s/big.npy", g_imp);
    unlink(path);
    rmdir(g_imp);
    curl_global_cleanup();
    return check_report();
}
